//! The background sync thread: it keeps the kiosk in step with the backend while the main
//! loop never waits on the network. Each round it delivers the outbox (through the shared
//! [`Courier`]), pulls gallery changes (saved to the encrypted cache), and every so often
//! re-reads the canteen's settings (saved to `canteen.json`) and everyone's balances (the
//! paged snapshot offline decisions use). A rebuilt gallery, new settings and events go to
//! the main loop over a channel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use models::gallery::Gallery;

use crate::api::{ApiError, BackendApi};
use crate::canteen::{CanteenSettings, SettingsSource};
use crate::courier::Courier;
use crate::event::KioskEvent;
use crate::gallery_cache::{GalleryCache, GalleryState};
use crate::local_store::{LocalStore, SnapshotBalance};
use crate::now_ms;

/// Messages from the sync thread.
pub(crate) enum SyncMsg {
    Gallery(Gallery<i64>),
    Canteen(CanteenSettings),
    Event(KioskEvent),
}

/// Pulls every gallery change since `state.since`. Returns whether anything changed.
pub fn sync_gallery(
    api: &dyn BackendApi,
    state: &mut GalleryState,
) -> Result<bool, crate::api::ApiError> {
    let mut changed = false;
    loop {
        let page = api.gallery(state.since, 500)?;
        for c in &page.changes {
            let emb = match (&c.embedding, c.deleted) {
                (Some(e), false) => match wire::decode_embedding(e) {
                    Ok(v) => Some(v),
                    Err(err) => {
                        tracing::warn!(template = c.template_id, "skipping a bad template: {err}");
                        continue;
                    }
                },
                _ => None,
            };
            state.apply(c.template_id, c.staff_id, emb);
            changed = true;
        }
        changed |= page.next_since != state.since;
        state.since = page.next_since;
        if !page.more || page.changes.is_empty() {
            return Ok(changed);
        }
    }
}

/// Reads one full balances snapshot (every page) into the local store. Returns
/// (people, changed, pages).
pub fn sync_balances(
    api: &dyn BackendApi,
    store: &mut LocalStore,
    page_size: i64,
) -> Result<(usize, usize, usize), SyncError> {
    let (mut since, mut people, mut changed, mut pages) = (0, 0, 0, 0);
    loop {
        // Stamped with the time it was asked for: a charge answer that arrives later is newer.
        let asked = now_ms();
        let page = api.balances(since, page_size)?;
        pages += 1;
        let entries: Vec<SnapshotBalance> = page
            .balances
            .iter()
            .filter_map(|b| match ledger::Fen::from_yuan(b.available) {
                Ok(available) => Some(SnapshotBalance {
                    staff_id: b.staff_id,
                    available_fen: available.0,
                    version: b.version,
                    active: b.active,
                    category: b.category.clone(),
                    name: b.name.clone(),
                    department: b.department.clone(),
                }),
                Err(e) => {
                    // Never from a sound backend; one bad entry must not hold back the rest.
                    tracing::warn!(
                        staff_id = b.staff_id,
                        "balances snapshot: {e}; entry skipped"
                    );
                    None
                }
            })
            .collect();
        people += entries.len();
        changed += store.apply_balance_snapshot(&entries, asked)?;
        // `next_since` goes back to 0 after the last page; a page that does not move the
        // cursor forward must not loop forever either.
        if !page.more || page.next_since <= since || page.balances.is_empty() {
            return Ok((people, changed, pages));
        }
        since = page.next_since;
    }
}

/// Fetches the kiosk's canteen settings (learning its canteen from `/kiosk/me` first).
pub fn fetch_canteen(
    api: &dyn BackendApi,
    canteen_id: Option<i64>,
) -> Result<CanteenSettings, SyncError> {
    let id = match canteen_id {
        Some(id) => id,
        None => api.me()?.canteen_id,
    };
    let info = api.canteen(id)?;
    Ok(CanteenSettings::from_backend(info, now_ms())?)
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] crate::local_store::StoreError),
    #[error(transparent)]
    Settings(#[from] crate::canteen::SettingsError),
}

impl SyncError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SyncError::Api(e) if e.is_transient())
    }
}

/// What the sync thread owns.
pub(crate) struct SyncParts {
    pub interval: Duration,
    pub balances_interval: Duration,
    pub balances_page: i64,
    pub canteen_interval: Duration,
    pub canteen: CanteenSettings,
    pub canteen_path: PathBuf,
    pub courier: Courier,
    pub cache: GalleryCache,
    pub state: GalleryState,
    pub db_path: PathBuf,
}

pub(crate) fn spawn_sync(
    parts: SyncParts,
    tx: Sender<SyncMsg>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let SyncParts {
        interval,
        balances_interval,
        balances_page,
        canteen_interval,
        mut canteen,
        canteen_path,
        courier,
        cache,
        mut state,
        db_path,
    } = parts;
    std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || {
            let mut store = match LocalStore::open(&db_path) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(SyncMsg::Event(KioskEvent::Error {
                        message: format!("sync: {e}"),
                    }));
                    return;
                }
            };
            let mut last_reported = None;
            let mut online = None;
            // Due at once: a kiosk starting up wants fresh balances and settings first.
            let mut balances_due = Instant::now();
            let mut canteen_due = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let mut delivered = 0;
                let mut reachable = true;
                match courier.deliver(&mut store) {
                    Ok(sent) => {
                        for e in sent.events {
                            let _ = tx.send(SyncMsg::Event(e));
                        }
                        delivered = sent.report.done.len();
                        if let Some((item, d)) = &sent.report.stopped {
                            tracing::debug!(seq = item.seq, "outbox waits: {d:?}");
                            reachable = false;
                        }
                    }
                    Err(e) => tracing::warn!("sync: {e}"),
                }
                let api = courier.api();
                match sync_gallery(api, &mut state) {
                    Ok(true) => {
                        if let Err(e) = cache.save(&state) {
                            tracing::warn!("saving the gallery cache: {e}");
                        }
                        if tx.send(SyncMsg::Gallery(state.to_gallery())).is_err() {
                            return;
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        reachable &= !e.is_transient();
                        tracing::debug!("gallery sync: {e}");
                    }
                }
                if reachable && Instant::now() >= canteen_due {
                    match fetch_canteen(api, canteen.canteen_id) {
                        Ok(fresh) => {
                            canteen_due = Instant::now() + canteen_interval;
                            let changed = !fresh.same_rules(&canteen)
                                || canteen.source != SettingsSource::Backend;
                            if changed {
                                if let Err(e) = fresh.save(&canteen_path) {
                                    tracing::warn!("saving the canteen settings: {e}");
                                }
                                canteen = fresh.clone();
                                if tx.send(SyncMsg::Canteen(fresh)).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(SyncError::Api(ApiError::NotSupported(what))) => {
                            canteen_due = Instant::now() + canteen_interval;
                            tracing::info!("the backend does not offer {what}; keeping {:?} settings", canteen.source);
                        }
                        Err(e) => {
                            // A bad answer is not retried every round (the log would fill up).
                            if !e.is_transient() {
                                canteen_due = Instant::now() + canteen_interval;
                            }
                            reachable &= !e.is_transient();
                            tracing::warn!("canteen settings: {e}");
                        }
                    }
                }
                if reachable && Instant::now() >= balances_due {
                    match sync_balances(api, &mut store, balances_page) {
                        Ok((people, changed, pages)) => {
                            balances_due = Instant::now() + balances_interval;
                            let ev = KioskEvent::BalancesSynced { people, changed, pages };
                            if tx.send(SyncMsg::Event(ev)).is_err() {
                                return;
                            }
                        }
                        Err(SyncError::Api(ApiError::NotSupported(what))) => {
                            balances_due = Instant::now() + balances_interval;
                            tracing::info!("the backend does not offer {what}; offline decisions use charge answers only");
                        }
                        Err(e) => {
                            if !e.is_transient() {
                                balances_due = Instant::now() + balances_interval;
                            }
                            reachable &= !e.is_transient();
                            tracing::warn!("balances: {e}");
                        }
                    }
                }
                if online != Some(reachable) {
                    online = Some(reachable);
                    let _ = tx.send(SyncMsg::Event(KioskEvent::Online { online: reachable }));
                }
                if let Ok(c) = store.counts() {
                    let now = (c, state.since, state.templates.len());
                    if delivered > 0 || last_reported != Some(now) {
                        last_reported = Some(now);
                        let ev = KioskEvent::Synced {
                            delivered,
                            pending: c.pending,
                            rejected: c.rejected,
                            gallery_version: state.since,
                            templates: state.templates.len(),
                        };
                        if tx.send(SyncMsg::Event(ev)).is_err() {
                            return;
                        }
                    }
                }
                let until = Instant::now() + interval;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use wire::{
        BalanceEntry, BalancesResponse, ChargeRequest, ChargeResponse, EnrolRequest, EnrolResponse,
        GalleryResponse, KioskInfo, WasteRequest, WasteResponse,
    };

    /// Serves a balances snapshot of `people` people in pages, like the backend: cursor =
    /// last staff id, 0 again after the last page.
    struct Pages {
        people: i64,
        calls: Mutex<Vec<(i64, i64)>>,
    }

    impl BackendApi for Pages {
        fn enrol(&self, _: &EnrolRequest) -> Result<EnrolResponse, ApiError> {
            Err(ApiError::NotSupported("enrol"))
        }
        fn me(&self) -> Result<KioskInfo, ApiError> {
            Err(ApiError::NotSupported("me"))
        }
        fn charge(&self, _: &ChargeRequest) -> Result<ChargeResponse, ApiError> {
            Err(ApiError::NotSupported("charge"))
        }
        fn waste(&self, _: &WasteRequest) -> Result<WasteResponse, ApiError> {
            Err(ApiError::NotSupported("waste"))
        }
        fn gallery(&self, _: i64, _: i64) -> Result<GalleryResponse, ApiError> {
            Err(ApiError::NotSupported("gallery"))
        }
        fn balances(&self, since: i64, limit: i64) -> Result<BalancesResponse, ApiError> {
            self.calls.lock().unwrap().push((since, limit));
            let balances: Vec<BalanceEntry> = (since + 1..=self.people)
                .take(limit as usize)
                .map(|id| BalanceEntry {
                    staff_id: id,
                    available: rust_decimal::Decimal::new(id * 100, 2),
                    active: id % 2 == 1,
                    category: "regular".into(),
                    version: 1,
                    name: format!("person {id}"),
                    department: String::new(),
                })
                .collect();
            let more = balances.len() as i64 == limit;
            Ok(BalancesResponse {
                next_since: if more {
                    balances.last().map_or(0, |b| b.staff_id)
                } else {
                    0
                },
                more,
                balances,
            })
        }
    }

    #[test]
    fn a_balances_snapshot_is_read_page_by_page_into_the_cache() {
        let api = Pages {
            people: 7,
            calls: Mutex::new(Vec::new()),
        };
        let mut store = LocalStore::in_memory().unwrap();
        let (people, changed, pages) = sync_balances(&api, &mut store, 3).unwrap();
        assert_eq!((people, changed, pages), (7, 7, 3));
        assert_eq!(*api.calls.lock().unwrap(), [(0, 3), (3, 3), (6, 3)]);
        let b = store.balance(6).unwrap().unwrap();
        assert_eq!((b.available_fen, b.active), (600, false));
        // Exactly a multiple of the page size: the empty last page ends it.
        let api = Pages {
            people: 6,
            calls: Mutex::new(Vec::new()),
        };
        assert_eq!(sync_balances(&api, &mut store, 3).unwrap(), (6, 0, 3));
    }
}
