//! The audit page and the inspection export (issue 12), on both databases: the chain verified
//! on demand shows OK on a clean ledger and the first broken entry after a row is edited in the
//! database; staff are refused; the export's manifest matches its files, its row counts are the
//! ledger's rows of the range, a formula in a staff name comes out escaped, `verify-export`
//! passes a fresh export and fails, naming the file, once one byte of one CSV is changed.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{lunch_today, lunch_today_ms, Caller};
use serde_json::json;
use std::io::{Read, Write};
use store::Actor;

fn cookie(c: &Caller) -> String {
    match c {
        Caller::Person(token, _) => format!("cp_session={token}"),
        _ => String::new(),
    }
}

fn csrf(c: &Caller) -> String {
    match c {
        Caller::Person(_, csrf) => csrf.clone(),
        _ => String::new(),
    }
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("request")
}

fn post_csrf(path: &str, cookie: &str, token: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={token}")))
        .expect("request")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The canteen-local date (UTC+8) of the test apps' pinned clock.
fn today() -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(lunch_today_ms() / 1000)
        .expect("time")
        .to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("offset"));
    format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day())
}

async fn seal(app: &common::TestApp) {
    while app.store.seal_audit(10_000).await.expect("seal") == 10_000 {}
}

/// Credits `fen` to `staff` through a top-up order paid at `at`.
async fn top_up_at(app: &common::TestApp, staff: i64, fen: i64, at: i64, no: &str) {
    let sys = Actor::System("test");
    app.store
        .create_payment_order(
            store::NewPaymentOrder {
                order_no: no.into(),
                staff_id: staff,
                amount: ledger::Fen(fen),
                provider: "sandbox".into(),
                now_ms: at,
            },
            &sys,
        )
        .await
        .expect("order");
    app.store
        .credit_payment(no, "t", ledger::Fen(fen), "{}", at)
        .await
        .expect("credit");
}

both_dbs!(
    audit_page_verifies_on_demand_and_names_the_first_broken_entry,
    |app| {
        top_up_at(&app, app.staff_id, 5000, lunch_today_ms(), "A1").await;
        let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"idempotency_key": "a-1", "staff_id": app.staff_id, "kiosk_time": lunch_today()})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        seal(&app).await;
        let boss = cookie(&app.manager);
        // Staff may not see it (nor verify, nor export); auditors may.
        for (path, post) in [
            ("/manage/audit", false),
            ("/manage/audit/verify", true),
            (
                "/manage/audit/export.zip?from=2026-01-01&to=2026-01-31",
                false,
            ),
        ] {
            let req = if post {
                post_csrf(path, &cookie(&app.staff), &csrf(&app.staff))
            } else {
                get(path, &cookie(&app.staff))
            };
            let (s, _, _) = app.raw(req).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
        }
        let (s, _, body) = app.raw(get("/manage/audit", &cookie(&app.auditor))).await;
        assert_eq!(s, StatusCode::OK);
        let page = text(&body);
        assert!(page.contains("审计日志"), "{page}");
        // The log, newest first: the kiosk's charge is there with its subject.
        assert!(page.contains("<td>journal.sealed</td>"), "{page}");
        assert!(page.contains("<td>order A1</td>"), "{page}");
        // The page view does not run the check; the form does, with the session's CSRF token.
        assert!(!page.contains("verdict-ok"));
        let (s, _, _) = app
            .raw(post_csrf("/manage/audit/verify", &boss, "forged"))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, body) = app
            .raw(post_csrf(
                "/manage/audit/verify",
                &boss,
                &csrf(&app.manager),
            ))
            .await;
        let page = text(&body);
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("id=\"verdict-ok\""), "{page}");
        let (head_seq, head_hash) = app.store.audit_head().await.expect("head").expect("sealed");
        assert!(
            page.contains(&format!(
                "#{head_seq} <code title=\"{head_hash}\">{}…</code>",
                &head_hash[..12]
            )),
            "{page}"
        );
        // Someone with database access edits the third sealed entry, and the fifth.
        app.exec_sql(
            "UPDATE audit_log SET detail = '{\"edited\":true}' WHERE seq IN (3, 5)".into(),
        )
        .await;
        let (s, _, body) = app
            .raw(post_csrf(
                "/manage/audit/verify",
                &cookie(&app.auditor),
                &csrf(&app.auditor),
            ))
            .await;
        let page = text(&body);
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("id=\"verdict-broken\""), "{page}");
        assert!(!page.contains("verdict-ok"));
        assert!(page.contains("#3</strong>"), "{page}");
        assert!(page.contains("(seq 3) does not match its hash: its time, actor, action or detail changed after it was sealed"), "{page}");
    }
);

/// Reads one file of a zip.
fn read_entry(zip_bytes: &[u8], name: &str) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).expect("zip");
    let mut f = z.by_name(name).expect("entry");
    let mut out = Vec::new();
    f.read_to_end(&mut out).expect("read");
    out
}

/// The same zip with `name`'s content replaced by `content` (a well-formed zip: only the
/// manifest can tell).
fn rezip(zip_bytes: &[u8], name: &str, content: &[u8]) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).expect("zip");
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..z.len() {
        let mut f = z.by_index(i).expect("entry");
        let n = f.name().to_string();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).expect("read");
        w.start_file(n.as_str(), zip::write::SimpleFileOptions::default())
            .expect("start");
        w.write_all(if n == name { content } else { &bytes })
            .expect("write");
    }
    w.finish().expect("finish").into_inner()
}

fn write_temp(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write zip");
    p
}

both_dbs!(
    inspection_export_matches_its_manifest_and_the_ledger,
    |app| {
        let lunch = lunch_today_ms();
        let sys = Actor::System("test");
        // A second person whose name is a spreadsheet formula.
        let evil = app
            .store
            .create_staff(
                store::NewStaff {
                    employee_no: "S2".into(),
                    name: "=HYPERLINK(\"http://x\",\"y\")".into(),
                    department: "+D".into(),
                    category: "regular".into(),
                },
                &sys,
            )
            .await
            .expect("staff");
        // Top-ups credited at lunch; yesterday's one is outside the range.
        for (i, (who, at)) in [
            (app.staff_id, lunch),
            (evil.id, lunch),
            (evil.id, lunch - 86_400_000),
        ]
        .into_iter()
        .enumerate()
        {
            top_up_at(&app, who, 10_000, at, &format!("X{i}")).await;
        }
        let mut charge_ids = Vec::new();
        for (key, who) in [("e-1", app.staff_id), ("e-2", evil.id)] {
            let (s, v) = app
            .call(
                &app.kiosk,
                Method::POST,
                "/api/v1/kiosk/charges",
                Some(json!({"idempotency_key": key, "staff_id": who, "kiosk_time": lunch_today()})),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            charge_ids.push(v["charge_id"].as_i64().expect("charge id"));
        }
        app.store
            .reverse_charge(charge_ids[0], "wrong tray", lunch + 1000, &sys)
            .await
            .expect("reversal");
        let w = json!({"idempotency_key": "w-1", "charge_id": charge_ids[1], "staff_id": null, "gross_grams": 530,
                   "tare_grams": 480, "dish": "=1+1", "category": null, "measured_at": lunch_today()});
        let (s, v) = app
            .call(&app.kiosk, Method::POST, "/api/v1/kiosk/waste", Some(w))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        seal(&app).await;

        let day = today();
        let url = format!("/manage/audit/export.zip?from={day}&to={day}");
        let (s, h, zip_bytes) = app.raw(get(&url, &cookie(&app.auditor))).await;
        assert_eq!(s, StatusCode::OK, "{}", text(&zip_bytes));
        assert_eq!(h[header::CONTENT_TYPE], "application/zip");
        assert!(h[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .contains(&format!("inspection-{day}-{day}.zip")));
        let dir = tempfile::tempdir().expect("dir");
        let good = write_temp(dir.path(), "good.zip", &zip_bytes);
        let m = backend::inspect::verify_file(&good).expect("a fresh export verifies");
        backend::inspect::check_chain_head(app.store.as_ref(), &m)
            .await
            .expect("the head is in the chain");
        assert_eq!(
            (m.from.as_str(), m.to.as_str()),
            (day.as_str(), day.as_str())
        );
        let head = m.audit_chain_head.clone().expect("a head");
        assert_eq!(
            app.store.audit_hash_at(head.seq).await.expect("hash"),
            Some(head.hash.clone())
        );
        // The manifest's hashes are the files' SHA-256 (computed here independently).
        for f in &m.files {
            let bytes = read_entry(&zip_bytes, &f.name);
            assert_eq!(store::sha256_hex(&bytes), f.sha256, "{}", f.name);
        }
        // Row counts: the ledger's rows whose time falls in the day, read through other queries.
        let (from_ms, to_ms) = (m.from_ms, m.to_ms);
        let in_day = |t: i64| (from_ms..to_ms).contains(&t);
        let rows = |name: &str| m.files.iter().find(|f| f.name == name).map(|f| f.rows);
        let charges = app
            .store
            .list_charges(store::ChargeFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("charges");
        assert_eq!(
            rows("charges.csv"),
            Some(charges.iter().filter(|c| in_day(c.received_ms)).count() as u64)
        );
        assert_eq!(rows("charges.csv"), Some(2));
        let refunds = app.store.list_refunds(None, None).await.expect("refunds");
        assert_eq!(
            rows("refunds.csv"),
            Some(refunds.iter().filter(|r| in_day(r.requested_at_ms)).count() as u64)
        );
        assert_eq!(rows("refunds.csv"), Some(1));
        let orders = app
            .store
            .list_payment_orders(None, 1000)
            .await
            .expect("orders");
        assert_eq!(
            rows("top_ups.csv"),
            Some(
                orders
                    .iter()
                    .filter(|o| o.credited_at_ms.is_some_and(in_day))
                    .count() as u64
            )
        );
        assert_eq!(rows("top_ups.csv"), Some(2));
        let waste = app.store.list_waste(None, 1000).await.expect("waste");
        assert_eq!(
            rows("waste.csv"),
            Some(waste.iter().filter(|w| in_day(w.measured_at_ms)).count() as u64)
        );
        assert_eq!(rows("waste.csv"), Some(1));
        // Formulas from people come out as text.
        let charges_csv = text(&read_entry(&zip_bytes, "charges.csv"));
        assert!(
            charges_csv.contains(",\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'+D,"),
            "{charges_csv}"
        );
        assert!(!charges_csv.contains(",=HYPERLINK"), "{charges_csv}");
        assert!(text(&read_entry(&zip_bytes, "waste.csv")).contains(",'=1+1,"));
        // The export is in the audit log.
        let recent = app.store.audit_page(None, 5).await.expect("audit");
        assert!(recent
            .iter()
            .any(|e| e.action == "inspection.export" && e.actor.starts_with("auditor:")));

        // One byte of one CSV changed (the zip itself well-formed): refused, naming the file.
        let mut changed = read_entry(&zip_bytes, "refunds.csv");
        let last = changed.len() - 3;
        changed[last] ^= 0x01;
        let bad = write_temp(
            dir.path(),
            "bad.zip",
            &rezip(&zip_bytes, "refunds.csv", &changed),
        );
        let e = backend::inspect::verify_file(&bad).expect_err("a changed byte is found");
        assert!(e.to_string().starts_with("refunds.csv: SHA-256"), "{e}");
        // One byte of the stored (compressed) bytes of a CSV changed in the zip file itself.
        let (start, size) = {
            let mut z = zip::ZipArchive::new(std::io::Cursor::new(&zip_bytes[..])).expect("zip");
            let f = z.by_name("charges.csv").expect("entry");
            (f.data_start() as usize, f.compressed_size() as usize)
        };
        let mut flipped = zip_bytes.clone();
        flipped[start + size / 2] ^= 0x20;
        let bad = write_temp(dir.path(), "flipped.zip", &flipped);
        let e = backend::inspect::verify_file(&bad).expect_err("a flipped byte is found");
        assert!(e.to_string().starts_with("charges.csv:"), "{e}");
        // A ledger whose chain was rebuilt after the export no longer holds its head.
        app.exec_sql(format!(
            "UPDATE audit_log SET hash = 'rebuilt' WHERE seq = {}",
            head.seq
        ))
        .await;
        let e = backend::inspect::check_chain_head(app.store.as_ref(), &m)
            .await
            .expect_err("the head is gone");
        assert!(e.to_string().contains(&format!("seq {}", head.seq)), "{e}");
        // Nonsense dates are refused with a message.
        let (s, _, body) = app
            .raw(get(
                "/manage/audit/export.zip?from=2026-12-31&to=2026-01-01",
                &cookie(&app.manager),
            ))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(text(&body).contains("日期范围无效"));
    }
);

/// The command line on a SQLite file: `backend export` then `backend verify-export` passes,
/// and fails with exit code 1 naming the file once a byte of a CSV changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_and_verify_export_on_the_command_line() {
    let Some(app) = common::TestApp::new(common::Db::Sqlite).await else {
        return;
    };
    top_up_at(&app, app.staff_id, 5000, lunch_today_ms(), "C1").await;
    let (s, v) = app
        .call(
            &app.kiosk,
            Method::POST,
            "/api/v1/kiosk/charges",
            Some(json!({"idempotency_key": "c-1", "staff_id": app.staff_id, "kiosk_time": lunch_today()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    seal(&app).await;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("export.zip");
    let backend = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_backend"))
            .args(args)
            .args(["--database-url", &app.state.cfg.database_url()])
            .env("CLEANPLATE_DEV_MODE", "true")
            .env("CLEANPLATE_AUDIT_KEY_HEX", &app.state.cfg.audit_key_hex)
            .env("CLEANPLATE_DATA_DIR", dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .expect("run backend")
    };
    let day = today();
    let o = backend(&[
        "export",
        "--from",
        &day,
        "--to",
        &day,
        "--out",
        out.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("charges.csv: 1 rows"),
        "{}",
        text(&o.stdout)
    );
    let o = backend(&["verify-export", out.to_str().expect("path")]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains("is in the database's chain with the same hash"),
        "{}",
        text(&o.stdout)
    );
    let zip_bytes = std::fs::read(&out).expect("zip");
    let mut changed = read_entry(&zip_bytes, "charges.csv");
    let at = changed.len() - 5;
    changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&out, rezip(&zip_bytes, "charges.csv", &changed)).expect("write");
    let o = backend(&["verify-export", out.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("charges.csv: SHA-256"),
        "{}",
        text(&o.stderr)
    );
    // Bad dates: a clear refusal, no file.
    let o = backend(&[
        "export",
        "--from",
        "2026-02-30",
        "--to",
        &day,
        "--out",
        "x.zip",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("2026-02-30"),
        "{}",
        text(&o.stderr)
    );
}
