//! A running kiosk behind the window. The kiosk runs on its own thread (frames, face
//! pipeline, decisions, charges); its events reach the UI thread through Slint's event loop
//! one closure each, and its preview frames through a one-frame mailbox that wakes the UI only
//! when empty, so frames are dropped, never queued, when drawing is slow. The screens'
//! callbacks become kiosk commands (not me, a scanned pay code, mode, language) or run on a
//! worker thread (the enrolment desk's HTTP calls), never blocking the UI thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiosk::api::BackendApi;
use kiosk::config::KioskConfig;
use kiosk::event::KioskEvent;
use kiosk::frontend::{latest_preview, Command, FrontEnd, Latest, PreviewFrame};
use kiosk::run::RunOptions;
use slint::ComponentHandle;

use crate::desk::DeskController;
use crate::model::{Mode, Screen, UiModel};
use crate::{preview, view, AppWindow, Ui};

/// See [`UiHandle::on_applied`].
pub type AppliedHook = Box<dyn FnMut(&KioskEvent, Instant)>;

/// Preview frames handed to the screen (the rest were dropped while it was busy).
pub static PREVIEWS_SHOWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Where the UI is: the window, its model and the way to the kiosk.
pub struct UiHandle {
    pub app: AppWindow,
    pub model: Rc<RefCell<UiModel>>,
    pub commands: Sender<Command>,
    pub stop: Arc<AtomicBool>,
    pub kiosk: Option<std::thread::JoinHandle<Result<(), kiosk::run::RunError>>>,
    /// Called on the UI thread after each event has been applied, with the time the kiosk
    /// emitted it (benchmarks, tests).
    pub on_applied: Rc<RefCell<Option<AppliedHook>>>,
    _timer: slint::Timer,
}

pub fn ui_mode(m: kiosk::config::Mode) -> Mode {
    match m {
        kiosk::config::Mode::Return => Mode::Return,
        kiosk::config::Mode::Desk => Mode::Desk,
        kiosk::config::Mode::Pay | kiosk::config::Mode::Both => Mode::Pay,
    }
}

/// Canteen-local "HH:MM" for the header.
fn clock(offset_minutes: i32) -> String {
    let offset =
        time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap_or(time::UtcOffset::UTC);
    let now = time::OffsetDateTime::now_utc().to_offset(offset);
    format!("{:02}:{:02}", now.hour(), now.minute())
}

/// Builds the window, starts the kiosk on its thread and wires the two together. The
/// caller runs the event loop (`app.run()`, or renders headless).
pub fn start(
    cfg: KioskConfig,
    api: Arc<dyn BackendApi>,
    language: &str,
    portrait: bool,
    opts: RunOptions,
) -> Result<UiHandle, slint::PlatformError> {
    let app = AppWindow::new()?;
    let reg_cfg = cfg.clone();
    let mut m = UiModel::new(ui_mode(cfg.mode));
    m.language = language.to_string();
    m.portrait = portrait;
    m.clock = clock(cfg.utc_offset_minutes);
    let _ = slint::select_bundled_translation(language);
    let model = Rc::new(RefCell::new(m));
    let on_applied: Rc<RefCell<Option<AppliedHook>>> = Rc::default();
    {
        let ui = app.global::<Ui>();
        ui.set_backend_url(cfg.backend_url.as_str().into());
        ui.set_scale_port(cfg.scale.port.clone().unwrap_or_default().into());
        ui.set_camera_name(
            format!(
                "{:?} {}x{}",
                cfg.source.kind, cfg.source.width, cfg.source.height
            )
            .into(),
        );
    }
    view::apply(&app, &model.borrow(), Instant::now());

    let (cmd_tx, cmd_rx) = mpsc::channel();
    let weak = app.as_weak();
    // Events: one closure on the UI thread each.
    let sink: kiosk::event::EventSink = {
        let weak = weak.clone();
        Box::new(move |ev: KioskEvent| {
            let weak = weak.clone();
            let sent = Instant::now();
            let _ = slint::invoke_from_event_loop(move || {
                if let Some(app) = weak.upgrade() {
                    crate::app::on_event(&app, ev, sent);
                }
            });
        })
    };
    let slot: Arc<Latest<PreviewFrame>> = Arc::default();
    let preview_sink = {
        let slot_ui = slot.clone();
        let weak = weak.clone();
        latest_preview(slot.clone(), move || {
            let slot = slot_ui.clone();
            let weak = weak.clone();
            let _ = slint::invoke_from_event_loop(move || {
                if let (Some(app), Some(frame)) = (weak.upgrade(), slot.take()) {
                    crate::app::on_preview(&app, &frame);
                }
            });
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let kiosk_stop = stop.clone();
    let kiosk = std::thread::Builder::new()
        .name("kiosk".into())
        .spawn(move || {
            let result = kiosk::run::run_with(
                cfg,
                api,
                sink,
                kiosk_stop,
                opts,
                FrontEnd {
                    preview: Some(preview_sink),
                    commands: Some(cmd_rx),
                },
            );
            if let Err(e) = &result {
                tracing::error!("the kiosk stopped: {e}");
            }
            // The window has nothing left to show.
            let _ = slint::quit_event_loop();
            result
        })
        .map_err(|e| slint::PlatformError::Other(e.to_string()))?;

    STATE.with(|s| {
        *s.borrow_mut() = Some(Shared {
            model: model.clone(),
            on_applied: on_applied.clone(),
            desk: None,
            offset_minutes: 480,
        })
    });
    wire_callbacks(&app, &model, &cmd_tx, &reg_cfg.data_dir);
    crate::settings::wire(&app, &reg_cfg, &model, &cmd_tx);

    // The clock and the result screens' countdown.
    let timer = slint::Timer::default();
    let weak = app.as_weak();
    timer.start(
        slint::TimerMode::Repeated,
        Duration::from_millis(500),
        move || {
            if let Some(app) = weak.upgrade() {
                STATE.with(|s| {
                    if let Some(sh) = s.borrow().as_ref() {
                        let mut m = sh.model.borrow_mut();
                        let now = Instant::now();
                        m.clock = clock(sh.offset_minutes);
                        m.tick(now);
                        view::apply(&app, &m, now);
                    }
                });
            }
        },
    );
    Ok(UiHandle {
        app,
        model,
        commands: cmd_tx,
        stop,
        kiosk: Some(kiosk),
        on_applied,
        _timer: timer,
    })
}

/// What the UI thread's callbacks share (Slint callbacks are 'static closures).
struct Shared {
    model: Rc<RefCell<UiModel>>,
    on_applied: Rc<RefCell<Option<AppliedHook>>>,
    desk: Option<DeskController>,
    offset_minutes: i32,
}

thread_local! {
    static STATE: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

fn on_event(app: &AppWindow, ev: KioskEvent, sent: Instant) {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let Some(sh) = s.as_mut() else { return };
        if let KioskEvent::CanteenSettings {
            utc_offset_minutes, ..
        } = &ev
        {
            sh.offset_minutes = *utc_offset_minutes;
        }
        if let KioskEvent::TemplateCaptured { .. } = &ev {
            if let Some(d) = sh.desk.as_mut() {
                d.on_event(app, &ev);
            }
        }
        let now = Instant::now();
        {
            let mut m = sh.model.borrow_mut();
            m.on_event(&ev, now);
            view::apply(app, &m, now);
        }
        app.window().request_redraw();
        let mut hook = sh.on_applied.borrow_mut();
        if let Some(f) = hook.as_mut() {
            f(&ev, sent);
        }
    });
}

fn on_preview(app: &AppWindow, frame: &PreviewFrame) {
    PREVIEWS_SHOWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ui = app.global::<Ui>();
    ui.set_preview(preview::image(frame));
    ui.set_has_preview(true);
    STATE.with(|s| {
        if let Some(sh) = s.borrow().as_ref() {
            let mut m = sh.model.borrow_mut();
            m.set_face(preview::face(frame));
            view::apply(app, &m, Instant::now());
        }
    });
    // A new picture must reach the screen now: ask for the frame rather than wait for the
    // property trackers (the headless window saw too few of their notifications to show 15
    // frames a second). The renderer still repaints only the regions that changed.
    app.window().request_redraw();
}

fn wire_callbacks(
    app: &AppWindow,
    model: &Rc<RefCell<UiModel>>,
    cmd: &Sender<Command>,
    data_dir: &std::path::Path,
) {
    let ui = app.global::<Ui>();
    let weak = app.as_weak();
    let with = move |f: &dyn Fn(&AppWindow, &mut UiModel)| {
        if let Some(app) = weak.upgrade() {
            STATE.with(|s| {
                if let Some(sh) = s.borrow().as_ref() {
                    let mut m = sh.model.borrow_mut();
                    f(&app, &mut m);
                    view::apply(&app, &m, Instant::now());
                }
            });
        }
    };
    let _ = model;
    {
        let cmd = cmd.clone();
        let with = with.clone();
        ui.on_not_me(move || {
            with(&|_, m| {
                if !m.diner.charge_key.is_empty() {
                    let _ = cmd.send(Command::NotMe {
                        charge_key: m.diner.charge_key.clone(),
                    });
                }
            })
        });
    }
    {
        let with = with.clone();
        ui.on_pay_with_code(move || with(&|_, m| m.screen = Screen::PayCode));
    }
    {
        let with = with.clone();
        ui.on_cancel(move || with(&|_, m| m.dismiss()));
    }
    {
        let with = with.clone();
        let data_dir = data_dir.to_path_buf();
        ui.on_open_settings(move || {
            with(&|app, m| {
                crate::settings::on_open(app, &data_dir);
                m.screen = Screen::Settings;
            })
        });
    }
    {
        let cmd = cmd.clone();
        let with = with.clone();
        let data_dir = data_dir.to_path_buf();
        ui.on_set_language(move |lang| {
            let lang = lang.to_string();
            let _ = slint::select_bundled_translation(&lang);
            let _ = cmd.send(Command::SetLanguage(lang.clone()));
            with(&|app, m| {
                m.language = lang.clone();
                crate::settings::remember(app, &data_dir, |s| s.language = Some(lang.clone()));
            });
        });
    }
    {
        let cmd = cmd.clone();
        ui.on_scanned_code(move |code| {
            let _ = cmd.send(Command::PayCode(code.to_string()));
        });
    }
    {
        let cmd = cmd.clone();
        let with = with.clone();
        let data_dir = data_dir.to_path_buf();
        ui.on_set_mode(move |mode| {
            let (kiosk_mode, ui_mode) = match mode.as_str() {
                "return" => (kiosk::config::Mode::Return, Mode::Return),
                "desk" => (kiosk::config::Mode::Desk, Mode::Desk),
                _ => (kiosk::config::Mode::Pay, Mode::Pay),
            };
            let _ = cmd.send(Command::SetMode(kiosk_mode));
            with(&|app, m| {
                m.mode = ui_mode;
                m.screen = Screen::Settings;
                crate::settings::remember(app, &data_dir, |s| s.mode = Some(kiosk_mode));
            });
        });
    }
    crate::desk::wire(app, cmd.clone());
}

/// Runs `work` on a thread of its own (HTTP calls, argon2), then `done` with its result on
/// the UI thread, if the window is still there.
pub(crate) fn off_ui_thread<T: Send + 'static>(
    app: &AppWindow,
    work: impl FnOnce() -> T + Send + 'static,
    done: impl FnOnce(&AppWindow, T) + Send + 'static,
) {
    let weak = app.as_weak();
    std::thread::spawn(move || {
        let result = work();
        let _ = slint::invoke_from_event_loop(move || {
            if let Some(app) = weak.upgrade() {
                done(&app, result);
            }
        });
    });
}

/// Gives the desk controller to the UI thread's shared state.
pub(crate) fn set_desk(d: DeskController) {
    STATE.with(|s| {
        if let Some(sh) = s.borrow_mut().as_mut() {
            sh.desk = Some(d);
        }
    });
}

pub(crate) fn with_desk<R>(f: impl FnOnce(&mut DeskController) -> R) -> Option<R> {
    STATE.with(|s| {
        s.borrow_mut()
            .as_mut()
            .and_then(|sh| sh.desk.as_mut().map(f))
    })
}
