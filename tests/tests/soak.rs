//! Soak: three kiosk processes (two pay kiosks streaming diners, one tray-return station
//! weighing trays from a simulated scale) work against a real backend through a small TCP
//! proxy ([`e2e::FlakyProxy`]) that, on a fixed schedule, cuts every connection, slows the
//! link down, and passes traffic again, while the backend itself is killed with SIGKILL and
//! restarted twice. At the end every kiosk has emptied its outbox, the ledger holds exactly
//! what the kiosks recorded (charges: the same people and amounts, so none lost or doubled;
//! waste: the same count and grams), every diner's balance went down by exactly their
//! charges, `backend check` passes, and the last backend process's resident memory stayed
//! within a stated bound after its warm-up.
//!
//! Two lengths, the same schedule of troubles and the same assertions: the default short run
//! (about half a minute of kiosk time, for every `cargo test`) and a long one (about two
//! minutes, diners spread out, longer warm-up before the memory is judged) chosen with
//! `CLEANPLATE_SOAK_LONG=1`.
//!
//! Diners: the two demo portraits, plus LFW people from `../shared/faces` when present (two
//! in the short run, six in the long one).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::{demo_photo, rss_kib, shared_faces, Backend, FlakyProxy, KioskCmd, ProxyMode};

/// Frames per second of every replay.
const FPS: u32 = 5;
/// Allowed growth of the last backend process's RSS from its first sample after warm-up to
/// its largest later sample. Leaks in the request path would grow with every request and
/// every reconnect; allocator noise and caches filling stay well below this.
const RSS_GROWTH_BOUND_KIB: u64 = 32 * 1024;

/// How long a soak runs and when its troubles come.
struct Plan {
    name: &'static str,
    /// At most this many diners (each is enrolled, a kiosk process per photo set).
    diners: usize,
    /// Frames each diner stands in front of the camera (more frames: more chances to be
    /// recognised on a busy machine, where the kiosk drops frames it cannot keep up with).
    diner_frames: usize,
    /// Blank frames after each diner: spreads the diners over the run.
    gap: usize,
    /// The return station's replay length (blank frames).
    return_frames: usize,
    /// (seconds from the kiosks' start, what the network or the backend does).
    schedule: &'static [(u64, &'static str)],
    /// The last backend process's memory is judged from this long after its start.
    rss_warm_up: Duration,
    /// Samples (every 250 ms) the judgement needs at least.
    rss_samples: usize,
    /// Everything must be over by then.
    limit: Duration,
}

/// The default: ~30 s of kiosk time (7 s per diner, 25 s of trays), troubles every 2-3 s,
/// four diners.
const SHORT: Plan = Plan {
    name: "short",
    diners: 4,
    diner_frames: 25,
    gap: 10,
    return_frames: 125,
    schedule: &[
        (2, "cut"),
        (4, "pass"),
        (6, "restart"),
        (8, "delay"),
        (10, "restart"),
        (11, "pass"),
        (14, "cut"),
        (16, "delay"),
        (19, "pass"),
        (21, "cut"),
        (23, "pass"),
    ],
    rss_warm_up: Duration::from_secs(3),
    rss_samples: 20,
    limit: Duration::from_secs(150),
};

/// `CLEANPLATE_SOAK_LONG=1`: ~2 minutes (24 s per diner, 100 s of trays), eight diners.
const LONG: Plan = Plan {
    name: "long",
    diners: 8,
    diner_frames: 10,
    gap: 120,
    return_frames: 500,
    schedule: &[
        (8, "cut"),
        (14, "pass"),
        (18, "restart"),
        (24, "delay"),
        (30, "restart"),
        (33, "pass"),
        (45, "cut"),
        (53, "delay"),
        (65, "pass"),
        (75, "cut"),
        (81, "delay"),
        (90, "pass"),
    ],
    rss_warm_up: Duration::from_secs(15),
    rss_samples: 100,
    limit: Duration::from_secs(300),
};

fn plan() -> &'static Plan {
    match std::env::var("CLEANPLATE_SOAK_LONG").as_deref() {
        Ok("1") | Ok("true") => &LONG,
        _ => &SHORT,
    }
}

/// (employee number, enrolment photos, replay photo) for every diner available.
fn diners() -> Vec<(String, Vec<PathBuf>, PathBuf)> {
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
            // The demo canteen's people with money (E0003 and E0007 are contractors).
            let people = [
                ("E0004", "Ariel_Sharon"),
                ("E0005", "Junichiro_Koizumi"),
                ("E0006", "Serena_Williams"),
                ("E0008", "John_Ashcroft"),
                ("E0009", "Arnold_Schwarzenegger"),
                ("E0010", "Alvaro_Uribe"),
            ];
            for (no, name) in people {
                let p = faces.join("lfw-A").join(name).join("1.jpg");
                if p.is_file() {
                    v.push((no.to_string(), vec![p.clone()], p));
                }
            }
        }
        None => {
            eprintln!("note: ../shared/faces not found; the soak streams only the 2 demo diners")
        }
    }
    v
}

fn blank_replay(dir: &Path, frames: usize) -> PathBuf {
    std::fs::create_dir_all(dir).expect("replay folder");
    let grey = image::RgbImage::from_pixel(320, 240, image::Rgb([128u8, 128, 128]));
    for k in 1..=frames {
        grey.save(dir.join(format!("{k:05}.png")))
            .expect("writing a frame");
    }
    dir.to_path_buf()
}

/// `kiosk outbox`: (pending, delivered, rejected).
fn outbox(kiosk: &KioskCmd) -> (i64, i64, i64) {
    let v: serde_json::Value =
        serde_json::from_str(kiosk.ok(&["outbox"]).trim()).expect("outbox counts");
    let n = |k: &str| v[k].as_i64().unwrap_or(-1);
    (n("pending"), n("delivered"), n("rejected"))
}

fn fen(amount: &serde_json::Value) -> i64 {
    let s = amount.as_str().unwrap_or_else(|| panic!("amount {amount}"));
    let (sign, s) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s),
    };
    let (yuan, cents) = s.split_once('.').unwrap_or((s, "0"));
    let cents = format!("{cents:0<2}");
    sign * (yuan.parse::<i64>().expect("yuan") * 100 + cents[..2].parse::<i64>().expect("fen"))
}

/// A person's available money (cash + subsidy) in fen.
fn available_fen(backend: &Backend, staff_id: i64) -> i64 {
    let v = backend
        .desk()
        .get_json(&format!("/api/v1/staff/{staff_id}/balance"))
        .expect("reading a balance");
    fen(&v["cash"]) + fen(&v["subsidy"])
}

#[test]
fn kiosks_through_network_cuts_and_backend_restarts_lose_nothing() {
    let plan = plan();
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut backend = Backend::start(tmp.path());
    backend.desk().all_day_meals(1).expect("meal windows");
    let proxy = FlakyProxy::start(&backend.addr);
    let kiosk_toml = "offline_limit = \"100.00\"\nsync_interval_ms = 300";

    // Two pay kiosks with disjoint diners; one return station. Set up straight to the backend.
    let mut people = diners();
    people.truncate(plan.diners);
    let mut pay = Vec::new();
    for k in 0..2 {
        let kiosk = KioskCmd::new(
            &tmp.path().join(format!("pay{k}")),
            &backend.url(),
            "pay",
            kiosk_toml,
        );
        let code = if k == 0 {
            backend.code.clone()
        } else {
            backend.desk().enrolment_code(1).expect("enrolment code")
        };
        kiosk.register(&code);
        pay.push(kiosk);
    }
    for (no, photos, _) in &people {
        let refs: Vec<&Path> = photos.iter().map(PathBuf::as_path).collect();
        pay[0].enrol(no, &refs);
    }
    let replays: Vec<PathBuf> = (0..2)
        .map(|k| {
            let mine: Vec<(&Path, bool)> = people
                .iter()
                .skip(k)
                .step_by(2)
                .map(|(_, _, r)| (r.as_path(), false))
                .collect();
            pay[k].make_replay("replay", &mine, plan.diner_frames, plan.gap, 480)
        })
        .collect();
    let station = KioskCmd::new(
        &tmp.path().join("return"),
        &backend.url(),
        "return",
        &format!("{kiosk_toml}\n[scale]\ntare_g = 350\npair_window_ms = 500"),
    );
    station.register(&backend.desk().enrolment_code(1).expect("enrolment code"));
    let station_replay = blank_replay(&station.dir.join("blank"), plan.return_frames);
    let staff_ids: Vec<i64> = people
        .iter()
        .map(|(no, _, _)| backend.staff_id(no))
        .collect();
    let before: Vec<i64> = staff_ids
        .iter()
        .map(|id| available_fen(&backend, *id))
        .collect();
    let mut scale = std::process::Command::new(e2e::bin("kiosk"))
        .args([
            "scale-sim",
            "--trays",
            "812,655,730,901",
            "--off-s",
            "1",
            "--on-s",
            "1.5",
            "--hz",
            "10",
            "--noise",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the scale simulator");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(scale.stdout.take().expect("stdout")),
        &mut first,
    )
    .expect("the simulator's address");
    let scale_port = first.trim().rsplit(' ').next().unwrap_or("").to_string();
    assert!(scale_port.starts_with("tcp://"), "{first}");

    // From here on the kiosks reach the backend only through the proxy.
    let through = |k: &KioskCmd| KioskCmd {
        dir: k.dir.clone(),
        backend_url: proxy.url(),
    };
    let mut runs: Vec<(String, e2e::RunningKiosk)> = Vec::new();
    for (k, kiosk) in pay.iter().enumerate() {
        runs.push((
            format!("pay{k}"),
            through(kiosk).spawn_replay(&replays[k], FPS, &[]),
        ));
    }
    let station_replay = station_replay.to_str().expect("UTF-8 path").to_string();
    let fps = FPS.to_string();
    runs.push((
        "return".into(),
        through(&station).spawn_run(
            &[
                "--replay",
                &station_replay,
                "--fps",
                &fps,
                "--scale",
                &scale_port,
                "--exit-after-replay",
            ],
            &[],
        ),
    ));

    // The schedule (seconds from the kiosks' start): what the network and the backend do.
    let start = Instant::now();
    let schedule = plan.schedule;
    let mut next = 0;
    let mut rss: Vec<(u32, Duration, u64)> = Vec::new();
    let mut last_start = start;
    let mut restarts = 0;
    loop {
        let t = start.elapsed();
        while next < schedule.len() && t >= Duration::from_secs(schedule[next].0) {
            match schedule[next].1 {
                "cut" => proxy.set(ProxyMode::Cut),
                "delay" => proxy.set(ProxyMode::Delay(Duration::from_millis(250))),
                "pass" => proxy.set(ProxyMode::Pass),
                _ => {
                    backend.stop();
                    backend.serve();
                    restarts += 1;
                    last_start = Instant::now();
                }
            }
            next += 1;
        }
        if let Some(pid) = backend.pid() {
            if let Some(kib) = rss_kib(pid) {
                rss.push((pid, last_start.elapsed(), kib));
            }
        }
        let done = runs
            .iter_mut()
            .all(|(_, r)| matches!(r.child.try_wait(), Ok(Some(_))));
        if done && next == schedule.len() {
            break;
        }
        assert!(
            start.elapsed() < plan.limit,
            "the kiosks did not finish: {}",
            runs.iter()
                .map(|(n, r)| format!("--- {n}\n{}", r.describe()))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let elapsed = start.elapsed();
    let _ = scale.kill();
    let _ = scale.wait();
    for (name, r) in &mut runs {
        let status = r.wait(plan.limit);
        assert!(status.success(), "{name}: {status}\n{}", r.describe());
    }

    // Every outbox emptied, nothing set aside.
    for k in pay.iter().chain([&station]) {
        let (pending, _, rejected) = outbox(k);
        assert_eq!((pending, rejected), (0, 0), "{}", k.dir.display());
    }

    // The ledger equals what the kiosks recorded.
    let mut paid: Vec<(i64, i64)> = Vec::new();
    let mut offline_paid = 0;
    for (name, r) in runs.iter().filter(|(n, _)| n.starts_with("pay")) {
        for e in r.events_of("paid") {
            paid.push((
                e["staff_id"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{name}: {e}")),
                fen(&e["amount"]),
            ));
            offline_paid += usize::from(e["offline"] == true);
        }
    }
    paid.sort();
    let mut charged: Vec<(i64, i64)> = backend
        .charges()
        .iter()
        .map(|c| {
            (
                c["staff_id"].as_i64().unwrap_or_else(|| panic!("{c}")),
                fen(&c["amount"]),
            )
        })
        .collect();
    charged.sort();
    assert!(
        paid.len() * 2 >= people.len(),
        "most diners paid ({} of {}): {}",
        paid.len(),
        people.len(),
        runs.iter()
            .map(|(n, r)| format!("--- {n}\n{}", r.describe()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        charged, paid,
        "charges in the ledger = the kiosks' paid events"
    );
    let recorded: Vec<i64> = runs
        .iter()
        .filter(|(n, _)| n == "return")
        .flat_map(|(_, r)| r.events_of("waste_recorded"))
        .map(|e| e["net_g"].as_i64().expect("net grams"))
        .collect();
    let waste: Vec<i64> = backend
        .waste()
        .iter()
        .map(|w| w["net_grams"].as_i64().expect("net grams"))
        .collect();
    assert!(!recorded.is_empty(), "the return station weighed trays");
    assert_eq!(
        (waste.len(), waste.iter().sum::<i64>()),
        (recorded.len(), recorded.iter().sum::<i64>()),
        "waste records in the ledger = the station's weighings (count, grams)"
    );
    // Every diner's money went down by exactly what they were charged.
    for (id, was) in staff_ids.iter().zip(&before) {
        let spent: i64 = paid.iter().filter(|(s, _)| s == id).map(|(_, f)| f).sum();
        assert_eq!(
            was - available_fen(&backend, *id),
            spent,
            "staff {id}: balance change = their charges"
        );
    }
    let (ok, report) = backend.check();
    assert!(ok, "backend check failed:\n{report}");

    // Memory: the last backend process, after its warm-up.
    let last_pid = rss.last().map(|r| r.0).expect("RSS samples");
    let last: Vec<(Duration, u64)> = rss
        .iter()
        .filter(|r| r.0 == last_pid)
        .map(|r| (r.1, r.2))
        .collect();
    let after_warm_up: Vec<u64> = last
        .iter()
        .filter(|(t, _)| *t >= plan.rss_warm_up)
        .map(|(_, k)| *k)
        .collect();
    assert!(
        after_warm_up.len() >= plan.rss_samples,
        "the last backend process ran long enough to measure ({} samples)",
        after_warm_up.len()
    );
    let base = after_warm_up[0];
    let peak = after_warm_up.iter().copied().max().unwrap_or(base);
    let end = *after_warm_up.last().unwrap_or(&base);
    assert!(
        peak <= base + RSS_GROWTH_BOUND_KIB,
        "backend RSS grew from {base} KiB to {peak} KiB after warm-up (bound {RSS_GROWTH_BOUND_KIB} KiB)"
    );
    eprintln!(
        "soak ({}): {:.0} s, {} diners, {} charges ({} offline), {} waste records, {} backend restarts; \
         last backend RSS after {}s warm-up: {base} KiB first, {peak} KiB peak, {end} KiB at the end \
         over {} samples",
        plan.name,
        elapsed.as_secs_f64(),
        people.len(),
        paid.len(),
        offline_paid,
        recorded.len(),
        restarts,
        plan.rss_warm_up.as_secs(),
        after_warm_up.len()
    );
}
