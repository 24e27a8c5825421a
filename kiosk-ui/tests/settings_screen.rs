//! The settings screen over a running tray-return kiosk with a (simulated) scale on TCP: the PIN
//! keeps it shut and a wrong one is refused, bad input is refused with its reason, "tare now"
//! takes the empty tray's settled weight and the kiosk subtracts it from then on, and what was
//! saved is what the kiosk starts with next time.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{api, config, pump_until};
use i_slint_backend_testing::ElementHandle;
use kiosk::config::{KioskConfig, Mode};
use kiosk::scale_io::simulator::{serve, SimConfig};
use kiosk::settings::{LocalSettings, SettingsPin};
use kiosk_ui::render::Headless;
use kiosk_ui::Ui;
use slint::ComponentHandle;

fn shows(app: &kiosk_ui::AppWindow, text: &str) -> bool {
    ElementHandle::find_by_accessible_label(app, text)
        .next()
        .is_some()
}

#[test]
fn the_pin_guards_the_screen_and_what_is_saved_is_what_the_kiosk_uses() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // The empty tray a manager puts on the scale to tare it: 412 g.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sim = SimConfig {
                trays: vec![412],
                off_s: 0.2,
                on_s: 60.0,
                hz: 20.0,
                noise: false,
                once: true,
            };
            let _ = serve("127.0.0.1:0", sim, stop, |a| {
                let _ = tx.send(a);
            });
        });
    }
    let scale = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("scale simulator");
    let dir = tmp.path().join("kiosk");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("kiosk.toml"),
        format!("mode = \"return\"\n[scale]\nport = \"tcp://{scale}\"\ntare_g = 350\n"),
    )
    .expect("config");
    let blank = common::blank_replay(&tmp.path().join("blank"), 50);
    // Nobody listens on the backend's port: settings work offline.
    let nobody = "http://127.0.0.1:9";
    let mut cfg = config(&dir, nobody);
    cfg.source.replay = Some(blank);
    cfg.source.fps = 10.0;
    cfg.source.looped = true;
    SettingsPin::new(&cfg.data_dir)
        .set("2468")
        .expect("setting the PIN");

    let headless = Headless::install().expect("headless platform");
    headless.set_size(1280, 800);
    let ui =
        kiosk_ui::app::start(cfg.clone(), api(&cfg), "en", false, Default::default()).expect("UI");
    ui.app.show().expect("show");
    let g = || ui.app.global::<Ui>();

    // Locked: a wrong PIN is refused and the screen stays shut.
    g().invoke_open_settings();
    assert!(
        g().get_settings_locked(),
        "a PIN is set: the screen asks for it"
    );
    let _ = headless.snapshot();
    assert!(shows(&ui.app, "Enter the settings PIN"));
    g().invoke_unlock_settings("1111".into());
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |_| g()
            .get_settings_message()
            == "pin-wrong"),
        "the wrong PIN was not refused"
    );
    assert!(g().get_settings_locked());
    let _ = headless.snapshot();
    assert!(shows(&ui.app, "Wrong PIN."));
    g().invoke_unlock_settings("2468".into());
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |_| !g()
            .get_settings_locked()),
        "the right PIN did not open the screen"
    );

    // Bad input: refused with its reason, nothing saved.
    g().invoke_save_settings("ftp://canteen".into(), "".into(), "350".into());
    assert_eq!(g().get_settings_message(), "bad-url");
    g().invoke_save_settings(nobody.into(), "COM3".into(), "350".into());
    assert_eq!(g().get_settings_message(), "bad-port");
    g().invoke_save_settings(nobody.into(), "".into(), "-20".into());
    assert_eq!(g().get_settings_message(), "bad-tare");
    let _ = headless.snapshot();
    assert!(shows(
        &ui.app,
        "Not saved: the tare is whole grams from 0 to 20000."
    ));
    assert_eq!(
        LocalSettings::load(&cfg.data_dir),
        Ok(LocalSettings::default())
    );

    // Tare now: the settled weight of the empty tray becomes the tare, in the kiosk too.
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |u| u
            .model
            .borrow()
            .ret
            .weight_g
            == 412),
        "the scale's weight never reached the UI"
    );
    g().invoke_tare_now();
    assert_eq!(g().get_settings_message(), "tare-set");
    assert_eq!(g().get_settings_tare_text(), "412");
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |u| u
            .model
            .borrow()
            .ret
            .tare_g
            == 412),
        "the kiosk did not take the tare"
    );
    let _ = headless.snapshot();
    assert!(shows(
        &ui.app,
        "Tare set to 412 g: the next plates subtract it."
    ));

    // Save: a new backend address (applies at the next start, and the screen says so), and
    // the mode chosen on the screen; then the kiosk starts with them.
    g().invoke_save_settings(
        "http://10.0.0.5:8080/".into(),
        format!("tcp://{scale}").into(),
        "400".into(),
    );
    assert_eq!(g().get_settings_message(), "saved-restart");
    g().invoke_set_mode("pay".into());
    ui.stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);

    let saved = LocalSettings::load(&cfg.data_dir).expect("saved settings");
    assert_eq!(saved.backend_url.as_deref(), Some("http://10.0.0.5:8080"));
    assert_eq!(saved.mode, Some(Mode::Pay));
    assert_eq!(saved.scale.tare_g, Some(400));
    let mut next = KioskConfig::load(Some(&dir.join("kiosk.toml"))).expect("config");
    next.data_dir = cfg.data_dir.clone();
    next.apply_local_settings().expect("saved settings apply");
    assert_eq!(next.backend_url, "http://10.0.0.5:8080");
    assert_eq!(next.mode, Mode::Pay);
    assert_eq!(next.scale.tare_g, 400);
    assert_eq!(next.scale.port, Some(format!("tcp://{scale}")));
}
