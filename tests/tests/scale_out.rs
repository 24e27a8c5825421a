//! Scale-out on PostgreSQL: two `backend serve` processes on one database, six kiosks spread
//! over them (three each, every kiosk its own device token, charging through the kiosk's own
//! HTTP client `kiosk::api::HttpBackend`), and one instance killed with SIGKILL in the middle
//! of the burst. A kiosk whose instance stops answering does what a kiosk behind a load
//! balancer sees: its requests go to the surviving instance, resent with the same
//! idempotency keys until answered. Afterwards every charge a kiosk was told about is in the
//! ledger exactly once with the id it was told (0 lost, 0 doubled), the ledger holds no
//! charge no kiosk asked for, the amounts add up, the audit log is one sealed chain with
//! contiguous sequence numbers although both instances ran sealers, and `backend check`
//! passes.
//!
//! PostgreSQL comes from `CLEANPLATE_TEST_POSTGRES_URL` (`scripts/postgres.sh`); without it
//! the test fails with instructions, unless `CLEANPLATE_SKIP_POSTGRES=1` skips it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::Backend;
use kiosk::api::{BackendApi, HttpBackend};
use rust_decimal::Decimal;

const KIOSKS: usize = 6;
/// Charges each kiosk makes (the burst: 6 x 25 = 150 charges, 18 or 19 per diner, within
/// the highest meals-per-period limit the API allows).
const PER_KIOSK: usize = 25;
/// The highest `meals_per_period` a person may be given (the API's limit).
const MEALS_PER_PERIOD: i64 = 20;
/// The first instance is killed once this many charges were answered.
const KILL_AFTER: usize = 50;
/// The demo canteen's staff with money (E0003 and E0007 are contractors with no subsidy).
const DINERS: [&str; 8] = [
    "E0001", "E0002", "E0004", "E0005", "E0006", "E0008", "E0009", "E0010",
];

fn pg_admin_url() -> Option<String> {
    match std::env::var("CLEANPLATE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CLEANPLATE_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("skipped: PostgreSQL tests skipped because CLEANPLATE_SKIP_POSTGRES=1");
            None
        }
        _ => panic!(
            "CLEANPLATE_TEST_POSTGRES_URL is not set: run `scripts/postgres.sh` and export the URL it prints \
             (or set CLEANPLATE_SKIP_POSTGRES=1 to skip PostgreSQL tests explicitly)"
        ),
    }
}

/// A scratch database on the test server, dropped at the end of the test.
struct ScratchDb {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDb {
    fn new(admin: &str) -> ScratchDb {
        let rt = runtime();
        let name = rt
            .block_on(store_postgres::create_scratch_database(admin, "cpscale"))
            .expect("creating a scratch database");
        // Same server, scratch database: swap the path of the URL, keep its query.
        let (head, query) = match admin.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (admin, None),
        };
        let base = head.rsplit_once('/').map(|(b, _)| b).unwrap_or(head);
        let url = match query {
            Some(q) => format!("{base}/{name}?{q}"),
            None => format!("{base}/{name}"),
        };
        ScratchDb {
            admin: admin.to_string(),
            name,
            url,
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let _ = runtime().block_on(store_postgres::drop_database(&self.admin, &self.name));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// What one kiosk was told: idempotency key -> (charge id, amount).
type Told = BTreeMap<String, (i64, Decimal)>;

#[test]
fn two_backends_on_one_postgres_lose_and_double_nothing_when_one_is_killed() {
    let Some(admin) = pg_admin_url() else {
        return;
    };
    let db = ScratchDb::new(&admin);
    let tmp = tempfile::tempdir().expect("temp dir");
    // Both instances run their audit sealers often, so they contend for the chain.
    let env = [
        ("CLEANPLATE_DATABASE_URL", db.url.as_str()),
        ("CLEANPLATE_SEALER_INTERVAL_MS", "50"),
    ];
    let mut first = Backend::start_with_env(tmp.path(), &env);
    let second = first.another_instance();
    second.desk().all_day_meals(1).expect("meal windows");
    // Many a-la-carte charges per person and meal: lift the one-meal rule for the diners.
    assert!(KIOSKS * PER_KIOSK <= DINERS.len() * MEALS_PER_PERIOD as usize);
    let mut diners = Vec::new();
    for no in DINERS {
        let id = second.staff_id(no);
        second.patch_staff(
            id,
            &serde_json::json!({"meals_per_period": MEALS_PER_PERIOD}),
        );
        diners.push(id);
    }
    let before = total_available(&second, &diners);

    // Kiosks 0-2 talk to the first instance, 3-5 to the second.
    let urls = [first.url(), second.url()];
    let mut tokens = Vec::new();
    for k in 0..KIOSKS {
        let b = if k < KIOSKS / 2 { &first } else { &second };
        tokens.push(b.kiosk_token(&format!("scale-out {k}")));
    }
    let answered = Arc::new(AtomicUsize::new(0));
    let failovers = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for (k, token) in tokens.into_iter().enumerate() {
        let (urls, answered, failovers, diners) = (
            urls.clone(),
            answered.clone(),
            failovers.clone(),
            diners.clone(),
        );
        threads.push(std::thread::spawn(move || {
            kiosk_burst(k, &token, &urls, &diners, &answered, &failovers)
        }));
    }
    // SIGKILL the first instance while all six kiosks are mid-burst.
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(Instant::now() < deadline, "the burst did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    let at_kill = answered.load(Ordering::Relaxed);
    first.stop();
    let mut told = Told::new();
    for t in threads {
        let mine = t.join().expect("a kiosk thread panicked");
        for (key, v) in mine {
            assert!(told.insert(key, v).is_none(), "keys are unique per kiosk");
        }
    }
    assert_eq!(told.len(), KIOSKS * PER_KIOSK, "every charge was answered");
    assert!(
        failovers.load(Ordering::Relaxed) >= 1,
        "the first instance's kiosks had to fail over"
    );

    // 0 lost, 0 doubled: the ledger's charges are exactly the ones the kiosks were told of.
    let ledger = all_charges(&second);
    let told_ids: BTreeSet<i64> = told.values().map(|(id, _)| *id).collect();
    assert_eq!(
        told_ids.len(),
        told.len(),
        "no two keys were given one charge"
    );
    let ledger_ids: BTreeSet<i64> = ledger.keys().copied().collect();
    assert_eq!(
        ledger_ids.len(),
        ledger.len(),
        "the listing has no duplicate ids"
    );
    let lost: Vec<&i64> = told_ids.difference(&ledger_ids).collect();
    let extra: Vec<&i64> = ledger_ids.difference(&told_ids).collect();
    assert!(
        lost.is_empty(),
        "charges told to kiosks but missing: {lost:?}"
    );
    assert!(extra.is_empty(), "charges no kiosk was told of: {extra:?}");
    for (key, (id, amount)) in &told {
        let c = &ledger[id];
        assert_eq!(c["status"], "accepted", "{key}: {c}");
        assert_eq!(
            c["amount"].as_str().and_then(|a| a.parse::<Decimal>().ok()),
            Some(*amount),
            "{key}: {c}"
        );
    }
    let sum: Decimal = told.values().map(|(_, a)| *a).sum();
    let after = total_available(&second, &diners);
    assert_eq!(
        before - after,
        sum,
        "the diners' money went down by the sum"
    );

    // One audit chain: sealed, sequence numbers 1..n without a gap or a repeat.
    let (ok, report) = second.check();
    assert!(ok, "backend check failed:\n{report}");
    let seqs = audit_seqs(&second);
    assert!(!seqs.is_empty());
    assert!(
        seqs.iter().all(Option::is_some),
        "every audit row is sealed after `check --seal`"
    );
    // Listed by id; on PostgreSQL a lower id may commit (and be sealed) after a higher one, so
    // the chain's order is the seq order, not the id order.
    let mut seqs: Vec<i64> = seqs.into_iter().flatten().collect();
    seqs.sort_unstable();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "one contiguous chain");
    eprintln!(
        "scale-out: {} charges from {KIOSKS} kiosks over 2 instances, first instance killed after \
         {at_kill} answers, {} requests failed over, {} audit rows in one chain",
        told.len(),
        failovers.load(Ordering::Relaxed),
        seqs.len()
    );
}

/// One kiosk's burst: `PER_KIOSK` charges in order, each resent with its key until answered;
/// the home instance first, the other one after a failure. Returns what it was told.
fn kiosk_burst(
    k: usize,
    token: &str,
    urls: &[String; 2],
    diners: &[i64],
    answered: &AtomicUsize,
    failovers: &AtomicUsize,
) -> Told {
    let timeout = Duration::from_secs(5);
    let clients = [
        HttpBackend::new(&urls[0], Some(token.to_string()), timeout, timeout),
        HttpBackend::new(&urls[1], Some(token.to_string()), timeout, timeout),
    ];
    let mut current = usize::from(k >= KIOSKS / 2);
    let mut told = Told::new();
    for n in 0..PER_KIOSK {
        let key = format!("scale-out-{k}-{n}");
        // 0.01 to 0.05: small enough for the daily cap, varied so sums mean something.
        let amount = Decimal::new(1 + (n % 5) as i64, 2);
        let req = wire::ChargeRequest {
            idempotency_key: key.clone(),
            staff_id: diners[(k * PER_KIOSK + n) % diners.len()],
            kiosk_time: time::OffsetDateTime::now_utc(),
            offline: false,
            amount: Some(amount),
        };
        let mut attempts = 0;
        let resp = loop {
            attempts += 1;
            assert!(attempts < 200, "{key}: no answer from either instance");
            match clients[current].charge(&req) {
                Ok(r) => break r,
                Err(e) if e.is_transient() => {
                    current = 1 - current;
                    failovers.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{key}: refused for good: {e}"),
            }
        };
        assert_eq!(resp.status, wire::ChargeStatus::Accepted, "{key}: {resp:?}");
        let id = resp.charge_id.expect("an accepted charge has an id");
        told.insert(key, (id, resp.amount));
        answered.fetch_add(1, Ordering::Relaxed);
    }
    told
}

/// Every charge, by id (paged: the listing returns at most 1000 at a time).
fn all_charges(b: &Backend) -> BTreeMap<i64, serde_json::Value> {
    let desk = b.desk();
    let mut out = BTreeMap::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(id) => format!("/api/v1/charges?limit=1000&before_id={id}"),
            None => "/api/v1/charges?limit=1000".to_string(),
        };
        let page = desk.get_json(&path).expect("listing charges");
        let page = page.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return out;
        }
        for c in page {
            let id = c["id"].as_i64().expect("charge id");
            before = Some(before.map_or(id, |b| b.min(id)));
            out.insert(id, c);
        }
    }
}

/// The sum of the diners' available money (cash + subsidy).
fn total_available(b: &Backend, diners: &[i64]) -> Decimal {
    let desk = b.desk();
    diners
        .iter()
        .map(|id| {
            let v = desk
                .get_json(&format!("/api/v1/staff/{id}/balance"))
                .expect("reading a balance");
            ["cash", "subsidy"]
                .iter()
                .map(|k| {
                    v[k].as_str()
                        .and_then(|s| s.parse::<Decimal>().ok())
                        .unwrap_or_else(|| panic!("no {k} in {v}"))
                })
                .sum::<Decimal>()
        })
        .sum()
}

/// The audit log's sequence numbers, listed in id order (None: not sealed).
fn audit_seqs(b: &Backend) -> Vec<Option<i64>> {
    let desk = b.desk();
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = desk
            .get_json(&format!("/api/v1/audit?after_id={after}&limit=500"))
            .expect("listing the audit log");
        let page = page.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return out;
        }
        for a in page {
            after = a["id"].as_i64().expect("audit id");
            out.push(a["seq"].as_i64());
        }
    }
}
