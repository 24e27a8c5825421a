//! Faults shown, never a crash or a frozen screen: a camera that is missing, a scale that is
//! unplugged, a backend that is stopped. One process per test binary (the Slint platform is
//! process-wide), so the three run in sequence here.

mod common;

use std::time::Duration;

use common::{api, config, pump_until, screen};
use i_slint_backend_testing::ElementHandle;
use kiosk::config::SourceKind;
use kiosk_ui::model::{Fault, Screen};
use kiosk_ui::render::Headless;
use slint::ComponentHandle;

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("its address")
        .port()
}

fn kiosk_dir(tmp: &std::path::Path, mode: &str, extra: &str) -> std::path::PathBuf {
    let dir = tmp.join(mode);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("kiosk.toml"),
        format!(
            "mode = \"{}\"\n{extra}\n",
            if mode == "pay2" { "pay" } else { mode }
        ),
    )
    .expect("config");
    dir
}

#[test]
fn missing_camera_unplugged_scale_and_stopped_backend_each_show_their_fault() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let nobody = format!("http://127.0.0.1:{}", closed_port());
    let headless = Headless::install().expect("headless platform");
    headless.set_size(1280, 800);
    let blank = common::blank_replay(&tmp.path().join("blank"), 200);

    // 1. The camera: a kiosk configured for a camera it cannot open.
    let dir = kiosk_dir(tmp.path(), "pay", "");
    let mut cfg = config(&dir, &nobody);
    cfg.source.kind = SourceKind::Camera;
    let ui =
        kiosk_ui::app::start(cfg.clone(), api(&cfg), "en", false, Default::default()).expect("UI");
    ui.app.show().expect("show");
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |u| u
            .model
            .borrow()
            .fault
            == Some(Fault::Camera)),
        "no camera fault"
    );
    assert_eq!(screen(&ui), Screen::Fault);
    let _ = headless.snapshot();
    assert!(
        ElementHandle::find_by_accessible_label(&ui.app, "No camera found")
            .next()
            .is_some()
    );
    ui.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(ui);

    // 2. The scale: a return station whose scale port has nobody behind it.
    let dir = kiosk_dir(
        tmp.path(),
        "return",
        &format!("[scale]\nport = \"tcp://127.0.0.1:{}\"", closed_port()),
    );
    let mut cfg = config(&dir, &nobody);
    cfg.source.replay = Some(blank.clone());
    cfg.source.fps = 10.0;
    let ui =
        kiosk_ui::app::start(cfg.clone(), api(&cfg), "en", false, Default::default()).expect("UI");
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |u| u
            .model
            .borrow()
            .fault
            == Some(Fault::Scale)),
        "no scale fault"
    );
    let _ = headless.snapshot();
    assert!(
        ElementHandle::find_by_accessible_label(&ui.app, "The scale is disconnected")
            .next()
            .is_some()
    );
    ui.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(ui);

    // 3. The backend: stopped (nobody on its port). The kiosk goes on offline, and says so.
    let dir = kiosk_dir(tmp.path(), "pay2", "");
    let mut cfg = config(&dir, &nobody);
    cfg.source.replay = Some(blank);
    cfg.source.fps = 10.0;
    let ui =
        kiosk_ui::app::start(cfg.clone(), api(&cfg), "en", false, Default::default()).expect("UI");
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |u| !u
            .model
            .borrow()
            .online),
        "never offline"
    );
    assert_eq!(screen(&ui), Screen::Attract, "the kiosk keeps working");
    let _ = headless.snapshot();
    assert!(ElementHandle::find_by_accessible_label(
        &ui.app,
        "Offline: the kiosk keeps charging within its offline limits; balances update when the network is back."
    )
    .next()
    .is_some());
    ui.stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
