//! The managers' journal (`/manage/journal`): every entry as it touched people's accounts,
//! filtered by date range, person (employee number), department, kiosk and kind, 50 entries a
//! page; its "plate waste" kind lists the weighed plates instead, under the same filter.
//! `/manage/journal.csv` and `.xlsx` export exactly what the filter shows, read page by page
//! from the store (a year of a large canteen is never held in memory).
//!
//! CSV cells follow [`inspection::csv`], the rule every export of the backend shares: text
//! that came from people (names, employee numbers, memos) is escaped against formula
//! injection; the money columns are numbers and are not.

use crate::error::{OrPage, PageError};
use crate::format::{self, day_start_ms, local_day, local_time, signed_yuan};
use crate::i18n::{Lang, Tr};
use crate::manage::canteen_offset;
use crate::session::{Chrome, Manager};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use inspection::csv::{money as csv_money, text as csv_text};
use ledger::Fen;
use serde::Deserialize;
use std::future::Future;
use store::{JournalFilter, JournalLine, StoreError, WasteFilter, WasteLine};

const PAGE: i64 = 50;
const EXPORT_PAGE: i64 = 1000;
/// The kinds the filter offers: the entry kinds, then the plates weighed.
const KINDS: [&str; 7] = [
    "charge",
    "top_up",
    "refund",
    "reversal",
    "subsidy_grant",
    "subsidy_expiry",
    WASTE,
];
/// The filter's kind for plate-waste records (not a journal entry: no money moves).
const WASTE: &str = "waste";

pub fn routes() -> Router<HostRef> {
    Router::new()
        .route("/manage/journal", get(page))
        .route("/manage/journal.csv", get(export))
        .route("/manage/journal.xlsx", get(export_xlsx))
}

pub fn kind_name(kind: &str, t: &'static Tr) -> &'static str {
    match kind {
        "charge" => t.kind_charge,
        "top_up" => t.kind_topup,
        "refund" => t.kind_refund,
        "reversal" => t.kind_reversal,
        "subsidy_grant" => t.kind_subsidy,
        "subsidy_expiry" => t.kind_subsidy_expiry,
        WASTE => t.kind_waste,
        _ => t.kind_other,
    }
}

#[derive(Deserialize, Default, Clone)]
pub struct JournalQuery {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub person: String,
    #[serde(default)]
    pub department: String,
    #[serde(default)]
    pub kiosk: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub before: Option<i64>,
    /// With `before`, for plates: the weighing time of the plate to continue below.
    #[serde(default)]
    pub before_at: Option<i64>,
}

/// The filter as understood: dates default to the last 30 days; unknown kinds and kiosk ids
/// that are not numbers are refused.
struct Filter {
    from_day: i64,
    to_day: i64,
    person: Option<String>,
    department: Option<String>,
    kiosk: Option<i64>,
    kind: Option<String>,
}

impl Filter {
    fn parse(q: &JournalQuery, today: i64) -> Option<Filter> {
        let day = |s: &str, default: i64| {
            if s.trim().is_empty() {
                Some(default)
            } else {
                format::parse_day(s)
            }
        };
        let to_day = day(&q.to, today)?;
        let from_day = day(&q.from, to_day - 29)?;
        let kind = match q.kind.trim() {
            "" => None,
            k if KINDS.contains(&k) => Some(k.to_string()),
            _ => return None,
        };
        let kiosk = match q.kiosk.trim() {
            "" => None,
            k => Some(k.parse::<i64>().ok()?),
        };
        let given = |s: &str| Some(s.trim().to_string()).filter(|p| !p.is_empty());
        Some(Filter {
            from_day: from_day.min(to_day),
            to_day,
            person: given(&q.person),
            department: given(&q.department),
            kiosk,
            kind,
        })
    }

    fn waste(&self) -> bool {
        self.kind.as_deref() == Some(WASTE)
    }

    fn range_ms(&self, offset: i32) -> (i64, i64) {
        (
            day_start_ms(self.from_day, offset),
            day_start_ms(self.to_day + 1, offset),
        )
    }

    fn store_filter(&self, offset: i32, before: Option<i64>, limit: i64) -> JournalFilter {
        let (from_ms, to_ms) = self.range_ms(offset);
        JournalFilter {
            from_ms,
            to_ms,
            employee_no: self.person.clone(),
            department: self.department.clone(),
            kiosk_id: self.kiosk,
            kind: self.kind.clone(),
            before_entry_id: before,
            limit,
        }
    }

    fn waste_filter(&self, offset: i32, before: Option<(i64, i64)>, limit: i64) -> WasteFilter {
        let (from_ms, to_ms) = self.range_ms(offset);
        WasteFilter {
            from_ms,
            to_ms,
            employee_no: self.person.clone(),
            department: self.department.clone(),
            kiosk_id: self.kiosk,
            before,
            limit,
        }
    }

    /// The query string that repeats this filter (for the next page and the export link).
    fn query(&self) -> String {
        let mut q = format!(
            "from={}&to={}",
            format::iso_day(self.from_day),
            format::iso_day(self.to_day)
        );
        if let Some(p) = &self.person {
            q.push_str(&format!("&person={}", crate::session::encode(p)));
        }
        if let Some(d) = &self.department {
            q.push_str(&format!("&department={}", crate::session::encode(d)));
        }
        if let Some(k) = self.kiosk {
            q.push_str(&format!("&kiosk={k}"));
        }
        if let Some(k) = &self.kind {
            q.push_str(&format!("&kind={k}"));
        }
        q
    }
}

pub struct Row {
    pub entry_id: i64,
    pub time: String,
    pub kind: &'static str,
    pub employee_no: String,
    pub name: String,
    pub cash: String,
    pub subsidy: String,
    pub total: String,
    pub memo: String,
}

pub struct WasteRow {
    pub id: i64,
    pub time: String,
    pub kiosk: String,
    pub employee_no: String,
    pub name: String,
    pub department: String,
    pub grams: String,
    pub dish: String,
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "journal.html")]
pub struct JournalPage {
    pub c: Chrome,
    pub from: String,
    pub to: String,
    pub person: String,
    pub kinds: Vec<Choice>,
    pub departments: Vec<Choice>,
    pub kiosks: Vec<Choice>,
    pub rows: Vec<Row>,
    /// The plates, when the filter's kind is plate waste (then `rows` is empty).
    pub waste: Option<Vec<WasteRow>>,
    pub query: String,
    pub next: Option<String>,
    pub first_page: bool,
}

async fn today_and_offset(host: &HostRef) -> Result<(i64, i32), store::StoreError> {
    let offset = canteen_offset(host).await?;
    Ok((local_day(host.now_ms(), offset), offset))
}

/// The rows of one page and, when there is a page after it, the id to continue below. The
/// store is asked for one item more than a page: if it came, there is a next page.
async fn journal_rows(
    host: &HostRef,
    f: &Filter,
    offset: i32,
    before: Option<i64>,
    t: &'static Tr,
) -> Result<(Vec<Row>, Option<i64>), StoreError> {
    let lines = host
        .store()
        .journal_page(f.store_filter(offset, before, PAGE + 1))
        .await?;
    let mut entries: Vec<i64> = lines.iter().map(|l| l.entry_id).collect();
    entries.dedup();
    let more = entries.len() as i64 > PAGE;
    let last_shown = entries.get(PAGE as usize - 1).copied();
    let rows = lines
        .into_iter()
        .filter(|l| !more || last_shown.is_some_and(|last| l.entry_id >= last))
        .map(|l| Row {
            entry_id: l.entry_id,
            time: local_time(l.at_ms, offset),
            kind: kind_name(&l.kind, t),
            employee_no: l.employee_no,
            name: l.name,
            cash: signed_yuan(l.cash_delta),
            subsidy: signed_yuan(l.subsidy_delta),
            total: signed_yuan(Fen(l.cash_delta.0 + l.subsidy_delta.0)),
            memo: l.memo,
        })
        .collect();
    Ok((rows, if more { last_shown } else { None }))
}

async fn waste_rows(
    host: &HostRef,
    f: &Filter,
    offset: i32,
    before: Option<(i64, i64)>,
    t: &'static Tr,
) -> Result<(Vec<WasteRow>, Option<(i64, i64)>), StoreError> {
    let mut lines = host
        .store()
        .waste_page(f.waste_filter(offset, before, PAGE + 1))
        .await?;
    let more = lines.len() as i64 > PAGE;
    lines.truncate(PAGE as usize);
    let next = if more {
        lines.last().map(|l| (l.at_ms, l.id))
    } else {
        None
    };
    let rows = lines
        .into_iter()
        .map(|l| {
            let (employee_no, name, department) = match l.person {
                Some(p) => (p.employee_no, p.name, p.department),
                None => (
                    String::new(),
                    t.not_recognised_plate.to_string(),
                    String::new(),
                ),
            };
            WasteRow {
                id: l.id,
                time: local_time(l.at_ms, offset),
                kiosk: l.kiosk,
                employee_no,
                name,
                department,
                grams: format!("{} {}", format::count(l.net_grams), t.grams),
                dish: l.dish.unwrap_or_default(),
            }
        })
        .collect();
    Ok((rows, next))
}

pub async fn page(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Query(q): Query<JournalQuery>,
) -> Result<JournalPage, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let (today, offset) = today_and_offset(&host).await.or_page(lang)?;
    let f = Filter::parse(&q, today).ok_or_else(|| PageError::bad_filter(lang))?;
    let (rows, waste, next) = if f.waste() {
        let before = q.before.zip(q.before_at).map(|(id, at)| (at, id));
        let (rows, next) = waste_rows(&host, &f, offset, before, t)
            .await
            .or_page(lang)?;
        let next = next.map(|(at, id)| format!("before={id}&before_at={at}"));
        (Vec::new(), Some(rows), next)
    } else {
        let (rows, next) = journal_rows(&host, &f, offset, q.before, t)
            .await
            .or_page(lang)?;
        (rows, None, next.map(|id| format!("before={id}")))
    };
    let departments = host.store().departments().await.or_page(lang)?;
    let kiosks = host.store().list_kiosks().await.or_page(lang)?;
    let query = f.query();
    Ok(JournalPage {
        c: v.chrome("journal"),
        from: format::iso_day(f.from_day),
        to: format::iso_day(f.to_day),
        person: f.person.clone().unwrap_or_default(),
        kinds: KINDS
            .iter()
            .map(|k| Choice {
                value: k.to_string(),
                label: kind_name(k, t).to_string(),
                selected: f.kind.as_deref() == Some(*k),
            })
            .collect(),
        departments: departments
            .into_iter()
            .map(|d| Choice {
                selected: f.department.as_deref() == Some(d.as_str()),
                value: d.clone(),
                label: d,
            })
            .collect(),
        kiosks: kiosks
            .into_iter()
            .map(|k| Choice {
                value: k.id.to_string(),
                label: k.name,
                selected: f.kiosk == Some(k.id),
            })
            .collect(),
        rows,
        waste,
        next: next.map(|cursor| format!("{query}&{cursor}")),
        first_page: q.before.is_none(),
        query,
    })
}

fn csv_line(l: &JournalLine, offset: i32) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{}\r\n",
        l.entry_id,
        local_time(l.at_ms, offset),
        csv_text(&l.kind),
        csv_text(&l.employee_no),
        csv_text(&l.name),
        csv_money(l.cash_delta),
        csv_money(l.subsidy_delta),
        csv_money(Fen(l.cash_delta.0 + l.subsidy_delta.0)),
        csv_text(&l.memo),
    )
}

fn waste_csv_line(l: &WasteLine, offset: i32) -> String {
    let (employee_no, name, department) = match &l.person {
        Some(p) => (
            p.employee_no.as_str(),
            p.name.as_str(),
            p.department.as_str(),
        ),
        None => ("", "", ""),
    };
    format!(
        "{},{},{},{},{},{},{},{}\r\n",
        l.id,
        local_time(l.at_ms, offset),
        csv_text(&l.kiosk),
        csv_text(employee_no),
        csv_text(name),
        csv_text(department),
        l.net_grams,
        csv_text(l.dish.as_deref().unwrap_or("")),
    )
}

const CSV_HEADER: &str =
    "\u{feff}entry,time,kind,employee_no,name,cash_yuan,subsidy_yuan,total_yuan,memo\r\n";
const WASTE_CSV_HEADER: &str =
    "\u{feff}record,time,kiosk,employee_no,name,department,net_grams,dish\r\n";

/// One page of an export: its items, and where to continue below (`None`: that was all).
type ExportPage<R, C> = (Vec<R>, Option<C>);

/// The export's pages of journal lines (below an entry id) and of plates (below a weighing
/// time and id).
async fn journal_export_page(
    host: HostRef,
    filter: JournalFilter,
    before: Option<i64>,
) -> Result<ExportPage<JournalLine, i64>, StoreError> {
    let lines = host
        .store()
        .journal_page(JournalFilter {
            before_entry_id: before,
            ..filter
        })
        .await?;
    let next = lines.last().map(|l| l.entry_id);
    Ok((lines, next))
}

async fn waste_export_page(
    host: HostRef,
    filter: WasteFilter,
    before: Option<(i64, i64)>,
) -> Result<ExportPage<WasteLine, (i64, i64)>, StoreError> {
    let lines = host
        .store()
        .waste_page(WasteFilter { before, ..filter })
        .await?;
    let next = lines.last().map(|l| (l.at_ms, l.id));
    Ok((lines, next))
}

/// A CSV body streamed page by page: the header, then each page's lines as it is read. A page
/// that fails to load ends the stream with an error, so the client sees a cut-off download
/// rather than a silently short file.
fn csv_stream<R, C, F, Fut>(
    header: &'static str,
    fetch: F,
    line: fn(&R, i32) -> String,
    offset: i32,
) -> Body
where
    R: Send + 'static,
    C: Send + 'static,
    F: Fn(Option<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ExportPage<R, C>, StoreError>> + Send + 'static,
{
    enum Cursor<C> {
        Start,
        Before(Option<C>),
        Done,
    }
    let fetch = std::sync::Arc::new(fetch);
    let stream = futures_util::stream::unfold(Cursor::Start, move |cursor| {
        let fetch = fetch.clone();
        async move {
            let before = match cursor {
                Cursor::Start => {
                    return Some((
                        Ok(Bytes::from_static(header.as_bytes())),
                        Cursor::Before(None),
                    ))
                }
                Cursor::Before(b) => b,
                Cursor::Done => return None,
            };
            match fetch(before).await {
                Ok((items, _)) if items.is_empty() => None,
                Ok((items, next)) => {
                    let mut chunk = String::with_capacity(items.len() * 96);
                    for item in &items {
                        chunk.push_str(&line(item, offset));
                    }
                    Some((Ok(Bytes::from(chunk)), Cursor::Before(next)))
                }
                Err(e) => {
                    tracing::error!(error = %e.report(), "journal export failed");
                    Some((Err(std::io::Error::other(e.report())), Cursor::Done))
                }
            }
        }
    });
    Body::from_stream(stream)
}

pub async fn export(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Query(q): Query<JournalQuery>,
) -> Result<Response, PageError> {
    let lang = v.lang;
    let (today, offset) = today_and_offset(&host).await.or_page(lang)?;
    let f = Filter::parse(&q, today).ok_or_else(|| PageError::bad_filter(lang))?;
    let (stem, body) = if f.waste() {
        let filter = f.waste_filter(offset, None, EXPORT_PAGE);
        let fetch = move |before| waste_export_page(host.clone(), filter.clone(), before);
        (
            "waste",
            csv_stream(WASTE_CSV_HEADER, fetch, waste_csv_line, offset),
        )
    } else {
        let filter = f.store_filter(offset, None, EXPORT_PAGE);
        let fetch = move |before| journal_export_page(host.clone(), filter.clone(), before);
        ("journal", csv_stream(CSV_HEADER, fetch, csv_line, offset))
    };
    let file = format!(
        "{stem}-{}-{}.csv",
        format::iso_day(f.from_day),
        format::iso_day(f.to_day)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// A worksheet cell of an export.
enum Cell<'a> {
    Number(f64),
    Money(Fen),
    Text(std::borrow::Cow<'a, str>),
}

fn text<'a>(s: impl Into<std::borrow::Cow<'a, str>>) -> Cell<'a> {
    Cell::Text(s.into())
}

fn journal_cells<'a>(l: &'a JournalLine, offset: i32, t: &'static Tr) -> Vec<Cell<'a>> {
    vec![
        Cell::Number(l.entry_id as f64),
        text(local_time(l.at_ms, offset)),
        text(kind_name(&l.kind, t)),
        text(&l.employee_no),
        text(&l.name),
        Cell::Money(l.cash_delta),
        Cell::Money(l.subsidy_delta),
        Cell::Money(Fen(l.cash_delta.0 + l.subsidy_delta.0)),
        text(&l.memo),
    ]
}

fn waste_cells<'a>(l: &'a WasteLine, offset: i32, _: &'static Tr) -> Vec<Cell<'a>> {
    let person = |f: fn(&store::WastePerson) -> &str| l.person.as_ref().map_or("", f);
    vec![
        Cell::Number(l.id as f64),
        text(local_time(l.at_ms, offset)),
        text(&l.kiosk),
        text(person(|p| &p.employee_no)),
        text(person(|p| &p.name)),
        text(person(|p| &p.department)),
        Cell::Number(l.net_grams as f64),
        text(l.dish.as_deref().unwrap_or("")),
    ]
}

/// The XLSX export: the same filter and items as the CSV. Rows are written page by page into a
/// worksheet kept on disk (`constant_memory`), so a year of a large canteen never sits in
/// memory; the finished file is then streamed. Text goes in as text cells, which a spreadsheet
/// never evaluates, so a name like `=cmd|...` stays a name.
pub async fn export_xlsx(
    State(host): State<HostRef>,
    Manager(v): Manager,
    Query(q): Query<JournalQuery>,
) -> Result<Response, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let (today, offset) = today_and_offset(&host).await.or_page(lang)?;
    let f = Filter::parse(&q, today).ok_or_else(|| PageError::bad_filter(lang))?;
    let days = format!(
        "{}-{}.xlsx",
        format::iso_day(f.from_day),
        format::iso_day(f.to_day)
    );
    if f.waste() {
        let filter = f.waste_filter(offset, None, EXPORT_PAGE);
        let fetch = |before| waste_export_page(host.clone(), filter.clone(), before);
        let columns = [
            (t.entry, 8.0),
            (t.time, 17.0),
            (t.kiosk, 14.0),
            (t.person, 12.0),
            (t.name, 14.0),
            (t.department, 14.0),
            (t.grams_left, 10.0),
            (t.dish, 20.0),
        ];
        let name = format!("waste-{days}");
        xlsx(
            lang,
            t.kind_waste,
            &name,
            &columns,
            offset,
            fetch,
            waste_cells,
        )
        .await
    } else {
        let filter = f.store_filter(offset, None, EXPORT_PAGE);
        let fetch = |before| journal_export_page(host.clone(), filter.clone(), before);
        let columns = [
            (t.entry, 8.0),
            (t.time, 17.0),
            (t.kind, 10.0),
            (t.person, 12.0),
            (t.name, 14.0),
            (t.cash, 10.0),
            (t.subsidy, 10.0),
            (t.amount, 10.0),
            (t.memo, 30.0),
        ];
        let name = format!("journal-{days}");
        xlsx(
            lang,
            t.journal_title,
            &name,
            &columns,
            offset,
            fetch,
            journal_cells,
        )
        .await
    }
}

async fn xlsx<R, C, F, Fut>(
    lang: Lang,
    sheet_name: &str,
    file_name: &str,
    columns: &[(&str, f64)],
    offset: i32,
    fetch: F,
    cells: for<'a> fn(&'a R, i32, &'static Tr) -> Vec<Cell<'a>>,
) -> Result<Response, PageError>
where
    F: Fn(Option<C>) -> Fut,
    Fut: Future<Output = Result<ExportPage<R, C>, StoreError>>,
{
    let t = lang.tr();
    let fail = |e: rust_xlsxwriter::XlsxError| PageError::internal(lang, e);
    let mut book = rust_xlsxwriter::Workbook::new();
    let money = rust_xlsxwriter::Format::new().set_num_format("0.00");
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let sheet = book.add_worksheet_with_constant_memory().map_err(fail)?;
    sheet.set_name(sheet_name).map_err(fail)?;
    for (c, (title, width)) in columns.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, *title, &bold)
            .map_err(fail)?;
        sheet.set_column_width(c as u16, *width).map_err(fail)?;
    }
    let mut row: u32 = 1;
    let mut before = None;
    loop {
        let (items, next) = fetch(before).await.or_page(lang)?;
        if items.is_empty() {
            break;
        }
        before = next;
        for item in &items {
            for (c, cell) in cells(item, offset, t).into_iter().enumerate() {
                let c = c as u16;
                match cell {
                    Cell::Number(n) => sheet.write_number(row, c, n),
                    Cell::Money(f) => {
                        sheet.write_number_with_format(row, c, f.0 as f64 / 100.0, &money)
                    }
                    Cell::Text(s) => sheet.write_string(row, c, s.as_ref()),
                }
                .map_err(fail)?;
            }
            row += 1;
        }
    }
    // Compressing the finished workbook is CPU work: off the async workers.
    let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, String> {
        let mut out = tempfile::tempfile().map_err(|e| e.to_string())?;
        book.save_to_writer(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .await
    .map_err(|e| PageError::internal(lang, e))?
    .map_err(|e| PageError::internal(lang, e))?;
    crate::upload::download(
        file,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        file_name,
    )
    .map_err(|e| PageError::internal(lang, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_default_to_the_last_30_days_and_refuse_nonsense() {
        let q = JournalQuery::default();
        let f = Filter::parse(&q, 20_000).expect("defaults");
        assert_eq!((f.from_day, f.to_day), (19_971, 20_000));
        let bad = JournalQuery {
            kind: "drop table".into(),
            ..Default::default()
        };
        assert!(Filter::parse(&bad, 20_000).is_none());
        let bad = JournalQuery {
            from: "yesterday".into(),
            ..Default::default()
        };
        assert!(Filter::parse(&bad, 20_000).is_none());
    }
}
