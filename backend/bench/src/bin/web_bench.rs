//! The web pages over a large ledger: how fast the managers' dashboard and journal answer, and
//! how many bytes a page sends, with a year of a 5,000-person canteen in the database
//! (1,000,000 charges with their journal entries and postings, 300,000 plate-waste records by
//! default); and the journal's XLSX export of many rows: its time and the server's peak memory.
//!
//! The rows are written straight into the schema `backend migrate` made, in a few large
//! `INSERT ... SELECT` statements over a counter, in the shape the charge path writes (a charge,
//! its entry, a posting from the person's cash account to revenue; a plate weighed against the
//! charge of about its time, as the return station records it); that takes a minute where
//! charging a million times through the API would take ten. Cached balances and the audit chain
//! are not brought along (no page here reads them). Then a real `backend serve` (the release
//! binary next to this one) answers the pages over loopback, one request at a time.
//!
//! ```sh
//! cargo build --release -p backend -p backend-bench
//! export CLEANPLATE_TEST_POSTGRES_URL="$(scripts/postgres.sh)"
//! target/release/web-bench --db both
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Clone)]
#[command(about = "The web pages over a large ledger")]
struct Args {
    /// sqlite, postgres or both.
    #[arg(long, default_value = "both")]
    db: String,
    /// PostgreSQL server (a scratch database is made on it); defaults to CLEANPLATE_TEST_POSTGRES_URL.
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, default_value_t = 1_000_000)]
    charges: i64,
    #[arg(long, default_value_t = 300_000)]
    waste: i64,
    #[arg(long, default_value_t = 5_000)]
    people: i64,
    /// Requests per page.
    #[arg(long, default_value_t = 40)]
    requests: usize,
    /// Rows of each XLSX export measured (the memory must stay flat as they grow).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    export_rows: Vec<i64>,
}

const DAY_MS: i64 = 86_400_000;
const MANAGER: &str = "bench-manager";
const PASSWORD: &str = "bench-manager-password";

fn backend_exe() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("backend");
    if !exe.exists() {
        bail!(
            "{} not found: build the `backend` binary in the same profile",
            exe.display()
        );
    }
    Ok(exe)
}

/// Runs one `backend` command to completion (migrate, seed-demo, create-manager).
fn backend(url: &str, dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(backend_exe()?)
        .args(args)
        .args(["--database-url", url])
        .env("CLEANPLATE_DEV_MODE", "true")
        .env("CLEANPLATE_DATA_DIR", dir)
        .env("CLEANPLATE_NEW_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "backend {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The fill, as statements both databases read the same way. `{N}`-style values are numbers
/// this program computed, never outside text.
fn fill_statements(a: &Args, now_ms: i64, first_entry: i64) -> Vec<String> {
    let start = now_ms - 365 * DAY_MS;
    let charge_step = (365 * DAY_MS) / a.charges.max(1);
    let waste_step = (365 * DAY_MS) / a.waste.max(1);
    let seq = |n: i64| {
        // 64-bit from the start: times are n * step milliseconds.
        format!("WITH RECURSIVE seq(n) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT n + 1 FROM seq WHERE n < {n}) ")
    };
    let people = a.people;
    vec![
        "INSERT INTO kiosks (name, canteen_id, token_hash, created_at) \
         SELECT 'bench kiosk', MIN(id), 'bench-kiosk-token-hash', 0 FROM canteens"
            .to_string(),
        format!(
            "{}INSERT INTO staff (employee_no, name, department, category, active, meals_per_period, created_at) \
             SELECT 'B' || CAST(n AS TEXT), 'Bench person ' || CAST(n AS TEXT), 'Dept ' || CAST(n % 40 AS TEXT), \
             'regular', TRUE, 1, 0 FROM seq",
            seq(people)
        ),
        "INSERT INTO book_accounts (kind, staff_id, balance_fen) \
         SELECT 'cash', id, 0 FROM staff WHERE employee_no LIKE 'B%' ORDER BY id"
            .to_string(),
        format!(
            "{}INSERT INTO journal_entries (id, kind, created_at, memo) \
             SELECT {first_entry} + n, 'charge', {start} + n * {charge_step}, 'meal' FROM seq",
            seq(a.charges)
        ),
        // Two postings per entry: the person's cash down, the canteen's revenue up. Bench people
        // and their cash accounts were numbered in the same order, so person k is account
        // (first cash account + k).
        format!(
            "{}INSERT INTO postings (entry_id, account_id, amount_fen) \
             SELECT {first_entry} + n, \
               (SELECT MIN(a.id) FROM book_accounts a JOIN staff s ON s.id = a.staff_id \
                WHERE a.kind = 'cash' AND s.employee_no LIKE 'B%') + (n % {people}), -1500 FROM seq",
            seq(a.charges)
        ),
        format!(
            "{}INSERT INTO postings (entry_id, account_id, amount_fen) \
             SELECT {first_entry} + n, (SELECT id FROM book_accounts WHERE kind = 'revenue'), 1500 FROM seq",
            seq(a.charges)
        ),
        format!(
            "{}INSERT INTO charges (kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, \
               kiosk_time, received_at, amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline) \
             SELECT (SELECT MAX(id) FROM kiosks), 'bench-' || CAST(n AS TEXT), \
               (SELECT MIN(id) FROM staff WHERE employee_no LIKE 'B%') + (n % {people}), \
               (SELECT MIN(id) FROM canteens), \
               CASE n % 3 WHEN 0 THEN 'breakfast' WHEN 1 THEN 'lunch' ELSE 'dinner' END, '2026-01-01', \
               {start} + n * {charge_step}, {start} + n * {charge_step}, 1500, 0, 1500, 'accepted', NULL, \
               {first_entry} + n, FALSE FROM seq",
            seq(a.charges)
        ),
        format!(
            "{}INSERT INTO waste_records (kiosk_id, staff_id, charge_id, gross_grams, tare_grams, net_grams, \
               dish, category, measured_at, created_at, meal) \
             SELECT (SELECT MAX(id) FROM kiosks), \
               (SELECT MIN(id) FROM staff WHERE employee_no LIKE 'B%') + (m % {people}), \
               (SELECT MIN(id) FROM charges WHERE kiosk_id = (SELECT MAX(id) FROM kiosks)) + m - 1, \
               400 + (n * 37) % 200, 400, (n * 37) % 200, NULL, NULL, {start} + n * {waste_step}, \
               {start} + n * {waste_step}, \
               CASE m % 3 WHEN 0 THEN 'breakfast' WHEN 1 THEN 'lunch' ELSE 'dinner' END \
             FROM (SELECT n, (n * {charges}) / {waste} AS m FROM seq) plates",
            seq(a.waste),
            charges = a.charges,
            waste = a.waste.max(1)
        ),
        // A database that has run for a year has statistics; give the planner the same.
        "ANALYZE".to_string(),
    ]
}

async fn fill(url: &str, a: &Args) -> Result<Duration> {
    let now = backend::state::now_ms();
    let started = Instant::now();
    if url.starts_with("sqlite:") {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM journal_entries")
            .fetch_one(&mut c)
            .await?;
        for s in fill_statements(a, now, first) {
            // Numbers this program computed, no outside text (see `fill_statements`).
            sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                .execute(&mut c)
                .await
                .with_context(|| s.chars().take(120).collect::<String>())?;
        }
    } else {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await?;
        let first: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0)::BIGINT FROM journal_entries")
                .fetch_one(&mut c)
                .await?;
        for s in fill_statements(a, now, first) {
            // Numbers this program computed, no outside text (see `fill_statements`).
            sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                .execute(&mut c)
                .await
                .with_context(|| s.chars().take(120).collect::<String>())?;
        }
        // The entries were given their ids: move the identity past them.
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('journal_entries', 'id'), (SELECT MAX(id) FROM journal_entries))",
        )
        .execute(&mut c)
        .await?;
    }
    Ok(started.elapsed())
}

/// Peak resident memory of a process so far (VmHWM), in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

struct Timing {
    p50: f64,
    p95: f64,
    max: f64,
    bytes: usize,
}

async fn measure(http: &reqwest::Client, url: &str, cookie: &str, n: usize) -> Result<Timing> {
    let mut ms = Vec::with_capacity(n);
    let mut bytes = 0;
    for i in 0..n + 2 {
        let t = Instant::now();
        let r = http.get(url).header("cookie", cookie).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        let took = t.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            bail!("{url}: {status}");
        }
        // The first two warm the caches, as a manager's second look at a page would.
        if i >= 2 {
            ms.push(took);
            bytes = body.len();
        }
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Ok(Timing {
        p50: at(0.5),
        p95: at(0.95),
        max: *ms.last().unwrap_or(&0.0),
        bytes,
    })
}

async fn run(label: &str, url: &str, a: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    backend(url, dir.path(), &["migrate"])?;
    backend(url, dir.path(), &["seed-demo", "--history-days", "0"])?;
    backend(url, dir.path(), &["create-manager", "--username", MANAGER])?;
    let filled = fill(url, a).await?;
    println!(
        "{label}: filled {} charges (+ entries, postings), {} waste records, {} people in {:.1} s",
        a.charges,
        a.waste,
        a.people,
        filled.as_secs_f64()
    );
    let mut cmd = Command::new(backend_exe()?);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
        .env("CLEANPLATE_DEV_MODE", "true")
        .env("CLEANPLATE_DATA_DIR", dir.path())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    let served = backend_harness::start(cmd, Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("starting the backend: {e}"))?;
    let base = served.url();
    let pid = served.child.id();
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": MANAGER, "password": PASSWORD}))
        .send()
        .await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_string();
    let css = http
        .get(format!("{base}/assets/web.css"))
        .send()
        .await?
        .bytes()
        .await?
        .len();
    println!("{label}: the stylesheet (cached after the first page) is {css} bytes");
    let pages = [
        ("dashboard (today + 30 days)", "/manage".to_string()),
        (
            "journal, last 30 days, page 1",
            "/manage/journal".to_string(),
        ),
        (
            "journal, one person's charges over a year",
            format!(
                "/manage/journal?from={}&to={}&person=B42&kind=charge",
                day_text(-365),
                day_text(0)
            ),
        ),
        (
            "journal, one department (of 40), last 30 days",
            "/manage/journal?department=Dept%207".to_string(),
        ),
        (
            "plate waste, last 30 days, page 1",
            "/manage/journal?kind=waste".to_string(),
        ),
        (
            "plate waste, one department, last 30 days",
            "/manage/journal?kind=waste&department=Dept%207".to_string(),
        ),
        ("staff list, page 1", "/manage/staff".to_string()),
        ("staff search", "/manage/staff?q=person%204999".to_string()),
    ];
    println!("| {label}: page | p50 ms | p95 ms | max ms | bytes (HTML) |");
    println!("|---|---|---|---|---|");
    for (name, path) in &pages {
        let t = measure(&http, &format!("{base}{path}"), &cookie, a.requests).await?;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {} |",
            t.p50, t.p95, t.max, t.bytes
        );
    }
    // The XLSX export: a date range holding about the asked number of rows (the fill spreads
    // charges evenly over the year).
    for rows in &a.export_rows {
        let days = ((*rows as f64) * 365.0 / a.charges as f64).ceil() as i64;
        let before = peak_kib(pid).unwrap_or(0);
        let t = Instant::now();
        let r = http
            .get(format!(
                "{base}/manage/journal.xlsx?from={}&to={}&kind=charge",
                day_text(-days + 1),
                day_text(0)
            ))
            .header("cookie", &cookie)
            .send()
            .await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!("export: {status}");
        }
        let after = peak_kib(pid).unwrap_or(0);
        println!(
            "{label}: XLSX export of {days} days (about {rows} rows): {:.1} s, {} KB file, server peak memory {} -> {} MiB",
            t.elapsed().as_secs_f64(),
            body.len() / 1024,
            before / 1024,
            after / 1024
        );
    }
    drop(served);
    Ok(())
}

/// A day relative to today, as the journal's filter takes it (the canteen's UTC+8).
fn day_text(offset_days: i64) -> String {
    let now = time::OffsetDateTime::now_utc() + time::Duration::hours(8);
    (now.date() + time::Duration::days(offset_days)).to_string()
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    if a.db == "sqlite" || a.db == "both" {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("SQLite", &url, &a).await?;
    }
    if a.db == "postgres" || a.db == "both" {
        let admin = a
            .postgres
            .clone()
            .or_else(|| std::env::var("CLEANPLATE_TEST_POSTGRES_URL").ok())
            .context("--postgres or CLEANPLATE_TEST_POSTGRES_URL")?;
        let name = store_postgres::create_scratch_database(&admin, "cpwebbench").await?;
        let url = backend_harness::database_url(&admin, &name);
        run("PostgreSQL", &url, &a).await?;
    }
    Ok(())
}
