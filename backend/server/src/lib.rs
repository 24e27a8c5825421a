//! CleanPlate's backend as a library: configuration, storage selection, the axum application,
//! and the background audit sealer. The `backend` binary (src/main.rs) is a thin command line
//! around it; integration tests build the same application in-process.

pub mod anchors;
pub mod api;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod face_photos;
pub mod inspect;
pub mod pages;
pub mod payments;
pub mod state;

use config::Config;
use state::{AppState, KioskCache};
use std::sync::Arc;
use std::time::Duration;
use store::Store;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot create data directory {0}: {1}")]
    DataDir(String, std::io::Error),
}

/// Opens the database named by the URL: `postgres://`/`postgresql://` for PostgreSQL, anything
/// else (`sqlite://...`, `sqlite::memory:`) for SQLite.
pub async fn open_store(cfg: &Config) -> Result<Arc<dyn Store>, SetupError> {
    let url = cfg.database_url();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let s = store_postgres::PostgresStore::connect(
            &url,
            &store_postgres::PostgresSettings {
                max_connections: cfg.max_connections,
                batch: store_postgres::BatchSettings::configured(
                    cfg.charge_batch_max,
                    cfg.charge_writers,
                    Duration::from_micros(cfg.charge_linger_us),
                ),
                ..Default::default()
            },
        )
        .await?;
        Ok(Arc::new(s.with_audit_key(cfg.audit_key()?)))
    } else {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| SetupError::DataDir(parent.display().to_string(), e))?;
                }
            }
        }
        let s = store_sqlite::SqliteStore::connect(
            &url,
            &store_sqlite::SqliteSettings {
                max_connections: cfg.max_connections.clamp(1, 64),
                synchronous_full: cfg.sqlite_synchronous_full,
                batch: store_sqlite::BatchSettings::configured(
                    cfg.charge_batch_max,
                    cfg.charge_writers,
                    Duration::from_micros(cfg.charge_linger_us),
                ),
                ..Default::default()
            },
        )
        .await?;
        Ok(Arc::new(s.with_audit_key(cfg.audit_key()?)))
    }
}

/// Builds the shared state (the store must already be migrated).
pub fn build_state(store: Arc<dyn Store>, cfg: Config) -> Result<AppState, SetupError> {
    let key = cfg.face_key()?;
    let base = if cfg.public_base_url.is_empty() {
        format!("http://{}", cfg.listen)
    } else {
        cfg.public_base_url.clone()
    };
    let sandbox = cfg.sandbox_enabled().then(|| {
        Arc::new(payments::SandboxProvider::new(
            store.clone(),
            &cfg.gateway_secret,
            &base,
        ))
    });
    Ok(AppState {
        store,
        cipher: crypto::FaceCipher::new(&key),
        payments: sandbox
            .clone()
            .map(|s| s as Arc<dyn payments::PaymentProvider>),
        sandbox,
        kiosk_cache: Arc::new(KioskCache::new(Duration::from_secs(
            cfg.kiosk_token_cache_seconds,
        ))),
        faces: Arc::new(face_photos::FacePipeline::new(&cfg)),
        clock: state::Clock::system(),
        cfg: Arc::new(cfg),
    })
}

/// `backend check`: the store's invariants and audit chain, plus the anchors written outside
/// the database (a missing anchor file is no problem: a fresh installation has none yet).
pub async fn full_check(
    store: &Arc<dyn Store>,
    cfg: &Config,
    now_ms: i64,
) -> Result<store::CheckReport, SetupError> {
    let mut r = store
        .check(now_ms, cfg.unsealed_grace_seconds * 1000)
        .await?;
    match anchors::verify(store, &cfg.audit_key()?, &cfg.audit_anchor_path()).await {
        Ok(problems) => r.problems.extend(problems),
        Err(e) => r.problems.push(e),
    }
    Ok(r)
}

/// Where and how often the sealer anchors the chain's head outside the database.
pub struct Anchoring {
    pub path: std::path::PathBuf,
    pub key: store::AuditKey,
    pub every: Duration,
}

/// Chains new audit entries every `interval`, forever, anchors the chain's head in a file every
/// `anchoring.every`, and about once a minute purges expired sessions and old rate-limit
/// windows. Several instances may run this at once: the store lets one of them seal at a time,
/// each instance anchors into its own file, and purging twice is harmless.
pub async fn run_sealer(store: Arc<dyn Store>, interval: Duration, anchoring: Option<Anchoring>) {
    const BATCH: i64 = 5000;
    let mut last_purge = std::time::Instant::now();
    let mut last_anchor: Option<std::time::Instant> = None;
    loop {
        loop {
            match store.seal_audit(BATCH).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "audit sealer failed; will retry");
                    break;
                }
            }
        }
        if let Some(a) = &anchoring {
            if last_anchor.is_none_or(|t| t.elapsed() >= a.every) {
                last_anchor = Some(std::time::Instant::now());
                if let Err(e) = anchors::append_head(&store, &a.key, &a.path, state::now_ms()).await
                {
                    tracing::warn!(error = %e, "anchoring the audit chain failed; will retry");
                }
            }
        }
        if last_purge.elapsed() > Duration::from_secs(60) {
            last_purge = std::time::Instant::now();
            if let Err(e) = store.purge_expired(state::now_ms()).await {
                tracing::warn!(error = %e, "purging expired sessions failed; will retry");
            }
        }
        tokio::time::sleep(interval).await;
    }
}
