//! The enrolment desk against the real backend: a manager signs in on the kiosk, finds a staff
//! member, records consent, captures three templates from the camera (a replayed face), and
//! saves them; the backend then holds the consent and the three templates. A capture of a face
//! that already belongs to someone else is flagged, not saved under the wrong person.

mod common;

use std::time::Duration;

use common::{api, config, pump_until};
use e2e::{demo_photo, Backend, KioskCmd, MANAGER, PASSWORD};
use kiosk_ui::render::Headless;
use kiosk_ui::Ui;
use slint::ComponentHandle;

#[test]
fn a_manager_enrols_a_face_at_the_desk_and_a_look_alike_is_flagged() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let backend = Backend::start(tmp.path());
    let kiosk = KioskCmd::new(&tmp.path().join("kiosk"), &backend.url(), "desk", "");
    kiosk.register(&backend.code);
    // E0001 is already enrolled with Obama's photos; Biden is enrolled at the desk as E0002.
    kiosk.enrol(
        "E0001",
        &[&demo_photo("obama.jpg"), &demo_photo("obama2.jpg")],
    );
    let replay = kiosk.make_replay("replay", &[(&demo_photo("biden.jpg"), false)], 30, 0, 640);
    let mut cfg = config(&tmp.path().join("kiosk"), &backend.url());
    cfg.source.replay = Some(replay);
    cfg.source.fps = 10.0;
    cfg.source.looped = true;

    let headless = Headless::install().expect("headless platform");
    headless.set_size(1280, 800);
    let ui =
        kiosk_ui::app::start(cfg.clone(), api(&cfg), "en", false, Default::default()).expect("UI");
    ui.app.show().expect("show");
    let g = || ui.app.global::<Ui>();
    let step_is = |s: &str| g().get_desk_step() == s;

    g().invoke_desk_sign_in(MANAGER.into(), "not-the-password".into());
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |_| !g()
            .get_desk_error()
            .is_empty()),
        "a wrong password was not refused"
    );
    assert!(step_is("signin"));
    assert_eq!(g().get_desk_error(), "signin");
    let _ = headless.snapshot();
    assert!(
        i_slint_backend_testing::ElementHandle::find_by_accessible_label(
            &ui.app,
            "Sign-in failed: check the user name and password."
        )
        .next()
        .is_some(),
        "the refusal is worded for the manager"
    );
    g().invoke_desk_sign_in(MANAGER.into(), PASSWORD.into());
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |_| step_is(
            "search"
        )),
        "the manager was not signed in: {}",
        g().get_desk_error()
    );
    let biden = backend.staff_id("E0002");
    g().invoke_desk_search("E0002".into());
    g().invoke_desk_select(biden as i32);
    assert!(step_is("consent"), "step {}", g().get_desk_step());
    g().invoke_desk_agree();
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |_| step_is(
            "capture"
        )),
        "consent was not recorded: {}",
        g().get_desk_error()
    );
    for n in 1..=3 {
        g().invoke_desk_capture();
        assert!(
            pump_until(&headless, &ui, Duration::from_secs(60), |_| g()
                .get_desk_captured()
                >= n),
            "capture {n} never came back"
        );
    }
    assert_eq!(g().get_desk_duplicate(), "", "Biden is nobody else");
    g().invoke_desk_finish();
    assert!(
        pump_until(&headless, &ui, Duration::from_secs(30), |_| step_is(
            "result"
        )),
        "the templates were not saved"
    );
    assert_eq!(g().get_desk_error(), "", "saving failed");
    let desk = backend.desk();
    assert!(desk.consent(biden).expect("consent").granted);
    assert_eq!(desk.templates(biden).expect("templates").len(), 3);

    // The same face offered for E0001 (Obama): once the kiosk's gallery has Biden's new
    // templates, a capture matches him, the desk warns and drops every capture of this person
    // (one taken before the gallery caught up was the same wrong face).
    let obama = backend.staff_id("E0001");
    g().invoke_desk_search("E0001".into());
    g().invoke_desk_select(obama as i32);
    g().invoke_desk_agree();
    assert!(pump_until(&headless, &ui, Duration::from_secs(30), |_| {
        step_is("capture")
    }));
    // The kiosk must know Biden's new templates before it can flag him: its gallery syncs.
    let mut flagged = false;
    for _ in 0..10 {
        g().invoke_desk_capture();
        if pump_until(&headless, &ui, Duration::from_secs(10), |_| {
            !g().get_desk_duplicate().is_empty()
        }) {
            flagged = true;
            break;
        }
    }
    assert!(flagged, "a look-alike capture was not flagged");
    assert!(
        g().get_desk_duplicate().contains("E0002"),
        "{}",
        g().get_desk_duplicate()
    );
    assert_eq!(
        g().get_desk_captured(),
        0,
        "no template of the wrong face kept"
    );
    assert_eq!(desk.templates(obama).expect("templates").len(), 2);
    ui.stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
