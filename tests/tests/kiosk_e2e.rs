//! End-to-end: the real backend and kiosk binaries over HTTP on loopback, each test with
//! its own database, port and kiosk data directory. The diners are replays made by
//! `kiosk make-replay` from the public-domain portraits in `models/dist/demo` (a slow
//! synthetic camera drift stands in for a person in front of the camera; `--still`
//! repeats one frame, as a printed photo would look), plus LFW photos from
//! `../shared/faces` for a longer stream of diners when that folder exists. Pay codes are
//! QR codes drawn here (with the `qrcode` crate) onto replay frames.
//!
//! The demo canteen's staff (`backend seed-demo`): E0001, E0002 regular (300.00 subsidy),
//! E0003 contractor (no subsidy: 0.00), E0004 intern (200.00), and so on in that order.

use std::path::PathBuf;
use std::time::Duration;

use e2e::{demo_photo, shared_faces, Backend, KioskCmd};
use kiosk::api::BackendApi;

const LONG: Duration = Duration::from_secs(240);

fn setup(tmp: &std::path::Path, mode: &str, extra_toml: &str) -> (Backend, KioskCmd) {
    let backend = Backend::start(tmp);
    backend.desk().all_day_meals(1).expect("meal windows");
    let kiosk = KioskCmd::new(&tmp.join("kiosk"), &backend.url(), mode, extra_toml);
    kiosk.register(&backend.code);
    (backend, kiosk)
}

/// Enrols Wang Fang (E0001) from two demo portraits; returns the staff id.
fn enrol_wang(backend: &Backend, kiosk: &KioskCmd) -> i64 {
    kiosk.enrol(
        "E0001",
        &[&demo_photo("obama.jpg"), &demo_photo("obama2.jpg")],
    );
    backend.staff_id("E0001")
}

fn staff_of(charges: &[serde_json::Value]) -> Vec<i64> {
    let mut v: Vec<i64> = charges
        .iter()
        .filter_map(|c| c["staff_id"].as_i64())
        .collect();
    v.sort();
    v
}

#[test]
fn an_enrolled_person_is_charged_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (backend, kiosk) = setup(tmp.path(), "pay", "");
    let wang = enrol_wang(&backend, &kiosk);
    // The same person comes by twice (another photo than the enrolled ones).
    let obama3 = demo_photo("obama3.jpg");
    let replay = kiosk.make_replay("replay", &[(&obama3, false), (&obama3, false)], 10, 5, 640);
    let mut run = kiosk.spawn_replay(&replay, 8, &[]);
    let status = run.wait(LONG);
    assert!(status.success(), "{}", run.describe());

    let paid = run.events_of("paid");
    assert_eq!(paid.len(), 1, "{}", run.describe());
    assert_eq!(paid[0]["staff_id"], wang);
    assert_eq!(paid[0]["offline"], false);
    assert_eq!(
        run.events_of("already_charged").len(),
        1,
        "the second approach is refused: {}",
        run.describe()
    );
    let charges = backend.charges();
    assert_eq!(staff_of(&charges), vec![wang], "{charges:?}");
    assert_eq!(charges[0]["status"], "accepted");

    // Secrets at rest: the device token and the gallery cache are owner-only, and the
    // cache holds no readable template.
    use std::os::unix::fs::PermissionsExt;
    let data = kiosk.dir.join("data");
    for f in ["device_token", "gallery.bin", "gallery.key"] {
        let mode = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
    }
    let cache = std::fs::read(data.join("gallery.bin")).unwrap();
    assert!(cache.starts_with(b"CPGC1") && !String::from_utf8_lossy(&cache).contains("embedding"));
}

#[test]
fn an_unknown_person_and_a_still_photo_are_not_charged() {
    let tmp = tempfile::tempdir().unwrap();
    let (backend, kiosk) = setup(tmp.path(), "pay", "");
    kiosk.enrol("E0001", &[&demo_photo("obama.jpg")]);
    // A printed photo of the enrolled person held still, then someone not enrolled.
    let replay = kiosk.make_replay(
        "replay",
        &[
            (&demo_photo("obama2.jpg"), true),
            (&demo_photo("biden.jpg"), false),
        ],
        10,
        5,
        640,
    );
    let mut run = kiosk.spawn_replay(&replay, 8, &[]);
    assert!(run.wait(LONG).success(), "{}", run.describe());

    assert!(run.events_of("paid").is_empty(), "{}", run.describe());
    let refusals: Vec<String> = run
        .events_of("face")
        .into_iter()
        .filter(|e| e["face"] == "refused")
        .map(|e| e["refusal"]["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        refusals.contains(&"no_motion".to_string()),
        "the still photo is refused as a photo: {}",
        run.describe()
    );
    assert!(
        refusals.contains(&"unknown".to_string()),
        "the stranger is refused as unknown: {}",
        run.describe()
    );
    assert!(backend.charges().is_empty());
}

/// Diners for the outage test: the demo portraits, plus LFW people when present.
fn diners(tmp: &std::path::Path) -> Vec<(String, Vec<PathBuf>, PathBuf)> {
    let mut v = vec![
        (
            "E0001".to_string(),
            vec![demo_photo("obama.jpg"), demo_photo("obama2.jpg")],
            demo_photo("obama3.jpg"),
        ),
        (
            "E0002".to_string(),
            vec![demo_photo("biden.jpg")],
            demo_photo("biden.jpg"),
        ),
    ];
    match shared_faces() {
        Some(faces) => {
            // E0004-E0006: people with money (E0003, a contractor, has none and would be
            // refused offline now that the kiosk knows everyone's balance).
            for (i, name) in ["Ariel_Sharon", "Junichiro_Koizumi", "Serena_Williams"]
                .iter()
                .enumerate()
            {
                let p = faces.join("lfw-A").join(name).join("1.jpg");
                if p.is_file() {
                    v.push((format!("E{:04}", i + 4), vec![p.clone()], p));
                }
            }
        }
        None => eprintln!(
            "note: ../shared/faces not found; the outage test streams only the 2 demo diners"
        ),
    }
    let _ = tmp;
    v
}

#[test]
fn charges_made_while_the_backend_is_down_sync_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    // A generous offline limit: this test is about queueing, not the limit.
    let (mut backend, kiosk) = setup(
        tmp.path(),
        "pay",
        "offline_limit = \"100.00\"\nsync_interval_ms = 300",
    );
    let people = diners(tmp.path());
    for (no, photos, _) in &people {
        let refs: Vec<&std::path::Path> = photos.iter().map(PathBuf::as_path).collect();
        kiosk.enrol(no, &refs);
    }
    let expected: Vec<i64> = {
        let mut v: Vec<i64> = people
            .iter()
            .map(|(no, _, _)| backend.staff_id(no))
            .collect();
        v.sort();
        v
    };
    let replay_diners: Vec<(&std::path::Path, bool)> = people
        .iter()
        .map(|(_, _, r)| (r.as_path(), false))
        .collect();
    let replay = kiosk.make_replay("replay", &replay_diners, 10, 8, 480);
    let mut run = kiosk.spawn_replay(&replay, 5, &[]);

    // The first diner pays online; then the backend goes away mid-stream.
    let first = run
        .events
        .wait_for(LONG, |l| l.contains("\"event\":\"paid\""));
    assert!(first.is_some(), "{}", run.describe());
    backend.stop();
    // Everyone else is served offline and queued.
    let n = people.len();
    let all_paid = run.events.wait_for(LONG, |_| run_paid(&run) >= n);
    assert!(all_paid.is_some(), "{}", run.describe());
    let offline = run
        .events_of("paid")
        .iter()
        .filter(|e| e["offline"] == true)
        .count();
    assert!(
        offline >= 1,
        "some charges were made offline: {}",
        run.describe()
    );

    backend.serve();
    let status = run.wait(LONG);
    assert!(status.success(), "{}", run.describe());
    let charges = backend.charges();
    assert_eq!(
        staff_of(&charges),
        expected,
        "each diner charged exactly once: {charges:?}"
    );
    assert_eq!(
        charges.iter().filter(|c| c["offline"] == true).count(),
        offline,
        "{charges:?}"
    );
    let (ok, report) = backend.check();
    assert!(ok, "backend check failed:\n{report}");
}

fn run_paid(run: &e2e::RunningKiosk) -> usize {
    run.events_of("paid").len()
}

#[test]
fn a_kiosk_killed_after_the_outbox_write_sends_the_charge_once_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (backend, kiosk) = setup(tmp.path(), "pay", "");
    let wang = enrol_wang(&backend, &kiosk);
    let replay = kiosk.make_replay("replay", &[(&demo_photo("obama3.jpg"), false)], 10, 5, 640);
    let args = [
        "--replay",
        replay.to_str().unwrap(),
        "--fps",
        "8",
        "--exit-after-replay",
    ];

    let mut crashing = kiosk.spawn_run(
        &args,
        &[(kiosk::station::TEST_KILL_AFTER_OUTBOX_WRITE, "1")],
    );
    let status = crashing.wait(LONG);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "killed by SIGKILL: {status:?} {}",
        crashing.describe()
    );
    assert!(
        crashing.events_of("paid").is_empty(),
        "nobody was told 'paid'"
    );
    assert!(
        backend.charges().is_empty(),
        "nothing reached the backend before the kill"
    );
    let counts: serde_json::Value = serde_json::from_str(kiosk.ok(&["outbox"]).trim()).unwrap();
    assert_eq!(
        counts["pending"], 1,
        "the charge is in the outbox: {counts}"
    );

    // Restarted on the same replay: the queued charge goes out, and the same person is
    // not charged again for the same meal.
    let mut again = kiosk.spawn_run(&args, &[]);
    assert!(again.wait(LONG).success(), "{}", again.describe());
    let charges = backend.charges();
    assert_eq!(
        staff_of(&charges),
        vec![wang],
        "sent exactly once: {charges:?}"
    );
    assert_eq!(
        again.events_of("already_charged").len(),
        1,
        "{}",
        again.describe()
    );
    let counts: serde_json::Value = serde_json::from_str(kiosk.ok(&["outbox"]).trim()).unwrap();
    assert_eq!(
        (counts["pending"].as_i64(), counts["delivered"].as_i64()),
        (Some(0), Some(1)),
        "{counts}"
    );
}

#[test]
fn the_return_station_records_the_grams_and_shows_the_backends_averages() {
    let tmp = tempfile::tempdir().unwrap();
    let (backend, kiosk) = setup(
        tmp.path(),
        "return",
        "[scale]\ntare_g = 350\npair_window_ms = 30000",
    );
    let wang = enrol_wang(&backend, &kiosk);
    let li = backend.staff_id("E0002");
    // Wang paid at the entrance (another device), and earlier trays were weighed at another
    // return station: Wang left 300 g, Li 100 g.
    let entrance = backend.other_kiosk("entrance");
    let charge = entrance
        .charge(&wire::ChargeRequest {
            idempotency_key: "entrance-1".into(),
            staff_id: wang,
            kiosk_time: time_now(),
            offline: false,
            amount: None,
        })
        .expect("charging at the entrance");
    assert_eq!(charge.status, wire::ChargeStatus::Accepted, "{charge:?}");
    let belt = backend.other_kiosk("other return station");
    for (key, staff, gross) in [("belt-1", wang, 650), ("belt-2", li, 450)] {
        belt.waste(&wire::WasteRequest {
            idempotency_key: key.into(),
            staff_id: Some(staff),
            charge_id: None,
            gross_grams: gross,
            tare_grams: 350,
            dish: None,
            category: None,
            measured_at: time_now(),
        })
        .expect("recording earlier waste");
    }

    let mut sim = std::process::Command::new(e2e::bin("kiosk"))
        .args([
            "scale-sim",
            "--trays",
            "812",
            "--off-s",
            "1.5",
            "--on-s",
            "2",
            "--hz",
            "10",
            "--noise",
            "--once",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = sim.stdout.take().unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut first).unwrap();
    let port = first.trim().rsplit(' ').next().unwrap().to_string();
    assert!(port.starts_with("tcp://"), "{first}");

    // The diner shows their face, then the frames go on empty while the tray settles.
    let replay = kiosk.make_replay("replay", &[(&demo_photo("obama3.jpg"), false)], 10, 40, 640);
    let mut run = kiosk.spawn_run(
        &[
            "--replay",
            replay.to_str().unwrap(),
            "--fps",
            "8",
            "--scale",
            &port,
            "--exit-after-replay",
        ],
        &[],
    );
    let status = run.wait(LONG);
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(status.success(), "{}", run.describe());

    let recorded = run.events_of("waste_recorded");
    assert_eq!(recorded.len(), 1, "{}", run.describe());
    assert_eq!(recorded[0]["net_g"], 462);
    // The backend's 30-day averages, not this station's own history (462 g alone):
    // Wang (300 + 462) / 2, everyone (300 + 100 + 462) / 3.
    assert_eq!(
        recorded[0]["averages_from"],
        "backend",
        "{}",
        run.describe()
    );
    let avg = |k: &str| recorded[0][k].as_f64().unwrap_or(f64::NAN);
    assert!(
        (avg("person_average_g") - 381.0).abs() < 0.01,
        "{}",
        recorded[0]
    );
    assert!(
        (avg("canteen_average_g") - 862.0 / 3.0).abs() < 0.01,
        "{}",
        recorded[0]
    );

    let waste = backend.waste();
    let mine: Vec<&serde_json::Value> = waste.iter().filter(|w| w["net_grams"] == 462).collect();
    assert_eq!(mine.len(), 1, "{waste:?}");
    assert_eq!(
        (
            mine[0]["staff_id"].as_i64(),
            mine[0]["gross_grams"].as_i64(),
            mine[0]["tare_grams"].as_i64(),
        ),
        (Some(wang), Some(812), Some(350))
    );
    assert_eq!(
        mine[0]["charge_id"].as_i64(),
        charge.charge_id,
        "the backend linked the tray to the meal paid at the entrance: {waste:?}"
    );
    assert_eq!(
        backend.charges().len(),
        1,
        "the return station does not charge"
    );
}

#[test]
fn the_encrypted_gallery_cache_recognises_people_while_the_backend_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut backend, kiosk) = setup(tmp.path(), "pay", "sync_interval_ms = 300");
    enrol_wang(&backend, &kiosk);
    kiosk.enrol("E0002", &[&demo_photo("biden.jpg")]);
    let li = backend.staff_id("E0002");
    // A first run while the backend is up fills the cache.
    let first = kiosk.make_replay("first", &[(&demo_photo("obama3.jpg"), false)], 10, 5, 640);
    let mut run = kiosk.spawn_replay(&first, 8, &[]);
    assert!(run.wait(LONG).success(), "{}", run.describe());

    // The kiosk starts again with the backend gone: it recognises from the cache alone.
    backend.stop();
    let second = kiosk.make_replay("second", &[(&demo_photo("biden.jpg"), false)], 10, 5, 640);
    let mut run = kiosk.spawn_replay(&second, 8, &[]);
    let paid = run
        .events
        .wait_for(LONG, |l| l.contains("\"event\":\"paid\""));
    assert!(paid.is_some(), "{}", run.describe());
    let paid: serde_json::Value = serde_json::from_str(&paid.unwrap()).unwrap();
    assert_eq!(
        (paid["staff_id"].as_i64(), paid["offline"].as_bool()),
        (Some(li), Some(true)),
        "{}",
        run.describe()
    );
    backend.serve();
    assert!(run.wait(LONG).success(), "{}", run.describe());
    let offline: Vec<i64> = backend
        .charges()
        .iter()
        .filter(|c| c["offline"] == true)
        .filter_map(|c| c["staff_id"].as_i64())
        .collect();
    assert_eq!(offline, vec![li]);
}

/// Writes a replay of `frames` frames of a phone showing `code` as a QR code (drifting a
/// little, as in a hand), then `gap` grey frames; PNG, so no JPEG blur on the modules.
fn qr_replay(dir: &std::path::Path, code: &str, frames: usize, gap: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let qr = qrcode::QrCode::new(code.as_bytes()).expect("encoding the pay code");
    let n = qr.width() as u32;
    let colors = qr.to_colors();
    let px = 5u32;
    let grey = image::Rgb([128u8, 128, 128]);
    let mut k = 0;
    for f in 0..frames as u32 {
        let mut img = image::RgbImage::from_pixel(640, 480, grey);
        let (ox, oy) = (150 + 4 * f, 60 + 3 * f);
        for y in 0..(n + 8) * px {
            for x in 0..(n + 8) * px {
                let (mx, my) = ((x / px) as i64 - 4, (y / px) as i64 - 4);
                let dark = mx >= 0
                    && my >= 0
                    && (mx as u32) < n
                    && (my as u32) < n
                    && colors[(my as u32 * n + mx as u32) as usize] == qrcode::Color::Dark;
                let v = if dark { 0 } else { 255 };
                img.put_pixel(ox + x, oy + y, image::Rgb([v, v, v]));
            }
        }
        k += 1;
        img.save(dir.join(format!("{k:05}.png"))).unwrap();
    }
    for _ in 0..gap {
        k += 1;
        image::RgbImage::from_pixel(640, 480, grey)
            .save(dir.join(format!("{k:05}.png")))
            .unwrap();
    }
    dir.to_path_buf()
}

#[test]
fn a_staff_member_pays_with_a_qr_code_once_and_the_used_code_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (backend, kiosk) = setup(tmp.path(), "pay", "");
    // The intern E0004 makes a pay code on their phone (their own session).
    let intern = backend.staff_id("E0004");
    let code = backend
        .staff_session("E0004")
        .create_pay_code()
        .expect("making a pay code");
    let replay = qr_replay(&kiosk.dir.join("qr"), &code.code, 9, 4);
    let args = [
        "--replay",
        replay.to_str().unwrap(),
        "--fps",
        "8",
        "--exit-after-replay",
    ];

    let mut run = kiosk.spawn_run(&args, &[]);
    assert!(run.wait(LONG).success(), "{}", run.describe());
    let paid = run.events_of("paid");
    assert_eq!(paid.len(), 1, "{}", run.describe());
    assert_eq!(
        (
            paid[0]["staff_id"].as_i64(),
            paid[0]["via"].as_str(),
            paid[0]["offline"].as_bool()
        ),
        (Some(intern), Some("pay_code"), Some(false)),
        "{}",
        run.describe()
    );
    let charges = backend.charges();
    assert_eq!(staff_of(&charges), vec![intern], "{charges:?}");
    assert_eq!(charges[0]["status"], "accepted");
    assert_eq!(
        paid[0]["charge_id"], charges[0]["id"],
        "the kiosk was told the charge the backend made"
    );

    // The same code shown again (a screenshot, a second kiosk run): used up, no charge.
    let mut again = kiosk.spawn_run(&args, &[]);
    assert!(again.wait(LONG).success(), "{}", again.describe());
    assert!(again.events_of("paid").is_empty(), "{}", again.describe());
    let refused = again.events_of("pay_code_refused");
    assert_eq!(refused.len(), 1, "{}", again.describe());
    assert_eq!(
        refused[0]["reason"],
        "pay_code_used",
        "{}",
        again.describe()
    );
    assert_eq!(backend.charges().len(), 1, "still one charge");
}

#[test]
fn synced_balances_let_an_offline_kiosk_refuse_someone_without_money() {
    let tmp = tempfile::tempdir().unwrap();
    // The configured price would be 99.00: the canteen's own prices must win, from the
    // settings the kiosk fetched and saved while online.
    let (mut backend, kiosk) = setup(
        tmp.path(),
        "pay",
        "offline_limit = \"100.00\"\noffline_meal_price = \"99.00\"\nsync_interval_ms = 300",
    );
    let wang = enrol_wang(&backend, &kiosk);
    kiosk.enrol("E0003", &[&demo_photo("biden.jpg")]);
    let zhang = backend.staff_id("E0003");

    // Online for a moment: the kiosk reads everyone's balances and the canteen's settings.
    let idle = blank_replay(&kiosk.dir.join("idle"), 4);
    let first = kiosk.spawn_run(
        &["--replay", idle.to_str().unwrap(), "--fps", "2", "--looped"],
        &[],
    );
    for (what, needle) in [
        ("balances", "\"event\":\"balances_synced\""),
        ("settings", "\"source\":\"backend\""),
    ] {
        assert!(
            first
                .events
                .wait_for(LONG, |l| l.contains(needle))
                .is_some(),
            "no {what} from the backend: {}",
            first.describe()
        );
    }
    drop(first);

    // Offline: the person with money is served, the one without is refused.
    backend.stop();
    let replay = kiosk.make_replay(
        "replay",
        &[
            (&demo_photo("obama3.jpg"), false),
            (&demo_photo("biden.jpg"), false),
        ],
        10,
        5,
        640,
    );
    let mut run = kiosk.spawn_replay(&replay, 8, &[]);
    let declined = run
        .events
        .wait_for(LONG, |l| l.contains("\"event\":\"declined\""));
    assert!(declined.is_some(), "{}", run.describe());
    let declined: serde_json::Value = serde_json::from_str(&declined.unwrap()).unwrap();
    assert_eq!(
        (declined["staff_id"].as_i64(), declined["reason"].as_str()),
        (Some(zhang), Some("offline_insufficient_cached_balance")),
        "{}",
        run.describe()
    );
    let paid = run.events_of("paid");
    assert_eq!(paid.len(), 1, "{}", run.describe());
    assert_eq!(
        (paid[0]["staff_id"].as_i64(), paid[0]["offline"].as_bool()),
        (Some(wang), Some(true))
    );
    let cached = run
        .events_of("canteen_settings")
        .into_iter()
        .find(|e| e["source"] == "cache");
    assert!(
        cached.is_some(),
        "the offline kiosk applies the saved canteen settings: {}",
        run.describe()
    );

    backend.serve();
    assert!(run.wait(LONG).success(), "{}", run.describe());
    let charges = backend.charges();
    assert_eq!(staff_of(&charges), vec![wang], "{charges:?}");
    assert_eq!(charges[0]["offline"], true);
    assert_eq!(
        paid[0]["amount"], charges[0]["amount"],
        "the offline price was the canteen's price for the meal, not the configured 99.00"
    );
}

#[test]
fn a_lost_answer_to_a_declined_charge_still_records_the_served_meal() {
    let tmp = tempfile::tempdir().unwrap();
    let (backend, kiosk) = setup(tmp.path(), "pay", "sync_interval_ms = 300");
    let wang = enrol_wang(&backend, &kiosk);
    // Wang had this meal at another kiosk already, which this kiosk cannot know: the
    // backend will decline its charge (meal_already_taken).
    let other = backend.other_kiosk("other line");
    let first = other
        .charge(&wire::ChargeRequest {
            idempotency_key: "other-line-1".into(),
            staff_id: wang,
            kiosk_time: time_now(),
            offline: false,
            amount: None,
        })
        .expect("charging at the other kiosk");
    assert_eq!(first.status, wire::ChargeStatus::Accepted, "{first:?}");

    // The answer to this kiosk's charge is lost; it serves within the offline allowance.
    let run = run_with_first_answer_lost(&kiosk);
    let paid = run.events_of("paid");
    assert_eq!(paid.len(), 1, "{}", run.describe());
    assert_eq!(
        (paid[0]["staff_id"].as_i64(), paid[0]["offline"].as_bool()),
        (Some(wang), Some(true)),
        "served on the kiosk's own decision: {}",
        run.describe()
    );
    let key = paid[0]["idempotency_key"].as_str().unwrap().to_string();
    let queued = run.events_of("served_meal_queued");
    assert_eq!(queued.len(), 1, "{}", run.describe());
    assert_eq!(queued[0]["original_key"], key.as_str());
    assert_eq!(queued[0]["idempotency_key"], format!("{key}:served"));

    // The backend has the served meal: an offline charge that broke the one-meal rule,
    // recorded as an exception for a manager, next to the other kiosk's accepted charge.
    let charges = backend.charges();
    let mut mine: Vec<(String, bool, String)> = charges
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["offline"] == true,
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    mine.sort();
    assert_eq!(
        mine,
        vec![
            ("accepted".to_string(), false, String::new()),
            (
                "exception".to_string(),
                true,
                "meal_already_taken".to_string()
            ),
        ],
        "{charges:?}"
    );
    assert!(charges.iter().all(|c| c["staff_id"] == wang));
    assert_eq!(
        outbox_counts(&kiosk),
        (0, 2, 1),
        "pending, delivered, derived"
    );
    let (ok, report) = backend.check();
    assert!(ok, "backend check failed:\n{report}");
}

#[test]
fn a_diner_refused_after_a_lost_answer_gets_the_accepted_charge_voided() {
    let tmp = tempfile::tempdir().unwrap();
    // No offline allowance: when the answer is lost the kiosk cannot serve on its own.
    let (backend, kiosk) = setup(
        tmp.path(),
        "pay",
        "offline_limit = \"0\"\nsync_interval_ms = 300",
    );
    let wang = enrol_wang(&backend, &kiosk);
    let balance = || {
        backend
            .desk()
            .get_json(&format!("/api/v1/staff/{wang}/balance"))
            .expect("reading the balance")
    };
    let before = balance();

    // The backend accepts the charge, the answer is lost, the kiosk refuses the diner.
    let run = run_with_first_answer_lost(&kiosk);
    assert!(run.events_of("paid").is_empty(), "{}", run.describe());
    let declined = run.events_of("declined");
    assert_eq!(declined.len(), 1, "{}", run.describe());
    assert_eq!(declined[0]["reason"], "offline_limit_reached");
    let queued = run.events_of("unserved_charge_void_queued");
    assert_eq!(queued.len(), 1, "{}", run.describe());
    let key = queued[0]["charge_key"].as_str().unwrap().to_string();
    assert_eq!(queued[0]["idempotency_key"], format!("{key}:void"));
    let voided = run.events_of("charge_voided");
    assert_eq!(voided.len(), 1, "{}", run.describe());
    assert_eq!(voided[0]["charge_key"], key.as_str());

    // One charge at the backend, reversed; the person's balances are what they were.
    let charges = backend.charges();
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["staff_id"], wang);
    assert_eq!(charges[0]["status"], "refunded", "{charges:?}");
    assert_eq!(balance(), before, "balances restored");
    assert_eq!(
        outbox_counts(&kiosk),
        (0, 2, 1),
        "pending, delivered, derived"
    );
    let (ok, report) = backend.check();
    assert!(ok, "backend check failed:\n{report}");
}

/// Wang (E0001) walks up once (obama3.jpg, moving); the backend applies the kiosk's first
/// online charge but its answer is lost on the way back (test hook).
fn run_with_first_answer_lost(kiosk: &KioskCmd) -> e2e::RunningKiosk {
    let replay = kiosk.make_replay("replay", &[(&demo_photo("obama3.jpg"), false)], 10, 5, 640);
    let mut run = kiosk.spawn_replay(&replay, 8, &[(kiosk::api::TEST_DROP_CHARGE_ANSWERS, "1")]);
    assert!(run.wait(LONG).success(), "{}", run.describe());
    run
}

/// `kiosk outbox`: (pending, delivered, derived).
fn outbox_counts(kiosk: &KioskCmd) -> (i64, i64, i64) {
    let counts: serde_json::Value = serde_json::from_str(kiosk.ok(&["outbox"]).trim()).unwrap();
    let n = |k: &str| counts[k].as_i64().unwrap_or(-1);
    (n("pending"), n("delivered"), n("derived"))
}

fn blank_replay(dir: &std::path::Path, frames: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for k in 1..=frames {
        image::RgbImage::from_pixel(320, 240, image::Rgb([128u8, 128, 128]))
            .save(dir.join(format!("{k:05}.png")))
            .unwrap();
    }
    dir.to_path_buf()
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
