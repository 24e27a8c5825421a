//! Typed configuration: built-in defaults, then an optional TOML file, then environment
//! variables prefixed `CLEANPLATE_` (e.g. `CLEANPLATE_DATABASE_URL`), then command-line flags.
//! Secrets (face-template key, gateway secret) have no usable default in production: the server
//! refuses to start with the development placeholders unless `dev_mode` is set, so a forgotten
//! setting cannot silently encrypt everyone's faces with a key from the source code.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The development key/secret placeholders (64 hex digits of zeros is obviously not a secret).
pub const DEV_FACE_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub const DEV_GATEWAY_SECRET: &str = "sandbox-development-secret";
pub const DEV_AUDIT_KEY: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where SQLite's file (and nothing else yet) lives.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; empty means `sqlite://<data_dir>/cleanplate.db`.
    pub database_url: String,
    pub listen: String,
    /// Public base URL used in pay-page links (e.g. `https://canteen.example.com`).
    pub public_base_url: String,
    /// Database connections for requests. On PostgreSQL the charge batch writers have one
    /// connection each besides (`charge_writers`).
    pub max_connections: u32,
    /// SQLite `synchronous=FULL` (survives power loss) rather than `NORMAL`.
    pub sqlite_synchronous_full: bool,
    /// AES-256-GCM key for face templates at rest, 64 hex digits.
    pub face_key_hex: String,
    /// HMAC-SHA256 key of the audit chain, 64 hex digits. Keep it outside the database (and
    /// away from whoever administers the database): with it, the chain can be rebuilt.
    pub audit_key_hex: String,
    /// Append-only file where the server writes the audit chain's head every
    /// `audit_anchor_seconds` (`backend check` verifies the database still holds each one, so
    /// deleting the newest audit rows shows). Empty: `<data_dir>/audit-anchors.jsonl`.
    pub audit_anchor_path: String,
    pub audit_anchor_seconds: u64,
    /// HMAC-SHA256 secret shared with the sandbox payment gateway.
    pub gateway_secret: String,
    /// Runs the built-in sandbox payment gateway: a pay page anyone may press "Pay" on, which
    /// credits the balance without real money. Never in production; dev mode turns it on too.
    /// With neither, no payment provider is installed and top-ups answer 503 (a real
    /// provider implements `payments::PaymentProvider`).
    pub sandbox_payments: bool,
    pub session_ttl_hours: i64,
    /// How long a one-time sign-in code a manager hands to a member of staff keeps working.
    pub sign_in_code_valid_hours: i64,
    /// Mark cookies `Secure` (serve behind HTTPS).
    pub cookie_secure: bool,
    /// Allows the development placeholders for secrets.
    pub dev_mode: bool,
    /// How often the audit sealer chains new entries.
    pub sealer_interval_ms: u64,
    /// `backend check` fails on audit entries left unsealed longer than this.
    pub unsealed_grace_seconds: i64,
    /// How old (hours between the meal and its arrival) an offline charge may be and still be
    /// decided on its own; older ones become exceptions a manager resolves.
    pub offline_max_age_hours: i64,
    /// Login attempts allowed per username per minute.
    pub login_attempts_per_minute: i64,
    /// How long a kiosk token lookup may be served from memory; revocation takes effect on
    /// every instance within this time.
    pub kiosk_token_cache_seconds: u64,
    /// Group commit: most kiosk charges written in one transaction (1 = each charge alone).
    pub charge_batch_max: usize,
    /// Group commit: batches in flight at once; 0 = the database's default (PostgreSQL 2,
    /// SQLite 1).
    pub charge_writers: usize,
    /// Group commit: under load, how long (microseconds) a writer lets charges gather before
    /// taking a batch; 0 = never wait.
    pub charge_linger_us: u64,
    /// The face models for photo enrolment (what `scripts/setup-models.sh` writes). Unset: the
    /// `models` crate's own search, as the kiosk and `faces` do: `$CLEANPLATE_MODELS_DIR`, else
    /// the first `models/dist` with a manifest walking up from the working directory (then
    /// from the executable). Missing models only disable the photo route (503).
    pub models_dir: Option<PathBuf>,
    /// ONNX Runtime threads per model run for photo enrolment. 1 keeps a photo from taking
    /// every core away from charges; 0 lets ONNX Runtime use one per core.
    pub face_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".data/backend"),
            database_url: String::new(),
            listen: "127.0.0.1:8080".into(),
            public_base_url: String::new(),
            max_connections: 16,
            sqlite_synchronous_full: true,
            face_key_hex: DEV_FACE_KEY.into(),
            gateway_secret: DEV_GATEWAY_SECRET.into(),
            audit_key_hex: DEV_AUDIT_KEY.into(),
            audit_anchor_path: String::new(),
            audit_anchor_seconds: 60,
            sandbox_payments: false,
            session_ttl_hours: 12,
            sign_in_code_valid_hours: 7 * 24,
            cookie_secure: false,
            dev_mode: false,
            sealer_interval_ms: 500,
            unsealed_grace_seconds: 60,
            login_attempts_per_minute: 10,
            offline_max_age_hours: 72,
            kiosk_token_cache_seconds: 5,
            charge_batch_max: 64,
            charge_writers: 0,
            charge_linger_us: 0,
            models_dir: None,
            face_threads: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then `file` (if given it must exist), then `CLEANPLATE_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(Env::prefixed("CLEANPLATE_"));
        let c: Config = fig.extract().map_err(Box::new)?;
        Ok(c)
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("cleanplate.db").display())
        } else {
            self.database_url.clone()
        }
    }

    pub fn face_key(&self) -> Result<[u8; 32], ConfigError> {
        let bytes = hex::decode(self.face_key_hex.trim())
            .map_err(|_| ConfigError::Invalid("face_key_hex must be 64 hex digits".into()))?;
        bytes.try_into().map_err(|_| {
            ConfigError::Invalid("face_key_hex must be 64 hex digits (32 bytes)".into())
        })
    }

    pub fn audit_key(&self) -> Result<store::AuditKey, ConfigError> {
        let bytes = hex::decode(self.audit_key_hex.trim())
            .map_err(|_| ConfigError::Invalid("audit_key_hex must be 64 hex digits".into()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            ConfigError::Invalid("audit_key_hex must be 64 hex digits (32 bytes)".into())
        })?;
        Ok(store::AuditKey::new(bytes))
    }

    /// Where the audit anchors go.
    pub fn audit_anchor_path(&self) -> PathBuf {
        if self.audit_anchor_path.is_empty() {
            self.data_dir.join("audit-anchors.jsonl")
        } else {
            PathBuf::from(&self.audit_anchor_path)
        }
    }

    /// Whether the sandbox gateway (money without payment) is installed: only when chosen,
    /// by dev mode or by the setting that says so.
    pub fn sandbox_enabled(&self) -> bool {
        self.dev_mode || self.sandbox_payments
    }

    /// Refuses development placeholders outside dev mode: the face key always, the gateway
    /// secret when the sandbox (the only provider using it) is on, since anyone who read the
    /// source could sign notifications with the placeholder.
    pub fn validate_for_serving(&self) -> Result<(), ConfigError> {
        self.face_key()?;
        self.audit_key()?;
        if !self.dev_mode && self.audit_key_hex == DEV_AUDIT_KEY {
            return Err(ConfigError::Invalid(
                "audit_key_hex still has its development value; set CLEANPLATE_AUDIT_KEY_HEX \
                 (64 hex digits, kept outside the database), or CLEANPLATE_DEV_MODE=true"
                    .into(),
            ));
        }
        if !self.dev_mode && self.face_key_hex == DEV_FACE_KEY {
            return Err(ConfigError::Invalid(
                "face_key_hex still has its development value; set CLEANPLATE_FACE_KEY_HEX \
                 (64 hex digits), or CLEANPLATE_DEV_MODE=true"
                    .into(),
            ));
        }
        if !self.dev_mode && self.sandbox_payments && self.gateway_secret == DEV_GATEWAY_SECRET {
            return Err(ConfigError::Invalid(
                "sandbox_payments is on with the development gateway_secret; set \
                 CLEANPLATE_GATEWAY_SECRET, or CLEANPLATE_DEV_MODE=true"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_file_override() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "listen = \"0.0.0.0:9\"\nmax_connections = 3\n").unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9");
        assert_eq!(c.max_connections, 3);
        assert_eq!(c.session_ttl_hours, 12);
        assert!(c.database_url().starts_with("sqlite://"));
        assert_eq!(c.face_threads, 1);
        assert!(
            c.validate_for_serving().is_err(),
            "dev secrets must be refused outside dev mode"
        );
    }

    #[test]
    fn models_dir_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "models_dir = \"/opt/cp/models\"\nface_threads = 2\n").unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(c.models_dir.as_deref(), Some(Path::new("/opt/cp/models")));
        assert_eq!(c.face_threads, 2);
    }

    #[test]
    fn sandbox_only_when_chosen() {
        let prod = Config {
            face_key_hex: "11".repeat(32),
            audit_key_hex: "22".repeat(32),
            ..Config::default()
        };
        assert!(!prod.sandbox_enabled(), "no sandbox by default");
        assert!(prod.validate_for_serving().is_ok());
        let chosen = Config {
            sandbox_payments: true,
            ..prod.clone()
        };
        assert!(chosen.sandbox_enabled());
        assert!(
            chosen.validate_for_serving().is_err(),
            "a sandbox with the published secret is refused"
        );
        let dev = Config {
            dev_mode: true,
            ..Config::default()
        };
        assert!(dev.sandbox_enabled());
    }

    #[test]
    fn missing_file_is_an_error() {
        assert!(Config::load(Some(Path::new("/nonexistent/cleanplate.toml"))).is_err());
    }

    #[test]
    fn bad_key() {
        let c = Config {
            face_key_hex: "abcd".into(),
            ..Config::default()
        };
        assert!(c.face_key().is_err());
    }
}
