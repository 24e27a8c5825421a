//! Photo enrolment: turns an uploaded photo into a face embedding with the `models` crate's
//! face pipeline, or a reason the photo was refused. The HTTP route (`api::faces`) checks the
//! person and consent, then stores the embedding exactly as `add_template` does.
//!
//! The models are optional for the backend: everything else runs without them, so the pipeline
//! is loaded on the first photo (and retried on later ones until it loads, so running
//! `scripts/setup-models.sh` after start needs no restart). A `models::Pipeline` needs `&mut`
//! for every run and is CPU-bound; there is one per process behind a mutex, used only from
//! blocking threads. Photo enrolment is a rare manager action, so one is enough, and decoding
//! under the same lock bounds memory to one decoded photo at a time.

use crate::config::Config;
use models::image_io::{decode, DecodeLimits};
use models::pipeline::{Faces, Pipeline, PipelineConfig};
use models::quality::{QualityPolicy, QualityProblem, QualityReport};
use models::runtime::RuntimeOptions;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// Largest photo body the route accepts (a phone's full-resolution JPEG is 3-8 MB).
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;

/// Another face at least this fraction of the main face's box area makes the photo ambiguous:
/// which of the two people is being enrolled?
const SECOND_FACE_AREA_RATIO: f32 = 0.5;

/// The face of an accepted photo.
#[derive(Debug, Clone)]
pub struct PhotoFace {
    pub embedding: Vec<f32>,
    pub quality: QualityReport,
    pub detection_score: f32,
    /// Every face the detector found (the enrolled one included).
    pub faces_detected: usize,
}

/// Why a photo gave no embedding.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// The models could not be loaded; says to run `scripts/setup-models.sh`.
    #[error("{}", unavailable_message(.0))]
    Unavailable(String),
    #[error("{0}")]
    BadImage(String),
    #[error("no face found in the photo")]
    NoFace,
    #[error(
        "the photo shows {count} faces and another is nearly as large as the main one; \
         crop it to the person being enrolled"
    )]
    SeveralFaces { count: usize },
    #[error("the photo is not good enough to enrol: {}", describe_problems(.report, .policy))]
    PoorQuality {
        report: QualityReport,
        policy: QualityPolicy,
    },
    #[error("face pipeline: {0}")]
    Pipeline(String),
}

/// The process's face pipeline for photos, loaded on first use.
pub struct FacePipeline {
    config: PipelineConfig,
    slot: Mutex<Option<Pipeline>>,
}

impl FacePipeline {
    pub fn new(cfg: &Config) -> FacePipeline {
        FacePipeline {
            config: PipelineConfig {
                model_dir: cfg.models_dir.clone(),
                runtime: RuntimeOptions {
                    intra_threads: cfg.face_threads,
                    ..RuntimeOptions::default()
                },
                // An uploaded photo is a photo by design, so liveness could only refuse good
                // ones; not loading its two models also saves memory and start-up time.
                liveness: false,
                // The default detector and quality policy are the ones for enrolment photos.
                ..PipelineConfig::default()
            },
            slot: Mutex::new(None),
        }
    }

    /// Where the models would be loaded from, if a manifest is there (read, not verified:
    /// cheap enough for start-up, where a missing directory is worth a warning).
    pub fn probe(&self) -> Result<PathBuf, String> {
        let dir = match &self.config.model_dir {
            Some(d) => d.clone(),
            None => models::manifest::locate_model_dir().map_err(|e| e.to_string())?,
        };
        models::manifest::Manifest::load(&dir).map_err(|e| e.to_string())?;
        Ok(dir)
    }

    /// Decodes `bytes` and returns the embedding of its main face, or why not. Blocking and
    /// CPU-bound: call it from `spawn_blocking`.
    pub fn enrol_photo(&self, bytes: &[u8]) -> Result<PhotoFace, PhotoError> {
        let mut slot = self.lock();
        if slot.is_none() {
            let loaded = Pipeline::load(self.config.clone()).map_err(|e| {
                tracing::warn!(error = %e, "face pipeline for photo enrolment not loaded");
                PhotoError::Unavailable(e.to_string())
            })?;
            tracing::info!(dir = %loaded.paths().dir.display(), "face pipeline for photo enrolment loaded");
            *slot = Some(loaded);
        }
        let Some(pipeline) = slot.as_mut() else {
            return Err(PhotoError::Pipeline("not loaded".into()));
        };
        let limits = DecodeLimits {
            max_input_bytes: MAX_PHOTO_BYTES as u64,
            ..DecodeLimits::default()
        };
        let image = decode(bytes, &limits).map_err(|e| PhotoError::BadImage(e.to_string()))?;
        let analysis = pipeline
            .analyze(&image, Faces::Main)
            .map_err(|e| PhotoError::Pipeline(e.to_string()))?;
        drop(slot);

        // A detection whose landmarks failed is not analysed: no usable face either.
        let Some(face) = analysis.faces.into_iter().next() else {
            return Err(PhotoError::NoFace);
        };
        let main_area = face.detection.rect.area();
        let rival = analysis
            .detections
            .iter()
            .filter(|d| **d != face.detection)
            .any(|d| d.rect.area() >= SECOND_FACE_AREA_RATIO * main_area);
        if rival {
            return Err(PhotoError::SeveralFaces {
                count: analysis.detections.len(),
            });
        }
        if !face.quality.problems.is_empty() {
            return Err(PhotoError::PoorQuality {
                report: face.quality,
                policy: self.config.quality.clone(),
            });
        }
        Ok(PhotoFace {
            embedding: face.embedding.to_vec(),
            quality: face.quality,
            detection_score: face.detection.score,
            faces_detected: analysis.detections.len(),
        })
    }

    /// The pipeline slot. A panic while it was held (a bug, not bad input) may have left the
    /// pipeline half-way through a run: drop it and load afresh rather than refuse forever.
    fn lock(&self) -> MutexGuard<'_, Option<Pipeline>> {
        match self.slot.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                self.slot.clear_poison();
                let mut g = poisoned.into_inner();
                *g = None;
                g
            }
        }
    }
}

fn unavailable_message(cause: &str) -> String {
    let hint = if cause.contains("scripts/setup-models.sh") {
        ""
    } else {
        "; run scripts/setup-models.sh"
    };
    format!("photo enrolment is unavailable, the face models could not be loaded: {cause}{hint}")
}

/// Each problem of `report` by its stable name, with what was measured against the limit.
fn describe_problems(report: &QualityReport, p: &QualityPolicy) -> String {
    report
        .problems
        .iter()
        .map(|problem| {
            let detail = match problem {
                QualityProblem::TooSmall => format!(
                    "the face is too small, eyes {:.0} px apart, at least {:.0} needed",
                    report.eye_distance_px, p.min_eye_distance_px
                ),
                QualityProblem::Blurry => format!(
                    "blurred, sharpness {:.0}, at least {:.0} needed",
                    report.sharpness, p.min_sharpness
                ),
                QualityProblem::Tilted => format!(
                    "the head is tilted {:.0} degrees, at most {:.0} allowed",
                    report.roll_deg.abs(),
                    p.max_roll_deg
                ),
                QualityProblem::TurnedAway => format!(
                    "the face is turned away (yaw {:.2}, at most {:.2} allowed)",
                    report.yaw.abs(),
                    p.max_yaw
                ),
                QualityProblem::TooDark => format!(
                    "too dark, brightness {:.0}, at least {:.0} needed",
                    report.brightness, p.min_brightness
                ),
                QualityProblem::TooBright => format!(
                    "over-exposed, brightness {:.0}, at most {:.0} allowed",
                    report.brightness, p.max_brightness
                ),
                QualityProblem::LowContrast => format!(
                    "too little contrast, {:.0}, at least {:.0} needed",
                    report.contrast, p.min_contrast
                ),
            };
            format!("{} ({detail})", problem_name(*problem))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The problem's stable name (its serde name in the `models` crate).
fn problem_name(p: QualityProblem) -> &'static str {
    match p {
        QualityProblem::TooSmall => "too_small",
        QualityProblem::Blurry => "blurry",
        QualityProblem::Tilted => "tilted",
        QualityProblem::TurnedAway => "turned_away",
        QualityProblem::TooDark => "too_dark",
        QualityProblem::TooBright => "too_bright",
        QualityProblem::LowContrast => "low_contrast",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_problems_are_named_with_their_measures() {
        let report = QualityReport {
            eye_distance_px: 12.4,
            sharpness: 10.0,
            roll_deg: -3.0,
            yaw: 0.0,
            brightness: 30.0,
            contrast: 40.0,
            score: 0.1,
            problems: vec![
                QualityProblem::TooSmall,
                QualityProblem::Blurry,
                QualityProblem::TooDark,
            ],
        };
        let text = PhotoError::PoorQuality {
            report,
            policy: QualityPolicy::default(),
        }
        .to_string();
        assert!(
            text.contains(
                "too_small (the face is too small, eyes 12 px apart, at least 30 needed)"
            ),
            "{text}"
        );
        assert!(
            text.contains("blurry") && text.contains("too_dark"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_model_directory_is_unavailable_not_a_panic() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = Config {
            models_dir: Some(dir.path().to_path_buf()),
            ..Config::default()
        };
        let fp = FacePipeline::new(&cfg);
        assert!(fp.probe().is_err());
        let err = fp.enrol_photo(b"not even an image").expect_err("no models");
        assert!(
            matches!(&err, PhotoError::Unavailable(m) if m.contains("setup-models")),
            "{err}"
        );
    }
}
