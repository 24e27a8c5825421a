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
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Kiosk, Store};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub cfg: Arc<Config>,
    pub cipher: FaceCipher,
    /// The payment provider top-ups go through; `None` when none is configured (top-ups
    /// answer 503 rather than crediting money nobody paid).
    pub payments: Option<Arc<dyn PaymentProvider>>,
    /// Set when the provider is the built-in sandbox (its pay page and notify route are mounted).
    pub sandbox: Option<Arc<SandboxProvider>>,
    pub kiosk_cache: Arc<KioskCache>,
    /// The face pipeline for photo enrolment, loaded on the first photo.
    pub faces: Arc<FacePipeline>,
    /// The time charges are judged at (the system clock; tests pin it).
    pub clock: Clock,
}

/// The server's clock for decisions that depend on the time of day (which meal, which day).
/// The system clock in production; tests pin it so that "lunch" is lunch whenever they run.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands still at `ms` until [`Clock::set`] moves it.
    pub fn pinned(ms: i64) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(ms))))
    }

    /// Moves a pinned clock (no effect on the system clock).
    pub fn set(&self, ms: i64) {
        if let Some(t) = &self.0 {
            t.store(ms, Ordering::SeqCst);
        }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => now_ms(),
        }
    }
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

impl AppState {
    /// The configured payment provider, or the 503 that says none is.
    pub fn payment_provider(&self) -> Result<&Arc<dyn PaymentProvider>, crate::error::ApiError> {
        self.payments
            .as_ref()
            .ok_or_else(|| crate::error::ApiError::NotAvailable {
                code: "payments_unavailable",
                message: "no payment provider is configured on this server; top-ups are \
                          unavailable"
                    .into(),
            })
    }
}

pub use store::now_ms;
