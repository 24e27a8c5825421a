//! Shared application state handed to every handler. Everything here is either configuration or
//! a handle to the database; the only in-memory data is a short-lived cache of kiosk-token
//! lookups (bounded staleness, see `Config::kiosk_token_cache_seconds`), so any number of
//! instances can serve one PostgreSQL database. (The face pipeline for photo enrolment is
//! in-process too, but it holds models, not data.)

use crate::config::Config;
use crate::crypto::FaceCipher;
use crate::face_photos::FacePipeline;
use crate::payments::{PaymentProvider, SandboxProvider};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Kiosk, Store};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub cfg: Arc<Config>,
    pub cipher: FaceCipher,
    pub payments: Arc<dyn PaymentProvider>,
    /// Set when the configured provider is the built-in sandbox (serves its pay page).
    pub sandbox: Option<Arc<SandboxProvider>>,
    pub kiosk_cache: Arc<KioskCache>,
    /// The face pipeline for photo enrolment, loaded on the first photo.
    pub faces: Arc<FacePipeline>,
}

/// Token hash -> kiosk, for a few seconds: a charge burst should not cost a token lookup each.
pub struct KioskCache {
    ttl: Duration,
    map: Mutex<HashMap<String, (Kiosk, Instant)>>,
}

impl KioskCache {
    pub fn new(ttl: Duration) -> Self {
        KioskCache {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, token_hash: &str) -> Option<Kiosk> {
        let map = self.map.lock().ok()?;
        map.get(token_hash)
            .filter(|(_, t)| t.elapsed() < self.ttl)
            .map(|(k, _)| k.clone())
    }

    pub fn put(&self, token_hash: String, k: Kiosk) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (_, t)| t.elapsed() < self.ttl);
            }
            map.insert(token_hash, (k, Instant::now()));
        }
    }

    /// Forgets a kiosk at once on this instance (others follow within the TTL).
    pub fn forget_kiosk(&self, kiosk_id: i64) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, (k, _)| k.id != kiosk_id);
        }
    }
}

pub use store::now_ms;
