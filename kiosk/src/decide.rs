//! Deciding who stands in front of the kiosk, from one analysed frame after another.
//! Pure logic: the caller runs the face pipeline and the gallery search and hands each
//! frame's result in as a [`FrameObs`]; this state machine tracks the main face across
//! frames (by box overlap or centre distance), and names a person only when several
//! consecutive frames of the same track agree on them, the passive liveness scores pass,
//! and the face moved between frames. When the caller also hands in a way to search the
//! gallery ([`Decider::feed_with`]), the window's embeddings are averaged and the fused
//! embedding is searched under the same match policy: several frames' evidence, not only
//! their votes, so a diner whose single frames each fall just short is still recognised,
//! while any frame taken for somebody else stops the decision. Frames whose quality makes
//! a wrong match likelier (turned away, tilted: `DecisionConfig::unfit`) never enter the
//! evidence: the diner gets a hint instead of a guess. A printed photo held still, or a replayed still
//! frame, gives identical landmarks and pixels frame after frame, and is refused as a
//! photo. Unknown and ambiguous faces are refused with a reason. Once a track produced a
//! decision it stays spent until the face leaves, so one approach is one decision; not
//! charging the same person twice per meal is the pay station's job (see `station`).

use models::embed::Embedding;
use models::geometry::{Point, Rect};
use models::liveness::LivenessScores;
use models::quality::QualityProblem;
use serde::{Deserialize, Serialize};

/// Side of the grey thumbnail compared between frames to detect motion.
pub const PATCH_SIDE: usize = 16;

/// A small grey thumbnail of the face box, for frame-to-frame differences.
#[derive(Debug, Clone, PartialEq)]
pub struct FacePatch(pub Vec<f32>);

impl FacePatch {
    /// Samples the face box of an RGB image into a `PATCH_SIDE`² grey thumbnail (box
    /// average per cell, so sensor noise is smoothed and a still image gives zero).
    pub fn from_image(image: &image::RgbImage, rect: &Rect) -> FacePatch {
        let (w, h) = (image.width() as i64, image.height() as i64);
        let mut out = vec![0f32; PATCH_SIDE * PATCH_SIDE];
        if w == 0 || h == 0 {
            return FacePatch(out);
        }
        let cw = rect.width() / PATCH_SIDE as f32;
        let ch = rect.height() / PATCH_SIDE as f32;
        for cy in 0..PATCH_SIDE {
            for cx in 0..PATCH_SIDE {
                let x0 = (rect.left + cx as f32 * cw).floor() as i64;
                let y0 = (rect.top + cy as f32 * ch).floor() as i64;
                let x1 = ((rect.left + (cx + 1) as f32 * cw).ceil() as i64).max(x0 + 1);
                let y1 = ((rect.top + (cy + 1) as f32 * ch).ceil() as i64).max(y0 + 1);
                let (mut sum, mut n) = (0f32, 0u32);
                // At most 4x4 samples per cell: cheap, and enough to see a face move.
                let sx = ((x1 - x0) / 4).max(1);
                let sy = ((y1 - y0) / 4).max(1);
                let mut y = y0;
                while y < y1 {
                    let mut x = x0;
                    while x < x1 {
                        let p = image.get_pixel(x.clamp(0, w - 1) as u32, y.clamp(0, h - 1) as u32);
                        sum += 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
                        n += 1;
                        x += sx;
                    }
                    y += sy;
                }
                out[cy * PATCH_SIDE + cx] = if n > 0 { sum / n as f32 } else { 0.0 };
            }
        }
        FacePatch(out)
    }

    /// Mean absolute difference in grey levels (0-255).
    pub fn difference(&self, other: &FacePatch) -> f32 {
        if self.0.len() != other.0.len() || self.0.is_empty() {
            return f32::INFINITY;
        }
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / self.0.len() as f32
    }
}

/// What the gallery said about one frame's face.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Identity {
    Match {
        staff_id: i64,
        distance: f32,
        margin: f32,
    },
    Unknown {
        nearest_distance: f32,
    },
    Ambiguous {
        best: i64,
        best_distance: f32,
        second: i64,
        second_distance: f32,
    },
    /// Nobody is enrolled (or the gallery has not synced yet).
    NoGallery,
}

impl Identity {
    pub fn from_decision(d: models::gallery::Decision<i64>) -> Identity {
        use models::gallery::Decision;
        match d {
            Decision::Accepted {
                key,
                distance,
                margin,
                ..
            } => Identity::Match {
                staff_id: key,
                distance,
                margin,
            },
            Decision::Unknown { nearest_distance } => Identity::Unknown { nearest_distance },
            Decision::Ambiguous { best, second } => Identity::Ambiguous {
                best: best.key,
                best_distance: best.distance,
                second: second.key,
                second_distance: second.distance,
            },
            Decision::Empty => Identity::NoGallery,
        }
    }
}

/// The main face of one frame, analysed.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceObs {
    pub rect: Rect,
    pub landmarks: [Point; 5],
    pub liveness: Option<LivenessScores>,
    /// A hint when the face is not good enough to judge ("come closer").
    pub quality_problem: Option<String>,
    pub identity: Identity,
    pub patch: FacePatch,
    /// The face's descriptor, for fusing the evidence of several frames (`None`: vote only).
    pub embedding: Option<Embedding>,
    /// What the pipeline's quality measures found wrong with the face.
    pub quality_problems: Vec<QualityProblem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FrameObs {
    pub face: Option<FaceObs>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecisionConfig {
    /// Consecutive frames of one track that must agree on the same person.
    pub frames_to_agree: usize,
    /// A face continues the track when its box overlaps the last one this much...
    pub track_iou: f32,
    /// ...or its centre moved less than this fraction of the box side.
    pub track_centre: f32,
    /// Frames without a face before the track is lost (a blink of the detector is
    /// forgiven).
    pub lost_after_frames: usize,
    /// Passive liveness: minimum anti-spoof "real" and liveness "live" scores (averaged
    /// over the agreeing frames). Soft signals; see `models::liveness`.
    pub min_real: f32,
    pub min_live: f32,
    /// Motion: a pair of consecutive frames "moved" when the face thumbnail differs by at
    /// least this many grey levels on average...
    pub min_patch_diff: f32,
    /// ...or a landmark moved at least this fraction of the eye distance.
    pub min_landmark_shift: f32,
    /// How many of the `frames_to_agree - 1` pairs must have moved.
    pub min_moving_pairs: usize,
    /// Quality problems that keep a frame out of the evidence (the diner gets the
    /// problem's hint instead): each makes a wrong match likelier.
    pub unfit: Vec<QualityProblem>,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            frames_to_agree: 3,
            track_iou: 0.3,
            track_centre: 0.5,
            lost_after_frames: 2,
            min_real: 0.3,
            min_live: 0.3,
            min_patch_diff: 0.5,
            min_landmark_shift: 0.004,
            min_moving_pairs: 1,
            // Not `Blurry`: the sharpness limit is the enrolment photo's, and it kept 17 of 60
            // replayed approaches from any decision in kiosk-bench (BENCHMARKS.md); it needs a
            // limit measured on kiosk cameras first.
            unfit: vec![QualityProblem::TurnedAway, QualityProblem::Tilted],
        }
    }
}

/// Why a face was not accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    Unknown {
        nearest_distance: f32,
    },
    Ambiguous {
        best: i64,
        second: i64,
        best_distance: f32,
        second_distance: f32,
    },
    /// The same still image frame after frame: a photo, not a person.
    NoMotion,
    /// The passive liveness models judged the face not real or not live.
    NotLive {
        real: f32,
        live: f32,
    },
    NoGallery,
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Unknown { .. } => {
                "face not recognised: please pay with a code or at the desk".into()
            }
            Refusal::Ambiguous { .. } => {
                "not sure who you are: please pay with a code or at the desk".into()
            }
            Refusal::NoMotion => {
                "this looks like a photo: please step in front of the camera yourself".into()
            }
            Refusal::NotLive { .. } => {
                "liveness check failed: please pay with a code or at the desk".into()
            }
            Refusal::NoGallery => "no faces enrolled yet: please pay with a code".into(),
        }
    }

    fn same_kind(&self, other: &Refusal) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Serialised inside `KioskEvent::Face` as `{"event": "face", "face": "identified", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "face", rename_all = "snake_case")]
pub enum FaceEvent {
    /// A new face appeared.
    Approached {
        track: u64,
    },
    /// The face is not good enough to judge yet.
    Hint {
        track: u64,
        message: String,
    },
    /// Decided: this person, with the evidence of the agreeing frames.
    Identified {
        track: u64,
        staff_id: i64,
        distance: f32,
        margin: f32,
        real: f32,
        live: f32,
    },
    Refused {
        track: u64,
        refusal: Refusal,
    },
    /// The face left.
    Left {
        track: u64,
    },
}

struct Track {
    id: u64,
    last_rect: Rect,
    missing: usize,
    window: Vec<FaceObs>,
    /// The person identified on this track: no more decisions for them until it ends.
    spent: Option<i64>,
    last_refusal: Option<Refusal>,
    last_hint: Option<String>,
}

/// The per-kiosk decision state machine.
pub struct Decider {
    config: DecisionConfig,
    track: Option<Track>,
    next_track: u64,
}

impl Decider {
    pub fn new(config: DecisionConfig) -> Self {
        Decider {
            config,
            track: None,
            next_track: 1,
        }
    }

    pub fn config(&self) -> &DecisionConfig {
        &self.config
    }

    /// Forgets the current face (e.g. after a mode switch).
    pub fn reset(&mut self) {
        self.track = None;
    }

    /// Feeds one frame, deciding on the agreeing votes of the window's frames alone;
    /// returns what happened (usually nothing or one event).
    pub fn feed(&mut self, frame: FrameObs) -> Vec<FaceEvent> {
        self.decide(frame, None)
    }

    /// Feeds one frame, deciding on the window's fused embedding as `identify` (the
    /// gallery search under the match policy) judges it; see the module comment.
    pub fn feed_with(
        &mut self,
        frame: FrameObs,
        identify: &dyn Fn(&Embedding) -> Identity,
    ) -> Vec<FaceEvent> {
        self.decide(frame, Some(identify))
    }

    fn decide(
        &mut self,
        frame: FrameObs,
        identify: Option<&dyn Fn(&Embedding) -> Identity>,
    ) -> Vec<FaceEvent> {
        let mut events = Vec::new();
        let Some(face) = frame.face else {
            if let Some(t) = self.track.as_mut() {
                t.missing += 1;
                t.window.clear();
                if t.missing > self.config.lost_after_frames {
                    events.push(FaceEvent::Left { track: t.id });
                    self.track = None;
                }
            }
            return events;
        };

        let continues = self
            .track
            .as_ref()
            .is_some_and(|t| self.same_face(&t.last_rect, &face.rect));
        if !continues {
            if let Some(t) = self.track.take() {
                events.push(FaceEvent::Left { track: t.id });
            }
            let id = self.next_track;
            self.next_track += 1;
            events.push(FaceEvent::Approached { track: id });
            self.track = Some(Track {
                id,
                last_rect: face.rect,
                missing: 0,
                window: Vec::new(),
                spent: None,
                last_refusal: None,
                last_hint: None,
            });
        }
        let n = self.config.frames_to_agree.max(1);
        let cfg = self.config.clone();
        let Some(t) = self.track.as_mut() else {
            return events;
        };
        t.last_rect = face.rect;
        t.missing = 0;
        if let Some(spent_on) = t.spent {
            // The next diner may step into the same spot without the face ever leaving
            // the frame: frames agreeing on someone else start a new approach.
            t.window.push(face);
            if t.window.len() > n {
                t.window.remove(0);
            }
            if t.window.len() < n {
                return events;
            }
            if let Verdict::Identified {
                staff_id,
                distance,
                margin,
                real,
                live,
            } = judge(&t.window, &cfg, identify)
            {
                if staff_id != spent_on {
                    events.push(FaceEvent::Left { track: t.id });
                    let id = self.next_track;
                    self.next_track += 1;
                    t.id = id;
                    t.spent = Some(staff_id);
                    t.window.clear();
                    t.last_refusal = None;
                    events.push(FaceEvent::Approached { track: id });
                    events.push(FaceEvent::Identified {
                        track: id,
                        staff_id,
                        distance,
                        margin,
                        real,
                        live,
                    });
                }
            }
            return events;
        }
        let unfit = face
            .quality_problems
            .iter()
            .find(|p| cfg.unfit.contains(p))
            .map(|p| p.hint().to_string());
        if let Some(hint) = face.quality_problem.clone().or(unfit) {
            t.window.clear();
            if t.last_hint.as_ref() != Some(&hint) {
                t.last_hint = Some(hint.clone());
                events.push(FaceEvent::Hint {
                    track: t.id,
                    message: hint,
                });
            }
            return events;
        }
        t.last_hint = None;
        t.window.push(face);
        if t.window.len() > n {
            t.window.remove(0);
        }
        if t.window.len() < n {
            return events;
        }
        match judge(&t.window, &cfg, identify) {
            Verdict::Wait => {}
            Verdict::Identified {
                staff_id,
                distance,
                margin,
                real,
                live,
            } => {
                t.spent = Some(staff_id);
                t.window.clear();
                events.push(FaceEvent::Identified {
                    track: t.id,
                    staff_id,
                    distance,
                    margin,
                    real,
                    live,
                });
            }
            Verdict::Refused(r) => {
                // Refusals do not spend the track (the person may turn to the camera, or
                // move), but each kind is reported once per track.
                if !t.last_refusal.as_ref().is_some_and(|l| l.same_kind(&r)) {
                    t.last_refusal = Some(r.clone());
                    events.push(FaceEvent::Refused {
                        track: t.id,
                        refusal: r,
                    });
                }
            }
        }
        events
    }

    fn same_face(&self, last: &Rect, now: &Rect) -> bool {
        if last.iou(now) >= self.config.track_iou {
            return true;
        }
        let side = last.width().max(last.height()).max(1.0);
        last.center().distance(now.center()) / side <= self.config.track_centre
    }
}

enum Verdict {
    Wait,
    Identified {
        staff_id: i64,
        distance: f32,
        margin: f32,
        real: f32,
        live: f32,
    },
    Refused(Refusal),
}

/// The mean of the window's embeddings, when every frame has one.
fn fused_embedding(window: &[FaceObs]) -> Option<Embedding> {
    let mut sum = [0f32; models::embed::EMBEDDING_DIM];
    for f in window {
        for (s, v) in sum.iter_mut().zip(f.embedding.as_ref()?) {
            *s += v;
        }
    }
    let n = window.len() as f32;
    Some(sum.map(|s| s / n))
}

/// The verdict on a full window of consecutive frames of one track.
fn judge(
    window: &[FaceObs],
    cfg: &DecisionConfig,
    identify: Option<&dyn Fn(&Embedding) -> Identity>,
) -> Verdict {
    let fused = identify.zip(fused_embedding(window)).map(|(f, e)| f(&e));
    match fused {
        Some(fused) => match judge_fused(window, fused) {
            Ok((staff_id, distance, margin)) => {
                live_and_moving(window, cfg, staff_id, distance, margin)
            }
            Err(v) => v,
        },
        None => judge_votes(window, cfg),
    }
}

/// The fused embedding's identity, checked against every frame's own: a frame taken for
/// somebody else (matched, or best in an ambiguity) makes the window ambiguous whatever
/// the average says. `Ok` is the person, distance and margin to check for liveness.
fn judge_fused(window: &[FaceObs], fused: Identity) -> Result<(i64, f32, f32), Verdict> {
    let frame_best = |f: &FaceObs| match f.identity {
        Identity::Match { staff_id, .. } => Some(staff_id),
        Identity::Ambiguous { best, .. } => Some(best),
        _ => None,
    };
    match fused {
        Identity::Match {
            staff_id,
            distance,
            margin,
        } => {
            if window
                .iter()
                .filter_map(frame_best)
                .any(|other| other != staff_id)
            {
                return Err(ambiguous(window));
            }
            Ok((staff_id, distance, margin))
        }
        Identity::Unknown { nearest_distance } => {
            if window
                .iter()
                .all(|f| matches!(f.identity, Identity::Unknown { .. }))
            {
                Err(Verdict::Refused(Refusal::Unknown { nearest_distance }))
            } else {
                // Some frames were close to someone: keep looking.
                Err(Verdict::Wait)
            }
        }
        Identity::Ambiguous {
            best,
            best_distance,
            second,
            second_distance,
        } => Err(Verdict::Refused(Refusal::Ambiguous {
            best,
            second,
            best_distance,
            second_distance,
        })),
        Identity::NoGallery => Err(Verdict::Refused(Refusal::NoGallery)),
    }
}

/// The verdict from the frames' own identities: all must agree.
fn judge_votes(window: &[FaceObs], cfg: &DecisionConfig) -> Verdict {
    let first = &window[0].identity;
    // Agreement first: mixed identities mean "keep looking".
    let agreed = match first {
        Identity::Match { staff_id, .. } => window
            .iter()
            .all(|f| matches!(f.identity, Identity::Match { staff_id: s, .. } if s == *staff_id)),
        Identity::Unknown { .. } => window
            .iter()
            .all(|f| matches!(f.identity, Identity::Unknown { .. })),
        Identity::Ambiguous { .. } => window.iter().all(|f| {
            matches!(
                f.identity,
                Identity::Ambiguous { .. } | Identity::Match { .. }
            )
        }),
        Identity::NoGallery => window.iter().all(|f| f.identity == Identity::NoGallery),
    };
    if !agreed {
        // A mixture of matches for different people or matches and ambiguities is
        // itself ambiguous once it fills the window.
        if window
            .iter()
            .any(|f| matches!(f.identity, Identity::Ambiguous { .. }))
            && window.iter().all(|f| {
                matches!(
                    f.identity,
                    Identity::Ambiguous { .. } | Identity::Match { .. }
                )
            })
        {
            return ambiguous(window);
        }
        return Verdict::Wait;
    }
    match first {
        Identity::Unknown { .. } => {
            let nearest = window
                .iter()
                .filter_map(|f| match f.identity {
                    Identity::Unknown { nearest_distance } => Some(nearest_distance),
                    _ => None,
                })
                .fold(f32::INFINITY, f32::min);
            return Verdict::Refused(Refusal::Unknown {
                nearest_distance: nearest,
            });
        }
        Identity::NoGallery => return Verdict::Refused(Refusal::NoGallery),
        Identity::Ambiguous { .. } => return ambiguous(window),
        Identity::Match { .. } => {}
    }

    let (mut staff, mut worst_d, mut worst_m) = (0, 0f32, f32::INFINITY);
    for f in window {
        if let Identity::Match {
            staff_id,
            distance,
            margin,
        } = f.identity
        {
            staff = staff_id;
            worst_d = worst_d.max(distance);
            worst_m = worst_m.min(margin);
        }
    }
    live_and_moving(window, cfg, staff, worst_d, worst_m)
}

/// The window names `staff_id`: identified if the face moved and looks live.
fn live_and_moving(
    window: &[FaceObs],
    cfg: &DecisionConfig,
    staff_id: i64,
    distance: f32,
    margin: f32,
) -> Verdict {
    if moving_pairs(window, cfg)
        < cfg
            .min_moving_pairs
            .min(window.len().saturating_sub(1))
            .max(1)
    {
        return Verdict::Refused(Refusal::NoMotion);
    }
    // Passive liveness, averaged: single frames are noisy.
    let scored: Vec<LivenessScores> = window.iter().filter_map(|f| f.liveness).collect();
    let (real, live) = if scored.is_empty() {
        (f32::NAN, f32::NAN)
    } else {
        let n = scored.len() as f32;
        (
            scored.iter().map(|s| s.real).sum::<f32>() / n,
            scored.iter().map(|s| s.live).sum::<f32>() / n,
        )
    };
    if !scored.is_empty() && (real < cfg.min_real || live < cfg.min_live) {
        return Verdict::Refused(Refusal::NotLive { real, live });
    }
    Verdict::Identified {
        staff_id,
        distance,
        margin,
        real,
        live,
    }
}

fn ambiguous(window: &[FaceObs]) -> Verdict {
    for f in window.iter().rev() {
        if let Identity::Ambiguous {
            best,
            best_distance,
            second,
            second_distance,
        } = f.identity
        {
            return Verdict::Refused(Refusal::Ambiguous {
                best,
                second,
                best_distance,
                second_distance,
            });
        }
    }
    // Matches for different people in consecutive frames.
    let ids: Vec<(i64, f32)> = window
        .iter()
        .filter_map(|f| match f.identity {
            Identity::Match {
                staff_id, distance, ..
            } => Some((staff_id, distance)),
            _ => None,
        })
        .collect();
    let (a, b) = match (
        ids.first(),
        ids.iter()
            .find(|(s, _)| Some(*s) != ids.first().map(|f| f.0)),
    ) {
        (Some(a), Some(b)) => (*a, *b),
        _ => ((0, f32::NAN), (0, f32::NAN)),
    };
    Verdict::Refused(Refusal::Ambiguous {
        best: a.0,
        second: b.0,
        best_distance: a.1,
        second_distance: b.1,
    })
}

/// How many consecutive pairs of the window show the face moving.
fn moving_pairs(window: &[FaceObs], cfg: &DecisionConfig) -> usize {
    window
        .windows(2)
        .filter(|p| {
            let (a, b) = (&p[0], &p[1]);
            let patch = a.patch.difference(&b.patch);
            let eye = eye_distance(&a.landmarks).max(1.0);
            let shift = a
                .landmarks
                .iter()
                .zip(&b.landmarks)
                .map(|(p, q)| p.distance(*q))
                .fold(0f32, f32::max)
                / eye;
            patch >= cfg.min_patch_diff || shift >= cfg.min_landmark_shift
        })
        .count()
}

/// dlib's five points: 0-1 one eye's corners, 2-3 the other's, 4 the nose.
fn eye_distance(l: &[Point; 5]) -> f32 {
    let a = Point::new((l[0].x + l[1].x) / 2.0, (l[0].y + l[1].y) / 2.0);
    let b = Point::new((l[2].x + l[3].x) / 2.0, (l[2].y + l[3].y) / 2.0);
    a.distance(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, identity: Identity, jitter: f32) -> FaceObs {
        let rect = Rect::new(x, 100.0, x + 200.0, 300.0);
        let lm = [
            Point::new(x + 150.0 + jitter, 150.0),
            Point::new(x + 120.0, 150.0),
            Point::new(x + 50.0, 150.0),
            Point::new(x + 80.0, 150.0),
            Point::new(x + 100.0, 200.0),
        ];
        FaceObs {
            rect,
            landmarks: lm,
            liveness: Some(LivenessScores {
                real: 0.7,
                live: 0.9,
            }),
            quality_problem: None,
            identity,
            patch: FacePatch(vec![100.0 + jitter * 10.0; PATCH_SIDE * PATCH_SIDE]),
            embedding: None,
            quality_problems: Vec::new(),
        }
    }

    /// A face whose embedding is `value` along the first axis (and zero elsewhere).
    fn embedded(x: f32, identity: Identity, jitter: f32, value: f32) -> FaceObs {
        let mut f = face(x, identity, jitter);
        let mut e = [0f32; 128];
        e[0] = value;
        f.embedding = Some(e);
        f
    }

    /// A one-person gallery at 0 on the first axis, threshold 0.5, margin irrelevant.
    fn gallery_of_7(e: &Embedding) -> Identity {
        let d = e[0].abs();
        if d <= 0.5 {
            Identity::Match {
                staff_id: 7,
                distance: d,
                margin: f32::INFINITY,
            }
        } else {
            Identity::Unknown {
                nearest_distance: d,
            }
        }
    }

    #[test]
    fn fused_frames_recognise_a_diner_no_single_frame_did() {
        // Each frame alone is just outside the threshold (0.55, 0.6, -0.2 + noise); their
        // mean (0.317) is well inside.
        let values = [0.55f32, 0.6, -0.2];
        let unknown = |v: f32| Identity::Unknown {
            nearest_distance: v.abs(),
        };
        let frames: Vec<FaceObs> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let id = if v.abs() <= 0.5 { m(7) } else { unknown(v) };
                embedded(100.0 + i as f32, id, i as f32, v)
            })
            .collect();
        let mut d = Decider::new(DecisionConfig::default());
        let ev: Vec<FaceEvent> = frames
            .iter()
            .flat_map(|f| {
                d.feed_with(
                    FrameObs {
                        face: Some(f.clone()),
                    },
                    &gallery_of_7,
                )
            })
            .collect();
        assert_eq!(identified(&ev), vec![7], "{ev:?}");
        // Voting alone waits: the frames disagree (unknown, unknown, match).
        let mut d = Decider::new(DecisionConfig::default());
        let ev = run(&mut d, frames.into_iter().map(Some).collect());
        assert!(identified(&ev).is_empty(), "{ev:?}");
    }

    #[test]
    fn a_frame_taken_for_someone_else_stops_the_fused_decision() {
        let mut d = Decider::new(DecisionConfig::default());
        let frames = vec![
            embedded(100.0, m(7), 0.0, 0.1),
            embedded(101.0, m(8), 1.0, 0.1),
            embedded(102.0, m(7), 2.0, 0.1),
        ];
        let ev: Vec<FaceEvent> = frames
            .into_iter()
            .flat_map(|f| d.feed_with(FrameObs { face: Some(f) }, &gallery_of_7))
            .collect();
        assert!(identified(&ev).is_empty(), "{ev:?}");
        assert!(ev.iter().any(|e| matches!(
            e,
            FaceEvent::Refused {
                refusal: Refusal::Ambiguous { .. },
                ..
            }
        )));
    }

    #[test]
    fn strangers_are_refused_on_fused_evidence_too() {
        let mut d = Decider::new(DecisionConfig::default());
        let ev: Vec<FaceEvent> = (0..4)
            .map(|i| {
                embedded(
                    100.0 + i as f32,
                    Identity::Unknown {
                        nearest_distance: 0.9,
                    },
                    i as f32,
                    0.9,
                )
            })
            .flat_map(|f| d.feed_with(FrameObs { face: Some(f) }, &gallery_of_7))
            .collect();
        assert!(identified(&ev).is_empty());
        assert!(ev.iter().any(|e| matches!(
            e,
            FaceEvent::Refused {
                refusal: Refusal::Unknown { .. },
                ..
            }
        )));
    }

    #[test]
    fn unfit_frames_get_a_hint_instead_of_a_decision() {
        let mut d = Decider::new(DecisionConfig::default());
        let frames: Vec<Option<FaceObs>> = (0..6)
            .map(|i| {
                let mut f = embedded(100.0 + i as f32, m(7), i as f32, 0.1);
                // Every other frame is turned away: three fit frames never follow each other.
                if i % 2 == 1 {
                    f.quality_problems = vec![QualityProblem::TurnedAway];
                }
                Some(f)
            })
            .collect();
        let ev: Vec<FaceEvent> = frames
            .into_iter()
            .flat_map(|f| d.feed_with(FrameObs { face: f }, &gallery_of_7))
            .collect();
        assert!(identified(&ev).is_empty(), "{ev:?}");
        assert!(ev.iter().any(|e| matches!(
            e,
            FaceEvent::Hint { message, .. } if message == QualityProblem::TurnedAway.hint()
        )));
        // A problem that is not in `unfit` (too dark) does not stop the decision.
        let mut d = Decider::new(DecisionConfig::default());
        let ev: Vec<FaceEvent> = (0..3)
            .map(|i| {
                let mut f = embedded(100.0 + i as f32, m(7), i as f32, 0.1);
                f.quality_problems = vec![QualityProblem::TooDark];
                f
            })
            .flat_map(|f| d.feed_with(FrameObs { face: Some(f) }, &gallery_of_7))
            .collect();
        assert_eq!(identified(&ev), vec![7]);
    }

    fn m(staff_id: i64) -> Identity {
        Identity::Match {
            staff_id,
            distance: 0.3,
            margin: 0.2,
        }
    }

    fn run(d: &mut Decider, faces: Vec<Option<FaceObs>>) -> Vec<FaceEvent> {
        faces
            .into_iter()
            .flat_map(|f| d.feed(FrameObs { face: f }))
            .collect()
    }

    fn identified(ev: &[FaceEvent]) -> Vec<i64> {
        ev.iter()
            .filter_map(|e| match e {
                FaceEvent::Identified { staff_id, .. } => Some(*staff_id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn three_agreeing_moving_frames_identify_once_per_approach() {
        let mut d = Decider::new(DecisionConfig::default());
        let frames = (0..10)
            .map(|i| Some(face(100.0 + i as f32, m(7), i as f32 * 0.5)))
            .collect();
        let ev = run(&mut d, frames);
        assert_eq!(identified(&ev), vec![7], "{ev:?}");
        // Leaving and coming back is a new approach and a new decision.
        let mut frames: Vec<Option<FaceObs>> = vec![None, None, None];
        frames.extend((0..3).map(|i| Some(face(100.0 + i as f32, m(7), i as f32))));
        let ev = run(&mut d, frames);
        assert!(ev.iter().any(|e| matches!(e, FaceEvent::Left { .. })));
        assert_eq!(identified(&ev), vec![7]);
    }

    #[test]
    fn the_next_diner_stepping_into_the_same_spot_is_a_new_decision() {
        let mut d = Decider::new(DecisionConfig::default());
        let mut frames: Vec<Option<FaceObs>> =
            (0..6).map(|i| Some(face(100.0, m(7), i as f32))).collect();
        frames.extend((0..6).map(|i| Some(face(100.0, m(8), i as f32))));
        let ev = run(&mut d, frames);
        assert_eq!(identified(&ev), vec![7, 8], "{ev:?}");
    }

    #[test]
    fn two_frames_are_not_enough_and_disagreement_waits() {
        let mut d = Decider::new(DecisionConfig::default());
        let ev = run(
            &mut d,
            vec![Some(face(100.0, m(7), 0.0)), Some(face(101.0, m(7), 1.0))],
        );
        assert!(identified(&ev).is_empty());
        let mut d = Decider::new(DecisionConfig::default());
        let ev = run(
            &mut d,
            vec![
                Some(face(100.0, m(7), 0.0)),
                Some(face(101.0, m(8), 1.0)),
                Some(face(102.0, m(7), 2.0)),
            ],
        );
        assert!(identified(&ev).is_empty(), "{ev:?}");
    }

    #[test]
    fn a_still_frame_repeated_is_refused_as_a_photo() {
        let mut d = Decider::new(DecisionConfig::default());
        let f = face(100.0, m(7), 0.0);
        let ev = run(&mut d, vec![Some(f.clone()); 20]);
        assert!(identified(&ev).is_empty());
        let refusals: Vec<_> = ev
            .iter()
            .filter(|e| matches!(e, FaceEvent::Refused { .. }))
            .collect();
        assert_eq!(refusals.len(), 1, "reported once: {ev:?}");
        assert!(matches!(
            refusals[0],
            FaceEvent::Refused {
                refusal: Refusal::NoMotion,
                ..
            }
        ));
    }

    #[test]
    fn unknown_and_ambiguous_faces_are_refused_with_a_reason() {
        let mut d = Decider::new(DecisionConfig::default());
        let ev = run(
            &mut d,
            (0..5)
                .map(|i| {
                    Some(face(
                        100.0,
                        Identity::Unknown {
                            nearest_distance: 0.7,
                        },
                        i as f32,
                    ))
                })
                .collect(),
        );
        assert!(ev.iter().any(|e| matches!(
            e,
            FaceEvent::Refused {
                refusal: Refusal::Unknown { .. },
                ..
            }
        )));
        assert!(identified(&ev).is_empty());

        let amb = Identity::Ambiguous {
            best: 1,
            best_distance: 0.4,
            second: 2,
            second_distance: 0.42,
        };
        let mut d = Decider::new(DecisionConfig::default());
        let ev = run(
            &mut d,
            (0..5)
                .map(|i| Some(face(100.0, amb.clone(), i as f32)))
                .collect(),
        );
        assert!(ev.iter().any(|e| matches!(
            e,
            FaceEvent::Refused {
                refusal: Refusal::Ambiguous { .. },
                ..
            }
        )));
        assert!(identified(&ev).is_empty());
    }

    #[test]
    fn failing_passive_liveness_is_refused() {
        let mut d = Decider::new(DecisionConfig::default());
        let frames = (0..5)
            .map(|i| {
                let mut f = face(100.0, m(3), i as f32);
                f.liveness = Some(LivenessScores {
                    real: 0.1,
                    live: 0.9,
                });
                Some(f)
            })
            .collect();
        let ev = run(&mut d, frames);
        assert!(identified(&ev).is_empty());
        assert!(ev.iter().any(|e| matches!(
            e,
            FaceEvent::Refused {
                refusal: Refusal::NotLive { .. },
                ..
            }
        )));
    }

    #[test]
    fn a_jump_to_another_place_is_a_new_face() {
        let mut d = Decider::new(DecisionConfig::default());
        let ev = run(
            &mut d,
            vec![
                Some(face(0.0, m(7), 0.0)),
                Some(face(1.0, m(7), 1.0)),
                Some(face(600.0, m(7), 2.0)),
            ],
        );
        assert!(
            identified(&ev).is_empty(),
            "frames of two tracks must not add up: {ev:?}"
        );
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, FaceEvent::Approached { .. }))
                .count(),
            2
        );
    }

    #[test]
    fn quality_hints_interrupt_agreement() {
        let mut d = Decider::new(DecisionConfig::default());
        let mut small = face(100.0, m(7), 1.0);
        small.quality_problem = Some("come closer to the camera".into());
        let ev = run(
            &mut d,
            vec![
                Some(face(100.0, m(7), 0.0)),
                Some(small),
                Some(face(100.0, m(7), 2.0)),
                Some(face(100.0, m(7), 3.0)),
            ],
        );
        assert!(identified(&ev).is_empty());
        assert!(ev.iter().any(|e| matches!(e, FaceEvent::Hint { .. })));
    }

    #[test]
    fn patch_difference_of_identical_images_is_zero() {
        let img =
            image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 9]));
        let r = Rect::new(8.0, 8.0, 56.0, 56.0);
        let a = FacePatch::from_image(&img, &r);
        assert_eq!(a.difference(&FacePatch::from_image(&img, &r)), 0.0);
        let moved = FacePatch::from_image(&img, &Rect::new(10.0, 8.0, 58.0, 56.0));
        assert!(a.difference(&moved) > 1.0);
        // Boxes partly outside the image do not panic.
        let _ = FacePatch::from_image(&img, &Rect::new(-30.0, -30.0, 100.0, 100.0));
    }
}
