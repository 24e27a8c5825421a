//! A replayed diner in front of the UI with the real backend: attract → paid → attract, the
//! paid screen showing the diner's name and amount as the ledger has them.

mod common;

use std::time::Duration;

use common::{api, config, pump_until, screen};
use e2e::{demo_photo, Backend, KioskCmd};
use i_slint_backend_testing::ElementHandle;
use kiosk_ui::model::Screen;
use kiosk_ui::render::Headless;
use slint::ComponentHandle;

#[test]
fn a_diner_goes_from_attract_to_paid_and_back() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let backend = Backend::start(tmp.path());
    backend.desk().all_day_meals(1).expect("meal windows");
    let kiosk = KioskCmd::new(&tmp.path().join("kiosk"), &backend.url(), "pay", "");
    kiosk.register(&backend.code);
    kiosk.enrol(
        "E0001",
        &[&demo_photo("obama.jpg"), &demo_photo("obama2.jpg")],
    );
    let replay = kiosk.make_replay("replay", &[(&demo_photo("obama3.jpg"), false)], 10, 12, 640);
    let mut cfg = config(&tmp.path().join("kiosk"), &backend.url());
    cfg.source.replay = Some(replay);
    cfg.source.fps = 8.0;

    let headless = Headless::install().expect("headless platform");
    headless.set_size(1280, 800);
    let api = api(&cfg);
    let ui = kiosk_ui::app::start(cfg, api, "en", false, Default::default()).expect("UI");
    ui.app.show().expect("show");
    assert_eq!(screen(&ui), Screen::Attract);

    assert!(
        pump_until(&headless, &ui, Duration::from_secs(90), |u| screen(u)
            == Screen::Paid),
        "never paid; screen {:?}",
        screen(&ui)
    );
    let diner = ui.model.borrow().diner.clone();
    let charges = backend.charges();
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["staff_id"], backend.staff_id("E0001"));
    assert_eq!(
        charges[0]["amount"].as_str(),
        Some(diner.amount.as_str()),
        "the screen shows the ledger's amount"
    );
    assert!(
        !diner.name.is_empty() && !diner.name.starts_with('#'),
        "{diner:?}"
    );
    assert!(
        ElementHandle::find_by_accessible_label(&ui.app, &diner.name)
            .next()
            .is_some()
    );
    assert!(ElementHandle::find_by_accessible_label(&ui.app, "Not me")
        .next()
        .is_some());
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(20), |u| screen(u)
            == Screen::Attract),
        "the paid screen did not go back to attract"
    );
    ui.stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
