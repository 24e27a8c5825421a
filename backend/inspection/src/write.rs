//! Writing the export: each kind of record read from the store in pages of [`PAGE`] by
//! ascending id, formatted, hashed and compressed into its zip entry as it comes, then the
//! manifest. Only one page is ever held.

use crate::csv::{money, text};
use crate::manifest::{ChainHead, FileEntry, Manifest, FORMAT};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io::{Seek, Write};
use store::{
    ExportCharge, ExportPerson, ExportRange, ExportRefund, ExportTopUp, ExportWaste, Store,
    StoreError,
};
use time::{Date, OffsetDateTime, UtcOffset};

const PAGE: i64 = 2000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// The longest range one export may span (ten years), so a typo cannot ask for millennia.
const MAX_DAYS: i64 = 3660;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("dates are written YYYY-MM-DD: {0:?} is not one")]
    BadDate(String),
    #[error("the range ends ({to}) before it begins ({from})")]
    BackwardRange { from: String, to: String },
    #[error("the range spans more than {MAX_DAYS} days")]
    TooLong,
    #[error("reading the ledger: {0}")]
    Store(#[from] StoreError),
    #[error("writing the zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("writing the zip: {0}")]
    Io(#[from] std::io::Error),
}

/// A range of canteen-local dates, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub from: Date,
    pub to: Date,
}

fn parse_date(s: &str) -> Result<Date, ExportError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.trim(), &fmt).map_err(|_| ExportError::BadDate(s.to_string()))
}

fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

impl Period {
    /// `2026-11-01`, `2026-11-30`: refused when not dates, backwards or over ten years.
    pub fn parse(from: &str, to: &str) -> Result<Period, ExportError> {
        let p = Period {
            from: parse_date(from)?,
            to: parse_date(to)?,
        };
        if p.to < p.from {
            return Err(ExportError::BackwardRange {
                from: iso(p.from),
                to: iso(p.to),
            });
        }
        if (p.to - p.from).whole_days() >= MAX_DAYS {
            return Err(ExportError::TooLong);
        }
        Ok(p)
    }

    /// The instants `[from_ms, to_ms)` the dates span in a UTC offset.
    pub fn span_ms(&self, utc_offset_minutes: i32) -> (i64, i64) {
        let day = |d: Date| (d - Date::from_julian_day(2_440_588).unwrap_or(d)).whole_days();
        let shift = utc_offset_minutes as i64 * 60_000;
        (
            day(self.from) * DAY_MS - shift,
            (day(self.to) + 1) * DAY_MS - shift,
        )
    }
}

fn offset(minutes: i32) -> UtcOffset {
    UtcOffset::from_whole_seconds(minutes * 60).unwrap_or(UtcOffset::UTC)
}

/// An instant as RFC 3339 in the canteen's offset (`2026-11-26T12:10:00+08:00`).
fn at(ms: i64, utc_offset_minutes: i32) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.to_offset(offset(utc_offset_minutes))
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn at_opt(ms: Option<i64>, utc_offset_minutes: i32) -> String {
    ms.map(|m| at(m, utc_offset_minutes)).unwrap_or_default()
}

fn id_opt(id: Option<i64>) -> String {
    id.map(|i| i.to_string()).unwrap_or_default()
}

fn person(p: &ExportPerson) -> String {
    format!(
        "{},{},{}",
        text(&p.employee_no),
        text(&p.name),
        text(&p.department)
    )
}

const CHARGES_HEADER: &str = "charge_id,received_at,kiosk_time,local_date,meal,employee_no,name,department,kiosk_id,amount_yuan,subsidy_yuan,cash_yuan,status,reason,offline,entry_id,idempotency_key";

fn charge_line(c: &ExportCharge, o: i32) -> String {
    let r = &c.charge;
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        r.id,
        at(r.received_ms, o),
        at(r.kiosk_time_ms, o),
        text(&r.local_date),
        r.meal.map(|m| m.as_str()).unwrap_or(""),
        person(&c.person),
        r.kiosk_id,
        money(r.amount),
        money(r.subsidy),
        money(r.cash),
        r.status.as_str(),
        text(r.reason.as_deref().unwrap_or("")),
        r.offline,
        id_opt(r.entry_id),
        text(&r.idempotency_key),
    )
}

const REFUNDS_HEADER: &str = "refund_id,requested_at,decided_at,charge_id,employee_no,name,department,kind,status,amount_yuan,reason,entry_id";

fn refund_line(r: &ExportRefund, o: i32) -> String {
    let f = &r.refund;
    format!(
        "{},{},{},{},{},{},{},{},{},{}",
        f.id,
        at(f.requested_at_ms, o),
        at_opt(f.decided_at_ms, o),
        f.charge_id,
        person(&r.person),
        text(&f.kind),
        f.status.as_str(),
        money(f.amount),
        text(&f.reason),
        id_opt(f.entry_id),
    )
}

const TOP_UPS_HEADER: &str = "entry_id,credited_at,created_at,order_no,employee_no,name,department,amount_yuan,provider,provider_txn";

fn top_up_line(t: &ExportTopUp, o: i32) -> String {
    let p = &t.order;
    format!(
        "{},{},{},{},{},{},{},{}",
        id_opt(p.entry_id),
        at_opt(p.credited_at_ms, o),
        at(p.created_at_ms, o),
        text(&p.order_no),
        person(&t.person),
        money(p.amount),
        text(&p.provider),
        text(p.provider_txn.as_deref().unwrap_or("")),
    )
}

const WASTE_HEADER: &str = "waste_id,measured_at,kiosk_id,employee_no,name,department,charge_id,gross_grams,tare_grams,net_grams,dish,category";

fn waste_line(w: &ExportWaste, o: i32) -> String {
    let r = &w.waste;
    format!(
        "{},{},{},{},{},{},{},{},{},{}",
        r.id,
        at(r.measured_at_ms, o),
        r.kiosk_id,
        w.person.as_ref().map(person).unwrap_or_else(|| ",,".into()),
        id_opt(r.charge_id),
        r.gross_grams,
        r.tare_grams,
        r.net_grams,
        text(r.dish.as_deref().unwrap_or("")),
        text(r.category.as_deref().unwrap_or("")),
    )
}

/// One CSV file of the zip: pages fetched by `fetch` after the last one's `key`, each record
/// a line, hashed and counted as written.
#[allow(clippy::too_many_arguments)]
async fn write_file<W, T, F, Fut>(
    zip: &mut zip::ZipWriter<W>,
    name: &str,
    selected_by: &str,
    header: &str,
    (from_ms, to_ms, o): (i64, i64, i32),
    fetch: F,
    key: impl Fn(&T) -> i64,
    line: impl Fn(&T, i32) -> String,
) -> Result<FileEntry, ExportError>
where
    W: Write + Seek,
    F: Fn(ExportRange) -> Fut,
    Fut: Future<Output = store::Result<Vec<T>>>,
{
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file(name, opts)?;
    let mut hash = Sha256::new();
    // The BOM lets spreadsheets read the Chinese names as UTF-8 (as the journal's CSV).
    let head = format!("\u{feff}{header}\r\n");
    hash.update(head.as_bytes());
    zip.write_all(head.as_bytes())?;
    let mut rows = 0u64;
    let mut after = 0i64;
    loop {
        let page = fetch(ExportRange {
            from_ms,
            to_ms,
            after_id: after,
            limit: PAGE,
        })
        .await?;
        let Some(last) = page.last() else { break };
        after = key(last);
        let mut chunk = String::with_capacity(page.len() * 160);
        for r in &page {
            chunk.push_str(&line(r, o));
            chunk.push_str("\r\n");
        }
        hash.update(chunk.as_bytes());
        zip.write_all(chunk.as_bytes())?;
        rows += page.len() as u64;
    }
    Ok(FileEntry {
        name: name.into(),
        sha256: hex::encode(hash.finalize()),
        rows,
        selected_by: selected_by.into(),
    })
}

/// Writes the export of `period` (canteen-local dates of the installation's canteen) to `out`
/// and answers its manifest. The chain head is read before the records, so every audit entry
/// up to it was sealed before anything in the files was read.
pub async fn write_export<W: Write + Seek>(
    store: &dyn Store,
    period: Period,
    now_ms: i64,
    out: W,
) -> Result<Manifest, ExportError> {
    let o = store
        .list_canteens()
        .await?
        .first()
        .map(|c| c.utc_offset_minutes)
        .unwrap_or(480);
    let (from_ms, to_ms) = period.span_ms(o);
    let head = store
        .audit_head()
        .await?
        .map(|(seq, hash)| ChainHead { seq, hash });
    let mut zip = zip::ZipWriter::new(out);
    let span = (from_ms, to_ms, o);
    let files = vec![
        write_file(
            &mut zip,
            "charges.csv",
            "received_at",
            CHARGES_HEADER,
            span,
            |r| store.export_charges(r),
            |c: &ExportCharge| c.charge.id,
            charge_line,
        )
        .await?,
        write_file(
            &mut zip,
            "refunds.csv",
            "requested_at",
            REFUNDS_HEADER,
            span,
            |r| store.export_refunds(r),
            |r: &ExportRefund| r.refund.id,
            refund_line,
        )
        .await?,
        write_file(
            &mut zip,
            "top_ups.csv",
            "credited_at",
            TOP_UPS_HEADER,
            span,
            |r| store.export_top_ups(r),
            |t: &ExportTopUp| t.order.entry_id.unwrap_or(i64::MAX),
            top_up_line,
        )
        .await?,
        write_file(
            &mut zip,
            "waste.csv",
            "measured_at",
            WASTE_HEADER,
            span,
            |r| store.export_waste(r),
            |w: &ExportWaste| w.waste.id,
            waste_line,
        )
        .await?,
    ];
    let manifest = Manifest {
        format: FORMAT.into(),
        from: iso(period.from),
        to: iso(period.to),
        utc_offset_minutes: o,
        from_ms,
        to_ms,
        exported_at: at(now_ms, o),
        exported_at_ms: now_ms,
        audit_chain_head: head,
        files,
    };
    zip.start_file(
        crate::verify::MANIFEST,
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )?;
    let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    zip.write_all(&json)?;
    zip.finish()?.flush()?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_span_canteen_days() {
        let p = Period::parse("2026-11-27", "2026-11-27").expect("a day");
        // 2026-11-27 00:00 in UTC+8 is 2026-11-26 16:00 UTC.
        assert_eq!(p.span_ms(480), (1_795_708_800_000, 1_795_795_200_000));
        assert!(matches!(
            Period::parse("2026-11-28", "2026-11-27"),
            Err(ExportError::BackwardRange { .. })
        ));
        assert!(matches!(
            Period::parse("27/11/2026", "2026-11-27"),
            Err(ExportError::BadDate(_))
        ));
        assert!(matches!(
            Period::parse("1900-01-01", "2026-11-27"),
            Err(ExportError::TooLong)
        ));
        assert_eq!(at(1_795_708_800_000, 480), "2026-11-27T00:00:00+08:00");
    }
}
