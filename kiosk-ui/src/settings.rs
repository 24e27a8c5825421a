//! The settings screen's flow: the PIN that opens it (`kiosk::settings::SettingsPin`, checked
//! off the UI thread since argon2 is slow on purpose), saving what the manager typed to the
//! kiosk's `settings.toml` (checked by `kiosk::settings`, so the screen refuses exactly what the
//! kiosk would), the tare (typed, or "tare now" from the scale's last settled weight, applied at
//! once through a kiosk command), and registering the kiosk with a one-time code. Results are
//! set as message kinds the `.slint` side words in the UI's language.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiosk::api::BackendApi;
use kiosk::config::KioskConfig;
use kiosk::frontend::Command;
use kiosk::settings::{self as rules, LocalSettings, PinCheck, SettingsError, SettingsPin};
use slint::ComponentHandle;

use crate::model::UiModel;
use crate::{AppWindow, Ui};

fn say(app: &AppWindow, kind: &str, detail: &str, detail2: &str) {
    let ui = app.global::<Ui>();
    ui.set_settings_message(kind.into());
    ui.set_settings_detail(detail.into());
    ui.set_settings_detail2(detail2.into());
}

/// Changes one thing in the saved settings (the mode, the language) and says so if that fails.
pub fn remember(
    app: &AppWindow,
    data_dir: &std::path::Path,
    change: impl FnOnce(&mut LocalSettings),
) {
    let saved = LocalSettings::load(data_dir).and_then(|mut s| {
        change(&mut s);
        s.save(data_dir)
    });
    if let Err(e) = saved {
        tracing::warn!("the settings could not be saved: {e}");
        say(app, "failed", &e.to_string(), "");
    }
}

/// The screen opens locked when a PIN is set.
pub fn on_open(app: &AppWindow, data_dir: &std::path::Path) {
    let set = SettingsPin::new(data_dir).is_set();
    let ui = app.global::<Ui>();
    ui.set_settings_pin_set(set);
    ui.set_settings_locked(set);
    ui.set_settings_pin_entry("".into());
    say(app, "", "", "");
}

pub fn wire(
    app: &AppWindow,
    cfg: &KioskConfig,
    model: &Rc<RefCell<UiModel>>,
    commands: &Sender<Command>,
) {
    let ui = app.global::<Ui>();
    let data_dir = cfg.data_dir.clone();
    ui.set_settings_tare_text(cfg.scale.tare_g.to_string().into());
    ui.set_settings_pin_set(SettingsPin::new(&data_dir).is_set());
    let pin = Arc::new(Mutex::new(SettingsPin::new(&data_dir)));
    {
        let pin = pin.clone();
        let weak = app.as_weak();
        ui.on_unlock_settings(move |entered| {
            let Some(app) = weak.upgrade() else { return };
            let pin = pin.clone();
            let entered = entered.to_string();
            app.global::<Ui>().set_settings_pin_entry("".into());
            crate::app::off_ui_thread(
                &app,
                move || match pin.lock() {
                    Ok(mut p) => p.check(&entered, Instant::now()),
                    Err(_) => Err(SettingsError::Io("the PIN check failed".into())),
                },
                |app, result| match result {
                    Ok(PinCheck::Right | PinCheck::NoPin) => {
                        app.global::<Ui>().set_settings_locked(false);
                        say(app, "", "", "");
                    }
                    Ok(PinCheck::Wrong) => say(app, "pin-wrong", "", ""),
                    Ok(PinCheck::Wait(d)) => {
                        say(app, "pin-wait", &d.as_secs().max(1).to_string(), "")
                    }
                    Err(e) => say(app, "failed", &e.to_string(), ""),
                },
            );
        });
    }
    {
        let weak = app.as_weak();
        let data_dir = data_dir.clone();
        ui.on_set_settings_pin(move |new_pin| {
            let Some(app) = weak.upgrade() else { return };
            let (data_dir, new_pin) = (data_dir.clone(), new_pin.to_string());
            crate::app::off_ui_thread(
                &app,
                move || SettingsPin::new(&data_dir).set(&new_pin),
                |app, result| match result {
                    Ok(()) => {
                        app.global::<Ui>().set_settings_pin_set(true);
                        say(app, "pin-set", "", "");
                    }
                    Err(SettingsError::BadPin) => say(app, "pin-bad", "", ""),
                    Err(e) => say(app, "failed", &e.to_string(), ""),
                },
            );
        });
    }
    {
        let weak = app.as_weak();
        let data_dir = data_dir.clone();
        let commands = commands.clone();
        let started = (cfg.backend_url.clone(), cfg.scale.port.clone());
        ui.on_save_settings(move |url, port, tare| {
            let Some(app) = weak.upgrade() else { return };
            let url = match rules::parse_backend_url(&url) {
                Ok(u) => u,
                Err(_) => return say(&app, "bad-url", "", ""),
            };
            let port = match rules::parse_scale_port(&port) {
                Ok(p) => p,
                Err(_) => return say(&app, "bad-port", "", ""),
            };
            let tare = match rules::parse_tare(&tare) {
                Ok(t) => t,
                Err(_) => return say(&app, "bad-tare", "", ""),
            };
            let saved = LocalSettings::load(&data_dir).and_then(|mut s| {
                s.backend_url = Some(url.clone());
                s.scale.port = port.clone();
                s.scale.tare_g = Some(tare);
                s.save(&data_dir)
            });
            if let Err(e) = saved {
                return say(&app, "failed", &e.to_string(), "");
            }
            let _ = commands.send(Command::SetTare(tare));
            // The backend address and the scale's port are opened once, at start.
            let restart = started.0 != url || started.1 != port;
            say(
                &app,
                if restart { "saved-restart" } else { "saved" },
                "",
                "",
            );
        });
    }
    {
        let weak = app.as_weak();
        let data_dir = data_dir.clone();
        let model = model.clone();
        let commands = commands.clone();
        ui.on_tare_now(move || {
            let Some(app) = weak.upgrade() else { return };
            // The last settled weight the scale sent: the empty tray a manager put on it.
            let gross = model.borrow().ret.weight_g;
            let (true, Ok(g)) = (gross > 0, rules::check_tare(gross)) else {
                return say(&app, "tare-no-reading", "", "");
            };
            app.global::<Ui>()
                .set_settings_tare_text(g.to_string().into());
            let _ = commands.send(Command::SetTare(g));
            remember(&app, &data_dir, |s| s.scale.tare_g = Some(g));
            say(&app, "tare-set", &g.to_string(), "");
        });
    }
    wire_registration(app, cfg);
}

/// Registers the kiosk with a one-time code from the manager's page, off the UI thread, and
/// keeps the device token (0600) where the configuration says.
fn wire_registration(app: &AppWindow, cfg: &KioskConfig) {
    let (url, name, token_path): (String, String, PathBuf) =
        (cfg.backend_url.clone(), cfg.name.clone(), cfg.token_path());
    let weak = app.as_weak();
    app.global::<Ui>().on_register_kiosk(move |code| {
        let Some(app) = weak.upgrade() else { return };
        let (url, name, token_path) = (url.clone(), name.clone(), token_path.clone());
        let code = code.trim().to_string();
        crate::app::off_ui_thread(
            &app,
            move || {
                let api = kiosk::api::HttpBackend::new(
                    &url,
                    None,
                    Duration::from_secs(2),
                    Duration::from_secs(10),
                );
                let r = api
                    .enrol(&wire::EnrolRequest { code, name })
                    .map_err(|e| e.to_string())?;
                kiosk::gallery_cache::write_private(&token_path, r.device_token.as_bytes())
                    .map_err(|e| format!("the token could not be saved: {e}"))?;
                Ok::<_, String>((r.kiosk_id, r.canteen_id))
            },
            |app, result| match result {
                Ok((kiosk, canteen)) => {
                    say(app, "registered", &kiosk.to_string(), &canteen.to_string())
                }
                Err(e) => say(app, "register-failed", &e, ""),
            },
        );
    });
}
