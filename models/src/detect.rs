//! Face detection with MediaPipe's BlazeFace (front-camera model, 128x128 input): boxes,
//! six keypoints and a score per face.
//!
//! The model is made for faces that fill a good part of its input (a selfie), so a photo
//! with small faces (a group photo, a distant diner) is searched as a pyramid of
//! overlapping square tiles; detections from all tiles are merged with MediaPipe's
//! weighted non-maximum suppression. A kiosk frame with one close face needs only the
//! first level (`DetectorConfig::kiosk`).

use std::path::Path;

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use crate::geometry::{Point, Rect};
use crate::resample::Resampler;
use crate::runtime::Runtime;
use crate::Result;

/// The model's input side.
pub const INPUT_SIZE: usize = 128;

/// Indices into [`Detection::keypoints`]. "Right" is the subject's right, which is on
/// the image's left for a face looking at the camera.
pub mod keypoint {
    pub const RIGHT_EYE: usize = 0;
    pub const LEFT_EYE: usize = 1;
    pub const NOSE_TIP: usize = 2;
    pub const MOUTH: usize = 3;
    pub const RIGHT_EAR: usize = 4;
    pub const LEFT_EAR: usize = 5;
}

/// One face found in an image, in the image's pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Detection {
    pub rect: Rect,
    pub score: f32,
    pub keypoints: [Point; 6],
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DetectorConfig {
    /// Minimum sigmoid score. BlazeFace scored two dog faces 0.53-0.59 in our tests;
    /// real faces at a good scale score above 0.8.
    pub score_threshold: f32,
    /// Minimum score for faces found in the pyramid's smaller tiles. Stricter than
    /// `score_threshold` because dozens of tiles give dozens of chances to mistake a
    /// mirror or a knot in wood for a small face (a motorcycle mirror scored 0.79); the
    /// small real faces of our group photos score above 0.9.
    pub tile_score_threshold: f32,
    /// Detections overlapping more than this are merged.
    pub iou_threshold: f32,
    /// The smallest face (box side, pixels) worth searching for; with
    /// `min_face_fraction` it sets how many pyramid levels run. `f32::INFINITY` runs only
    /// the whole-image pass.
    pub min_face_px: f32,
    /// ... and the smallest face as a fraction of the image's shorter side: the larger of
    /// the two applies, so a 20-megapixel portrait is not searched for 40-pixel faces.
    pub min_face_fraction: f32,
    /// At most this many faces are returned (the highest scores).
    pub max_faces: usize,
}

impl Default for DetectorConfig {
    /// For photos (enrolment, the `faces` CLI): search down to 40-pixel faces.
    fn default() -> Self {
        DetectorConfig {
            score_threshold: 0.75,
            tile_score_threshold: 0.85,
            iou_threshold: 0.3,
            min_face_px: 40.0,
            min_face_fraction: 0.08,
            max_faces: 64,
        }
    }
}

impl DetectorConfig {
    /// For a kiosk camera: one whole-frame pass, since the diner stands close.
    pub fn kiosk() -> Self {
        DetectorConfig {
            min_face_px: f32::INFINITY,
            max_faces: 8,
            ..Default::default()
        }
    }
}

/// A faces of a side below this fraction of the tile are not reliably found by the front
/// model; it sets the pyramid's step.
const SMALLEST_FACE_IN_TILE: f32 = 0.12;

/// BlazeFace on ONNX Runtime. Not `Sync`: one per thread (ONNX Runtime runs need
/// `&mut`), build it once and reuse it.
pub struct Detector {
    session: Session,
    anchors: Vec<Point>,
    config: DetectorConfig,
    input: Vec<f32>,
    resampler: Resampler,
}

/// A raw candidate from one tile, before merging.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    det: Detection,
}

impl Detector {
    pub fn new(runtime: &Runtime, model: &Path, config: DetectorConfig) -> Result<Detector> {
        let session = runtime.session(model)?;
        Ok(Detector {
            session,
            anchors: anchors(),
            config,
            input: vec![0.0; INPUT_SIZE * INPUT_SIZE * 3],
            resampler: Resampler::new(),
        })
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Finds the faces in `image`, best score first.
    pub fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>> {
        let mut found = Vec::new();
        let (w, h) = (image.width() as f32, image.height() as f32);
        let min_face = self
            .config
            .min_face_px
            .max(self.config.min_face_fraction * w.min(h));
        for (i, (left, top, size)) in tiles(w, h, min_face).into_iter().enumerate() {
            let threshold = if i == 0 {
                self.config.score_threshold
            } else {
                self.config.tile_score_threshold
            };
            self.run_tile(image, left, top, size, threshold, &mut found)?;
        }
        let mut merged = weighted_nms(found, self.config.iou_threshold);
        merged.truncate(self.config.max_faces);
        Ok(merged)
    }

    /// Runs the model on the raw input tensor (NHWC, [-1, 1]): exposed for benchmarks that
    /// compare the pipeline with the bare model run.
    pub fn run_raw(&mut self, input: &[f32]) -> Result<()> {
        let tensor = TensorRef::from_array_view(([1usize, INPUT_SIZE, INPUT_SIZE, 3], input))?;
        let _ = self.session.run(ort::inputs![tensor])?;
        Ok(())
    }

    fn run_tile(
        &mut self,
        image: &RgbImage,
        left: f32,
        top: f32,
        size: f32,
        threshold: f32,
        out: &mut Vec<Candidate>,
    ) -> Result<()> {
        self.resampler
            .sample_square(image, left, top, size, INPUT_SIZE, &mut self.input);
        // [0, 255] to [-1, 1]; a multiplication rather than a division (1 ulp apart, and
        // several times cheaper).
        for v in &mut self.input {
            *v = *v * (1.0 / 127.5) - 1.0;
        }
        let tensor =
            TensorRef::from_array_view(([1usize, INPUT_SIZE, INPUT_SIZE, 3], &self.input[..]))?;
        let outputs = self.session.run(ort::inputs![tensor])?;
        // Outputs: scores of the 16x16x2 and 8x8x6 anchor grids, then their regressors.
        let (_, s16) = outputs[0].try_extract_tensor::<f32>()?;
        let (_, s8) = outputs[1].try_extract_tensor::<f32>()?;
        let (_, r16) = outputs[2].try_extract_tensor::<f32>()?;
        let (_, r8) = outputs[3].try_extract_tensor::<f32>()?;
        let scale = size / INPUT_SIZE as f32;
        let logit_threshold = logit(threshold);
        let scores = s16.iter().chain(s8.iter());
        let regressors = r16.chunks_exact(16).chain(r8.chunks_exact(16));
        for ((anchor, &raw), reg) in self.anchors.iter().zip(scores).zip(regressors) {
            if raw < logit_threshold {
                continue;
            }
            // Offsets are in input pixels relative to the anchor centre.
            let to_image = |dx: f32, dy: f32| {
                Point::new(
                    left + (anchor.x * INPUT_SIZE as f32 + dx) * scale,
                    top + (anchor.y * INPUT_SIZE as f32 + dy) * scale,
                )
            };
            let c = to_image(reg[0], reg[1]);
            let (w, h) = (reg[2] * scale, reg[3] * scale);
            let mut keypoints = [Point::default(); 6];
            for (k, kp) in keypoints.iter_mut().enumerate() {
                *kp = to_image(reg[4 + 2 * k], reg[5 + 2 * k]);
            }
            out.push(Candidate {
                det: Detection {
                    rect: Rect::new(c.x - w / 2.0, c.y - h / 2.0, c.x + w / 2.0, c.y + h / 2.0),
                    score: sigmoid(raw.clamp(-80.0, 80.0)),
                    keypoints,
                },
            });
        }
        Ok(())
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// The 896 anchor centres in [0,1]: a 16x16 grid with 2 anchors per cell, then an 8x8
/// grid with 6, row-major, as the model's outputs are ordered.
fn anchors() -> Vec<Point> {
    let mut v = Vec::with_capacity(896);
    for (cells, per_cell) in [(16usize, 2usize), (8, 6)] {
        for y in 0..cells {
            for x in 0..cells {
                for _ in 0..per_cell {
                    v.push(Point::new(
                        (x as f32 + 0.5) / cells as f32,
                        (y as f32 + 0.5) / cells as f32,
                    ));
                }
            }
        }
    }
    v
}

/// The square tiles (left, top, side) to run: first the whole image letterboxed, then
/// levels of half the previous side with 50% overlap, until faces of `min_face_px`
/// would be found at the current level.
fn tiles(width: f32, height: f32, min_face_px: f32) -> Vec<(f32, f32, f32)> {
    let long = width.max(height);
    let mut out = vec![((width - long) / 2.0, (height - long) / 2.0, long)];
    let mut side = width.min(height);
    if side >= long * 0.75 {
        side = long / 2.0;
    }
    while side * SMALLEST_FACE_IN_TILE * 2.0
        > min_face_px.max(INPUT_SIZE as f32 * SMALLEST_FACE_IN_TILE)
    {
        let positions = |extent: f32| -> Vec<f32> {
            if extent <= side {
                return vec![(extent - side) / 2.0];
            }
            let n = ((extent - side) / (side / 2.0)).ceil() as usize + 1;
            (0..n)
                .map(|i| (extent - side) * i as f32 / (n - 1) as f32)
                .collect()
        };
        for &y in &positions(height) {
            for &x in &positions(width) {
                out.push((x, y, side));
            }
        }
        side /= 2.0;
    }
    out
}

/// MediaPipe's "weighted" non-maximum suppression: each cluster of overlapping
/// candidates becomes one detection whose box and keypoints are the score-weighted mean
/// of the cluster, with the best score. Steadier than keeping only the best box.
fn weighted_nms(mut candidates: Vec<Candidate>, iou_threshold: f32) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.det.score.total_cmp(&a.det.score));
    let mut out = Vec::new();
    let mut used = vec![false; candidates.len()];
    for i in 0..candidates.len() {
        if used[i] {
            continue;
        }
        let best = candidates[i].det;
        let mut total = 0f32;
        let mut rect = [0f32; 4];
        let mut kps = [[0f32; 2]; 6];
        for j in i..candidates.len() {
            if used[j] || best.rect.iou(&candidates[j].det.rect) <= iou_threshold {
                continue;
            }
            used[j] = true;
            let d = &candidates[j].det;
            let w = d.score;
            total += w;
            rect[0] += w * d.rect.left;
            rect[1] += w * d.rect.top;
            rect[2] += w * d.rect.right;
            rect[3] += w * d.rect.bottom;
            for (acc, p) in kps.iter_mut().zip(d.keypoints.iter()) {
                acc[0] += w * p.x;
                acc[1] += w * p.y;
            }
        }
        let mut keypoints = [Point::default(); 6];
        for (k, acc) in keypoints.iter_mut().zip(kps.iter()) {
            *k = Point::new(acc[0] / total, acc[1] / total);
        }
        out.push(Detection {
            rect: Rect::new(
                rect[0] / total,
                rect[1] / total,
                rect[2] / total,
                rect[3] / total,
            ),
            score: best.score,
            keypoints,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_match_the_model_outputs() {
        let a = anchors();
        assert_eq!(a.len(), 512 + 384);
        assert_eq!(a[0], Point::new(0.5 / 16.0, 0.5 / 16.0));
        assert_eq!(a[1], a[0]);
        assert_eq!(a[512], Point::new(0.5 / 8.0, 0.5 / 8.0));
    }

    #[test]
    fn tiles_cover_the_image_and_stop_at_the_smallest_face() {
        // A kiosk frame: only the letterboxed whole.
        assert_eq!(
            tiles(640.0, 480.0, f32::INFINITY),
            vec![(0.0, -80.0, 640.0)]
        );
        // A small LFW photo: faces of 40 px are already found at the whole-image level.
        assert_eq!(tiles(250.0, 250.0, 40.0).len(), 1);
        // A wide group photo gets levels of overlapping tiles that reach the right and
        // bottom edges.
        let t = tiles(1366.0, 768.0, 40.0);
        assert!(t.len() > 5, "{t:?}");
        for &(x, y, s) in &t[1..] {
            assert!(
                x >= 0.0 && y >= 0.0 && x + s <= 1366.0 + 1e-3 && y + s <= 768.0 + 1e-3,
                "{x},{y},{s}"
            );
        }
        assert!(t
            .iter()
            .any(|&(x, _, s)| (x + s - 1366.0).abs() < 1e-3 && s < 768.0));
    }

    #[test]
    fn weighted_nms_merges_overlaps_and_keeps_separate_faces() {
        let det = |x: f32, score: f32| Candidate {
            det: Detection {
                rect: Rect::new(x, 0.0, x + 10.0, 10.0),
                score,
                keypoints: [Point::new(x, 0.0); 6],
            },
        };
        let out = weighted_nms(vec![det(0.0, 0.9), det(1.0, 0.9), det(100.0, 0.8)], 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert!((out[0].rect.left - 0.5).abs() < 1e-5);
        assert_eq!(out[1].rect.left, 100.0);
    }
}
