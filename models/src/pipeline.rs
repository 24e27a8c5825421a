//! The whole face pipeline on one image: detect → landmarks → align → quality →
//! liveness → embed, with the time each stage took.
//!
//! Sessions are built once in [`Pipeline::load`] (after the manifest's checksums pass)
//! and reused for every image; all per-image buffers are reused too. A `Pipeline` is not
//! `Sync`: give each thread its own.

use std::path::PathBuf;
use std::time::Instant;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::align::{chip_transform, extract_chip, CHIP_PADDING, CHIP_SIZE};
use crate::detect::{Detection, Detector, DetectorConfig};
use crate::embed::{Embedder, Embedding};
use crate::geometry::{Point, Rect};
use crate::landmarks::{DlibRect, ShapePredictor};
use crate::liveness::{Liveness, LivenessScores};
use crate::manifest::{locate_model_dir, verified_paths, ModelPaths};
use crate::quality::{assess, QualityPolicy, QualityReport};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// The model directory; `None` finds `models/dist` (see `manifest::locate_model_dir`).
    pub model_dir: Option<PathBuf>,
    #[serde(skip)]
    pub runtime: RuntimeOptions,
    pub detector: DetectorConfig,
    pub quality: QualityPolicy,
    /// Run the two passive liveness models on each face (about 1 ms per face).
    pub liveness: bool,
    /// How a face's descriptor is made from its chip.
    pub embedding: EmbeddingMode,
}

/// How a face's descriptor is made from its aligned chip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingMode {
    /// One embedder run on the chip.
    Single,
    /// Test-time augmentation: the chip and its mirror image in one batch of two, their
    /// descriptors averaged (a face's two sides vote; twice the embedder's work). The
    /// default: on lfw-A it cut the false rejects at zero false accepts from 55 % to
    /// 51 % and raised rank-1 from 0.936 to 0.944 (BENCHMARKS.md). Templates and probes
    /// must be made the same way: the match policy is calibrated for these.
    #[default]
    Mirrored,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            model_dir: None,
            runtime: RuntimeOptions::default(),
            detector: DetectorConfig::default(),
            quality: QualityPolicy::default(),
            liveness: true,
            embedding: EmbeddingMode::default(),
        }
    }
}

/// Which faces of an image to analyse beyond detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faces {
    /// Every detected face (a group photo).
    All,
    /// Only the main face: the largest, favouring the centre (a kiosk frame, an
    /// enrolment photo).
    Main,
}

/// One analysed face.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Face {
    pub detection: Detection,
    /// dlib's five points (two corners of each eye, the base of the nose), image pixels.
    pub landmarks: [Point; 5],
    pub quality: QualityReport,
    pub liveness: Option<LivenessScores>,
    #[serde(skip)]
    pub embedding: Embedding,
}

/// Microseconds spent in each stage, summed over the faces analysed. Liveness runs
/// alongside landmarks, align, quality and embed (on another thread), so the stages can
/// add up to more than `total_us`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    pub detect_us: u64,
    pub landmarks_us: u64,
    pub align_us: u64,
    pub quality_us: u64,
    pub liveness_us: u64,
    pub embed_us: u64,
    pub total_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub width: u32,
    pub height: u32,
    /// Every face the detector found, best score first (also those not analysed).
    pub detections: Vec<Detection>,
    /// The analysed faces, best score first.
    pub faces: Vec<Face>,
    pub timings: Timings,
}

pub struct Pipeline {
    paths: ModelPaths,
    runtime: Runtime,
    detector: Detector,
    landmarks: ShapePredictor,
    embedder: Embedder,
    liveness: Option<Liveness>,
    config: PipelineConfig,
}

impl Pipeline {
    /// Verifies the model directory against its manifest and builds every session.
    pub fn load(config: PipelineConfig) -> Result<Pipeline> {
        let dir = match &config.model_dir {
            Some(d) => d.clone(),
            None => locate_model_dir()?,
        };
        let paths = verified_paths(&dir)?;
        let runtime = Runtime::load(&paths.onnxruntime, config.runtime.clone())?;
        let detector = Detector::new(&runtime, &paths.detector, config.detector.clone())?;
        let landmarks = ShapePredictor::load(&paths.landmarks)?;
        let embedder = Embedder::new(&runtime, &paths.embedder)?;
        let liveness = if config.liveness {
            Some(Liveness::new(&runtime, &paths.antispoof, &paths.liveness)?)
        } else {
            None
        };
        tracing::debug!(dir = %dir.display(), "face pipeline loaded");
        Ok(Pipeline {
            paths,
            runtime,
            detector,
            landmarks,
            embedder,
            liveness,
            config,
        })
    }

    pub fn paths(&self) -> &ModelPaths {
        &self.paths
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Direct access to the stages, for benchmarks and tools that run them one by one.
    pub fn stages(
        &mut self,
    ) -> (
        &mut Detector,
        &ShapePredictor,
        &mut Embedder,
        Option<&mut Liveness>,
    ) {
        (
            &mut self.detector,
            &self.landmarks,
            &mut self.embedder,
            self.liveness.as_mut(),
        )
    }

    /// Analyses `image`: detection always, the rest for the faces `which` selects.
    pub fn analyze(&mut self, image: &RgbImage, which: Faces) -> Result<Analysis> {
        let start = Instant::now();
        let mut timings = Timings::default();
        let detections = self.detector.detect(image)?;
        timings.detect_us = micros(start);

        let selected: Vec<Detection> = match which {
            Faces::All => detections.clone(),
            Faces::Main => main_face(&detections, image.width(), image.height())
                .into_iter()
                .collect(),
        };

        // Liveness needs only the detector's box, so its two model runs go to a second
        // thread while this one does the landmarks, the chip, the quality measures and
        // the embedding: on a 2-core kiosk ONNX Runtime's liveness work hides behind the
        // embedder's. A scoped thread started per frame rather than rayon's pool: joining
        // from outside the pool moved all of this work onto a pool thread and back (two
        // wake-ups per frame), and when the sleeping worker was slow to wake, the whole
        // frame ran on one core (BENCHMARKS.md, "the overlap that did not happen").
        let Pipeline {
            landmarks,
            liveness,
            embedder,
            config,
            ..
        } = self;
        let mut geometry_and_embedding = |timings: &mut Timings| -> Result<Vec<Face>> {
            let mut faces = Vec::with_capacity(selected.len());
            let mut chips = Vec::with_capacity(selected.len());
            for det in &selected {
                let t = Instant::now();
                // A degenerate box gives no landmarks: that face is detected but not
                // analysed.
                let Some(points) =
                    dlib_box_for(det).and_then(|b| landmarks.predict5(image, b).ok())
                else {
                    continue;
                };
                timings.landmarks_us += micros(t);
                let t = Instant::now();
                let chip = extract_chip(image, &chip_transform(&points, CHIP_SIZE, CHIP_PADDING)?);
                timings.align_us += micros(t);
                let t = Instant::now();
                let quality = assess(&points, &chip, &config.quality);
                timings.quality_us += micros(t);
                faces.push(Face {
                    detection: *det,
                    landmarks: points,
                    quality,
                    liveness: None,
                    embedding: [0.0; 128],
                });
                chips.push(chip);
            }
            let t = Instant::now();
            let embeddings = match config.embedding {
                EmbeddingMode::Single => embedder.embed_batch(&chips)?,
                EmbeddingMode::Mirrored => embedder.embed_mirrored(&chips)?,
            };
            for (face, e) in faces.iter_mut().zip(embeddings) {
                face.embedding = e;
            }
            timings.embed_us = micros(t);
            Ok(faces)
        };
        let faces = match liveness.as_mut() {
            Some(live) if !selected.is_empty() => {
                let selected = &selected;
                let (faces, scores) = std::thread::scope(|s| {
                    let helper = s.spawn(move || {
                        let t = Instant::now();
                        let scores: Result<Vec<(Rect, LivenessScores)>> = selected
                            .iter()
                            .map(|d| Ok((d.rect, live.score(image, &d.rect)?)))
                            .collect();
                        (scores, micros(t))
                    });
                    let faces = geometry_and_embedding(&mut timings);
                    let scores = helper
                        .join()
                        .map_err(|_| crate::Error::Runtime("the liveness thread panicked".into()));
                    (faces, scores)
                });
                let (scores, liveness_us) = scores?;
                timings.liveness_us = liveness_us;
                let scores = scores?;
                let mut faces = faces?;
                for face in &mut faces {
                    face.liveness = scores
                        .iter()
                        .find(|(r, _)| *r == face.detection.rect)
                        .map(|(_, s)| *s);
                }
                faces
            }
            _ => geometry_and_embedding(&mut timings)?,
        };
        timings.total_us = micros(start);
        Ok(Analysis {
            width: image.width(),
            height: image.height(),
            detections,
            faces,
            timings,
        })
    }

    /// dlib's five points for a BlazeFace detection; `None` if the box is degenerate.
    pub fn landmarks_for(&self, image: &RgbImage, det: &Detection) -> Option<[Point; 5]> {
        let rect = dlib_box_for(det)?;
        self.landmarks.predict5(image, rect).ok()
    }
}

/// The box dlib's shape predictor expects for a BlazeFace detection. The predictor was
/// trained on boxes from dlib's HOG detector, which sit differently on the face (lower
/// and a little larger than BlazeFace's), so the box is shifted and scaled by factors
/// fitted on faces where both detectors ran (see `models/tests/fixtures/README.md`).
pub fn dlib_box_for(det: &Detection) -> Option<DlibRect> {
    let side = det.rect.width().max(det.rect.height()) * BOX_SCALE;
    let c = det.rect.center();
    let (cx, cy) = (c.x + BOX_SHIFT_X * side, c.y + BOX_SHIFT_Y * side);
    let r = Rect::new(
        cx - side / 2.0,
        cy - side / 2.0,
        cx + side / 2.0,
        cy + side / 2.0,
    );
    DlibRect::from_rect(&r).filter(|r| r.width() >= 8 && r.height() >= 8)
}

// Fitted mapping from BlazeFace's box to dlib's HOG box (see `dlib_box_for`).
const BOX_SCALE: f32 = 0.9875;
const BOX_SHIFT_X: f32 = -0.034;
const BOX_SHIFT_Y: f32 = -0.068;

/// The largest face, weighted towards the image centre so a passer-by close to the
/// edge does not win over the diner in front of the camera.
pub fn main_face(detections: &[Detection], width: u32, height: u32) -> Option<Detection> {
    let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
    let diag = ((width * width + height * height) as f32).sqrt().max(1.0);
    detections
        .iter()
        .map(|d| {
            let off = d.rect.center().distance(Point::new(cx, cy)) / diag;
            (d.rect.area() * (1.0 - off).max(0.1), d)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, d)| *d)
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(l: f32, t: f32, side: f32) -> Detection {
        Detection {
            rect: Rect::new(l, t, l + side, t + side),
            score: 0.9,
            keypoints: [Point::default(); 6],
        }
    }

    #[test]
    fn the_main_face_is_large_and_central() {
        let centre = det(270.0, 190.0, 100.0);
        let edge = det(0.0, 0.0, 110.0);
        assert_eq!(main_face(&[edge, centre], 640, 480), Some(centre));
        assert_eq!(main_face(&[], 640, 480), None);
    }

    #[test]
    fn a_degenerate_box_gives_no_dlib_box() {
        assert!(dlib_box_for(&det(10.0, 10.0, 2.0)).is_none());
        assert!(dlib_box_for(&det(f32::NAN, 10.0, 50.0)).is_none());
        assert!(dlib_box_for(&det(10.0, 10.0, 50.0)).is_some());
    }
}
