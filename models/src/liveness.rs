//! Passive liveness: two small CNNs from the `@vladmandic/human` package (converted from
//! TF.js by `model-setup`) that look at one face crop and say how "real" and how "live" it
//! looks. They are soft signals that need calibration, not proof: on genuine photos they
//! gave "real" 0.58-0.85 and "live" 0.60-0.997. The kiosk combines them with motion across
//! frames (a printed photo does not move) before trusting a face.
//!
//! Both models take the face crop as Human does: the detector's box, resized to the model's
//! input with values in [0, 1], NHWC.

use std::path::Path;

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use crate::geometry::Rect;
use crate::resample::Resampler;
use crate::runtime::Runtime;
use crate::Result;

const ANTISPOOF_SIZE: usize = 128;
const LIVENESS_SIZE: usize = 32;

/// Scores in [0, 1]; higher means more likely a real, present face.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LivenessScores {
    /// The anti-spoof model's sigmoid "real face" score.
    pub real: f32,
    /// The liveness model's softmax probability of "live".
    pub live: f32,
}

pub struct Liveness {
    antispoof: Session,
    liveness: Session,
    buf_antispoof: Vec<f32>,
    buf_liveness: Vec<f32>,
    /// One per model input size, so each keeps its own tap tables.
    resamplers: [Resampler; 2],
}

impl Liveness {
    pub fn new(runtime: &Runtime, antispoof: &Path, liveness: &Path) -> Result<Liveness> {
        Ok(Liveness {
            antispoof: runtime.session(antispoof)?,
            liveness: runtime.session(liveness)?,
            buf_antispoof: vec![0.0; ANTISPOOF_SIZE * ANTISPOOF_SIZE * 3],
            buf_liveness: vec![0.0; LIVENESS_SIZE * LIVENESS_SIZE * 3],
            resamplers: [Resampler::new(), Resampler::new()],
        })
    }

    /// Scores the face in `face` (a detector box) of `image`.
    pub fn score(&mut self, image: &RgbImage, face: &Rect) -> Result<LivenessScores> {
        let side = face.width().max(face.height());
        let c = face.center();
        let (left, top) = (c.x - side / 2.0, c.y - side / 2.0);
        self.resamplers[0].sample_square(
            image,
            left,
            top,
            side,
            ANTISPOOF_SIZE,
            &mut self.buf_antispoof,
        );
        self.resamplers[1].sample_square(
            image,
            left,
            top,
            side,
            LIVENESS_SIZE,
            &mut self.buf_liveness,
        );
        // To [0, 1]: two loops rather than one over a chain, so each vectorises, and a
        // multiplication rather than a division (1 ulp apart, and several times cheaper).
        for v in &mut self.buf_antispoof {
            *v *= 1.0 / 255.0;
        }
        for v in &mut self.buf_liveness {
            *v *= 1.0 / 255.0;
        }
        self.run_raw()
    }

    /// Runs both models on whatever the input buffers hold: for benchmarks that compare
    /// the pipeline with the bare model runs.
    pub fn run_raw(&mut self) -> Result<LivenessScores> {
        let real = {
            let t = TensorRef::from_array_view((
                [1usize, ANTISPOOF_SIZE, ANTISPOOF_SIZE, 3],
                &self.buf_antispoof[..],
            ))?;
            let out = self.antispoof.run(ort::inputs![t])?;
            let (_, data) = out[0].try_extract_tensor::<f32>()?;
            data.first().copied().unwrap_or(0.0)
        };
        let live = {
            let t = TensorRef::from_array_view((
                [1usize, LIVENESS_SIZE, LIVENESS_SIZE, 3],
                &self.buf_liveness[..],
            ))?;
            let out = self.liveness.run(ort::inputs![t])?;
            let (_, data) = out[0].try_extract_tensor::<f32>()?;
            data.first().copied().unwrap_or(0.0)
        };
        Ok(LivenessScores { real, live })
    }
}
