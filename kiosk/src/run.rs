//! The running kiosk: frames through the face pipeline into the decider and the
//! station, the scale's weighings, QR pay codes, and the background sync thread
//! ([`crate::sync`]) that sends the outbox and keeps the encrypted gallery, the balances
//! snapshot and the canteen's settings in step with the backend. [`FaceAnalyzer`] is the one
//! place a frame meets the `models` crate.
//!
//! Threads: the frame grabber (keeps only the newest frame), the scale reader, the sync
//! thread, and this loop, which owns the pipeline (ONNX sessions are not shared across
//! threads). The sync thread hands a rebuilt gallery and new canteen settings over a
//! channel, so the loop never waits on the network to recognise someone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use models::detect::DetectorConfig;
use models::gallery::{Gallery, MatchPolicy};
use models::pipeline::{Faces, Pipeline, PipelineConfig};

use crate::api::BackendApi;
use crate::canteen::CanteenSettings;
use crate::config::KioskConfig;
use crate::courier::Courier;
use crate::decide::{Decider, FaceObs, FacePatch, FrameObs, Identity};
use crate::event::{EventSink, KioskEvent};
use crate::frames::{FrameError, Grabbed, Grabber};
use crate::frontend::{Command, FaceHint, FrontEnd, PreviewFrame};
use crate::gallery_cache::{load_or_create_key, GalleryCache, GalleryState};
use crate::local_store::LocalStore;
use crate::paycode::PayCodeReader;
use crate::scale_io::ScaleMsg;
use crate::station::Station;
use crate::sync::{spawn_sync, SyncMsg, SyncParts};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("face models: {0}")]
    Models(#[from] models::Error),
    #[error(transparent)]
    Frames(#[from] crate::frames::FrameError),
    #[error(transparent)]
    Store(#[from] crate::local_store::StoreError),
    #[error(transparent)]
    Settings(#[from] crate::canteen::SettingsError),
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
        Ok(self.analyse(image, gallery)?.obs)
    }

    /// Like [`observe`](Self::observe), also giving what a front end shows (the face's hint)
    /// and, for the enrolment desk, the embedding when the face is good enough to enrol.
    pub fn analyse(
        &mut self,
        image: &RgbImage,
        gallery: &Gallery<i64>,
    ) -> Result<Analysed, RunError> {
        let analysis = self.pipeline.analyze(image, Faces::Main)?;
        let Some(face) = analysis.faces.into_iter().next() else {
            return Ok(Analysed {
                obs: FrameObs { face: None },
                hint: None,
                enrolable: None,
            });
        };
        let too_small = face.quality.eye_distance_px < self.min_eye_distance_px;
        let hint = if too_small {
            Some(FaceHint::TooFar)
        } else {
            face.quality
                .problems
                .first()
                .map(|p| FaceHint::from_quality(*p))
        };
        let identity = if gallery.is_empty() {
            Identity::NoGallery
        } else {
            Identity::from_decision(gallery.identify(&face.embedding, &self.policy)?)
        };
        let enrolable = (!too_small && face.quality.problems.is_empty()).then(|| Enrolable {
            embedding: face.embedding.to_vec(),
            quality: face.quality.score,
            matches_staff_id: match &identity {
                Identity::Match { staff_id, .. } => Some(*staff_id),
                _ => None,
            },
        });
        Ok(Analysed {
            obs: FrameObs {
                face: Some(FaceObs {
                    rect: face.detection.rect,
                    landmarks: face.landmarks,
                    liveness: face.liveness,
                    quality_problem: too_small
                        .then(|| models::quality::QualityProblem::TooSmall.hint().to_string()),
                    identity,
                    patch: FacePatch::from_image(image, &face.detection.rect),
                    embedding: Some(face.embedding),
                    quality_problems: face.quality.problems,
                }),
            },
            hint,
            enrolable,
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

/// One analysed frame: the decider's observation and what a front end shows.
pub struct Analysed {
    pub obs: FrameObs,
    pub hint: Option<FaceHint>,
    /// The face is good enough to enrol (quality without problems).
    pub enrolable: Option<Enrolable>,
}

pub struct Enrolable {
    pub embedding: Vec<f32>,
    pub quality: f32,
    pub matches_staff_id: Option<i64>,
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

/// Percentile of a sorted list.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the headless kiosk until `stop` is set (or the options end it).
pub fn run(
    cfg: KioskConfig,
    api: Arc<dyn BackendApi>,
    sink: EventSink,
    stop: Arc<AtomicBool>,
    opts: RunOptions,
) -> Result<(), RunError> {
    run_with(cfg, api, sink, stop, opts, FrontEnd::none())
}

/// How often a missing camera is looked for again.
const CAMERA_RETRY: Duration = Duration::from_secs(5);

fn open_frames(cfg: &KioskConfig, lockstep: bool) -> Result<(Grabber, String), FrameError> {
    let source = crate::frames::open_source(&cfg.source)?;
    let desc = source.describe();
    Ok((Grabber::spawn(source, lockstep), desc))
}

fn start_scale(
    cfg: &KioskConfig,
    tx: &Sender<ScaleMsg>,
    stop: &Arc<AtomicBool>,
) -> Result<Option<std::thread::JoinHandle<()>>, RunError> {
    match (&cfg.scale.port, cfg.mode.weighs()) {
        (Some(port), true) => Ok(Some(
            crate::scale_io::spawn_reader(
                port.clone(),
                cfg.scale.baud,
                cfg.scale.stability,
                tx.clone(),
                stop.clone(),
            )
            .map_err(|e| RunError::Other(format!("starting the scale reader: {e}")))?,
        )),
        _ => Ok(None),
    }
}

/// Runs the kiosk for a front end: besides the events, every analysed frame goes to
/// `front.preview` and `front.commands` are carried out between frames. A missing camera or
/// missing face models are reported as events and the kiosk goes on (pay codes from a
/// scanner, the scale and the sync still work); the camera is looked for again every few
/// seconds.
pub fn run_with(
    cfg: KioskConfig,
    api: Arc<dyn BackendApi>,
    mut sink: EventSink,
    stop: Arc<AtomicBool>,
    opts: RunOptions,
    mut front: FrontEnd,
) -> Result<(), RunError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| RunError::Other(format!("{}: {e}", cfg.data_dir.display())))?;
    let db_path = cfg.data_dir.join("kiosk.db");
    let store = LocalStore::open(&db_path)?;
    let cache = open_cache(&cfg)?;
    let state = load_cached_gallery(&cache);
    let mut gallery = state.to_gallery();
    let mut analyzer = match FaceAnalyzer::load(&cfg) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!("{e}; no face decisions until the models are installed");
            sink(KioskEvent::ModelsUnavailable {
                message: e.to_string(),
            });
            None
        }
    };
    let is_camera = cfg.source.kind == crate::config::SourceKind::Camera;
    let (mut grabber, source_desc) = match open_frames(&cfg, opts.lockstep) {
        Ok((g, d)) => (Some(g), d),
        // A replay that cannot be read is a mistake in the command; a camera may come back.
        Err(e) if !is_camera => return Err(e.into()),
        Err(e) => {
            tracing::error!("{e}");
            sink(KioskEvent::CameraUnavailable {
                message: e.to_string(),
            });
            (None, "no camera".to_string())
        }
    };
    let mut camera_retry = Instant::now() + CAMERA_RETRY;
    sink(KioskEvent::Started {
        mode: format!("{:?}", cfg.mode).to_lowercase(),
        source: source_desc,
        templates: gallery.len(),
        persons: gallery.person_count(),
    });

    let canteen_path = cfg.data_dir.join("canteen.json");
    let canteen = match CanteenSettings::load(&canteen_path) {
        Ok(Some(s)) => s,
        Ok(None) => CanteenSettings::from_config(&cfg)?,
        Err(e) => {
            tracing::warn!("{e}; using the configured meal windows until the backend answers");
            CanteenSettings::from_config(&cfg)?
        }
    };

    let courier = Courier::new(api);
    let (sync_tx, sync_rx): (Sender<SyncMsg>, Receiver<SyncMsg>) = mpsc::channel();
    let threads_stop = Arc::new(AtomicBool::new(false));
    let parts = SyncParts {
        interval: Duration::from_millis(cfg.sync_interval_ms.max(50)),
        balances_interval: Duration::from_millis(cfg.balances_interval_ms.max(100)),
        balances_page: cfg.balances_page,
        canteen_interval: Duration::from_millis(cfg.canteen_interval_ms.max(100)),
        canteen: canteen.clone(),
        canteen_path,
        courier: courier.clone(),
        cache,
        state,
        db_path,
    };
    let sync = spawn_sync(parts, sync_tx, threads_stop.clone())
        .map_err(|e| RunError::Other(format!("starting the sync thread: {e}")))?;
    let (scale_tx, scale_rx) = mpsc::channel();
    let mut scale = start_scale(&cfg, &scale_tx, &threads_stop)?;

    let mut decider = Decider::new(cfg.decision.clone());
    let mut paycodes = PayCodeReader::new(3, Duration::from_secs(10));
    let started = Instant::now();
    let mut station = Station::new(cfg.clone(), courier, store, sink)?;
    station.set_canteen(canteen);
    let mut analyse_ms: Vec<f64> = Vec::new();
    let mut frames = 0u64;
    let mut last_stats = Instant::now();
    let mut replay_ended = false;
    let mut capture_armed = false;
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
                        windows = c.windows().len(),
                        "canteen settings updated"
                    );
                    station.set_canteen(c);
                }
                SyncMsg::Event(e) => station.emit(e),
            }
        }
        while let Ok(msg) = scale_rx.try_recv() {
            match msg {
                ScaleMsg::Reading(ev) => station.on_scale(ev),
                ScaleMsg::Connected => station.emit(KioskEvent::ScaleConnected {
                    tare_g: station.tare_g(),
                }),
                ScaleMsg::Disconnected(message) => {
                    station.emit(KioskEvent::ScaleDisconnected { message })
                }
            }
        }
        let commands: Vec<Command> = front
            .commands
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default();
        for cmd in commands {
            match cmd {
                Command::NotMe { charge_key } => station.not_me(&charge_key),
                Command::PayCode(code) => station.on_pay_code(code.trim(), Instant::now()),
                Command::SetMode(mode) => {
                    station.set_mode(mode);
                    decider.reset();
                    capture_armed = false;
                    if mode.weighs() && scale.is_none() {
                        let mut c = cfg.clone();
                        c.mode = mode;
                        scale = start_scale(&c, &scale_tx, &threads_stop)?;
                    }
                }
                Command::SetLanguage(language) => station.emit(KioskEvent::Language { language }),
                Command::CaptureTemplate => capture_armed = true,
                Command::SetTare(g) => station.set_tare(g),
            }
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
        let Some(g) = grabber.as_ref() else {
            if Instant::now() >= camera_retry {
                camera_retry = Instant::now() + CAMERA_RETRY;
                if let Ok((g, desc)) = open_frames(&cfg, opts.lockstep) {
                    tracing::info!("camera found: {desc}");
                    grabber = Some(g);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        match g.next(Duration::from_millis(50)) {
            None => {}
            Some(Grabbed::Ended) => {
                tracing::info!("replay ended");
                replay_ended = true;
                // Let a trailing face track end cleanly.
                let ev = decider.feed(FrameObs { face: None });
                station.on_face_events(ev, Instant::now());
            }
            Some(Grabbed::Failed(e)) if is_camera => {
                tracing::error!("camera failed: {e}");
                station.emit(KioskEvent::CameraUnavailable { message: e });
                grabber = None;
                camera_retry = Instant::now() + CAMERA_RETRY;
            }
            Some(Grabbed::Failed(e)) => {
                result = Err(RunError::Other(format!("frame source failed: {e}")));
                break;
            }
            Some(Grabbed::Frame(frame)) => {
                frames += 1;
                let t = Instant::now();
                let analysed = match analyzer.as_mut() {
                    Some(a) => match a.analyse(&frame.image, &gallery) {
                        Ok(an) => {
                            analyse_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                            Some(an)
                        }
                        Err(e) => {
                            tracing::warn!(frame = %frame.label, "analysis failed: {e}");
                            None
                        }
                    },
                    None => None,
                };
                if let Some(preview) = front.preview.as_mut() {
                    let face = analysed.as_ref().and_then(|a| a.obs.face.as_ref());
                    preview(PreviewFrame::make(
                        &frame.image,
                        face.map(|f| &f.rect),
                        analysed.as_ref().and_then(|a| a.hint),
                        frames,
                        frame.captured,
                    ));
                }
                if let Some(an) = analysed {
                    if station.mode() == crate::config::Mode::Desk {
                        if let (true, Some(e)) = (capture_armed, an.enrolable) {
                            capture_armed = false;
                            station.emit(KioskEvent::TemplateCaptured {
                                embedding: e.embedding,
                                quality: e.quality,
                                matches_staff_id: e.matches_staff_id,
                            });
                        }
                    } else {
                        let events = match analyzer.as_ref() {
                            Some(a) => decider.feed_with(an.obs, &|e| a.identify(e, &gallery)),
                            None => decider.feed(an.obs),
                        };
                        station.on_face_events(events, frame.captured);
                    }
                }
                if cfg.paycodes && station.mode().pays() {
                    for code in paycodes.feed(&frame.image, Instant::now()) {
                        station.on_pay_code(&code, frame.captured);
                    }
                }
                if last_stats.elapsed() > Duration::from_secs(10) {
                    last_stats = Instant::now();
                    let dropped = grabber.as_ref().map_or(0, |g| g.dropped());
                    emit_stats(&mut station, frames, dropped, &mut analyse_ms);
                }
            }
        }
    }
    let dropped = grabber.as_ref().map_or(0, |g| g.dropped());
    emit_stats(&mut station, frames, dropped, &mut analyse_ms);
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
