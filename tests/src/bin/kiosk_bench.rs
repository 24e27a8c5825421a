//! Kiosk benchmark: frame-to-decision latency and diners per minute, with the replay
//! source and a real backend on loopback.
//!
//! `cargo run -p e2e --bin kiosk-bench -- [--diners 40] [--frames 6] [--gap 3]`
//!
//! A backend is started on embedded SQLite in a temporary directory, the demo faces are
//! enrolled (plus LFW people from ../shared/faces when present), a kiosk is registered,
//! and a replay of `--diners` approaches is pushed through the kiosk's own pieces
//! (FaceAnalyzer → Decider → Station → outbox → HTTP charge) in this process, one frame
//! after the other with no pacing (a camera would deliver them at its fps; here the
//! pipeline's own speed is measured). Kiosk meal windows are left empty so every
//! identification goes to the backend (repeat visitors are declined there with
//! `meal_already_taken`, which is still a full decision and round trip).
//!
//! Reported: per-frame latency (frame in → analysis, gallery search, decision, and the
//! charge round trip when the frame completes a decision), the decision latency (the
//! deciding frame in → charge answer), and diners per minute when frames come as fast as
//! the kiosk can take them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{bench_diners, Backend, KioskCmd};
use kiosk::api::{BackendApi, HttpBackend};
use kiosk::courier::Courier;
use kiosk::decide::Decider;
use kiosk::event::KioskEvent;
use kiosk::frames::{FrameSource, ReplaySource};
use kiosk::gallery_cache::GalleryState;
use kiosk::local_store::LocalStore;
use kiosk::run::FaceAnalyzer;
use kiosk::station::Station;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn main() {
    let diners = arg("--diners", 40);
    let frames = arg("--frames", 6);
    let gap = arg("--gap", 3);
    let tmp = tempfile::tempdir().expect("temp dir");
    let backend = Backend::start(tmp.path());
    backend.desk().all_day_meals(1).expect("meal windows");
    let kiosk = KioskCmd::new(
        &tmp.path().join("kiosk"),
        &backend.url(),
        "pay",
        "offline_limit = \"1000.00\"",
    );
    kiosk.register(&backend.code);

    let people = bench_diners(
        &[
            "Ariel_Sharon",
            "Junichiro_Koizumi",
            "Serena_Williams",
            "John_Ashcroft",
            "Alvaro_Uribe",
        ],
        "1.jpg",
    );
    for d in &people {
        let refs: Vec<&std::path::Path> = d.enrol.iter().map(PathBuf::as_path).collect();
        kiosk.enrol(&d.employee_no, &refs);
    }
    let stream: Vec<(&std::path::Path, bool)> = (0..diners)
        .map(|i| (people[i % people.len()].probe.as_path(), false))
        .collect();
    let replay = kiosk.make_replay("replay", &stream, frames, gap, 640);

    let token =
        std::fs::read_to_string(tmp.path().join("kiosk/data/device_token")).expect("device token");
    let api: Arc<dyn BackendApi> = Arc::new(HttpBackend::new(
        &backend.url(),
        Some(token.trim().to_string()),
        Duration::from_secs(1),
        Duration::from_secs(5),
    ));
    let mut cfg = kiosk::config::KioskConfig::load(Some(&tmp.path().join("kiosk/kiosk.toml")))
        .expect("kiosk config");
    cfg.meal_windows.clear();
    cfg.data_dir = tmp.path().join("bench-data");
    std::fs::create_dir_all(&cfg.data_dir).expect("data dir");

    let mut state = GalleryState::default();
    kiosk::sync::sync_gallery(&*api, &mut state).expect("gallery sync");
    let gallery = state.to_gallery();
    let mut analyzer = FaceAnalyzer::load(&cfg).expect("face models");
    let mut decider = Decider::new(cfg.decision.clone());
    let events: Arc<Mutex<Vec<KioskEvent>>> = Arc::default();
    let ev = events.clone();
    let store = LocalStore::open(&cfg.data_dir.join("kiosk.db")).expect("local store");
    let mut station = Station::new(
        cfg.clone(),
        Courier::new(api),
        store,
        Box::new(move |e| ev.lock().unwrap().push(e)),
    )
    .expect("station");
    let mut source = ReplaySource::open(&replay, 0.0, false, cfg.source.max_side).expect("replay");

    // Warm-up: ONNX Runtime's first runs are slow; decode every frame once (a camera hands
    // over decoded frames, so decoding is not part of the kiosk's latency).
    let warm = image::RgbImage::from_pixel(640, 480, image::Rgb([120, 120, 120]));
    for _ in 0..5 {
        let _ = analyzer.observe(&warm, &gallery);
    }
    let mut frames_all = Vec::new();
    while let Some(f) = source.next_frame().expect("frame") {
        frames_all.push(f);
    }

    let mut per_frame = Vec::with_capacity(frames_all.len());
    let start = Instant::now();
    for f in frames_all {
        let t0 = Instant::now();
        let obs = analyzer.observe(&f.image, &gallery).expect("analysis");
        let evs = decider.feed_with(obs, &|e| analyzer.identify(e, &gallery));
        station.on_face_events(evs, t0);
        per_frame.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let evs = events.lock().unwrap();
    let mut decision: Vec<f64> = evs
        .iter()
        .filter_map(|e| match e {
            KioskEvent::Paid { latency_ms, .. } | KioskEvent::Declined { latency_ms, .. } => {
                Some(*latency_ms)
            }
            _ => None,
        })
        .collect();
    let paid = evs
        .iter()
        .filter(|e| matches!(e, KioskEvent::Paid { .. }))
        .count();
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for e in evs.iter() {
        if let KioskEvent::Declined { reason, .. } = e {
            *reasons.entry(reason.clone()).or_default() += 1;
        }
    }
    let refused = evs
        .iter()
        .filter(|e| {
            matches!(
                e,
                KioskEvent::Face(kiosk::decide::FaceEvent::Refused { .. })
            )
        })
        .count();
    per_frame.sort_by(f64::total_cmp);
    decision.sort_by(f64::total_cmp);
    println!("kiosk-bench: {} frames ({} diners x {} frames + {} empty), {} enrolled people, gallery {} templates", per_frame.len(), diners, frames, gap, people.len(), gallery.len());
    println!(
        "decisions: {} ({} paid, {} declined by the backend: {:?}), {} refusals",
        decision.len(),
        paid,
        decision.len() - paid,
        reasons,
        refused
    );
    println!("per-frame latency (frame in -> decided, incl. charge round trip on deciding frames): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms", pct(&per_frame, 0.5), pct(&per_frame, 0.95), pct(&per_frame, 1.0));
    println!("decision latency (deciding frame in -> charge answered): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms", pct(&decision, 0.5), pct(&decision, 0.95), pct(&decision, 1.0));
    println!("throughput: {:.1} frames/s; {:.0} diners/minute when frames come as fast as the kiosk takes them ({:.1} s for {} decisions)",
        per_frame.len() as f64 / elapsed, decision.len() as f64 / elapsed * 60.0, elapsed, decision.len());
}
