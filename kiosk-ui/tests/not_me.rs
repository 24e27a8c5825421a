//! "Not me" on the paid screen reverses the charge in the real ledger, through the kiosk's
//! void path (`<key>:void`).

mod common;

use std::time::Duration;

use common::{api, config, pump_until, screen};
use e2e::{demo_photo, Backend, KioskCmd};
use kiosk_ui::model::{NotMe, Screen};
use kiosk_ui::render::Headless;
use kiosk_ui::Ui;
use slint::ComponentHandle;

#[test]
fn not_me_reverses_the_charge_in_the_ledger() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let backend = Backend::start(tmp.path());
    backend.desk().all_day_meals(1).expect("meal windows");
    let kiosk = KioskCmd::new(&tmp.path().join("kiosk"), &backend.url(), "pay", "");
    kiosk.register(&backend.code);
    kiosk.enrol("E0002", &[&demo_photo("biden.jpg")]);
    let replay = kiosk.make_replay("replay", &[(&demo_photo("biden.jpg"), false)], 10, 12, 640);
    let mut cfg = config(&tmp.path().join("kiosk"), &backend.url());
    cfg.source.replay = Some(replay);
    cfg.source.fps = 8.0;

    let headless = Headless::install().expect("headless platform");
    headless.set_size(800, 1280);
    let api = api(&cfg);
    let ui = kiosk_ui::app::start(cfg, api, "zh_CN", true, Default::default()).expect("UI");
    ui.app.show().expect("show");
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(90), |u| screen(u)
            == Screen::Paid),
        "never paid"
    );
    let key = ui.model.borrow().diner.charge_key.clone();
    ui.app.global::<Ui>().invoke_not_me();
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |u| u
            .model
            .borrow()
            .not_me
            == NotMe::Done),
        "the reversal was not confirmed on screen ({:?})",
        ui.model.borrow().not_me
    );
    let charges = backend.charges();
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(
        charges[0]["status"], "refunded",
        "charge {key} reversed: {:?}",
        charges[0]
    );
    let (ok, report) = backend.check();
    assert!(ok, "{report}");
    ui.stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
