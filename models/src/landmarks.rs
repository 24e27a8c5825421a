//! Five-point face landmarks: a Rust port of dlib's ensemble-of-regression-trees (ERT)
//! shape predictor (Kazemi & Sullivan 2014), running on the model set-up converts from
//! `shape_predictor_5_face_landmarks.dat`.
//!
//! The model lives in our own small file format (`.ert`, described on
//! [`ShapePredictorModel::write`]) so that the runtime does not need dlib's serialisation
//! code; `model-setup` reads dlib's file and writes this one. [`ShapePredictor`] runs it
//! exactly as dlib's `shape_predictor::operator()` does (same float/double split, same
//! rounding, same grey level for RGB pixels), so that its points match dlib's to the pixel
//! and the face chip cut from them matches dlib's byte for byte.

use std::io::{Read, Write};
use std::path::Path;

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::geometry::{Point, Rect};
use crate::{Error, Result};

/// The magic bytes and version at the head of an `.ert` file.
pub const ERT_MAGIC: &[u8; 8] = b"CPERT\0\0\x01";

/// One split of a regression tree: compare the intensities of two feature pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    pub idx1: u32,
    pub idx2: u32,
    pub thresh: f32,
}

/// A complete binary tree stored breadth-first, as dlib stores it: node `i` has children
/// `2i+1` and `2i+2`; leaves follow the splits.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionTree {
    pub splits: Vec<Split>,
    /// `num_leaves * 2 * num_parts` values: each leaf's shape update, x/y interleaved.
    pub leaf_values: Vec<f32>,
}

/// One cascade level: the feature pixels (each anchored to a landmark, offset by a delta
/// in the normalised face frame) and the trees that read them.
#[derive(Debug, Clone, PartialEq)]
pub struct Cascade {
    pub anchor_idx: Vec<u32>,
    pub deltas: Vec<[f32; 2]>,
    pub trees: Vec<RegressionTree>,
}

/// The whole shape predictor.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapePredictorModel {
    /// The mean shape in box-normalised coordinates, x/y interleaved (`2 * num_parts`).
    pub initial_shape: Vec<f32>,
    pub cascades: Vec<Cascade>,
}

#[derive(Debug, thiserror::Error)]
pub enum ErtFormatError {
    #[error("not an .ert landmark model (bad magic)")]
    BadMagic,
    #[error("malformed .ert landmark model: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ShapePredictorModel {
    pub fn num_parts(&self) -> usize {
        self.initial_shape.len() / 2
    }

    /// Writes the model. Format, all little-endian:
    ///
    /// ```text
    /// magic            8 bytes  "CPERT\0\0\x01"
    /// num_parts        u32
    /// initial_shape    f32 * 2*num_parts
    /// num_cascades     u32
    /// per cascade:
    ///   num_features   u32
    ///   anchor_idx     u32 * num_features
    ///   deltas         f32 * 2*num_features          (dx, dy interleaved)
    ///   num_trees      u32
    ///   per tree:
    ///     num_splits   u32
    ///     splits       (u32 idx1, u32 idx2, f32 thresh) * num_splits
    ///     num_leaves   u32
    ///     leaf_values  f32 * num_leaves*2*num_parts
    /// ```
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(ERT_MAGIC)?;
        write_u32(out, self.num_parts() as u32)?;
        write_f32s(out, &self.initial_shape)?;
        write_u32(out, self.cascades.len() as u32)?;
        for c in &self.cascades {
            write_u32(out, c.anchor_idx.len() as u32)?;
            for &a in &c.anchor_idx {
                write_u32(out, a)?;
            }
            for d in &c.deltas {
                write_f32s(out, d)?;
            }
            write_u32(out, c.trees.len() as u32)?;
            for t in &c.trees {
                write_u32(out, t.splits.len() as u32)?;
                for s in &t.splits {
                    write_u32(out, s.idx1)?;
                    write_u32(out, s.idx2)?;
                    write_f32s(out, &[s.thresh])?;
                }
                let leaves = t.leaf_values.len() / self.initial_shape.len().max(1);
                write_u32(out, leaves as u32)?;
                write_f32s(out, &t.leaf_values)?;
            }
        }
        Ok(())
    }

    /// Reads and validates a model written by [`write`](Self::write). Every index is
    /// checked, so a prediction can never read out of bounds.
    pub fn read(input: &mut impl Read) -> Result<Self, ErtFormatError> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != ERT_MAGIC {
            return Err(ErtFormatError::BadMagic);
        }
        let num_parts = read_len(input, 1 << 12, "num_parts")?;
        let initial_shape = read_f32s(input, 2 * num_parts)?;
        let num_cascades = read_len(input, 1 << 10, "num_cascades")?;
        let mut cascades = Vec::with_capacity(num_cascades);
        for _ in 0..num_cascades {
            let num_features = read_len(input, 1 << 20, "num_features")?;
            let mut anchor_idx = Vec::with_capacity(num_features);
            for _ in 0..num_features {
                let a = read_u32(input)?;
                if a as usize >= num_parts {
                    return Err(ErtFormatError::Malformed(format!(
                        "anchor {a} >= {num_parts} parts"
                    )));
                }
                anchor_idx.push(a);
            }
            let flat = read_f32s(input, 2 * num_features)?;
            let deltas = flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
            let num_trees = read_len(input, 1 << 20, "num_trees")?;
            let mut trees = Vec::with_capacity(num_trees);
            for _ in 0..num_trees {
                let num_splits = read_len(input, 1 << 20, "num_splits")?;
                let mut splits = Vec::with_capacity(num_splits);
                for _ in 0..num_splits {
                    let idx1 = read_u32(input)?;
                    let idx2 = read_u32(input)?;
                    let thresh = read_f32s(input, 1)?[0];
                    if idx1 as usize >= num_features || idx2 as usize >= num_features {
                        return Err(ErtFormatError::Malformed(format!(
                            "split reads feature {idx1}/{idx2} of {num_features}"
                        )));
                    }
                    splits.push(Split { idx1, idx2, thresh });
                }
                let num_leaves = read_len(input, 1 << 21, "num_leaves")?;
                if num_leaves != num_splits + 1 {
                    return Err(ErtFormatError::Malformed(format!(
                        "a tree with {num_splits} splits must have {} leaves, not {num_leaves}",
                        num_splits + 1
                    )));
                }
                let leaf_values = read_f32s(input, num_leaves * 2 * num_parts)?;
                trees.push(RegressionTree {
                    splits,
                    leaf_values,
                });
            }
            cascades.push(Cascade {
                anchor_idx,
                deltas,
                trees,
            });
        }
        Ok(ShapePredictorModel {
            initial_shape,
            cascades,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Prediction
// ---------------------------------------------------------------------------------------

/// dlib's `rectangle`: integer edges, all inclusive, so `width = right - left + 1`.
///
/// The shape predictor works on these (dlib's HOG detector produces them and the model was
/// trained on them). Its normalised face frame maps `(0,0)` to `(left, top)` and `(1,1)` to
/// `(right, bottom)`, so the box spans `right - left` in that frame, not the width.
///
/// Mapping to [`Rect`] (float edges, width `right - left`, pixel centres at integer
/// coordinates): a dlib rectangle covers pixels `left..=right`, whose outer edges are
/// `left - 0.5` and `right + 0.5`, so [`DlibRect::to_rect`] gives
/// `Rect(left - 0.5, top - 0.5, right + 0.5, bottom + 0.5)`: the same centre and the same
/// width and height. [`DlibRect::from_rect`] is its inverse, rounding each edge to the
/// nearest pixel as dlib rounds (`floor(x + 0.5)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DlibRect {
    pub left: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
}

/// Edges beyond this are refused by [`DlibRect::from_rect`]: no camera has such images, and
/// keeping coordinates small keeps every product below exact in `f64`.
const MAX_COORD: f64 = 1.0e7;

impl DlibRect {
    pub const fn new(left: i64, top: i64, right: i64, bottom: i64) -> Self {
        DlibRect {
            left,
            top,
            right,
            bottom,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.top > self.bottom || self.left > self.right
    }

    /// Width as dlib counts it (`right - left + 1`), 0 when empty.
    pub fn width(&self) -> i64 {
        if self.is_empty() {
            0
        } else {
            self.right - self.left + 1
        }
    }

    /// Height as dlib counts it (`bottom - top + 1`), 0 when empty.
    pub fn height(&self) -> i64 {
        if self.is_empty() {
            0
        } else {
            self.bottom - self.top + 1
        }
    }

    /// The box a detector's float [`Rect`] stands for; `None` for non-finite or absurdly
    /// large coordinates.
    pub fn from_rect(r: &Rect) -> Option<DlibRect> {
        let round = |v: f32| -> Option<i64> {
            let v = f64::from(v);
            (v.is_finite() && v.abs() < MAX_COORD).then(|| (v + 0.5).floor() as i64)
        };
        Some(DlibRect {
            left: round(r.left + 0.5)?,
            top: round(r.top + 0.5)?,
            right: round(r.right - 0.5)?,
            bottom: round(r.bottom - 0.5)?,
        })
    }

    /// The float box covering exactly this rectangle's pixels (see the type's docs).
    pub fn to_rect(&self) -> Rect {
        Rect::new(
            self.left as f32 - 0.5,
            self.top as f32 - 0.5,
            self.right as f32 + 0.5,
            self.bottom as f32 + 0.5,
        )
    }

    /// Maps a point of the predictor's normalised face frame to image coordinates, as
    /// dlib's `unnormalizing_tform(rect)` does. The products are exact in `f64` for the
    /// inputs the predictor feeds it (an `f32` times an integer below 2^29).
    #[inline]
    fn unnormalize(&self, x: f32, y: f32) -> (f64, f64) {
        let sx = (self.right - self.left) as f64;
        let sy = (self.bottom - self.top) as f64;
        (
            sx * f64::from(x) + self.left as f64,
            sy * f64::from(y) + self.top as f64,
        )
    }
}

/// dlib's conversion of a floating point to an integer pixel coordinate.
#[inline]
fn dlib_round(v: f64) -> f64 {
    floor(v + 0.5)
}

/// `v.floor()` for the coordinates met here, without the libm call that `floor` costs on
/// baseline x86-64 (no SSE4.1): truncate, then step down for negative fractions. Exact for
/// |v| < 2^63; beyond it returns a value just as far outside any image, and NaN stays NaN
/// (outside every image too, as every comparison with it fails).
#[inline]
pub(crate) fn floor(v: f64) -> f64 {
    if v.is_nan() {
        return v;
    }
    let t = v as i64 as f64;
    if t > v {
        t - 1.0
    } else {
        t
    }
}

/// An image the predictor can read grey levels from, the way dlib reads them.
pub trait IntensityImage {
    fn dimensions(&self) -> (u32, u32);
    /// The grey level at `(x, y)`, which is inside the image.
    fn intensity(&self, x: u32, y: u32) -> u8;
}

impl IntensityImage for GrayImage {
    fn dimensions(&self) -> (u32, u32) {
        GrayImage::dimensions(self)
    }
    #[inline]
    fn intensity(&self, x: u32, y: u32) -> u8 {
        self.as_raw()[y as usize * self.width() as usize + x as usize]
    }
}

impl IntensityImage for RgbImage {
    fn dimensions(&self) -> (u32, u32) {
        RgbImage::dimensions(self)
    }
    /// dlib's `get_pixel_intensity` of an `rgb_pixel`: the integer mean `(r + g + b) / 3`
    /// (truncating), not a luma. Computed per sampled pixel so that no grey copy of the
    /// whole frame is needed.
    #[inline]
    fn intensity(&self, x: u32, y: u32) -> u8 {
        let i = 3 * (y as usize * self.width() as usize + x as usize);
        let p = &self.as_raw()[i..i + 3];
        ((u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2])) / 3) as u8
    }
}

/// A regression tree flattened into its cascade's shared arrays.
#[derive(Debug, Clone, Copy)]
struct TreeSpan {
    split_start: u32,
    num_splits: u32,
    /// In [`LeafLine`]s.
    leaf_start: u32,
}

/// A split as the predictor reads it.
///
/// The features are whole numbers (grey levels 0..=255, or 0 outside the image), so dlib's
/// float test `f1 - f2 > thresh` is the integer test `f1 - f2 > floor(thresh)`, and any
/// threshold outside [-256, 255] decides like the nearest end of that range. That makes a
/// split small: one `u32` for feature pools of up to 1024 (dlib's models use 400-800), so
/// a depth-4 tree's splits fit one cache line, or three 16-bit fields for larger pools.
trait SplitCode: Copy {
    /// `(idx1, idx2, integer threshold)`.
    fn decode(self) -> (usize, usize, i32);
}

/// 10 bits per index, 12 bits of threshold (sign-extended).
#[derive(Debug, Clone, Copy)]
struct CompactSplit(u32);

impl SplitCode for CompactSplit {
    #[inline(always)]
    fn decode(self) -> (usize, usize, i32) {
        (
            (self.0 & 0x3ff) as usize,
            ((self.0 >> 10) & 0x3ff) as usize,
            (self.0 as i32) >> 20,
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct WideSplit {
    idx1: u16,
    idx2: u16,
    thresh: i16,
}

impl SplitCode for WideSplit {
    #[inline(always)]
    fn decode(self) -> (usize, usize, i32) {
        (
            usize::from(self.idx1),
            usize::from(self.idx2),
            i32::from(self.thresh),
        )
    }
}

/// The largest feature pool a [`CompactSplit`] can index.
const COMPACT_FEATURES: usize = 1 << 10;
/// The largest feature pool a [`WideSplit`] can index.
const MAX_FEATURES: usize = 1 << 16;

/// dlib's float threshold as the equivalent integer one (see [`SplitCode`]).
fn integer_threshold(t: f32) -> i32 {
    if t >= 255.0 {
        255
    } else if t < -256.0 {
        -256
    } else {
        t.floor() as i32
    }
}

#[derive(Debug, Clone)]
enum Splits {
    Compact(Vec<CompactSplit>),
    Wide(Vec<WideSplit>),
}

/// One cache line of leaf values. Each leaf starts on its own line, so reading one (the
/// only random access of a prediction, once per tree) costs one line, not the one or two
/// that 40-byte leaves packed end to end straddle.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct LeafLine([f32; LEAF_LINE]);

const LEAF_LINE: usize = 16;

#[derive(Debug, Clone)]
struct PreparedCascade {
    /// Per feature: the index in the shape of its anchor's x (y follows), and its offset.
    anchor_x: Vec<u32>,
    dx: Vec<f32>,
    dy: Vec<f32>,
    /// `leaf_start` counts from the cascade's first line in [`ShapePredictor::leaves`].
    trees: Vec<TreeSpan>,
    splits: Splits,
    /// Where this cascade's leaves start in [`ShapePredictor::leaves`].
    leaf_base: usize,
}

/// A vector with room for `lines` leaf lines, which on Linux the kernel is asked to back
/// with transparent huge pages (`madvise(MADV_HUGEPAGE)`; distributions commonly enable THP
/// only for memory that asks). A prediction reads one leaf per tree, 7,500 lines spread
/// over the model's megabytes: with 4 KiB pages nearly every read needs its own TLB entry,
/// and after ONNX Runtime has run (megabytes of weights) those are gone, so each read paid
/// a page walk on top of the cache miss; 2 MiB pages measured about 0.1 ms less per
/// prediction in the face pipeline (`cargo bench -p models --bench pipeline`).
///
/// On Linux the vector starts with zero lines up to the first 2 MiB boundary, so that the
/// leaves pushed after them begin on a huge page (callers index from `len()` at that
/// point), and has a further 2 MiB of room so that the last huge page is whole. That costs
/// up to 4 MiB of memory. Elsewhere, or if the kernel declines, ordinary pages.
fn leaf_storage(lines: usize) -> Vec<LeafLine> {
    #[cfg(target_os = "linux")]
    {
        const HUGE_PAGE: usize = 2 << 20;
        const LINES_PER_HUGE_PAGE: usize = HUGE_PAGE / std::mem::size_of::<LeafLine>();
        if lines < LINES_PER_HUGE_PAGE {
            // A model this small stays in the TLB anyway.
            return Vec::with_capacity(lines);
        }
        let mut v: Vec<LeafLine> = Vec::with_capacity(lines + 2 * LINES_PER_HUGE_PAGE);
        let addr = v.as_mut_ptr() as usize;
        let start = addr.next_multiple_of(HUGE_PAGE);
        let end = (addr + v.capacity() * std::mem::size_of::<LeafLine>()) / HUGE_PAGE * HUGE_PAGE;
        // SAFETY: the range lies inside this vector's own allocation (nothing has touched it
        // yet: an allocation this large is mapped on demand), and MADV_HUGEPAGE only
        // changes how the kernel backs it: no mapping goes away, no content changes, and a
        // refusal (THP disabled) leaves ordinary pages.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "no huge pages for the landmark model");
        }
        v.resize(
            (start - addr) / std::mem::size_of::<LeafLine>(),
            LeafLine([0.0; LEAF_LINE]),
        );
        v
    }
    #[cfg(not(target_os = "linux"))]
    Vec::with_capacity(lines)
}

/// Asks the CPU to start loading `line` into the cache: the leaf a tree ends in is known
/// long before its values are added, and this overlaps the memory latency with the next
/// trees' traversal.
#[inline(always)]
fn prefetch(line: &LeafLine) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, and the pointer comes from a live
    // reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((line as *const LeafLine).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

/// The 5-point (or any N-point) landmark predictor, ready to run.
///
/// Everything that does not depend on the image is prepared once: the trees are flattened
/// into contiguous arrays (splits packed small, each leaf on its own cache line) and the
/// mean shape's statistics for the per-cascade similarity fit are precomputed, so a
/// prediction allocates a few small per-feature buffers and nothing per tree. Most of its
/// time goes to reading one leaf per tree (7,500 for the 5-point model) from memory.
#[derive(Debug, Clone)]
pub struct ShapePredictor {
    num_parts: usize,
    initial_shape: Vec<f32>,
    /// The mean shape minus its centroid, in `f64` as dlib's similarity fit computes it.
    from_centered: Vec<[f64; 2]>,
    /// Mean squared distance of the mean shape's points to their centroid.
    from_sigma: f64,
    cascades: Vec<PreparedCascade>,
    max_features: usize,
    max_trees: usize,
    /// Cache lines per leaf: `ceil(2 * num_parts / 16)`.
    leaf_lines: usize,
    /// Every leaf's shape update (`2 * num_parts` values, zero-padded to whole lines), trees
    /// after each other, cascades after each other.
    leaves: Vec<LeafLine>,
}

impl ShapePredictor {
    /// Loads an `.ert` file (see [`ShapePredictorModel::write`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| {
            Error::model_file(
                path,
                format!("{e}; run scripts/setup-models.sh to produce it"),
            )
        })?;
        let model = ShapePredictorModel::read(&mut std::io::BufReader::new(file))
            .map_err(|e| Error::model_file(path, e))?;
        let predictor = Self::from_model(model).map_err(|e| Error::model_file(path, e))?;
        tracing::debug!(
            path = %path.display(),
            parts = predictor.num_parts,
            cascades = predictor.cascades.len(),
            "landmark model loaded"
        );
        Ok(predictor)
    }

    /// Checks a model (it may have been built in memory rather than read from a file) and
    /// prepares it for prediction.
    pub fn from_model(model: ShapePredictorModel) -> std::result::Result<Self, ErtFormatError> {
        let malformed = |m: String| Err(ErtFormatError::Malformed(m));
        let ShapePredictorModel {
            initial_shape,
            cascades,
        } = model;
        if initial_shape.is_empty() || initial_shape.len() % 2 != 0 {
            return malformed(format!(
                "the mean shape has {} values, not a positive even number",
                initial_shape.len()
            ));
        }
        if initial_shape.iter().any(|v| !v.is_finite()) {
            return malformed("the mean shape has a non-finite value".into());
        }
        let num_parts = initial_shape.len() / 2;
        let shape_len = initial_shape.len();
        let leaf_lines = shape_len.div_ceil(LEAF_LINE);

        // All leaves go in one allocation (see `leaf_storage`), sized from the values read.
        let total_lines: usize = cascades
            .iter()
            .flat_map(|c| &c.trees)
            .map(|t| t.leaf_values.len() / shape_len * leaf_lines)
            .sum();
        let mut leaves = leaf_storage(total_lines);
        let mut prepared = Vec::with_capacity(cascades.len());
        let mut max_features = 0;
        for (ci, c) in cascades.into_iter().enumerate() {
            let num_features = c.anchor_idx.len();
            if c.deltas.len() != num_features {
                return malformed(format!(
                    "cascade {ci}: {} anchors but {} deltas",
                    num_features,
                    c.deltas.len()
                ));
            }
            if let Some(a) = c.anchor_idx.iter().find(|&&a| a as usize >= num_parts) {
                return malformed(format!("cascade {ci}: anchor {a} >= {num_parts} parts"));
            }
            if c.deltas.iter().flatten().any(|v| !v.is_finite()) {
                return malformed(format!("cascade {ci}: a non-finite pixel offset"));
            }
            if num_features > MAX_FEATURES {
                return malformed(format!(
                    "cascade {ci}: {num_features} features, more than the {MAX_FEATURES} supported"
                ));
            }
            max_features = max_features.max(num_features);
            let mut trees = Vec::with_capacity(c.trees.len());
            let mut splits = if num_features <= COMPACT_FEATURES {
                Splits::Compact(Vec::new())
            } else {
                Splits::Wide(Vec::new())
            };
            let leaf_base = leaves.len();
            for (ti, t) in c.trees.into_iter().enumerate() {
                let num_leaves = t.splits.len() + 1;
                if t.leaf_values.len() != num_leaves * shape_len {
                    return malformed(format!(
                        "cascade {ci} tree {ti}: {} leaf values, expected {num_leaves} leaves x {shape_len}",
                        t.leaf_values.len()
                    ));
                }
                if t.leaf_values.iter().any(|v| !v.is_finite())
                    || t.splits.iter().any(|s| s.thresh.is_nan())
                {
                    return malformed(format!(
                        "cascade {ci} tree {ti}: a non-finite leaf value or NaN threshold"
                    ));
                }
                if let Some(s) = t
                    .splits
                    .iter()
                    .find(|s| s.idx1 as usize >= num_features || s.idx2 as usize >= num_features)
                {
                    return malformed(format!(
                        "cascade {ci} tree {ti}: a split reads feature {}/{} of {num_features}",
                        s.idx1, s.idx2
                    ));
                }
                let too_big = || ErtFormatError::Malformed(format!("cascade {ci}: too many trees"));
                let split_start = match &splits {
                    Splits::Compact(v) => v.len(),
                    Splits::Wide(v) => v.len(),
                };
                trees.push(TreeSpan {
                    split_start: u32::try_from(split_start).map_err(|_| too_big())?,
                    num_splits: u32::try_from(t.splits.len()).map_err(|_| too_big())?,
                    leaf_start: u32::try_from(leaves.len() - leaf_base).map_err(|_| too_big())?,
                });
                // The indices are below num_features (checked above), which bounds them to
                // the chosen encoding; the threshold is in -256..=255.
                match &mut splits {
                    Splits::Compact(v) => v.extend(t.splits.iter().map(|s| {
                        let thresh = (integer_threshold(s.thresh) as u32 & 0xfff) << 20;
                        CompactSplit(s.idx1 | (s.idx2 << 10) | thresh)
                    })),
                    Splits::Wide(v) => v.extend(t.splits.iter().map(|s| WideSplit {
                        idx1: s.idx1 as u16,
                        idx2: s.idx2 as u16,
                        thresh: integer_threshold(s.thresh) as i16,
                    })),
                }
                for leaf in t.leaf_values.chunks_exact(shape_len) {
                    for chunk in leaf.chunks(LEAF_LINE) {
                        let mut line = LeafLine([0.0; LEAF_LINE]);
                        line.0[..chunk.len()].copy_from_slice(chunk);
                        leaves.push(line);
                    }
                }
            }
            prepared.push(PreparedCascade {
                anchor_x: c.anchor_idx.iter().map(|&a| 2 * a).collect(),
                dx: c.deltas.iter().map(|d| d[0]).collect(),
                dy: c.deltas.iter().map(|d| d[1]).collect(),
                trees,
                splits,
                leaf_base,
            });
        }

        // The "from" side of every cascade's similarity fit is the mean shape: its centroid
        // and spread never change.
        let n = num_parts as f64;
        let (mut mx, mut my) = (0.0f64, 0.0f64);
        for p in initial_shape.chunks_exact(2) {
            mx += f64::from(p[0]);
            my += f64::from(p[1]);
        }
        mx /= n;
        my /= n;
        let from_centered: Vec<[f64; 2]> = initial_shape
            .chunks_exact(2)
            .map(|p| [f64::from(p[0]) - mx, f64::from(p[1]) - my])
            .collect();
        let from_sigma = from_centered
            .iter()
            .map(|d| d[0] * d[0] + d[1] * d[1])
            .sum::<f64>()
            / n;

        let max_trees = prepared.iter().map(|c| c.trees.len()).max().unwrap_or(0);
        Ok(ShapePredictor {
            num_parts,
            initial_shape,
            from_centered,
            from_sigma,
            cascades: prepared,
            max_features,
            max_trees,
            leaf_lines,
            leaves,
        })
    }

    pub fn num_parts(&self) -> usize {
        self.num_parts
    }

    /// The model's mean shape placed in `rect`: where the search starts. Useful to fit a
    /// mapping from another detector's boxes to the boxes this model expects.
    pub fn mean_shape_in(&self, rect: DlibRect) -> Vec<Point> {
        self.initial_shape
            .chunks_exact(2)
            .map(|p| {
                let (x, y) = rect.unnormalize(p[0], p[1]);
                Point::new(x as f32, y as f32)
            })
            .collect()
    }

    /// The landmarks in `rect`, rounded to whole pixels exactly as dlib returns them.
    pub fn predict<I: IntensityImage + ?Sized>(&self, image: &I, rect: DlibRect) -> Vec<Point> {
        let shape = self.run(image, rect);
        shape
            .chunks_exact(2)
            .map(|p| {
                let (x, y) = rect.unnormalize(p[0], p[1]);
                Point::new(dlib_round(x) as f32, dlib_round(y) as f32)
            })
            .collect()
    }

    /// Like [`predict`](Self::predict) for a 5-point model, as the array that
    /// [`crate::align::chip_transform`] takes.
    pub fn predict5<I: IntensityImage + ?Sized>(
        &self,
        image: &I,
        rect: DlibRect,
    ) -> Result<[Point; 5]> {
        self.predict(image, rect)
            .try_into()
            .map_err(|v: Vec<Point>| {
                Error::InvalidArgument(format!("the landmark model has {} points, not 5", v.len()))
            })
    }

    /// The landmarks before dlib's rounding to whole pixels (sub-pixel positions). Not
    /// what dlib returns; for callers that want the extra precision.
    pub fn predict_subpixel<I: IntensityImage + ?Sized>(
        &self,
        image: &I,
        rect: DlibRect,
    ) -> Vec<[f64; 2]> {
        let shape = self.run(image, rect);
        shape
            .chunks_exact(2)
            .map(|p| {
                let (x, y) = rect.unnormalize(p[0], p[1]);
                [x, y]
            })
            .collect()
    }

    /// The cascade: returns the final shape in the normalised face frame.
    fn run<I: IntensityImage + ?Sized>(&self, image: &I, rect: DlibRect) -> Vec<f32> {
        let mut shape = self.initial_shape.clone();
        let mut features = vec![0i32; self.max_features];
        let mut scratch = FeatureScratch::new(self.max_features);
        let mut leaf_starts = vec![0usize; self.max_trees];
        for cascade in &self.cascades {
            let m = self.similarity_to(&shape);
            let n = cascade.dx.len();
            let feats = &mut features[..n];
            feature_pixels(cascade, m, &shape, rect, image.dimensions(), &mut scratch);
            for ((value, &x), &y) in feats.iter_mut().zip(&scratch.x[..n]).zip(&scratch.y[..n]) {
                *value = if x == OUTSIDE {
                    0
                } else {
                    i32::from(image.intensity(x, y))
                };
            }
            // First find every tree's leaf, then add the leaves in tree order (the order
            // dlib adds them in, which float addition needs for identical sums). Knowing all
            // the leaf addresses up front lets their cache misses overlap: the leaves are
            // most of the model's megabytes and each tree touches one at random.
            let leaf_starts = &mut leaf_starts[..cascade.trees.len()];
            match &cascade.splits {
                Splits::Compact(s) => find_leaves(
                    s,
                    cascade,
                    &self.leaves,
                    feats,
                    self.leaf_lines,
                    leaf_starts,
                ),
                Splits::Wide(s) => find_leaves(
                    s,
                    cascade,
                    &self.leaves,
                    feats,
                    self.leaf_lines,
                    leaf_starts,
                ),
            }
            for &start in leaf_starts.iter() {
                for (line, values) in self.leaves[start..start + self.leaf_lines]
                    .iter()
                    .zip(shape.chunks_mut(LEAF_LINE))
                {
                    for (v, d) in values.iter_mut().zip(&line.0) {
                        *v += d;
                    }
                }
            }
        }
        shape
    }

    /// The rotation-and-scale part of the least-squares similarity transform from the mean
    /// shape to `shape` (dlib's `find_tform_between_shapes`), cast to `f32` as dlib casts
    /// it: `[m00, m01, m10, m11]`.
    ///
    /// dlib solves it with Umeyama's method through a 2x2 SVD; in two dimensions that has a
    /// closed form: with the cross-covariance `C = cov(to, from)`,
    /// `c*R = [[p, -q], [q, p]] / sigma_from` where `p = C00 + C11`, `q = C10 - C01`. The two
    /// agree to about 1e-16, far below the `f32` rounding that follows.
    fn similarity_to(&self, shape: &[f32]) -> [f32; 4] {
        if self.num_parts == 1 {
            return [1.0, 0.0, 0.0, 1.0];
        }
        let n = self.num_parts as f64;
        let (mut mx, mut my) = (0.0f64, 0.0f64);
        for p in shape.chunks_exact(2) {
            mx += f64::from(p[0]);
            my += f64::from(p[1]);
        }
        mx /= n;
        my /= n;
        let (mut c00, mut c01, mut c10, mut c11) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (p, f) in shape.chunks_exact(2).zip(&self.from_centered) {
            let (tx, ty) = (f64::from(p[0]) - mx, f64::from(p[1]) - my);
            c00 += tx * f[0];
            c01 += tx * f[1];
            c10 += ty * f[0];
            c11 += ty * f[1];
        }
        let p = (c00 + c11) / n;
        let q = (c10 - c01) / n;
        let (a, b) = if self.from_sigma != 0.0 {
            (p / self.from_sigma, q / self.from_sigma)
        } else {
            (1.0, 0.0)
        };
        [a as f32, (-b) as f32, b as f32, a as f32]
    }
}

/// Marks a feature pixel outside the image in [`feature_pixels`]' output.
const OUTSIDE: u32 = u32::MAX;

/// Per-feature working arrays of one prediction.
struct FeatureScratch {
    /// The anchor landmark of each feature, gathered from the shape.
    anchor_x: Vec<f32>,
    anchor_y: Vec<f32>,
    /// Each feature's pixel; `x == OUTSIDE` outside the image.
    x: Vec<u32>,
    y: Vec<u32>,
}

impl FeatureScratch {
    fn new(n: usize) -> Self {
        FeatureScratch {
            anchor_x: vec![0.0; n],
            anchor_y: vec![0.0; n],
            x: vec![0; n],
            y: vec![0; n],
        }
    }
}

/// Where each feature of `cascade` reads the image, as dlib computes it: the feature's
/// offset through the similarity transform `m` (float), added to its anchor landmark
/// (float), mapped to pixels through `rect` (double) and rounded with dlib's
/// `floor(v + 0.5)`. Into `out.x` and `out.y`, `OUTSIDE` for pixels outside the image.
///
/// Passes over arrays with no image access, so they vectorise; with AVX2 where the CPU has
/// it (no FMA, and Rust never fuses operations: the same results either way).
fn feature_pixels(
    cascade: &PreparedCascade,
    m: [f32; 4],
    shape: &[f32],
    rect: DlibRect,
    dims: (u32, u32),
    out: &mut FeatureScratch,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { feature_pixels_avx2(cascade, m, shape, rect, dims, out) };
        return;
    }
    feature_pixels_portable(cascade, m, shape, rect, dims, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
// An `unsafe fn` (not a safe target-feature function) to stay within rust-version 1.85.
unsafe fn feature_pixels_avx2(
    cascade: &PreparedCascade,
    m: [f32; 4],
    shape: &[f32],
    rect: DlibRect,
    dims: (u32, u32),
    out: &mut FeatureScratch,
) {
    feature_pixels_portable(cascade, m, shape, rect, dims, out)
}

#[inline(always)]
fn feature_pixels_portable(
    cascade: &PreparedCascade,
    m: [f32; 4],
    shape: &[f32],
    rect: DlibRect,
    dims: (u32, u32),
    out: &mut FeatureScratch,
) {
    let n = cascade.dx.len();
    let (ax, ay) = (&mut out.anchor_x[..n], &mut out.anchor_y[..n]);
    for ((x, y), &a) in ax.iter_mut().zip(ay.iter_mut()).zip(&cascade.anchor_x) {
        (*x, *y) = (shape[a as usize], shape[a as usize + 1]);
    }
    let (sx, sy) = (
        (rect.right - rect.left) as f64,
        (rect.bottom - rect.top) as f64,
    );
    let (left, top) = (rect.left as f64, rect.top as f64);
    let (width, height) = (f64::from(dims.0), f64::from(dims.1));
    let (dx, dy, ax, ay) = (&cascade.dx[..n], &cascade.dy[..n], &ax[..n], &ay[..n]);
    let (xs, ys) = (&mut out.x[..n], &mut out.y[..n]);
    for j in 0..n {
        // dlib: `tform*delta + location(shape, anchor)`, all in float.
        let px = (m[0] * dx[j] + m[1] * dy[j]) + ax[j];
        let py = (m[2] * dx[j] + m[3] * dy[j]) + ay[j];
        // Then `unnormalizing_tform(rect)` in double and dlib's rounding, floor(v + 0.5).
        // `floor(v) >= 0 && floor(v) < width` is `v >= 0 && v < width` for an integer
        // width (NaN fails both), and inside, the floor of v is its truncation.
        let x = (sx * f64::from(px) + left) + 0.5;
        let y = (sy * f64::from(py) + top) + 0.5;
        let inside = x >= 0.0 && y >= 0.0 && x < width && y < height;
        xs[j] = if inside { x as u32 } else { OUTSIDE };
        ys[j] = if inside { y as u32 } else { 0 };
    }
}

/// Each tree's leaf (its first line in `leaves`) for these feature values.
#[inline]
fn find_leaves<S: SplitCode>(
    splits: &[S],
    cascade: &PreparedCascade,
    leaves: &[LeafLine],
    feats: &[i32],
    leaf_lines: usize,
    out: &mut [usize],
) {
    for (tree, start) in cascade.trees.iter().zip(out.iter_mut()) {
        let splits = &splits[tree.split_start as usize..][..tree.num_splits as usize];
        let mut i = 0usize;
        while i < splits.len() {
            let (idx1, idx2, thresh) = splits[i].decode();
            // dlib: left child (2i+1) when the difference exceeds the threshold. As
            // arithmetic rather than a branch: the direction is data-dependent, so a branch
            // would be mispredicted about half the time.
            let left = feats[idx1] - feats[idx2] > thresh;
            i = 2 * i + 2 - usize::from(left);
        }
        *start = cascade.leaf_base + tree.leaf_start as usize + (i - splits.len()) * leaf_lines;
        prefetch(&leaves[*start]);
    }
}

fn write_u32(out: &mut impl Write, v: u32) -> std::io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

fn write_f32s(out: &mut impl Write, vs: &[f32]) -> std::io::Result<()> {
    for v in vs {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

fn read_u32(input: &mut impl Read) -> Result<u32, ErtFormatError> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_len(input: &mut impl Read, max: usize, what: &str) -> Result<usize, ErtFormatError> {
    let v = read_u32(input)? as usize;
    if v > max {
        return Err(ErtFormatError::Malformed(format!(
            "{what} = {v} exceeds {max}"
        )));
    }
    Ok(v)
}

fn read_f32s(input: &mut impl Read, n: usize) -> Result<Vec<f32>, ErtFormatError> {
    let mut bytes = vec![0u8; n * 4];
    input.read_exact(&mut bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_model() -> ShapePredictorModel {
        ShapePredictorModel {
            initial_shape: vec![0.2, 0.3, 0.8, 0.3],
            cascades: vec![Cascade {
                anchor_idx: vec![0, 1],
                deltas: vec![[0.01, -0.02], [0.0, 0.05]],
                trees: vec![RegressionTree {
                    splits: vec![Split {
                        idx1: 0,
                        idx2: 1,
                        thresh: 3.5,
                    }],
                    leaf_values: vec![0.1, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, -0.4],
                }],
            }],
        }
    }

    #[test]
    fn ert_round_trips() {
        let m = tiny_model();
        let mut buf = Vec::new();
        m.write(&mut buf).unwrap();
        assert_eq!(ShapePredictorModel::read(&mut buf.as_slice()).unwrap(), m);
    }

    #[test]
    fn truncated_or_corrupt_ert_is_refused() {
        let mut buf = Vec::new();
        tiny_model().write(&mut buf).unwrap();
        for cut in [0, 4, 8, 20, buf.len() - 1] {
            assert!(
                ShapePredictorModel::read(&mut &buf[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert!(matches!(
            ShapePredictorModel::read(&mut bad.as_slice()),
            Err(ErtFormatError::BadMagic)
        ));
        // A split pointing past the feature list.
        let mut m = tiny_model();
        m.cascades[0].trees[0].splits[0].idx2 = 7;
        let mut buf = Vec::new();
        m.write(&mut buf).unwrap();
        assert!(matches!(
            ShapePredictorModel::read(&mut buf.as_slice()),
            Err(ErtFormatError::Malformed(_))
        ));
    }

    #[test]
    fn fast_floor_is_floor() {
        for v in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            2.999,
            -2.999,
            1e15 + 0.5,
            -1e15 - 0.5,
            123456.0,
            -7.0000001,
        ] {
            assert_eq!(floor(v), v.floor(), "{v}");
        }
        assert!(floor(f64::NAN).is_nan());
        assert!(floor(1e300) > 9e18 && floor(-1e300) < -9e18 && floor(f64::INFINITY) > 9e18);
    }

    #[test]
    fn integer_thresholds_decide_like_dlibs_float_test() {
        let thresholds = [
            0.0,
            0.5,
            -0.5,
            3.0,
            -3.0,
            3.25,
            -3.25,
            254.5,
            255.0,
            255.5,
            1e9,
            -255.5,
            -256.0,
            -256.5,
            -1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
        ];
        for t in thresholds {
            let it = integer_threshold(t);
            for d in -255..=255i32 {
                assert_eq!(
                    d > it,
                    d as f32 > t,
                    "difference {d}, threshold {t} -> {it}"
                );
            }
            // The compact encoding keeps the threshold and both indices.
            let packed = CompactSplit(1023 | (517 << 10) | ((it as u32 & 0xfff) << 20));
            assert_eq!(packed.decode(), (1023, 517, it), "threshold {t}");
        }
    }

    /// Like `two_point_model`, with a feature pool too large for compact splits: the two
    /// features read are the pool's last two.
    #[test]
    fn large_feature_pools_use_wide_splits_and_predict_alike() {
        let n = COMPACT_FEATURES + 10;
        let model = ShapePredictorModel {
            initial_shape: vec![0.25, 0.5, 0.75, 0.5],
            cascades: vec![Cascade {
                anchor_idx: (0..n as u32)
                    .map(|i| u32::from(i + 1 == n as u32))
                    .collect(),
                deltas: vec![[0.0, 0.0]; n],
                trees: vec![RegressionTree {
                    splits: vec![Split {
                        idx1: n as u32 - 2,
                        idx2: n as u32 - 1,
                        thresh: 10.0,
                    }],
                    leaf_values: vec![0.1, 0.0, 0.1, 0.0, -0.1, 0.0, -0.1, 0.0],
                }],
            }],
        };
        let sp = ShapePredictor::from_model(model).unwrap();
        assert!(matches!(sp.cascades[0].splits, Splits::Wide(_)));
        let rect = DlibRect::new(0, 0, 99, 99);
        let mut img = GrayImage::new(100, 100);
        img.put_pixel(25, 50, image::Luma([200]));
        img.put_pixel(74, 50, image::Luma([100]));
        assert_eq!(xs(&sp.predict(&img, rect)), vec![35.0, 84.0]);
        img.put_pixel(74, 50, image::Luma([195]));
        assert_eq!(xs(&sp.predict(&img, rect)), vec![15.0, 64.0]);
    }

    #[test]
    fn dlib_rect_maps_to_the_float_box_covering_its_pixels() {
        let d = DlibRect::new(10, 20, 109, 139);
        assert_eq!((d.width(), d.height()), (100, 120));
        let r = d.to_rect();
        assert_eq!(r, Rect::new(9.5, 19.5, 109.5, 139.5));
        assert_eq!((r.width(), r.height()), (100.0, 120.0));
        assert_eq!(DlibRect::from_rect(&r), Some(d));
        // Edges round to the nearest pixel boundary.
        assert_eq!(
            DlibRect::from_rect(&Rect::new(9.7, 19.2, 109.4, 139.9)),
            Some(d)
        );
        assert_eq!(
            DlibRect::from_rect(&Rect::new(f32::NAN, 0.0, 1.0, 1.0)),
            None
        );
        assert_eq!(DlibRect::from_rect(&Rect::new(0.0, 0.0, 1e9, 1.0)), None);
        assert!(DlibRect::new(5, 5, 4, 9).is_empty());
        assert_eq!(DlibRect::new(5, 5, 4, 9).width(), 0);
    }

    /// Two points on a horizontal line; one tree with one split comparing the pixels
    /// under them: left leaf moves both right by 0.1 of the box, right leaf moves them left.
    fn two_point_model(thresh: f32) -> ShapePredictor {
        let model = ShapePredictorModel {
            initial_shape: vec![0.25, 0.5, 0.75, 0.5],
            cascades: vec![Cascade {
                anchor_idx: vec![0, 1],
                deltas: vec![[0.0, 0.0], [0.0, 0.0]],
                trees: vec![RegressionTree {
                    splits: vec![Split {
                        idx1: 0,
                        idx2: 1,
                        thresh,
                    }],
                    leaf_values: vec![0.1, 0.0, 0.1, 0.0, -0.1, 0.0, -0.1, 0.0],
                }],
            }],
        };
        ShapePredictor::from_model(model).unwrap()
    }

    fn xs(points: &[Point]) -> Vec<f32> {
        points.iter().map(|p| p.x).collect()
    }

    #[test]
    fn a_split_reads_the_pixels_under_the_rounded_points() {
        let sp = two_point_model(10.0);
        let rect = DlibRect::new(0, 0, 99, 99);
        // The mean shape's points land at (24.75, 49.5) and (74.25, 49.5): pixels (25, 50)
        // and (74, 50) after dlib's floor(v + 0.5).
        assert_eq!(
            sp.mean_shape_in(rect),
            vec![Point::new(24.75, 49.5), Point::new(74.25, 49.5)]
        );
        let mut img = GrayImage::new(100, 100);
        img.put_pixel(25, 50, image::Luma([200]));
        img.put_pixel(74, 50, image::Luma([100]));
        // 200 - 100 > 10: left leaf, x + 0.1 * 99.
        assert_eq!(xs(&sp.predict(&img, rect)), vec![35.0, 84.0]);
        assert_eq!(sp.predict(&img, rect)[0].y, 50.0);
        let sub = sp.predict_subpixel(&img, rect);
        assert!(
            (sub[0][0] - 34.65).abs() < 1e-5 && (sub[1][0] - 84.15).abs() < 1e-5,
            "{sub:?}"
        );
        img.put_pixel(74, 50, image::Luma([195]));
        // 200 - 195 = 5, not > 10: right leaf.
        assert_eq!(xs(&sp.predict(&img, rect)), vec![15.0, 64.0]);
    }

    #[test]
    fn rgb_pixels_read_as_their_truncated_mean() {
        let sp = two_point_model(10.0);
        let rect = DlibRect::new(0, 0, 99, 99);
        let mut img = RgbImage::new(100, 100);
        // (250 + 250 + 252) / 3 = 250.67 -> 250; 250 - 240 = 10 is not > 10: right leaf.
        // A rounded mean (251) or a luma would take the left one.
        img.put_pixel(25, 50, image::Rgb([250, 250, 252]));
        img.put_pixel(74, 50, image::Rgb([240, 240, 240]));
        assert_eq!(xs(&sp.predict(&img, rect)), vec![15.0, 64.0]);
        img.put_pixel(25, 50, image::Rgb([250, 250, 255]));
        assert_eq!(xs(&sp.predict(&img, rect)), vec![35.0, 84.0]);
    }

    #[test]
    fn pixels_outside_the_image_read_as_zero() {
        let sp = two_point_model(-3.0);
        // The first point lands at x = -60 + 24.75 (outside), the second at pixel 14.
        let rect = DlibRect::new(-60, 0, 39, 99);
        let mut img = GrayImage::from_pixel(100, 100, image::Luma([200]));
        img.put_pixel(14, 50, image::Luma([5]));
        // 0 - 5 = -5, not > -3: right leaf (x - 9.9). Reading the nearest edge pixel (200)
        // instead of 0 would take the left one.
        assert_eq!(xs(&sp.predict(&img, rect)), vec![-45.0, 4.0]);
        img.put_pixel(14, 50, image::Luma([1]));
        assert_eq!(xs(&sp.predict(&img, rect)), vec![-25.0, 24.0]);
    }

    #[test]
    fn similarity_fit_recovers_rotation_and_scale() {
        let sp = ShapePredictor::from_model(ShapePredictorModel {
            initial_shape: vec![0.2, 0.3, 0.8, 0.3, 0.5, 0.7],
            cascades: vec![],
        })
        .unwrap();
        let (s, a) = (1.7f64, 0.4f64);
        let moved: Vec<f32> = sp
            .initial_shape
            .chunks_exact(2)
            .flat_map(|p| {
                let (x, y) = (f64::from(p[0]), f64::from(p[1]));
                [
                    (s * (a.cos() * x - a.sin() * y) + 0.3) as f32,
                    (s * (a.sin() * x + a.cos() * y) - 0.2) as f32,
                ]
            })
            .collect();
        let m = sp.similarity_to(&moved);
        let want = [s * a.cos(), -s * a.sin(), s * a.sin(), s * a.cos()];
        for (g, w) in m.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-6, "{m:?} vs {want:?}");
        }
        // The mean shape onto itself: exactly the identity once cast to f32.
        assert_eq!(
            sp.similarity_to(&sp.initial_shape.clone()),
            [1.0, 0.0, 0.0, 1.0]
        );
    }

    #[test]
    fn inconsistent_models_are_refused() {
        let base = || ShapePredictorModel {
            initial_shape: vec![0.2, 0.3, 0.8, 0.3],
            cascades: vec![Cascade {
                anchor_idx: vec![0, 1],
                deltas: vec![[0.0, 0.0], [0.0, 0.0]],
                trees: vec![RegressionTree {
                    splits: vec![Split {
                        idx1: 0,
                        idx2: 1,
                        thresh: 0.0,
                    }],
                    leaf_values: vec![0.0; 8],
                }],
            }],
        };
        assert!(ShapePredictor::from_model(base()).is_ok());
        let mut m = base();
        m.initial_shape.push(0.5);
        assert!(ShapePredictor::from_model(m).is_err(), "odd mean shape");
        let mut m = base();
        m.cascades[0].anchor_idx[1] = 2;
        assert!(
            ShapePredictor::from_model(m).is_err(),
            "anchor out of range"
        );
        let mut m = base();
        m.cascades[0].deltas.pop();
        assert!(ShapePredictor::from_model(m).is_err(), "missing delta");
        let mut m = base();
        m.cascades[0].trees[0].splits[0].idx2 = 2;
        assert!(
            ShapePredictor::from_model(m).is_err(),
            "feature out of range"
        );
        let mut m = base();
        m.cascades[0].trees[0].leaf_values.pop();
        assert!(ShapePredictor::from_model(m).is_err(), "short leaves");
        let mut m = base();
        m.initial_shape[0] = f32::NAN;
        assert!(
            ShapePredictor::from_model(m).is_err(),
            "NaN in the mean shape"
        );
    }

    #[test]
    fn load_reports_a_missing_or_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("landmarks5.ert");
        let err = ShapePredictor::load(&missing).unwrap_err().to_string();
        assert!(err.contains("setup-models.sh"), "{err}");
        std::fs::write(&missing, b"CPERT\0\0\x01\x05").unwrap();
        assert!(ShapePredictor::load(&missing).is_err());
    }
}
