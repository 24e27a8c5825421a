//! What any front end (the Slint screens, a web view, a test) needs from a running kiosk
//! besides its events: a preview of what the camera sees and a way to give commands.
//!
//! - [`PreviewFrame`]: a downscaled, mirrored copy of each analysed frame with the tracked
//!   face's box and a hint from the quality signals. It goes through a [`Latest`] slot, so a
//!   slow screen gets the newest frame and the rest are dropped, never queued.
//! - [`Command`]: "not me", a pay code typed by a scanner, the mode, the language, a template
//!   capture at the enrolment desk. The run loop reads them between frames.
//!
//! Nothing here knows a UI toolkit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use image::RgbImage;
use models::geometry::Rect;
use models::quality::QualityProblem;

/// Longer side of the preview frames, pixels (a 4:3 camera gives 320x240).
pub const PREVIEW_SIDE: u32 = 320;

/// What the person in front of the camera should do, from the quality signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceHint {
    /// Too small in the picture.
    TooFar,
    TooDark,
    /// Blurred by movement.
    HoldStill,
    /// Turned away, tilted, over-exposed: face the camera.
    Look,
}

impl FaceHint {
    pub fn code(self) -> &'static str {
        match self {
            FaceHint::TooFar => "too_far",
            FaceHint::TooDark => "too_dark",
            FaceHint::HoldStill => "hold_still",
            FaceHint::Look => "look",
        }
    }

    pub fn from_quality(p: QualityProblem) -> FaceHint {
        match p {
            QualityProblem::TooSmall => FaceHint::TooFar,
            QualityProblem::TooDark | QualityProblem::LowContrast => FaceHint::TooDark,
            QualityProblem::Blurry => FaceHint::HoldStill,
            QualityProblem::Tilted | QualityProblem::TurnedAway | QualityProblem::TooBright => {
                FaceHint::Look
            }
        }
    }
}

/// The tracked face in a preview frame, as fractions of the (mirrored) frame.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewFace {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub hint: Option<FaceHint>,
}

/// One frame for the screen: RGB, mirrored (a kiosk is a mirror to the diner).
#[derive(Debug, Clone)]
pub struct PreviewFrame {
    pub image: RgbImage,
    pub face: Option<PreviewFace>,
    /// Counts frames since start (gaps are frames dropped before the screen took them).
    pub seq: u64,
    /// When the camera delivered the frame.
    pub captured: std::time::Instant,
}

impl PreviewFrame {
    /// Downscales and mirrors `frame`, mapping the face box `rect` (frame pixels) too.
    pub fn make(
        frame: &RgbImage,
        rect: Option<&Rect>,
        hint: Option<FaceHint>,
        seq: u64,
        captured: std::time::Instant,
    ) -> PreviewFrame {
        let (w, h) = (frame.width().max(1), frame.height().max(1));
        let scale = PREVIEW_SIDE as f32 / w.max(h) as f32;
        let (pw, ph) = (
            ((w as f32 * scale).round() as u32).max(1),
            ((h as f32 * scale).round() as u32).max(1),
        );
        let small = image::imageops::thumbnail(frame, pw, ph);
        let image = image::imageops::flip_horizontal(&small);
        let face = rect.map(|r| {
            let (fw, fh) = (w as f32, h as f32);
            let x = (r.left / fw).clamp(0.0, 1.0);
            let right = ((r.left + r.width()) / fw).clamp(0.0, 1.0);
            PreviewFace {
                // Mirrored: the right edge becomes the left one.
                x: 1.0 - right,
                y: (r.top / fh).clamp(0.0, 1.0),
                w: right - x,
                h: (r.height() / fh).clamp(0.0, 1.0),
                hint,
            }
        });
        PreviewFrame {
            image,
            face,
            seq,
            captured,
        }
    }
}

/// A one-item mailbox: the producer replaces what the consumer has not taken yet.
pub struct Latest<T> {
    slot: Mutex<Option<T>>,
    dropped: AtomicU64,
}

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Latest {
            slot: Mutex::new(None),
            dropped: AtomicU64::new(0),
        }
    }
}

impl<T> Latest<T> {
    /// Puts `v`; returns true when the slot was empty (the consumer needs waking).
    pub fn put(&self, v: T) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let was_empty = slot.is_none();
        if slot.replace(v).is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        was_empty
    }

    pub fn take(&self) -> Option<T> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Items replaced before they were taken.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What a front end asks of the running kiosk.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// The diner on the paid screen says the charge with this key was not theirs.
    NotMe { charge_key: String },
    /// A pay code read by a scanner (a keyboard device) instead of the camera.
    PayCode(String),
    /// pay, return, both or desk.
    SetMode(crate::config::Mode),
    /// The front end's language (`zh_CN`, `en`), remembered in the events.
    SetLanguage(String),
    /// Enrolment desk: capture the next frame good enough to enrol.
    CaptureTemplate,
    /// The empty tray's weight in grams (the settings screen's tare).
    SetTare(i64),
}

/// Called with every preview frame (from the kiosk's loop thread).
pub type PreviewSink = Box<dyn FnMut(PreviewFrame) + Send>;

/// A front end's side of a running kiosk.
pub struct FrontEnd {
    pub preview: Option<PreviewSink>,
    pub commands: Option<Receiver<Command>>,
}

impl FrontEnd {
    /// The headless kiosk: no preview, no commands.
    pub fn none() -> FrontEnd {
        FrontEnd {
            preview: None,
            commands: None,
        }
    }
}

/// A [`PreviewSink`] that keeps only the newest frame in `slot` and calls `wake` when the
/// slot was empty, so a slow consumer is woken once, however many frames come meanwhile.
pub fn latest_preview(
    slot: Arc<Latest<PreviewFrame>>,
    mut wake: impl FnMut() + Send + 'static,
) -> PreviewSink {
    Box::new(move |frame| {
        if slot.put(frame) {
            wake();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_item_wins_and_drops_are_counted() {
        let l = Latest::default();
        assert!(l.put(1));
        assert!(!l.put(2));
        assert!(!l.put(3));
        assert_eq!(l.take(), Some(3));
        assert_eq!(l.dropped(), 2);
        assert!(l.put(4));
    }

    #[test]
    fn a_preview_is_small_mirrored_and_keeps_the_face_box() {
        let mut frame = RgbImage::from_pixel(640, 480, image::Rgb([0, 0, 0]));
        // A white square on the left of the camera's picture...
        for y in 100..200 {
            for x in 40..140 {
                frame.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        let rect = Rect {
            left: 40.0,
            top: 100.0,
            right: 140.0,
            bottom: 200.0,
        };
        let p = PreviewFrame::make(&frame, Some(&rect), None, 1, std::time::Instant::now());
        assert_eq!((p.image.width(), p.image.height()), (320, 240));
        // ...is on the right of the mirror.
        assert!(p.image.get_pixel(290, 75)[0] > 200);
        assert!(p.image.get_pixel(30, 75)[0] < 50);
        let f = p.face.unwrap();
        assert!((f.x - (1.0 - 140.0 / 640.0)).abs() < 1e-4, "{f:?}");
        assert!((f.w - 100.0 / 640.0).abs() < 1e-4);
    }
}
