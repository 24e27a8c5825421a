//! Where frames come from: the [`FrameSource`] trait, a replay source (a folder of
//! images, a numbered sequence, or one image, at a given fps, looped or once), the real
//! camera through `nokhwa` behind the `camera` feature, and [`Grabber`], which runs a
//! source on its own thread and keeps only the newest frame, so a pipeline slower than
//! the camera drops frames instead of falling behind on a queue.
//!
//! [`synthesize_motion`] turns one still photo into a short "video" with a slow, smooth
//! camera drift (a few pixels of shift and a little zoom): the demo and the end-to-end
//! tests use it to stand in for a person in front of a camera, because no video of a
//! person ships with the project. A replay of a still photo repeated without that drift
//! is what a printed photo looks like, and is refused.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("replay source {path}: {reason}")]
    Replay { path: PathBuf, reason: String },
    #[error("frame {path}: {source}")]
    Decode {
        path: PathBuf,
        source: models::image_io::ImageError,
    },
    #[error("camera: {0}")]
    Camera(String),
}

/// One frame and when it was captured.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    pub seq: u64,
    pub captured: Instant,
    /// Where it came from (file name for replays).
    pub label: String,
}

pub trait FrameSource: Send {
    /// The next frame, waiting for it if the source is paced; `None` at the end of a
    /// replay played once.
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError>;
    fn describe(&self) -> String;
}

/// Scales `image` down so its longer side is at most `max_side` (0: unchanged).
pub fn fit(image: RgbImage, max_side: u32) -> RgbImage {
    let long = image.width().max(image.height());
    if max_side == 0 || long <= max_side {
        return image;
    }
    let s = max_side as f32 / long as f32;
    let (w, h) = (
        ((image.width() as f32 * s).round() as u32).max(1),
        ((image.height() as f32 * s).round() as u32).max(1),
    );
    // Through `DynamicImage`: its methods are compiled (optimised) in the image crate,
    // whereas the generic `imageops` functions would be instantiated unoptimised here.
    image::DynamicImage::ImageRgb8(image)
        .resize_exact(w, h, image::imageops::FilterType::Triangle)
        .into_rgb8()
}

/// Frames from image files.
pub struct ReplaySource {
    files: Vec<PathBuf>,
    /// Decoded frames, cached: a looped replay must not spend the CPU the pipeline needs
    /// on decoding the same JPEG again (a camera delivers decoded frames too).
    cache: Vec<Option<RgbImage>>,
    index: usize,
    looped: bool,
    period: Option<Duration>,
    next_due: Option<Instant>,
    max_side: u32,
    seq: u64,
    desc: String,
}

impl ReplaySource {
    /// `path`: a folder (its .jpg/.jpeg/.png/.webp files, sorted by name), a numbered
    /// pattern with one printf-style `%d`/`%0Nd` (files from 0 or 1 until one is
    /// missing), or one image file. `fps` 0 delivers frames as fast as asked.
    pub fn open(
        path: &Path,
        fps: f32,
        looped: bool,
        max_side: u32,
    ) -> Result<ReplaySource, FrameError> {
        let files = list_frames(path)?;
        let period = (fps > 0.0).then(|| Duration::from_secs_f32(1.0 / fps));
        let desc = format!(
            "replay of {} ({} frames, {} fps, {})",
            path.display(),
            files.len(),
            fps,
            if looped { "looped" } else { "once" }
        );
        Ok(ReplaySource {
            cache: vec![None; files.len()],
            files,
            index: 0,
            looped,
            period,
            next_due: None,
            max_side,
            seq: 0,
            desc,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("jpg" | "jpeg" | "png" | "webp")
    )
}

/// The frame files a replay path names (see [`ReplaySource::open`]).
pub fn list_frames(path: &Path) -> Result<Vec<PathBuf>, FrameError> {
    let err = |reason: String| FrameError::Replay {
        path: path.to_path_buf(),
        reason,
    };
    let text = path.to_string_lossy();
    if let Some(pos) = text.find('%') {
        let rest = &text[pos + 1..];
        let d = rest
            .find('d')
            .ok_or_else(|| err("a numbered pattern needs %d or %0Nd".into()))?;
        // `%04d` pads to 4 digits, `%d` not at all.
        let width: usize = if d == 0 {
            0
        } else {
            rest[..d]
                .parse()
                .map_err(|_| err("a numbered pattern needs %d or %0Nd".into()))?
        };
        let (pre, post) = (&text[..pos], &rest[d + 1..]);
        let name = |i: usize| PathBuf::from(format!("{pre}{i:0width$}{post}"));
        let start = if name(0).exists() { 0 } else { 1 };
        let files: Vec<PathBuf> = (start..).map(name).take_while(|p| p.exists()).collect();
        if files.is_empty() {
            return Err(err("no file matches the pattern".into()));
        }
        return Ok(files);
    }
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| err(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(err("the folder holds no .jpg/.png/.webp images".into()));
    }
    Ok(files)
}

impl FrameSource for ReplaySource {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.index >= self.files.len() {
            if !self.looped || self.files.is_empty() {
                return Ok(None);
            }
            self.index = 0;
        }
        if let Some(period) = self.period {
            let now = Instant::now();
            let due = self.next_due.unwrap_or(now);
            if due > now {
                std::thread::sleep(due - now);
            }
            // Never try to "catch up" after a stall: a camera does not either.
            self.next_due = Some(due.max(now) + period);
        }
        let i = self.index;
        self.index += 1;
        let image = match &self.cache[i] {
            Some(img) => img.clone(),
            None => {
                let path = &self.files[i];
                let img =
                    models::image_io::decode_file(path, &models::image_io::DecodeLimits::default())
                        .map_err(|source| FrameError::Decode {
                            path: path.clone(),
                            source,
                        })?;
                let img = fit(img, self.max_side);
                self.cache[i] = Some(img.clone());
                img
            }
        };
        self.seq += 1;
        let label = self.files[i]
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Some(Frame {
            image,
            seq: self.seq,
            captured: Instant::now(),
            label,
        }))
    }

    fn describe(&self) -> String {
        self.desc.clone()
    }
}

/// The real camera (V4L2 through nokhwa). nokhwa's camera is not `Send`, so it lives on a
/// thread of its own that hands frames over a one-slot channel.
#[cfg(feature = "camera")]
pub struct CameraSource {
    rx: std::sync::mpsc::Receiver<Result<Frame, String>>,
    stop: Arc<AtomicBool>,
    desc: String,
}

#[cfg(feature = "camera")]
fn open_camera(index: u32, width: u32, height: u32, fps: f32) -> Result<nokhwa::Camera, String> {
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{
        CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
    };
    let devices = nokhwa::query(nokhwa::utils::ApiBackend::Video4Linux).unwrap_or_default();
    if devices.is_empty() {
        return Err("no camera found (no V4L2 video device); use the replay source (source.kind = \"replay\")".into());
    }
    let format =
        RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(CameraFormat::new(
            Resolution::new(width, height),
            FrameFormat::MJPEG,
            fps.round().max(1.0) as u32,
        )));
    let mut camera = nokhwa::Camera::new(CameraIndex::Index(index), format)
        .map_err(|e| format!("could not open camera {index}: {e}"))?;
    camera
        .open_stream()
        .map_err(|e| format!("could not start camera {index}: {e}"))?;
    Ok(camera)
}

#[cfg(feature = "camera")]
fn camera_frame(camera: &mut nokhwa::Camera, seq: u64, max_side: u32) -> Result<Frame, String> {
    use nokhwa::pixel_format::RgbFormat;
    let buf = camera.frame().map_err(|e| e.to_string())?;
    let img = buf.decode_image::<RgbFormat>().map_err(|e| e.to_string())?;
    let img = RgbImage::from_raw(img.width(), img.height(), img.into_raw())
        .ok_or("frame buffer of the wrong size")?;
    Ok(Frame {
        image: fit(img, max_side),
        seq,
        captured: Instant::now(),
        label: String::new(),
    })
}

#[cfg(feature = "camera")]
impl CameraSource {
    pub fn open(
        index: u32,
        width: u32,
        height: u32,
        fps: f32,
        max_side: u32,
    ) -> Result<CameraSource, FrameError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::Builder::new()
            .name("camera".into())
            .spawn(move || {
                let mut camera = match open_camera(index, width, height, fps) {
                    Ok(c) => {
                        let _ =
                            ready_tx.send(Ok(format!("camera {index} ({})", c.camera_format())));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut seq = 0;
                while !st.load(Ordering::Relaxed) {
                    seq += 1;
                    let f = camera_frame(&mut camera, seq, max_side);
                    let failed = f.is_err();
                    if tx.send(f).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| FrameError::Camera(e.to_string()))?;
        let desc = ready_rx
            .recv()
            .map_err(|_| FrameError::Camera("the camera thread ended".into()))?
            .map_err(FrameError::Camera)?;
        Ok(CameraSource { rx, stop, desc })
    }
}

#[cfg(feature = "camera")]
impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match self.rx.recv() {
            Ok(Ok(f)) => Ok(Some(f)),
            Ok(Err(e)) => Err(FrameError::Camera(e)),
            Err(_) => Ok(None),
        }
    }

    fn describe(&self) -> String {
        self.desc.clone()
    }
}

#[cfg(feature = "camera")]
impl Drop for CameraSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens the configured source.
pub fn open_source(cfg: &crate::config::SourceConfig) -> Result<Box<dyn FrameSource>, FrameError> {
    match cfg.kind {
        crate::config::SourceKind::Replay => {
            let path = cfg.replay.as_ref().ok_or_else(|| FrameError::Replay {
                path: PathBuf::new(),
                reason: "source.replay is not set (a folder, numbered pattern or image)".into(),
            })?;
            Ok(Box::new(ReplaySource::open(path, cfg.fps, cfg.looped, cfg.max_side)?))
        }
        #[cfg(feature = "camera")]
        crate::config::SourceKind::Camera => {
            Ok(Box::new(CameraSource::open(cfg.camera_index, cfg.width, cfg.height, cfg.fps, cfg.max_side)?))
        }
        #[cfg(not(feature = "camera"))]
        crate::config::SourceKind::Camera => Err(FrameError::Camera(
            "this kiosk was built without camera support; rebuild with `--features camera` (needs libclang-dev) or use the replay source".into(),
        )),
    }
}

#[derive(Default)]
struct Slot {
    frame: Option<Frame>,
    ended: bool,
    error: Option<String>,
}

/// Runs a source on its own thread, keeping only the newest frame.
pub struct Grabber {
    shared: Arc<(Mutex<Slot>, Condvar)>,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// What [`Grabber::next`] returns.
pub enum Grabbed {
    Frame(Frame),
    Ended,
    Failed(String),
}

impl Grabber {
    /// With `lockstep`, the grabber waits until its frame was taken (no drops): for
    /// benchmarks and tests that must see every frame of an unpaced replay.
    pub fn spawn(mut source: Box<dyn FrameSource>, lockstep: bool) -> Grabber {
        let shared = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
        let dropped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, d, st) = (shared.clone(), dropped.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("frames".into())
            .spawn(move || {
                let (lock, cv) = &*s;
                while !st.load(Ordering::Relaxed) {
                    let next = source.next_frame();
                    let Ok(mut slot) = lock.lock() else { return };
                    match next {
                        Ok(Some(f)) => {
                            if lockstep {
                                while slot.frame.is_some() && !st.load(Ordering::Relaxed) {
                                    slot = match cv.wait_timeout(slot, Duration::from_millis(100)) {
                                        Ok((g, _)) => g,
                                        Err(_) => return,
                                    };
                                }
                            }
                            if slot.frame.replace(f).is_some() {
                                d.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(None) => {
                            slot.ended = true;
                            cv.notify_all();
                            return;
                        }
                        Err(e) => {
                            slot.error = Some(e.to_string());
                            cv.notify_all();
                            return;
                        }
                    }
                    cv.notify_all();
                }
            })
            .ok();
        Grabber {
            shared,
            dropped,
            stop,
            handle,
        }
    }

    /// Waits up to `timeout` for a frame newer than the last one taken.
    pub fn next(&self, timeout: Duration) -> Option<Grabbed> {
        let (lock, cv) = &*self.shared;
        let mut slot = lock.lock().ok()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(f) = slot.frame.take() {
                cv.notify_all();
                return Some(Grabbed::Frame(f));
            }
            if let Some(e) = slot.error.take() {
                return Some(Grabbed::Failed(e));
            }
            if slot.ended {
                return Some(Grabbed::Ended);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            slot = cv.wait_timeout(slot, deadline - now).ok()?.0;
        }
    }

    /// Frames replaced before anyone took them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Grabber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.shared.1.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Writes `frames` JPEG frames of `photo` with a slow camera drift into `out_dir`
/// (`0001.jpg`...), cropped to a 4:3 frame of `width` pixels around the photo's centre
/// region `focus` (or the whole photo). With `still`, every frame is the same image.
pub fn synthesize_motion(
    photo: &RgbImage,
    frames: usize,
    width: u32,
    still: bool,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let (pw, ph) = (photo.width() as f32, photo.height() as f32);
    // A 4:3 window covering most of the photo's width, from its upper part (portraits
    // have the face there), as a camera framing a head and shoulders would.
    let win_w = pw.min(ph * 4.0 / 3.0) * 0.9;
    let win_h = win_w * 3.0 / 4.0;
    let cx = pw / 2.0;
    let cy = (win_h / 2.0 + ph * 0.05).min(ph - win_h / 2.0);
    let height = (width as f32 * 3.0 / 4.0).round() as u32;
    let dynamic = image::DynamicImage::ImageRgb8(photo.clone());
    let mut out = Vec::with_capacity(frames);
    for i in 0..frames {
        let t = if still { 0.0 } else { i as f32 };
        // Smooth drift: ±2% of the window sideways, ±1% up and down, ±2% zoom.
        let dx = (t * 0.7).sin() * win_w * 0.02;
        let dy = (t * 0.45).cos() * win_h * 0.01 - win_h * 0.01;
        let zoom = 1.0 + (t * 0.3).sin() * 0.02;
        let (w, h) = (win_w / zoom, win_h / zoom);
        let left = (cx + dx - w / 2.0).clamp(0.0, (pw - w).max(0.0));
        let top = (cy + dy - h / 2.0).clamp(0.0, (ph - h).max(0.0));
        let frame = dynamic
            .crop_imm(left as u32, top as u32, w as u32, h as u32)
            .resize_exact(width, height, image::imageops::FilterType::Triangle);
        let path = out_dir.join(format!("{:04}.jpg", i + 1));
        frame
            .save(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_frames(dir: &Path, n: usize) {
        for i in 1..=n {
            let img = RgbImage::from_pixel(32, 24, image::Rgb([i as u8 * 10, 0, 0]));
            img.save(dir.join(format!("{i:03}.png"))).unwrap();
        }
    }

    #[test]
    fn folders_patterns_and_files() {
        let dir = tempfile::tempdir().unwrap();
        write_frames(dir.path(), 3);
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert_eq!(list_frames(dir.path()).unwrap().len(), 3);
        assert_eq!(list_frames(&dir.path().join("%03d.png")).unwrap().len(), 3);
        assert_eq!(list_frames(&dir.path().join("002.png")).unwrap().len(), 1);
        assert!(list_frames(&dir.path().join("%03d.jpg")).is_err());
        assert!(list_frames(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn replay_once_ends_and_looped_goes_round() {
        let dir = tempfile::tempdir().unwrap();
        write_frames(dir.path(), 2);
        let mut once = ReplaySource::open(dir.path(), 0.0, false, 0).unwrap();
        assert!(once.next_frame().unwrap().is_some());
        assert!(once.next_frame().unwrap().is_some());
        assert!(once.next_frame().unwrap().is_none());
        let mut looped = ReplaySource::open(dir.path(), 0.0, true, 16).unwrap();
        let labels: Vec<String> = (0..5)
            .map(|_| looped.next_frame().unwrap().unwrap().label)
            .collect();
        assert_eq!(
            labels,
            ["001.png", "002.png", "001.png", "002.png", "001.png"]
        );
        let f = looped.next_frame().unwrap().unwrap();
        assert_eq!(
            (f.image.width(), f.image.height()),
            (16, 12),
            "scaled to max_side"
        );
    }

    #[test]
    fn a_broken_frame_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("001.jpg"), b"not a jpeg").unwrap();
        let mut s = ReplaySource::open(dir.path(), 0.0, false, 0).unwrap();
        assert!(matches!(s.next_frame(), Err(FrameError::Decode { .. })));
    }

    #[test]
    fn the_grabber_drops_frames_when_the_consumer_is_slow() {
        let dir = tempfile::tempdir().unwrap();
        write_frames(dir.path(), 5);
        // Unpaced and not lockstep: the source outruns a consumer that sleeps.
        let src = ReplaySource::open(dir.path(), 200.0, false, 0).unwrap();
        let g = Grabber::spawn(Box::new(src), false);
        std::thread::sleep(Duration::from_millis(100));
        let mut got = 0;
        loop {
            match g.next(Duration::from_secs(2)) {
                Some(Grabbed::Frame(_)) => got += 1,
                Some(Grabbed::Ended) => break,
                other => panic!("unexpected {:?}", other.is_some()),
            }
        }
        assert!((1..5).contains(&got), "got {got}");
        assert_eq!(got as u64 + g.dropped(), 5);

        let src = ReplaySource::open(dir.path(), 0.0, false, 0).unwrap();
        let g = Grabber::spawn(Box::new(src), true);
        std::thread::sleep(Duration::from_millis(50));
        let mut got = 0;
        while let Some(Grabbed::Frame(_)) = g.next(Duration::from_secs(2)) {
            got += 1;
        }
        assert_eq!(got, 5, "lockstep sees every frame");
    }

    #[test]
    fn synthesized_motion_moves_and_still_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let photo = RgbImage::from_fn(400, 500, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        let moving = synthesize_motion(&photo, 3, 160, false, &dir.path().join("m")).unwrap();
        let still = synthesize_motion(&photo, 3, 160, true, &dir.path().join("s")).unwrap();
        let read = |p: &PathBuf| std::fs::read(p).unwrap();
        assert_ne!(read(&moving[0]), read(&moving[1]));
        assert_eq!(read(&still[0]), read(&still[2]));
    }
}
