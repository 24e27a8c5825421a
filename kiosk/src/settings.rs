//! What a manager changes on the kiosk itself (the settings screen of a front end): the
//! backend's address, the mode, the language, the scale's port and the tray's tare, kept in
//! `<data_dir>/settings.toml` and applied by
//! [`KioskConfig::apply_local_settings`](crate::config::KioskConfig::apply_local_settings) over
//! the configuration file and the environment (command-line flags still win). So a kiosk set to
//! "tray return" on its screen is still one after a power cut, and the installer's file stays as
//! written.
//!
//! The screen is a manager's: [`SettingsPin`] keeps an argon2 hash of its PIN beside the
//! settings (0600), checks attempts and slows guessing down. Validation is here, not in the
//! front end, so every front end refuses the same input with the same reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

use crate::config::Mode;

/// The file beside the kiosk's other state that the settings screen writes.
pub const SETTINGS_FILE: &str = "settings.toml";
/// The PIN's argon2 hash.
pub const PIN_FILE: &str = "settings-pin";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("the backend address must be http:// or https:// with a host (got {0:?})")]
    BadBackendUrl(String),
    #[error("the scale port must be a device path (/dev/ttyUSB0) or tcp://HOST:PORT (got {0:?})")]
    BadScalePort(String),
    #[error("the tare must be whole grams, {0}")]
    BadTare(String),
    #[error("the language must be zh_CN or en (got {0:?})")]
    BadLanguage(String),
    #[error("the PIN must be 4 to 12 digits")]
    BadPin,
    #[error("{0}")]
    Io(String),
}

/// The scale's part of [`LocalSettings`], shaped as `[scale]` in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tare_g: Option<i64>,
}

/// The fields the settings screen may change, each `None` when left as configured. Its
/// TOML has the configuration's own shape (`[scale]`), so an installer reads it as such.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub scale: ScaleSettings,
}

fn is_default(s: &ScaleSettings) -> bool {
    *s == ScaleSettings::default()
}

pub fn settings_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SETTINGS_FILE)
}

impl LocalSettings {
    /// What was saved, or nothing when nothing was.
    pub fn load(data_dir: &Path) -> Result<LocalSettings, SettingsError> {
        let path = settings_path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| SettingsError::Io(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LocalSettings::default()),
            Err(e) => Err(SettingsError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// Written whole to a temporary file and renamed, so a power cut leaves the old
    /// settings or the new ones, never half a file.
    pub fn save(&self, data_dir: &Path) -> Result<(), SettingsError> {
        let text = toml::to_string(self).map_err(|e| SettingsError::Io(e.to_string()))?;
        let header = "# Written by the kiosk's settings screen; read after kiosk.toml.\n";
        crate::gallery_cache::write_private(
            &settings_path(data_dir),
            format!("{header}{text}").as_bytes(),
        )
        .map_err(|e| SettingsError::Io(e.to_string()))
    }
}

/// An `http://` or `https://` address with a host, without a trailing slash.
pub fn parse_backend_url(text: &str) -> Result<String, SettingsError> {
    let t = text.trim().trim_end_matches('/');
    let bad = || SettingsError::BadBackendUrl(text.to_string());
    if t.len() > 300 || t.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let uri: ureq::http::Uri = t.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if !scheme_ok || !host_ok || uri.query().is_some() {
        return Err(bad());
    }
    Ok(t.to_string())
}

/// Empty: no scale. Otherwise a device path or `tcp://HOST:PORT`, as `scale.port` takes.
pub fn parse_scale_port(text: &str) -> Result<Option<String>, SettingsError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || SettingsError::BadScalePort(text.to_string());
    if t.len() > 200 || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    if let Some(addr) = t.strip_prefix("tcp://") {
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
    } else if !t.starts_with('/') {
        return Err(bad());
    }
    Ok(Some(t.to_string()))
}

/// Whole grams under the rule every scale reading follows (`wire::fields::Grams`).
pub fn parse_tare(text: &str) -> Result<i64, SettingsError> {
    let g: i64 = text
        .trim()
        .parse()
        .map_err(|_| SettingsError::BadTare(format!("not a number: {:?}", text.trim())))?;
    check_tare(g)
}

pub fn check_tare(g: i64) -> Result<i64, SettingsError> {
    wire::fields::Grams::new(g)
        .map(|_| g)
        .map_err(|e| SettingsError::BadTare(e.to_string()))
}

pub fn parse_language(text: &str) -> Result<String, SettingsError> {
    match text.trim() {
        l @ ("zh_CN" | "en") => Ok(l.to_string()),
        other => Err(SettingsError::BadLanguage(other.to_string())),
    }
}

/// After this many wrong PINs in a row the screen waits before it takes another.
const FREE_ATTEMPTS: u32 = 3;

/// The settings screen's PIN: an argon2 hash in `<data_dir>/settings-pin`, and the count of
/// wrong attempts, each one past the third doubling the wait (1 s, 2 s, … up to 5 min), so a
/// diner cannot walk the 10,000 four-digit PINs at the counter.
pub struct SettingsPin {
    path: PathBuf,
    wrong: u32,
    locked_until: Option<Instant>,
}

/// What [`SettingsPin::check`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    /// No PIN is set: the screen is open (a first installation), and says so.
    NoPin,
    Right,
    Wrong,
    /// Too many wrong attempts: try again after this long.
    Wait(Duration),
}

impl SettingsPin {
    pub fn new(data_dir: &Path) -> SettingsPin {
        SettingsPin {
            path: data_dir.join(PIN_FILE),
            wrong: 0,
            locked_until: None,
        }
    }

    pub fn is_set(&self) -> bool {
        self.path.is_file()
    }

    /// Sets (or replaces) the PIN.
    pub fn set(&self, pin: &str) -> Result<(), SettingsError> {
        let pin = pin.trim();
        if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SettingsError::BadPin);
        }
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = Argon2::default()
            .hash_password(pin.as_bytes(), &salt)
            .map_err(|e| SettingsError::Io(e.to_string()))?
            .to_string();
        crate::gallery_cache::write_private(&self.path, hash.as_bytes())
            .map_err(|e| SettingsError::Io(e.to_string()))
    }

    pub fn check(&mut self, pin: &str, now: Instant) -> Result<PinCheck, SettingsError> {
        if let Some(until) = self.locked_until.filter(|u| *u > now) {
            return Ok(PinCheck::Wait(until - now));
        }
        let stored = match std::fs::read_to_string(&self.path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PinCheck::NoPin),
            Err(e) => return Err(SettingsError::Io(format!("{}: {e}", self.path.display()))),
        };
        let hash = PasswordHash::new(stored.trim())
            .map_err(|e| SettingsError::Io(format!("{}: {e}", self.path.display())))?;
        if Argon2::default()
            .verify_password(pin.trim().as_bytes(), &hash)
            .is_ok()
        {
            self.wrong = 0;
            self.locked_until = None;
            return Ok(PinCheck::Right);
        }
        self.wrong += 1;
        if self.wrong >= FREE_ATTEMPTS {
            let secs = 1u64 << (self.wrong - FREE_ATTEMPTS).min(9);
            self.locked_until = Some(now + Duration::from_secs(secs.min(300)));
        }
        Ok(PinCheck::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_ports_tares_and_languages_are_checked() {
        assert_eq!(
            parse_backend_url(" http://10.0.0.5:8080/ ").as_deref(),
            Ok("http://10.0.0.5:8080")
        );
        assert!(parse_backend_url("https://canteen.example.gov.cn").is_ok());
        for bad in [
            "",
            "10.0.0.5:8080",
            "ftp://x",
            "http://",
            "http://a b",
            "http://x?y=1",
        ] {
            assert!(parse_backend_url(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_scale_port(""), Ok(None));
        assert_eq!(
            parse_scale_port("/dev/ttyUSB0"),
            Ok(Some("/dev/ttyUSB0".into()))
        );
        assert!(parse_scale_port("tcp://127.0.0.1:4001").is_ok());
        for bad in [
            "COM3",
            "tcp://host",
            "tcp://:1",
            "tcp://h:99999",
            "/dev/tty\u{0}",
        ] {
            assert!(parse_scale_port(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_tare(" 350 "), Ok(350));
        assert_eq!(parse_tare("0"), Ok(0));
        for bad in ["", "-1", "3.5", "abc", "20001"] {
            assert!(parse_tare(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_language("en").is_ok() && parse_language("zh_CN").is_ok());
        assert!(parse_language("fr").is_err());
    }

    #[test]
    fn settings_round_trip_and_a_missing_file_is_no_settings() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            LocalSettings::load(dir.path()),
            Ok(LocalSettings::default())
        );
        let s = LocalSettings {
            backend_url: Some("http://10.0.0.5:8080".into()),
            mode: Some(Mode::Return),
            language: Some("en".into()),
            scale: ScaleSettings {
                port: Some("/dev/ttyUSB0".into()),
                tare_g: Some(412),
            },
        };
        s.save(dir.path()).unwrap();
        assert_eq!(LocalSettings::load(dir.path()), Ok(s));
        std::fs::write(settings_path(dir.path()), "mode = 3").unwrap();
        assert!(matches!(
            LocalSettings::load(dir.path()),
            Err(SettingsError::Io(_))
        ));
    }

    #[test]
    fn the_pin_opens_the_screen_and_guessing_is_slowed_down() {
        let dir = tempfile::tempdir().unwrap();
        let mut pin = SettingsPin::new(dir.path());
        let t0 = Instant::now();
        assert_eq!(pin.check("1234", t0), Ok(PinCheck::NoPin));
        assert_eq!(pin.set("12a4"), Err(SettingsError::BadPin));
        assert_eq!(pin.set("123"), Err(SettingsError::BadPin));
        pin.set("2468").unwrap();
        assert!(pin.is_set());
        assert!(!std::fs::read_to_string(dir.path().join(PIN_FILE))
            .unwrap()
            .contains("2468"));
        assert_eq!(pin.check("2468", t0), Ok(PinCheck::Right));
        assert_eq!(pin.check("0000", t0), Ok(PinCheck::Wrong));
        assert_eq!(pin.check("1111", t0), Ok(PinCheck::Wrong));
        assert_eq!(pin.check("2222", t0), Ok(PinCheck::Wrong));
        // The third wrong one locks for a second: even the right PIN waits.
        assert!(matches!(pin.check("2468", t0), Ok(PinCheck::Wait(_))));
        let later = t0 + Duration::from_secs(2);
        assert_eq!(pin.check("3333", later), Ok(PinCheck::Wrong));
        match pin.check("2468", later) {
            Ok(PinCheck::Wait(d)) => assert!(d > Duration::from_secs(1), "{d:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pin.check("2468", later + Duration::from_secs(3)),
            Ok(PinCheck::Right)
        );
    }
}
