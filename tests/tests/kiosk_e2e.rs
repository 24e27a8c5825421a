//! End-to-end: the real backend and kiosk binaries over HTTP on loopback, each test with
//! its own database, port and kiosk data directory. The diners are replays made by
//! `kiosk make-replay` from the public-domain portraits in `models/dist/demo` (a slow
//! synthetic camera drift stands in for a person in front of the camera; `--still`
//! repeats one frame, as a printed photo would look), plus LFW photos from
//! `../shared/faces` for a longer stream of diners when that folder exists.

use std::path::PathBuf;
use std::time::Duration;

use e2e::{demo_photo, shared_faces, Backend, KioskCmd};

const LONG: Duration = Duration::from_secs(240);

fn setup(tmp: &std::path::Path, mode: &str, extra_toml: &str) -> (Backend, KioskCmd) {
    let backend = Backend::start(tmp);
    backend.desk().all_day_meals(1).expect("meal windows");
    let kiosk = KioskCmd::new(&tmp.join("kiosk"), &backend.url(), mode, extra_toml);
    kiosk.register(&backend.code);
    (backend, kiosk)
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
    kiosk.enrol(
        "E0001",
        &[&demo_photo("obama.jpg"), &demo_photo("obama2.jpg")],
    );
    let wang = backend.staff_id("E0001");
    // The same person comes by twice (another photo than the enrolled ones).
    let obama3 = demo_photo("obama3.jpg");
    let replay = kiosk.make_replay("replay", &[(&obama3, false), (&obama3, false)], 10, 5, 640);
    let mut run = kiosk.spawn_run(
        &[
            "--replay",
            replay.to_str().unwrap(),
            "--fps",
            "8",
            "--exit-after-replay",
        ],
        &[],
    );
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
    let mut run = kiosk.spawn_run(
        &[
            "--replay",
            replay.to_str().unwrap(),
            "--fps",
            "8",
            "--exit-after-replay",
        ],
        &[],
    );
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
            for (i, name) in ["Ariel_Sharon", "Junichiro_Koizumi", "Serena_Williams"]
                .iter()
                .enumerate()
            {
                let p = faces.join("lfw-A").join(name).join("1.jpg");
                if p.is_file() {
                    v.push((format!("E{:04}", i + 3), vec![p.clone()], p));
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
    let mut run = kiosk.spawn_run(
        &[
            "--replay",
            replay.to_str().unwrap(),
            "--fps",
            "5",
            "--exit-after-replay",
        ],
        &[],
    );

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
    kiosk.enrol(
        "E0001",
        &[&demo_photo("obama.jpg"), &demo_photo("obama2.jpg")],
    );
    let wang = backend.staff_id("E0001");
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
fn the_return_station_records_the_grams_from_the_simulated_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let (backend, kiosk) = setup(
        tmp.path(),
        "return",
        "[scale]\ntare_g = 350\npair_window_ms = 30000",
    );
    kiosk.enrol(
        "E0001",
        &[&demo_photo("obama.jpg"), &demo_photo("obama2.jpg")],
    );
    let wang = backend.staff_id("E0001");

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
    let waste = backend.waste();
    assert_eq!(waste.len(), 1, "{waste:?}");
    assert_eq!(
        (
            waste[0]["staff_id"].as_i64(),
            waste[0]["gross_grams"].as_i64(),
            waste[0]["tare_grams"].as_i64(),
            waste[0]["net_grams"].as_i64()
        ),
        (Some(wang), Some(812), Some(350), Some(462))
    );
    assert!(
        backend.charges().is_empty(),
        "the return station does not charge"
    );
}

#[test]
fn the_encrypted_gallery_cache_recognises_people_while_the_backend_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut backend, kiosk) = setup(tmp.path(), "pay", "sync_interval_ms = 300");
    kiosk.enrol(
        "E0001",
        &[&demo_photo("obama.jpg"), &demo_photo("obama2.jpg")],
    );
    kiosk.enrol("E0002", &[&demo_photo("biden.jpg")]);
    let li = backend.staff_id("E0002");
    // A first run while the backend is up fills the cache.
    let first = kiosk.make_replay("first", &[(&demo_photo("obama3.jpg"), false)], 10, 5, 640);
    let mut run = kiosk.spawn_run(
        &[
            "--replay",
            first.to_str().unwrap(),
            "--fps",
            "8",
            "--exit-after-replay",
        ],
        &[],
    );
    assert!(run.wait(LONG).success(), "{}", run.describe());

    // The kiosk starts again with the backend gone: it recognises from the cache alone.
    backend.stop();
    let second = kiosk.make_replay("second", &[(&demo_photo("biden.jpg"), false)], 10, 5, 640);
    let mut run = kiosk.spawn_run(
        &[
            "--replay",
            second.to_str().unwrap(),
            "--fps",
            "8",
            "--exit-after-replay",
        ],
        &[],
    );
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
