//! Importing staff from a CSV or XLSX file (`/manage/staff/import`). The whole file is read and
//! every row checked first — each field under the API's rule for its kind, employee numbers
//! repeated within the file or already taken — and the report names every bad row with its
//! column and why. Only a file with no bad row is written, all in one transaction
//! (`Store::import_staff`), so an import never leaves half a list behind.
//!
//! Files are untrusted: the upload is capped ([`MAX_UPLOAD_BYTES`], said before the body is
//! read when the request declares its length), an XLSX is read cell by cell and abandoned
//! past [`MAX_ROWS`] rows (a small zip can hold an enormous sheet), and a CSV that is not
//! UTF-8 is read as GB18030, which is how a Chinese-locale spreadsheet saves it.

use crate::error::{OrPage, PageError};
use crate::i18n::Lang;
use crate::people::{field_message, new_staff};
use crate::session::{Chrome, Manager};
use crate::upload::{read_upload, UploadError, FRAMING_BYTES};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::{HashMap, HashSet};
use store::NewStaff;

/// The largest file accepted: a 5,000-person XLSX is about 200 KB.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// The most data rows one import may have.
pub const MAX_ROWS: usize = 20_000;
/// The most problems listed (the rest are counted).
const MAX_LISTED: usize = 200;

/// The routes, with their own body limit (the other pages accept small forms only).
pub fn routes() -> Router<HostRef> {
    Router::new()
        .route("/manage/staff/import", get(form).post(upload))
        .route("/manage/staff/import/template.csv", get(template_csv))
        // Room for the multipart framing around the largest file; the handler says "too
        // large" in words for anything bigger.
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + FRAMING_BYTES))
}

/// The columns, by their header in either language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    EmployeeNo,
    Name,
    Department,
    Category,
}

impl Column {
    fn of_header(h: &str) -> Option<Column> {
        let h = h.trim().trim_start_matches('\u{feff}').to_lowercase();
        match h.as_str() {
            "工号" | "employee_no" | "employee no" | "employee number" => {
                Some(Column::EmployeeNo)
            }
            "姓名" | "name" => Some(Column::Name),
            "部门" | "department" => Some(Column::Department),
            "类别" | "人员类别" | "category" => Some(Column::Category),
            _ => None,
        }
    }

    fn label(self, lang: Lang) -> &'static str {
        let t = lang.tr();
        match self {
            Column::EmployeeNo => t.employee_no,
            Column::Name => t.name,
            Column::Department => t.department,
            Column::Category => t.category,
        }
    }
}

/// One problem: the file's row number (as a spreadsheet shows it, the header being row 1),
/// the column, the value as read, and why.
#[derive(Debug)]
pub struct Problem {
    pub row: usize,
    pub column: &'static str,
    pub value: String,
    pub why: String,
}

/// Why a file could not be read at all.
#[derive(Debug, PartialEq, Eq)]
pub enum Unreadable {
    NotXlsx(String),
    NotCsv(String),
    NoSheet,
    NoHeader,
    MissingColumns(Vec<Column>),
    TooManyRows,
    Empty,
}

impl Unreadable {
    fn message(&self, lang: Lang) -> String {
        let t = lang.tr();
        match self {
            Unreadable::NotXlsx(d) => format!("{} ({d})", t.import_not_xlsx),
            Unreadable::NotCsv(d) => format!("{} ({d})", t.import_not_csv),
            Unreadable::NoSheet => t.import_no_sheet.into(),
            Unreadable::NoHeader => t.import_no_header.into(),
            Unreadable::MissingColumns(c) => format!(
                "{}: {}",
                t.import_missing_columns,
                c.iter()
                    .map(|c| c.label(lang))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Unreadable::TooManyRows => format!("{} ({MAX_ROWS})", t.import_too_many_rows),
            Unreadable::Empty => t.import_empty.into(),
        }
    }
}

/// The rows of a file as text cells, header first, whatever its format.
pub fn rows_of(bytes: &[u8]) -> Result<Vec<Vec<String>>, Unreadable> {
    if bytes.is_empty() {
        return Err(Unreadable::Empty);
    }
    // An XLSX is a zip archive; anything else is taken for CSV.
    if bytes.starts_with(b"PK\x03\x04") {
        xlsx_rows(bytes)
    } else {
        csv_rows(bytes)
    }
}

fn xlsx_rows(bytes: &[u8]) -> Result<Vec<Vec<String>>, Unreadable> {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes))
        .map_err(|e| Unreadable::NotXlsx(e.to_string()))?;
    let first = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or(Unreadable::NoSheet)?;
    let mut cells = book
        .worksheet_cells_reader(&first)
        .map_err(|e| Unreadable::NotXlsx(e.to_string()))?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    while let Some(cell) = cells
        .next_cell()
        .map_err(|e| Unreadable::NotXlsx(e.to_string()))?
    {
        let (r, c) = (
            cell.get_position().0 as usize,
            cell.get_position().1 as usize,
        );
        if r > MAX_ROWS || c > 64 {
            if r > MAX_ROWS {
                return Err(Unreadable::TooManyRows);
            }
            continue;
        }
        if rows.len() <= r {
            rows.resize(r + 1, Vec::new());
        }
        let row = &mut rows[r];
        if row.len() <= c {
            row.resize(c + 1, String::new());
        }
        row[c] = cell_text(cell.get_value());
    }
    Ok(rows)
}

/// A cell as the person typed it: whole numbers without a trailing `.0` (an employee number
/// typed as a number is still `1001`).
fn cell_text(v: &calamine::DataRef<'_>) -> String {
    use calamine::DataRef;
    match v {
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        DataRef::Float(f) => f.to_string(),
        DataRef::Int(i) => i.to_string(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(d) => d.to_string(),
        DataRef::Error(e) => format!("#{e:?}"),
        DataRef::Empty => String::new(),
    }
}

fn csv_rows(bytes: &[u8]) -> Result<Vec<Vec<String>>, Unreadable> {
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s.trim_start_matches('\u{feff}')),
        Err(_) => {
            let (s, _, had_errors) = encoding_rs::GB18030.decode(bytes);
            if had_errors {
                return Err(Unreadable::NotCsv("neither UTF-8 nor GB18030 text".into()));
            }
            s
        }
    };
    if text.contains('\0') {
        return Err(Unreadable::NotCsv("binary data".into()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Unreadable::NotCsv(e.to_string()))?;
        if rows.len() > MAX_ROWS {
            return Err(Unreadable::TooManyRows);
        }
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok(rows)
}

/// The people of a file, or every problem found in it. `taken` holds the employee numbers
/// that already exist.
pub fn check_rows(
    rows: &[Vec<String>],
    taken: &HashSet<String>,
    lang: Lang,
) -> Result<Result<Vec<NewStaff>, Vec<Problem>>, Unreadable> {
    let blank = |r: &Vec<String>| r.iter().all(|c| c.trim().is_empty());
    let mut rows = rows.iter().enumerate().filter(|(_, r)| !blank(r));
    let (_, header) = rows.next().ok_or(Unreadable::NoHeader)?;
    let mut at: HashMap<Column, usize> = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        if let Some(c) = Column::of_header(h) {
            at.entry(c).or_insert(i);
        }
    }
    let missing: Vec<Column> = [Column::EmployeeNo, Column::Name]
        .into_iter()
        .filter(|c| !at.contains_key(c))
        .collect();
    if !missing.is_empty() {
        return Err(Unreadable::MissingColumns(missing));
    }
    let t = lang.tr();
    let cell = |r: &Vec<String>, c: Column| -> String {
        at.get(&c)
            .and_then(|&i| r.get(i))
            .cloned()
            .unwrap_or_default()
    };
    let mut people = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, r) in rows {
        let line = i + 1;
        let employee_no = cell(r, Column::EmployeeNo);
        let name = cell(r, Column::Name);
        let department = cell(r, Column::Department);
        let mut category = cell(r, Column::Category);
        if category.trim().is_empty() {
            // The category decides prices and subsidies; a file without one means the usual.
            category = "regular".into();
        }
        let fields = [
            (Column::EmployeeNo, &employee_no),
            (Column::Name, &name),
            (Column::Department, &department),
            (Column::Category, &category),
        ];
        match new_staff(&employee_no, &name, &department, &category) {
            Err(e) => {
                let column = match e.code {
                    "bad_employee_no" => Column::EmployeeNo,
                    "bad_name" => Column::Name,
                    "bad_department" => Column::Department,
                    _ => Column::Category,
                };
                let value = fields
                    .iter()
                    .find(|(c, _)| *c == column)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default();
                problems.push(Problem {
                    row: line,
                    column: column.label(lang),
                    value,
                    why: field_message(lang, &e),
                });
            }
            Ok(n) => {
                if taken.contains(&n.employee_no) {
                    problems.push(Problem {
                        row: line,
                        column: t.employee_no,
                        value: n.employee_no.clone(),
                        why: t.employee_no_taken.into(),
                    });
                } else if let Some(first) = seen.get(&n.employee_no) {
                    problems.push(Problem {
                        row: line,
                        column: t.employee_no,
                        value: n.employee_no.clone(),
                        why: format!("{} {first}", t.import_repeated_in_file),
                    });
                } else {
                    seen.insert(n.employee_no.clone(), line);
                    people.push(n);
                }
            }
        }
    }
    if people.is_empty() && problems.is_empty() {
        return Err(Unreadable::Empty);
    }
    Ok(if problems.is_empty() {
        Ok(people)
    } else {
        Err(problems)
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "import.html")]
pub struct ImportPage {
    pub c: Chrome,
    /// Why the file could not be read at all.
    pub error: Option<String>,
    pub file: String,
    pub problems: Vec<Problem>,
    /// Problems beyond the listed ones.
    pub more_problems: usize,
    pub rows_checked: usize,
    /// People created by the import just made.
    pub imported: Vec<(i64, String, String)>,
}

impl ImportPage {
    fn new(c: Chrome) -> Self {
        ImportPage {
            c,
            error: None,
            file: String::new(),
            problems: Vec::new(),
            more_problems: 0,
            rows_checked: 0,
            imported: Vec::new(),
        }
    }
}

pub async fn form(Manager(v): Manager) -> ImportPage {
    ImportPage::new(v.chrome("staff"))
}

pub async fn template_csv() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"staff-import-template.csv\"",
            ),
        ],
        "\u{feff}工号,姓名,部门,类别\nE1001,张三,办公室,regular\n",
    )
        .into_response()
}

/// The upload: checks, then imports only a file without problems.
pub async fn upload(
    State(host): State<HostRef>,
    Manager(v): Manager,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let mut page = ImportPage::new(v.chrome("staff"));
    let refuse = |mut page: ImportPage, status: StatusCode, message: String| {
        page.error = Some(message);
        Ok((status, page).into_response())
    };
    let upload = match read_upload(&headers, multipart, MAX_UPLOAD_BYTES).await {
        Ok(u) => u,
        Err(UploadError::TooLarge) => {
            return refuse(
                page,
                StatusCode::PAYLOAD_TOO_LARGE,
                t.import_too_large.into(),
            )
        }
        Err(UploadError::NoFile) => {
            return refuse(page, StatusCode::BAD_REQUEST, t.import_no_file.into())
        }
    };
    v.check_csrf(&host, &upload.csrf)?;
    let (name, bytes) = (upload.file_name, upload.bytes);
    page.file = name;
    // Reading a sheet is CPU work on untrusted input: off the async workers.
    let rows = tokio::task::spawn_blocking(move || rows_of(&bytes))
        .await
        .map_err(|e| PageError::internal(lang, e))?;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return refuse(page, StatusCode::UNPROCESSABLE_ENTITY, e.message(lang)),
    };
    let taken = employee_numbers(&host, lang).await?;
    let people = match check_rows(&rows, &taken, lang) {
        Err(e) => return refuse(page, StatusCode::UNPROCESSABLE_ENTITY, e.message(lang)),
        Ok(Err(mut problems)) => {
            page.rows_checked = rows.len().saturating_sub(1);
            page.more_problems = problems.len().saturating_sub(MAX_LISTED);
            problems.truncate(MAX_LISTED);
            page.problems = problems;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
        Ok(Ok(people)) => people,
    };
    page.rows_checked = people.len();
    let created = host
        .store()
        .import_staff(people, &v.actor())
        .await
        .or_page(lang)?;
    page.imported = created
        .into_iter()
        .map(|s| (s.id, s.employee_no, s.name))
        .collect();
    Ok(page.into_response())
}

/// Every employee number in use (active or not: a number is never given twice).
async fn employee_numbers(host: &HostRef, lang: Lang) -> Result<HashSet<String>, PageError> {
    let mut taken = HashSet::new();
    let mut after = String::new();
    loop {
        let page = host
            .store()
            .find_staff(store::StaffSearch {
                text: String::new(),
                include_inactive: true,
                after_employee_no: after.clone(),
                limit: 1000,
            })
            .await
            .or_page(lang)?;
        let Some(last) = page.last() else { break };
        after = last.employee_no.clone();
        taken.extend(page.into_iter().map(|s| s.employee_no));
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        rows_of(text.as_bytes()).expect("readable")
    }

    #[test]
    fn headers_in_either_language_and_any_order() {
        let taken = HashSet::new();
        let r = rows("Name,Employee No,Department\nAlice,A1,IT\n\n,,\n");
        let people = check_rows(&r, &taken, Lang::En).unwrap().unwrap();
        assert_eq!(people.len(), 1);
        assert_eq!(people[0].employee_no, "A1");
        assert_eq!(
            people[0].category, "regular",
            "no category column: the usual"
        );
        let r = rows("\u{feff}工号,姓名\nE1,张三\n");
        assert_eq!(check_rows(&r, &taken, Lang::Zh).unwrap().unwrap().len(), 1);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_row_and_column() {
        let taken: HashSet<String> = ["E9".to_string()].into();
        let r = rows(
            "工号,姓名,部门,类别\nE1,张三,办公室,regular\nE 2,李四,,\nE3,,,\nE1,王五,,\nE9,赵六,,\n",
        );
        let problems = check_rows(&r, &taken, Lang::En).unwrap().unwrap_err();
        let got: Vec<(usize, &str)> = problems.iter().map(|p| (p.row, p.column)).collect();
        assert_eq!(
            got,
            vec![
                (3, "Employee no."),
                (4, "Name"),
                (5, "Employee no."),
                (6, "Employee no.")
            ]
        );
        assert!(problems[2].why.contains('2'), "{}", problems[2].why);
    }

    #[test]
    fn unreadable_files_say_why() {
        let taken = HashSet::new();
        assert_eq!(rows_of(b""), Err(Unreadable::Empty));
        assert!(matches!(
            rows_of(b"PK\x03\x04garbage"),
            Err(Unreadable::NotXlsx(_))
        ));
        let r = rows("姓名\n张三\n");
        assert_eq!(
            check_rows(&r, &taken, Lang::Zh).err(),
            Some(Unreadable::MissingColumns(vec![Column::EmployeeNo]))
        );
        let r = rows("工号,姓名\n");
        assert_eq!(
            check_rows(&r, &taken, Lang::Zh).err(),
            Some(Unreadable::Empty)
        );
    }

    #[test]
    fn gb18030_csv_is_read() {
        let (bytes, _, _) = encoding_rs::GB18030.encode("工号,姓名\nE1,张三\n");
        let r = rows_of(&bytes).expect("GB18030 text");
        assert_eq!(r[1], vec!["E1".to_string(), "张三".to_string()]);
    }

    #[test]
    fn too_many_rows_are_refused() {
        let mut text = String::from("工号,姓名\n");
        for i in 0..=MAX_ROWS + 1 {
            text.push_str(&format!("E{i},N\n"));
        }
        assert_eq!(rows_of(text.as_bytes()), Err(Unreadable::TooManyRows));
    }
}
