//! The running kiosk: frames through the face pipeline into the decider and the
//! station, the scale's weighings, QR pay codes, and a background thread that sends the
//! outbox and keeps the encrypted gallery, the balances snapshot and the canteen's
//! settings in step with the backend. [`FaceAnalyzer`] is the one place a frame meets the
//! `models` crate.
//!
//! Threads: the frame grabber (keeps only the newest frame), the scale reader, the sync
//! thread, and this loop, which owns the pipeline (ONNX sessions are not shared across
//! threads). The sync thread hands a rebuilt gallery and new canteen settings over a
//! channel, so the loop never waits on the network to recognise someone.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use models::detect::DetectorConfig;
use models::gallery::{Gallery, MatchPolicy};
use models::pipeline::{Faces, Pipeline, PipelineConfig};

use crate::api::{ApiError, BackendApi};
use crate::canteen::{CanteenSettings, SettingsSource};
use crate::config::{to_fen, KioskConfig};
use crate::decide::{Decider, FaceObs, FacePatch, FrameObs, Identity};
use crate::frames::{Grabbed, Grabber};
use crate::gallery_cache::{load_or_create_key, GalleryCache, GalleryState};
use crate::outbox::{LocalStore, SnapshotBalance};
use crate::paycode::PayCodeReader;
use crate::station::{follow_up_events, now_ms, send_item, EventSink, KioskEvent, Station};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("face models: {0}")]
    Models(#[from] models::Error),
    #[error(transparent)]
    Frames(#[from] crate::frames::FrameError),
    #[error(transparent)]
    Store(#[from] crate::outbox::StoreError),
    #[error(transparent)]
    Cache(#[from] crate::gallery_cache::CacheError),
    #[error("{0}")]
    Other(String),
}

/// The face pipeline plus the gallery decision, frame by frame.
pub struct FaceAnalyzer {
    pipeline: Pipeline,
    policy: MatchPolicy,
    min_eye_distance_px: f32,
}

impl FaceAnalyzer {
    pub fn load(cfg: &KioskConfig) -> Result<FaceAnalyzer, RunError> {
        let pc = PipelineConfig {
            model_dir: cfg.models_dir.clone(),
            detector: DetectorConfig::kiosk(),
            liveness: cfg.liveness,
            ..Default::default()
        };
        Ok(FaceAnalyzer {
            pipeline: Pipeline::load(pc)?,
            policy: cfg.match_policy(),
            min_eye_distance_px: cfg.min_eye_distance_px,
        })
    }

    /// The main face of `image`, measured and looked up in `gallery`.
    pub fn observe(
        &mut self,
        image: &RgbImage,
        gallery: &Gallery<i64>,
    ) -> Result<FrameObs, RunError> {
        let analysis = self.pipeline.analyze(image, Faces::Main)?;
        let Some(face) = analysis.faces.into_iter().next() else {
            return Ok(FrameObs { face: None });
        };
        let quality_problem = (face.quality.eye_distance_px < self.min_eye_distance_px)
            .then(|| models::quality::QualityProblem::TooSmall.hint().to_string());
        let identity = if gallery.is_empty() {
            Identity::NoGallery
        } else {
            Identity::from_decision(gallery.identify(&face.embedding, &self.policy)?)
        };
        Ok(FrameObs {
            face: Some(FaceObs {
                rect: face.detection.rect,
                landmarks: face.landmarks,
                liveness: face.liveness,
                quality_problem,
                identity,
                patch: FacePatch::from_image(image, &face.detection.rect),
                embedding: Some(face.embedding),
                quality_problems: face.quality.problems,
            }),
        })
    }

    /// What the gallery says about an embedding under the kiosk's match policy (the
    /// decider's search for the fused embedding of several frames).
    pub fn identify(
        &self,
        embedding: &models::embed::Embedding,
        gallery: &Gallery<i64>,
    ) -> Identity {
        if gallery.is_empty() {
            return Identity::NoGallery;
        }
        match gallery.identify(embedding, &self.policy) {
            Ok(d) => Identity::from_decision(d),
            // Embeddings come from the pipeline, which refuses non-finite ones.
            Err(_) => Identity::NoGallery,
        }
    }

    /// The embedding of the main face of a photo (enrolment desk).
    pub fn embed_photo(
        &mut self,
        image: &RgbImage,
    ) -> Result<Option<(Vec<f32>, models::quality::QualityReport)>, RunError> {
        let analysis = self.pipeline.analyze(image, Faces::Main)?;
        Ok(analysis
            .faces
            .into_iter()
            .next()
            .map(|f| (f.embedding.to_vec(), f.quality)))
    }
}

/// Messages from the sync thread.
enum SyncMsg {
    Gallery(Gallery<i64>),
    Canteen(CanteenSettings),
    Event(KioskEvent),
}

/// How the run ends.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// After a replay played once ends, wait for the outbox to empty, then return.
    pub exit_after_replay: bool,
    /// Return after this long whatever happens.
    pub max_runtime: Option<Duration>,
    /// Take every frame of the source (no drops; for benchmarks).
    pub lockstep: bool,
}

fn open_cache(cfg: &KioskConfig) -> Result<GalleryCache, RunError> {
    let key = load_or_create_key(
        cfg.gallery_key()
            .map_err(|e| RunError::Other(e.to_string()))?,
        &cfg.data_dir.join("gallery.key"),
    )?;
    Ok(GalleryCache::new(cfg.data_dir.join("gallery.bin"), &key))
}

/// Loads the cached gallery, or starts empty (with a warning) when the cache cannot be
/// read: the next sync rebuilds it from the backend.
pub fn load_cached_gallery(cache: &GalleryCache) -> GalleryState {
    match cache.load() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("gallery cache unusable, starting empty and syncing afresh: {e}");
            GalleryState::default()
        }
    }
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
            .map(|b| SnapshotBalance {
                staff_id: b.staff_id,
                available_fen: to_fen(b.available),
                version: b.version,
                active: b.active,
                category: b.category.clone(),
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
    Store(#[from] crate::outbox::StoreError),
    #[error(transparent)]
    Settings(#[from] crate::canteen::SettingsError),
}

impl SyncError {
    fn is_transient(&self) -> bool {
        matches!(self, SyncError::Api(e) if e.is_transient())
    }
}

/// What the sync thread owns.
struct SyncParts {
    interval: Duration,
    balances_interval: Duration,
    balances_page: i64,
    canteen_interval: Duration,
    canteen: CanteenSettings,
    canteen_path: PathBuf,
    api: Arc<dyn BackendApi>,
    gate: Arc<Mutex<()>>,
    cache: GalleryCache,
    state: GalleryState,
    db_path: PathBuf,
}

fn spawn_sync(
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
        api,
        gate,
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
                {
                    let _g = gate.lock().unwrap_or_else(|p| p.into_inner());
                    match store.drain_report(now_ms, |item| send_item(&*api, item)) {
                        Ok(report) => {
                            for e in follow_up_events(&report.done) {
                                let _ = tx.send(SyncMsg::Event(e));
                            }
                            delivered = report.done.len();
                            if let Some((item, d)) = &report.stopped {
                                tracing::debug!(seq = item.seq, "outbox waits: {d:?}");
                                reachable = false;
                            }
                        }
                        Err(e) => tracing::warn!("sync: {e}"),
                    }
                }
                match sync_gallery(&*api, &mut state) {
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
                    match fetch_canteen(&*api, canteen.canteen_id) {
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
                    match sync_balances(&*api, &mut store, balances_page) {
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

/// Percentile of a sorted list.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the kiosk until `stop` is set (or the options end it).
pub fn run(
    cfg: KioskConfig,
    api: Arc<dyn BackendApi>,
    mut sink: EventSink,
    stop: Arc<AtomicBool>,
    opts: RunOptions,
) -> Result<(), RunError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| RunError::Other(format!("{}: {e}", cfg.data_dir.display())))?;
    let db_path = cfg.data_dir.join("kiosk.db");
    let store = LocalStore::open(&db_path)?;
    let cache = open_cache(&cfg)?;
    let state = load_cached_gallery(&cache);
    let mut gallery = state.to_gallery();
    let mut analyzer = FaceAnalyzer::load(&cfg)?;
    let source = crate::frames::open_source(&cfg.source)?;
    let source_desc = source.describe();
    sink(KioskEvent::Started {
        mode: format!("{:?}", cfg.mode).to_lowercase(),
        source: source_desc,
        templates: gallery.len(),
        persons: gallery.person_count(),
    });

    let canteen_path = cfg.data_dir.join("canteen.json");
    let canteen = match CanteenSettings::load(&canteen_path) {
        Ok(Some(s)) => s,
        Ok(None) => CanteenSettings::from_config(&cfg),
        Err(e) => {
            tracing::warn!("{e}; using the configured meal windows until the backend answers");
            CanteenSettings::from_config(&cfg)
        }
    };

    let gate = Arc::new(Mutex::new(()));
    let (sync_tx, sync_rx): (Sender<SyncMsg>, Receiver<SyncMsg>) = mpsc::channel();
    let threads_stop = Arc::new(AtomicBool::new(false));
    let parts = SyncParts {
        interval: Duration::from_millis(cfg.sync_interval_ms.max(50)),
        balances_interval: Duration::from_millis(cfg.balances_interval_ms.max(100)),
        balances_page: cfg.balances_page,
        canteen_interval: Duration::from_millis(cfg.canteen_interval_ms.max(100)),
        canteen: canteen.clone(),
        canteen_path,
        api: api.clone(),
        gate: gate.clone(),
        cache,
        state,
        db_path,
    };
    let sync = spawn_sync(parts, sync_tx, threads_stop.clone())
        .map_err(|e| RunError::Other(format!("starting the sync thread: {e}")))?;
    let (scale_tx, scale_rx) = mpsc::channel();
    let scale = match (&cfg.scale.port, cfg.mode.weighs()) {
        (Some(port), true) => Some(
            crate::scale_io::spawn_reader(
                port.clone(),
                cfg.scale.baud,
                cfg.scale.stability,
                scale_tx,
                threads_stop.clone(),
            )
            .map_err(|e| RunError::Other(format!("starting the scale reader: {e}")))?,
        ),
        _ => None,
    };

    let grabber = Grabber::spawn(source, opts.lockstep);
    let mut decider = Decider::new(cfg.decision.clone());
    let mut paycodes = PayCodeReader::new(3, Duration::from_secs(10));
    let paycodes_on = cfg.paycodes && cfg.mode.pays();
    let started = Instant::now();
    let mut station = Station::new(cfg.clone(), api, store, gate, sink);
    station.set_canteen(canteen);
    let mut analyse_ms: Vec<f64> = Vec::new();
    let mut frames = 0u64;
    let mut last_stats = Instant::now();
    let mut replay_ended = false;
    let mut result = Ok(());

    while !stop.load(Ordering::Relaxed) {
        if opts.max_runtime.is_some_and(|m| started.elapsed() >= m) {
            break;
        }
        while let Ok(msg) = sync_rx.try_recv() {
            match msg {
                SyncMsg::Gallery(g) => {
                    tracing::info!(
                        templates = g.len(),
                        persons = g.person_count(),
                        "gallery updated"
                    );
                    gallery = g;
                }
                SyncMsg::Canteen(c) => {
                    tracing::info!(
                        canteen = ?c.canteen_id,
                        windows = c.windows.len(),
                        "canteen settings updated"
                    );
                    station.set_canteen(c);
                }
                SyncMsg::Event(e) => station.emit(e),
            }
        }
        while let Ok(ev) = scale_rx.try_recv() {
            station.on_scale(ev);
        }
        station.tick();
        if replay_ended {
            if opts.exit_after_replay
                && station
                    .store()
                    .counts()
                    .map(|c| c.pending == 0)
                    .unwrap_or(false)
                && station.is_idle()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        match grabber.next(Duration::from_millis(50)) {
            None => {}
            Some(Grabbed::Ended) => {
                tracing::info!("replay ended");
                replay_ended = true;
                // Let a trailing face track end cleanly.
                let ev = decider.feed(FrameObs { face: None });
                station.on_face_events(ev, Instant::now());
            }
            Some(Grabbed::Failed(e)) => {
                result = Err(RunError::Other(format!("frame source failed: {e}")));
                break;
            }
            Some(Grabbed::Frame(frame)) => {
                frames += 1;
                let t = Instant::now();
                match analyzer.observe(&frame.image, &gallery) {
                    Ok(obs) => {
                        analyse_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                        let events = decider.feed_with(obs, &|e| analyzer.identify(e, &gallery));
                        station.on_face_events(events, frame.captured);
                    }
                    Err(e) => tracing::warn!(frame = %frame.label, "analysis failed: {e}"),
                }
                if paycodes_on {
                    for code in paycodes.feed(&frame.image, Instant::now()) {
                        station.on_pay_code(&code, frame.captured);
                    }
                }
                if last_stats.elapsed() > Duration::from_secs(10) {
                    last_stats = Instant::now();
                    emit_stats(&mut station, frames, grabber.dropped(), &mut analyse_ms);
                }
            }
        }
    }
    emit_stats(&mut station, frames, grabber.dropped(), &mut analyse_ms);
    drop(grabber);
    threads_stop.store(true, Ordering::Relaxed);
    let _ = sync.join();
    if let Some(s) = scale {
        let _ = s.join();
    }
    station.emit(KioskEvent::Stopped);
    result
}

fn emit_stats(station: &mut Station, frames: u64, dropped: u64, samples: &mut Vec<f64>) {
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    station.emit(KioskEvent::Stats {
        frames,
        dropped,
        analyse_p50_ms: percentile(&sorted, 0.5),
        analyse_p95_ms: percentile(&sorted, 0.95),
    });
    if samples.len() > 10_000 {
        samples.drain(..5_000);
    }
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
