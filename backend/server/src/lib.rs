//! CleanPlate's backend as a library: configuration, storage selection, the axum application,
//! and the background audit sealer. The `backend` binary (src/main.rs) is a thin command line
//! around it; integration tests build the same application in-process.

pub mod api;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod error;
pub mod face_photos;
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
        Ok(Arc::new(s))
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
        Ok(Arc::new(s))
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

/// Chains new audit entries every `interval`, forever, and about once a minute purges expired
/// sessions and old rate-limit windows. Several instances may run this at once: the store lets
/// one of them seal at a time, and purging twice is harmless.
pub async fn run_sealer(store: Arc<dyn Store>, interval: Duration) {
    const BATCH: i64 = 5000;
    let mut last_purge = std::time::Instant::now();
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
        if last_purge.elapsed() > Duration::from_secs(60) {
            last_purge = std::time::Instant::now();
            if let Err(e) = store.purge_expired(state::now_ms()).await {
                tracing::warn!(error = %e, "purging expired sessions failed; will retry");
            }
        }
        tokio::time::sleep(interval).await;
    }
}
