//! The UI's benchmark, on this machine with the face pipeline running:
//!
//! `cargo run -p kiosk-ui --example ui_bench -- [--diners 20] [--fps 15]`
//!
//! A real backend on SQLite, the demo faces enrolled, a kiosk registered; the UI runs headless
//! (software renderer, 1280x800) over a kiosk replaying diners at a camera's pace. The UI
//! thread turns its event loop and draws whenever something changed, as a screen would.
//! Reported: preview frames shown per second (goal ≥ 15), the time from a decision event
//! (paid or declined, as the kiosk emits it) to the frame that shows its screen drawn (goal
//! p95 ≤ 50 ms), and frame → decision as the kiosk measures it, with the UI running (goal p95
//! ≤ 150 ms).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use e2e::{demo_photo, Backend, KioskCmd};
use kiosk::event::KioskEvent;
use kiosk_ui::render::Headless;
use slint::ComponentHandle;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[(((v.len() - 1) as f64) * p).round() as usize]
}

fn main() {
    let diners = arg("--diners", 20.0) as usize;
    let fps = arg("--fps", 15.0) as f32;
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
    kiosk.enrol(
        "E0001",
        &[&demo_photo("obama.jpg"), &demo_photo("obama2.jpg")],
    );
    kiosk.enrol("E0002", &[&demo_photo("biden.jpg")]);
    let (a, b) = (demo_photo("obama3.jpg"), demo_photo("biden.jpg"));
    let stream: Vec<(&std::path::Path, bool)> = (0..diners)
        .map(|i| (if i % 2 == 0 { a.as_path() } else { b.as_path() }, false))
        .collect();
    let replay = kiosk.make_replay("replay", &stream, 8, 8, 640);
    let frames = std::fs::read_dir(&replay).expect("replay").count();

    let dir = tmp.path().join("kiosk");
    let mut cfg = kiosk::config::KioskConfig::load(Some(&dir.join("kiosk.toml"))).expect("config");
    cfg.backend_url = backend.url();
    cfg.data_dir = dir.join("data");
    cfg.source.replay = Some(replay);
    cfg.source.fps = fps;
    let token = std::fs::read_to_string(cfg.token_path()).expect("device token");
    let api = std::sync::Arc::new(kiosk::api::HttpBackend::new(
        &cfg.backend_url,
        Some(token.trim().to_string()),
        Duration::from_secs(1),
        Duration::from_secs(5),
    ));

    let headless = Headless::install().expect("headless platform");
    headless.set_size(1280, 800);
    let ui = kiosk_ui::app::start(cfg, api, "zh_CN", false, Default::default()).expect("UI");
    ui.app.show().expect("show");

    // Decision events applied on the UI thread, waiting for the next drawn frame.
    let waiting: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let decision_ms: Rc<RefCell<Vec<f64>>> = Rc::default();
    {
        let waiting = waiting.clone();
        let decision_ms = decision_ms.clone();
        *ui.on_applied.borrow_mut() =
            Some(Box::new(move |ev: &KioskEvent, sent: Instant| match ev {
                KioskEvent::Paid { latency_ms, .. } | KioskEvent::Declined { latency_ms, .. } => {
                    waiting.borrow_mut().push(sent);
                    decision_ms.borrow_mut().push(*latency_ms);
                }
                _ => {}
            }));
    }
    let mut to_screen_ms: Vec<f64> = Vec::new();
    let mut drawn = 0u64;
    let mut draw_ms: Vec<f64> = Vec::new();
    let run_for = Duration::from_secs_f32(frames as f32 / fps + 3.0);
    let start = Instant::now();
    // Warm-up frames (model loading) are not counted: count from the first preview.
    let mut first_preview: Option<(Instant, u64)> = None;
    while start.elapsed() < run_for + Duration::from_secs(20) {
        headless.pump();
        let t = Instant::now();
        if headless.draw().is_some() {
            let now = Instant::now();
            drawn += 1;
            draw_ms.push((now - t).as_secs_f64() * 1000.0);
            for sent in waiting.borrow_mut().drain(..) {
                to_screen_ms.push((now - sent).as_secs_f64() * 1000.0);
            }
        }
        let shown = kiosk_ui::app::PREVIEWS_SHOWN.load(Ordering::Relaxed);
        if first_preview.is_none() && shown > 0 {
            first_preview = Some((Instant::now(), shown));
        }
        if let Some((t0, _)) = first_preview {
            if t0.elapsed() >= run_for {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (t0, n0) = first_preview.expect("no preview frame was shown");
    let secs = t0.elapsed().as_secs_f64();
    let shown = kiosk_ui::app::PREVIEWS_SHOWN.load(Ordering::Relaxed) - n0;
    ui.stop.store(true, Ordering::Relaxed);
    let mut decisions = decision_ms.borrow().clone();
    println!(
        "ui-bench: {diners} diners, {frames} replay frames at {fps} fps, 1280x800, software renderer"
    );
    println!(
        "preview: {shown} frames shown in {secs:.1} s = {:.1} frames/s; {drawn} redraws, draw p50 {:.1} ms, p95 {:.1} ms",
        shown as f64 / secs,
        pct(&mut draw_ms, 0.5),
        pct(&mut draw_ms, 0.95)
    );
    println!(
        "decision event -> its screen drawn: {} events, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        to_screen_ms.len(),
        pct(&mut to_screen_ms, 0.5),
        pct(&mut to_screen_ms, 0.95),
        pct(&mut to_screen_ms, 1.0)
    );
    println!(
        "frame -> decision (kiosk, UI running): {} decisions, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        decisions.len(),
        pct(&mut decisions, 0.5),
        pct(&mut decisions, 0.95),
        pct(&mut decisions, 1.0)
    );
}
