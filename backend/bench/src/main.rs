//! `backend-bench`: the load benchmark. Starts a real `backend serve` process (the `backend`
//! binary next to this one, so build both in release), seeds a scratch database with many
//! prepaid accounts and one kiosk per client, and has N concurrent HTTP clients post charges on
//! loopback for a fixed time; reports charges/s and latency percentiles. On PostgreSQL it
//! alternates rounds of that with `pgbench -b tpcb-like` (same client count and duration, same
//! server) and prints the median of the rounds' ratios. Not a test: it asserts nothing about
//! speed, only that every charge it counted was accepted.
//!
//! A crate of its own so that the server's dependencies carry no load-testing code.
//!
//! Example: `cargo build --release -p backend -p backend-bench && target/release/backend-bench --db both --clients 16 --seconds 20`

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Actor, Store};

#[derive(Parser, Debug)]
#[command(about = "Load benchmark: concurrent HTTP charges vs pgbench tpcb-like")]
struct Args {
    /// sqlite, postgres or both.
    #[arg(long, default_value = "both")]
    db: String,
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Measured seconds (after a 2 s warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Prepaid accounts the charges are spread over (10,000 by default: a round of a few seconds
    /// then charges each person a few times that day, as a canteen would, rather than dozens).
    #[arg(long, default_value_t = 10000)]
    accounts: usize,
    /// PostgreSQL server (a scratch database is created on it); defaults to CLEANPLATE_TEST_POSTGRES_URL.
    #[arg(long)]
    pg_url: Option<String>,
    /// pgbench scale factor (0 = as many branches as clients, at least 10: pgbench's own advice,
    /// so its branch rows are not a lock queue of our making).
    #[arg(long, default_value_t = 0)]
    pgbench_scale: u32,
    /// PostgreSQL: rounds of (our HTTP run, then pgbench), each `--seconds` long; the ratio
    /// reported is the median of the rounds' ratios, so a slow spell of the machine during one
    /// run does not decide it.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// SQLite synchronous=FULL (default) or NORMAL.
    #[arg(long)]
    sqlite_normal_sync: bool,
    /// Also measure charges through the store directly (no HTTP), to show the HTTP layer's share.
    #[arg(long)]
    direct: bool,
    /// Audit sealer interval of the benchmarked server.
    #[arg(long, default_value_t = 500)]
    sealer_interval_ms: u64,
    /// Group commit: most charges per transaction (1 = every charge alone, no batching).
    #[arg(long, default_value_t = 64)]
    batch_max: usize,
    /// Group commit: batches in flight at once (0 = the database's default).
    #[arg(long, default_value_t = 0)]
    writers: usize,
    /// Group commit: microseconds a busy writer lets charges gather (0 = the server's default).
    #[arg(long, default_value_t = 0)]
    linger_us: u64,
}

/// The benchmarked `backend serve` process and the last "charge batches" line it logged.
struct Server(backend_harness::Served, Arc<Mutex<String>>);

impl Server {
    /// The server's last "charge batches" log line, as "N batches, M charges (avg A, largest L)".
    fn batch_stats(&self) -> Option<String> {
        let raw = self.1.lock().ok()?.clone();
        // Drop terminal colour codes (ESC [ ... m) the log formatter may have added.
        let mut line = String::with_capacity(raw.len());
        let mut in_escape = false;
        for ch in raw.chars() {
            match (in_escape, ch) {
                (false, '\u{1b}') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, c) => line.push(c),
            }
        }
        let field = |name: &str| -> Option<u64> {
            let start = line.find(&format!("{name}="))? + name.len() + 1;
            line[start..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let (b, c, l) = (field("batches")?, field("charges")?, field("largest")?);
        Some(format!(
            "{b} batches, {c} charges (avg {:.1}, largest {l})",
            c as f64 / b.max(1) as f64
        ))
    }
}

fn describe_stats(s: Option<store::ChargeBatchStats>) -> String {
    match s {
        Some(s) => format!(
            "{} batches, {} charges (avg {:.1}, largest {})",
            s.batches,
            s.charges,
            s.charges as f64 / s.batches.max(1) as f64,
            s.largest
        ),
        None => "batching off".into(),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn start_server(
    url: &str,
    data_dir: &std::path::Path,
    pool: usize,
    normal_sync: bool,
    a: &Args,
) -> Result<(Server, String)> {
    let exe = std::env::current_exe()?.with_file_name("backend");
    if !exe.exists() {
        bail!(
            "{} not found: build the `backend` binary in the same profile",
            exe.display()
        );
    }
    let mut cmd = Command::new(&exe);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
        .env("CLEANPLATE_DEV_MODE", "true")
        .env("CLEANPLATE_DATA_DIR", data_dir)
        .env("CLEANPLATE_MAX_CONNECTIONS", pool.to_string())
        .env(
            "CLEANPLATE_SEALER_INTERVAL_MS",
            a.sealer_interval_ms.to_string(),
        )
        .env("CLEANPLATE_CHARGE_BATCH_MAX", a.batch_max.to_string())
        .env("CLEANPLATE_CHARGE_WRITERS", a.writers.to_string())
        .env("CLEANPLATE_CHARGE_LINGER_US", a.linger_us.to_string())
        .env(
            "CLEANPLATE_SQLITE_SYNCHRONOUS_FULL",
            if normal_sync { "false" } else { "true" },
        )
        .env("RUST_LOG", "warn,backend::batch=debug")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped());
    let mut served = backend_harness::start(cmd, Duration::from_secs(120))
        .with_context(|| format!("starting {}", exe.display()))?;
    let last_stats = Arc::new(Mutex::new(String::new()));
    let stderr = served.child.stderr.take().context("stderr")?;
    let sink = last_stats.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if line.contains("charge batches") {
                if let Ok(mut l) = sink.lock() {
                    *l = line;
                }
            } else {
                eprintln!("server: {line}");
            }
        }
    });
    let addr = served.addr.clone();
    Ok((Server(served, last_stats), addr))
}

/// A canteen whose lunch window covers the whole day, `accounts` people with plenty of money
/// and no meal limit, and one kiosk (token "bench-kiosk-<i>") per client.
async fn seed(store: &dyn Store, accounts: usize, clients: usize) -> Result<Vec<i64>> {
    store.migrate().await?;
    let sys = Actor::System("bench");
    let c = store
        .create_canteen(
            store::NewCanteen {
                name: "Bench".into(),
                utc_offset_minutes: 480,
                per_transaction_cap: None,
                daily_cap: None,
            },
            &sys,
        )
        .await?;
    store
        .set_meal_window(
            store::MealWindow {
                canteen_id: c.id,
                meal: ledger::MealKind::Lunch,
                start_minute: 0,
                end_minute: 1440,
            },
            &sys,
        )
        .await?;
    store
        .set_price(
            store::Price {
                canteen_id: c.id,
                category: "regular".into(),
                meal: ledger::MealKind::Lunch,
                price: ledger::Fen(1200),
            },
            &sys,
        )
        .await?;
    let mut people = Vec::with_capacity(accounts);
    for i in 0..accounts {
        let s = store
            .create_staff(
                store::NewStaff {
                    employee_no: format!("B{i}"),
                    name: format!("Bench {i}"),
                    department: "B".into(),
                    category: "regular".into(),
                },
                &sys,
            )
            .await?;
        store
            .update_staff(
                s.id,
                store::StaffUpdate {
                    meals_per_period: Some(u32::MAX / 2),
                    ..Default::default()
                },
                &sys,
            )
            .await?;
        let no = format!("BENCH-{i}");
        store
            .create_payment_order(
                store::NewPaymentOrder {
                    order_no: no.clone(),
                    staff_id: s.id,
                    amount: ledger::Fen(1_000_000_000),
                    provider: "sandbox".into(),
                    now_ms: 0,
                },
                &sys,
            )
            .await?;
        store
            .credit_payment(&no, "seed", ledger::Fen(1_000_000_000), "{}", 0)
            .await?;
        people.push(s.id);
    }
    for k in 0..clients {
        let code = format!("bench-code-{k}");
        store
            .create_enrolment_code(c.id, &code, i64::MAX / 2, &sys)
            .await?;
        store
            .redeem_enrolment_code(
                &code,
                &format!("bench {k}"),
                &backend::crypto::token_hash(&format!("bench-kiosk-{k}")),
                0,
            )
            .await?;
    }
    while store.seal_audit(10_000).await? == 10_000 {}
    Ok(people)
}

struct LoadResult {
    charges: u64,
    errors: u64,
    seconds: f64,
    cpu: Cpu,
    hist: Histogram<u64>,
}

/// The in-process run (`--direct`): its table row, then its batch and CPU lines in `stats`.
async fn direct_run(
    store: &Arc<dyn Store>,
    people: &Arc<Vec<i64>>,
    a: &Args,
    row: &str,
    label: &str,
    stats: &mut Vec<String>,
) -> Result<()> {
    let r = load_direct(
        std::process::id(),
        store.clone(),
        people.clone(),
        a.clients,
        a.seconds,
    )
    .await?;
    report(row, &r);
    stats.push(format!(
        "{label}: {}",
        describe_stats(store.charge_batch_stats())
    ));
    stats.push(report_cpu(label, &r, true));
    Ok(())
}

/// The HTTP run against `server` (charges of the day `days_back` days ago): its batch and CPU
/// lines in `stats`; the caller reports the row.
async fn http_run(
    server: &Server,
    addr: &str,
    days_back: i64,
    people: Arc<Vec<i64>>,
    a: &Args,
    label: &str,
    stats: &mut Vec<String>,
) -> Result<LoadResult> {
    let r = load(
        addr,
        label,
        days_back,
        server.0.child.id(),
        people,
        a.clients,
        a.seconds,
    )
    .await?;
    let batches = server
        .batch_stats()
        .unwrap_or_else(|| "no batch report".into());
    stats.push(format!("{label}: {batches}"));
    stats.push(report_cpu(label, &r, false));
    Ok(r)
}

/// HTTP charges: one keep-alive client per kiosk token, posting new keys (made unique across
/// runs on one database by `run_tag`) with a kiosk time `days_back` days ago; the price table
/// decides the amount.
async fn load(
    addr: &str,
    run_tag: &str,
    days_back: i64,
    server_pid: u32,
    people: Arc<Vec<i64>>,
    clients: usize,
    seconds: u64,
) -> Result<LoadResult> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let url: Arc<str> = format!("http://{addr}/api/v1/kiosk/charges").into();
    let run_tag: Arc<str> = run_tag.into();
    let kiosk_time: Arc<str> = (time::OffsetDateTime::now_utc() - time::Duration::days(days_back))
        .format(&time::format_description::well_known::Rfc3339)?
        .into();
    run_load(server_pid, clients, seconds, move |k, i| {
        let (http, url, kiosk_time) = (http.clone(), url.clone(), kiosk_time.clone());
        let key = format!("b{run_tag}-{k}-{i}");
        let staff = person_for(&people, k, i);
        async move {
            let body = serde_json::json!({"idempotency_key": key, "staff_id": staff, "kiosk_time": &*kiosk_time});
            match http.post(&*url).bearer_auth(format!("bench-kiosk-{k}")).json(&body).send().await {
                Ok(resp) if resp.status().is_success() => {
                    let v: serde_json::Value = resp.json().await.unwrap_or_default();
                    v["status"] == "accepted"
                }
                _ => false,
            }
        }
    })
    .await
}

/// The same load without HTTP: tasks call `Store::charge` in-process (one kiosk per task).
async fn load_direct(
    server_pid: u32,
    store: Arc<dyn Store>,
    people: Arc<Vec<i64>>,
    clients: usize,
    seconds: u64,
) -> Result<LoadResult> {
    let kiosks = Arc::new(store.list_kiosks().await?);
    let now = backend::state::now_ms();
    let clients = clients.min(kiosks.len());
    run_load(server_pid, clients, seconds, move |k, i| {
        let (store, kiosk) = (store.clone(), kiosks[k].clone());
        let staff = person_for(&people, k, i);
        async move {
            let cmd = store::ChargeCommand {
                kiosk_id: kiosk.id,
                canteen_id: kiosk.canteen_id,
                idempotency_key: format!("d{k}-{i}"),
                request_hash: format!("h{k}-{i}"),
                staff_id: staff,
                kiosk_time_ms: now,
                received_ms: now,
                offline: false,
                offline_too_old: false,
                amount: None,
            };
            matches!(store.charge(cmd).await, Ok(r) if r.outcome == store::ChargeOutcome::Accepted)
        }
    })
    .await
}

/// The person client `k` charges in its `i`-th request: spread over everyone, different
/// clients on different people at any moment.
fn person_for(people: &[i64], k: usize, i: u64) -> i64 {
    people[((k as u64 * 7919 + i * 104_729) % people.len() as u64) as usize]
}

/// Runs `clients` tasks, client `k` awaiting `charge(k, i)` for i = 1, 2, ... (true when the
/// charge was accepted): a 2 s warm-up, then `seconds` measured (accepted charges and their
/// latencies; anything else counts as an error), with the CPU used meanwhile.
async fn run_load<C, F>(
    server_pid: u32,
    clients: usize,
    seconds: u64,
    charge: C,
) -> Result<LoadResult>
where
    C: Fn(usize, u64) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = bool> + Send + 'static,
{
    let charge = Arc::new(charge);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let (count, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (measuring, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut tasks = Vec::new();
    for k in 0..clients {
        let (charge, hist, count, errors, measuring, stop) = (
            charge.clone(),
            hist.clone(),
            count.clone(),
            errors.clone(),
            measuring.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("histogram bounds are valid");
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let t0 = Instant::now();
                let ok = charge(k, i).await;
                let us = t0.elapsed().as_micros() as u64;
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        count.fetch_add(1, Ordering::Relaxed);
                        let _ = local.record(us.max(1));
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if let Ok(mut h) = hist.lock() {
                let _ = h.add(&local);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu0 = Cpu::now(server_pid);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu = Cpu::now(server_pid).since(&cpu0);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let hist = hist
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?
        .clone();
    Ok(LoadResult {
        charges: count.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        seconds: elapsed,
        cpu,
        hist,
    })
}

/// CPU seconds used so far, read from /proc: by PostgreSQL's processes, by the process serving
/// the charges (the `backend serve` child, or this process in --direct runs), by this process,
/// and by the whole machine (so the report can say how much went to other jobs).
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    postgres: f64,
    server: f64,
    bench: f64,
    machine: f64,
}

impl Cpu {
    fn now(server_pid: u32) -> Cpu {
        let tick = 100.0; // USER_HZ, 100 on Linux
        let me = std::process::id();
        let mut c = Cpu::default();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                    continue;
                };
                let name = &stat[open + 1..close];
                let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
                let ticks = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                let secs = (ticks(11) + ticks(12)) / tick;
                if name == "postgres" {
                    // Plus the CPU of reaped children (fields cutime, cstime): a backend that
                    // exits between two readings (pgbench's, at its end) is counted in the
                    // postmaster's, so PostgreSQL's total never goes backwards.
                    c.postgres += secs + (ticks(13) + ticks(14)) / tick;
                }
                if pid == server_pid {
                    c.server += secs;
                }
                if pid == me {
                    c.bench += secs;
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            if let Some(line) = stat.lines().next() {
                // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
                let v: Vec<f64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if v.len() >= 8 {
                    c.machine = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick;
                }
            }
        }
        c
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            postgres: self.postgres - before.postgres,
            server: self.server - before.server,
            bench: self.bench - before.bench,
            machine: self.machine - before.machine,
        }
    }
}

fn report_cpu(name: &str, r: &LoadResult, same_process: bool) -> String {
    let per = |secs: f64| secs * 1e6 / (r.charges.max(1) as f64);
    let cores = |secs: f64| secs / r.seconds;
    let ours = r.cpu.postgres + r.cpu.server + if same_process { 0.0 } else { r.cpu.bench };
    format!(
        "{name}: CPU per charge: PostgreSQL {:.0} us, server {:.0} us{}; cores busy: ours {:.2}, other jobs {:.2}",
        per(r.cpu.postgres),
        per(r.cpu.server),
        if same_process { " (load generator included)".to_string() } else { format!(", load generator {:.0} us", per(r.cpu.bench)) },
        cores(ours),
        cores((r.cpu.machine - ours).max(0.0)),
    )
}

fn report(name: &str, r: &LoadResult) -> f64 {
    let tps = r.charges as f64 / r.seconds;
    println!(
        "| {name} | {tps:.0} | {:.2} | {:.2} | {:.2} | {} |",
        r.hist.value_at_quantile(0.5) as f64 / 1000.0,
        r.hist.value_at_quantile(0.99) as f64 / 1000.0,
        r.hist.value_at_quantile(0.999) as f64 / 1000.0,
        r.errors
    );
    tps
}

/// Flushes the server's dirty pages before a measured run, so neither run pays for a checkpoint
/// of what came before it (pgbench's table creation writes hundreds of megabytes). A failure
/// (a role without the right) is reported and the run goes on.
fn checkpoint(admin_url: &str) {
    let out = Command::new("psql")
        .args([&pg_conninfo(admin_url, "postgres"), "-qAtc", "CHECKPOINT"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "backend-bench: CHECKPOINT before a run failed ({}); measuring anyway",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => {
            eprintln!("backend-bench: could not run psql for a CHECKPOINT ({e}); measuring anyway")
        }
    }
}

/// Creates pgbench's tables (`pgbench -i`) in scratch database `db` of the same server.
fn pgbench_init(admin_url: &str, db: &str, scale: u32) -> Result<()> {
    let conn = pg_conninfo(admin_url, db);
    let init = Command::new("pgbench")
        .args(["-i", "-q", "-s", &scale.to_string(), &conn])
        .output()
        .context("running pgbench -i (is pgbench installed?)")?;
    if !init.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    Ok(())
}

/// Runs pgbench tpcb-like on `db` (made by `pgbench_init`): tps, average latency, CPU, seconds.
fn pgbench(
    admin_url: &str,
    db: &str,
    clients: usize,
    seconds: u64,
) -> Result<(f64, f64, Cpu, f64)> {
    let conn = pg_conninfo(admin_url, db);
    let cpu0 = Cpu::now(0);
    let t0 = Instant::now();
    let out = Command::new("pgbench")
        .args([
            "-b",
            "tpcb-like",
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(4).to_string(),
            "-T",
            &seconds.to_string(),
            &conn,
        ])
        .output()
        .context("running pgbench")?;
    let cpu = Cpu::now(0).since(&cpu0);
    let secs = t0.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let grab = |prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| {
                l.split_whitespace()
                    .nth(if prefix.starts_with("tps") { 2 } else { 3 })
            })
            .and_then(|v| v.parse().ok())
    };
    let tps = grab("tps = ").context("no tps line in pgbench output")?;
    let lat = grab("latency average = ").unwrap_or(f64::NAN);
    Ok((tps, lat, cpu, secs))
}

/// `postgres:///db?host=/sock&user=u` -> libpq keyword form for pgbench, with the database swapped.
fn pg_conninfo(url: &str, db: &str) -> String {
    let mut parts = vec![format!("dbname={db}")];
    if let Some((_, q)) = url.split_once('?') {
        for kv in q.split('&') {
            if let Some((k, v)) = kv.split_once('=') {
                if k == "host" || k == "user" || k == "port" {
                    parts.push(format!("{k}={v}"));
                }
            }
        }
    }
    parts.join(" ")
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "backend-bench: {} clients, {} s measured, {} accounts, {cores} cores",
        a.clients, a.seconds, a.accounts
    );
    println!();
    println!("| run | charges/s (tps) | p50 ms | p99 ms | p99.9 ms | errors |");
    println!("|---|---|---|---|---|---|");
    let dir = tempfile::tempdir()?;
    let load_before = load_average();
    let mut stats: Vec<String> = Vec::new();
    if a.db == "sqlite" || a.db == "both" {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let mut cfg = backend::config::Config {
            database_url: url.clone(),
            charge_batch_max: a.batch_max,
            charge_writers: a.writers,
            charge_linger_us: a.linger_us,
            ..Default::default()
        };
        cfg.sqlite_synchronous_full = !a.sqlite_normal_sync;
        let store = backend::open_store(&cfg).await?;
        let people = Arc::new(seed(&*store, a.accounts, a.clients).await?);
        let sync = if a.sqlite_normal_sync {
            "NORMAL"
        } else {
            "FULL"
        };
        if a.direct {
            let row = format!("store only (no HTTP), SQLite (synchronous={sync})");
            direct_run(&store, &people, &a, &row, "store only, SQLite", &mut stats).await?;
        }
        drop(store);
        let (server, addr) = start_server(&url, dir.path(), 8, a.sqlite_normal_sync, &a)?;
        let r = http_run(&server, &addr, 0, people, &a, "HTTP, SQLite", &mut stats).await?;
        report(
            &format!("HTTP charges, SQLite (WAL, synchronous={sync})"),
            &r,
        );
    }
    if a.db == "postgres" || a.db == "both" {
        let admin = a
            .pg_url
            .clone()
            .or_else(|| std::env::var("CLEANPLATE_TEST_POSTGRES_URL").ok())
            .context("no PostgreSQL URL: pass --pg-url or set CLEANPLATE_TEST_POSTGRES_URL (see scripts/postgres.sh)")?;
        let name = store_postgres::create_scratch_database(&admin, "cpbench").await?;
        let url = backend_harness::database_url(&admin, &name);
        let cfg = backend::config::Config {
            database_url: url.clone(),
            max_connections: a.clients as u32,
            charge_batch_max: a.batch_max,
            charge_writers: a.writers,
            charge_linger_us: a.linger_us,
            ..Default::default()
        };
        let store = backend::open_store(&cfg).await?;
        let people = Arc::new(seed(&*store, a.accounts, a.clients).await?);
        if a.direct {
            let (row, label) = ("store only (no HTTP), PostgreSQL", "store only, PostgreSQL");
            direct_run(&store, &people, &a, row, label, &mut stats).await?;
        }
        drop(store);
        let pgb = store_postgres::create_scratch_database(&admin, "cppgbench").await?;
        let scale = if a.pgbench_scale == 0 {
            (a.clients as u32).max(10)
        } else {
            a.pgbench_scale
        };
        pgbench_init(&admin, &pgb, scale)?;
        let mut ratios = Vec::new();
        for round in 1..=a.rounds.max(1) {
            let label = format!("HTTP, PostgreSQL, round {round}");
            checkpoint(&admin);
            let result = {
                // The server stops (dropped) before pgbench runs on the same PostgreSQL.
                let (server, addr) = start_server(&url, dir.path(), a.clients, false, &a)?;
                // Each round is a day of its own, as a canteen's days are: a person's day
                // totals hold a few charges, not every charge of the whole benchmark.
                let days_back = round as i64 - 1;
                http_run(
                    &server,
                    &addr,
                    days_back,
                    people.clone(),
                    &a,
                    &label,
                    &mut stats,
                )
                .await?
            };
            let ours = report(
                &format!("HTTP charges, PostgreSQL (round {round})"),
                &result,
            );
            checkpoint(&admin);
            let (tps, lat, cpu, secs) = pgbench(&admin, &pgb, a.clients, a.seconds)?;
            stats.push(format!(
                "pgbench, round {round}: CPU per transaction: PostgreSQL {:.0} us; cores busy: PostgreSQL {:.2}, all other processes (pgbench and other jobs) {:.2}",
                cpu.postgres * 1e6 / (tps * secs).max(1.0),
                cpu.postgres / secs,
                (cpu.machine - cpu.postgres).max(0.0) / secs
            ));
            println!(
                "| pgbench -b tpcb-like -s {scale} (same clients, same server; round {round}) | {tps:.0} | avg {lat:.2} | | | |"
            );
            ratios.push(ours / tps);
        }
        println!();
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "ratio (HTTP charges on PostgreSQL / pgbench tps): median {:.2} of rounds {}",
            ratios[ratios.len() / 2],
            shown.join(", ")
        );
        store_postgres::drop_database(&admin, &pgb).await?;
        store_postgres::drop_database(&admin, &name).await?;
    }
    println!();
    println!(
        "group commit: batch max {}, writers {} (0 = database default), linger {} us",
        a.batch_max, a.writers, a.linger_us
    );
    for s in &stats {
        println!("  {s}");
    }
    println!(
        "load average before: {load_before}; after: {}",
        load_average()
    );
    Ok(())
}
