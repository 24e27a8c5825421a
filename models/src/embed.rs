//! Face embedding: dlib's ResNet-29 ("dlib_face_recognition_resnet_model_v1"), converted
//! to ONNX by `model-setup`, turns a 150x150 aligned chip into 128 floats. Two chips of the
//! same person are close in Euclidean distance (dlib's rule of thumb: < 0.6).
//!
//! The converted graph subtracts dlib's mean and scales by 1/256 itself, so the input is
//! the chip's raw RGB values, planar (NCHW).

use std::path::Path;

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use crate::runtime::Runtime;
use crate::{Error, Result};

pub const EMBEDDING_DIM: usize = 128;

pub use crate::align::CHIP_SIZE;

/// A face descriptor.
pub type Embedding = [f32; EMBEDDING_DIM];

/// Euclidean distance between two descriptors.
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

pub struct Embedder {
    session: Session,
    input: Vec<f32>,
}

impl Embedder {
    pub fn new(runtime: &Runtime, model: &Path) -> Result<Embedder> {
        Ok(Embedder {
            session: runtime.session(model)?,
            input: Vec::new(),
        })
    }

    /// The descriptor of one aligned chip (see `align::extract_chip`).
    pub fn embed(&mut self, chip: &RgbImage) -> Result<Embedding> {
        Ok(self.embed_batch(std::slice::from_ref(chip))?[0])
    }

    /// Descriptors of several chips in one run (cheaper per chip than one run each).
    pub fn embed_batch(&mut self, chips: &[RgbImage]) -> Result<Vec<Embedding>> {
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        let plane = (CHIP_SIZE * CHIP_SIZE) as usize;
        // Every value is overwritten below: resizing (not clearing and refilling with
        // zeros) keeps the buffer from being written twice.
        self.input.resize(chips.len() * 3 * plane, 0.0);
        for (chip, dst) in chips.iter().zip(self.input.chunks_exact_mut(3 * plane)) {
            if chip.width() != CHIP_SIZE || chip.height() != CHIP_SIZE {
                return Err(Error::InvalidArgument(format!(
                    "a face chip must be {CHIP_SIZE}x{CHIP_SIZE}, not {}x{}",
                    chip.width(),
                    chip.height()
                )));
            }
            let (r, rest) = dst.split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            for (((p, r), g), b) in chip.as_raw().chunks_exact(3).zip(r).zip(g).zip(b) {
                *r = f32::from(p[0]);
                *g = f32::from(p[1]);
                *b = f32::from(p[2]);
            }
        }
        self.run(chips.len())
    }

    /// Descriptors of several chips, each the average of the chip's and its mirror image's
    /// (one run of `2 * chips.len()`): test-time augmentation that makes the descriptor
    /// less sensitive to which side of the face the light or the pose favours.
    pub fn embed_mirrored(&mut self, chips: &[RgbImage]) -> Result<Vec<Embedding>> {
        let mut both = Vec::with_capacity(2 * chips.len());
        for chip in chips {
            both.push(chip.clone());
            both.push(image::imageops::flip_horizontal(chip));
        }
        let e = self.embed_batch(&both)?;
        Ok(e.chunks_exact(2)
            .map(|p| {
                let mut avg = [0f32; EMBEDDING_DIM];
                for ((a, x), y) in avg.iter_mut().zip(&p[0]).zip(&p[1]) {
                    *a = 0.5 * (x + y);
                }
                avg
            })
            .collect())
    }

    /// Runs the model on an already planar input (`n * 3 * 150 * 150` floats, values
    /// 0..255): for benchmarks that compare the pipeline with the bare model.
    pub fn run_raw(&mut self, input: &[f32]) -> Result<Vec<Embedding>> {
        let plane = (CHIP_SIZE * CHIP_SIZE) as usize;
        if input.is_empty() || !input.len().is_multiple_of(3 * plane) {
            return Err(Error::InvalidArgument(format!(
                "input of {} floats is not a whole number of chips",
                input.len()
            )));
        }
        // Straight from the caller's buffer: a copy here would be work the pipeline does not do.
        run(&mut self.session, input, input.len() / (3 * plane))
    }

    fn run(&mut self, n: usize) -> Result<Vec<Embedding>> {
        run(&mut self.session, &self.input, n)
    }
}

/// One run of the embedder on `n` planar chips.
fn run(session: &mut Session, input: &[f32], n: usize) -> Result<Vec<Embedding>> {
    let side = CHIP_SIZE as usize;
    let tensor = TensorRef::from_array_view(([n, 3, side, side], input))?;
    let outputs = session.run(ort::inputs![tensor])?;
    let (shape, data) = outputs[0].try_extract_tensor::<f32>()?;
    if data.len() != n * EMBEDDING_DIM {
        return Err(Error::Runtime(format!(
            "embedder returned shape {shape:?}, expected [{n}, {EMBEDDING_DIM}]"
        )));
    }
    let mut out = Vec::with_capacity(n);
    for row in data.chunks_exact(EMBEDDING_DIM) {
        let mut e = [0f32; EMBEDDING_DIM];
        e.copy_from_slice(row);
        if e.iter().any(|v| !v.is_finite()) {
            return Err(Error::Runtime(
                "embedder produced a non-finite value".into(),
            ));
        }
        out.push(e);
    }
    Ok(out)
}
