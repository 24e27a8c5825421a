//! Resampling a square region of an image into a small model input, with area
//! averaging when shrinking (so a 640x480 frame shrunk to 128x128 does not alias).
//!
//! Every model input (detector tiles, liveness crops) comes through here; the face chip
//! for the embedder does not, since it must match dlib's own interpolation (see `align`).
//! The region may extend past the image: those pixels are black, which is how the
//! detector's letterboxing pads.

use image::RgbImage;

/// One output coordinate's footprint along an axis: the first source index and where its
/// weights (already normalised, one per consecutive source pixel) sit in the axis's table.
#[derive(Debug, Clone, Copy, Default)]
struct Tap {
    start: usize,
    offset: usize,
    len: usize,
}

/// The filter taps of one axis, kept between calls: a detector tile or a liveness crop of
/// the same geometry reuses them, and a new geometry refills the same buffers.
#[derive(Debug, Clone, Default)]
struct AxisTaps {
    taps: Vec<Tap>,
    weights: Vec<f32>,
    /// (origin bits, step bits, out_len, len) of what `taps` holds.
    key: Option<(u32, u32, usize, usize)>,
}

impl AxisTaps {
    /// Output `o` covers source `[origin + o*step, origin + (o+1)*step)`; with `step <= 1`
    /// it is bilinear. Taps outside `0..len` are dropped; an output whose footprint is
    /// entirely outside gets none.
    fn compute(&mut self, origin: f32, step: f32, out_len: usize, len: usize) {
        let key = (origin.to_bits(), step.to_bits(), out_len, len);
        if self.key == Some(key) {
            return;
        }
        self.taps.clear();
        self.weights.clear();
        for o in 0..out_len {
            let (lo, hi) = if step > 1.0 {
                (origin + o as f32 * step, origin + (o + 1) as f32 * step)
            } else {
                // Bilinear: the two pixels around the sample centre.
                let c = origin + (o as f32 + 0.5) * step - 0.5;
                (c, c + 1.0)
            };
            let first = lo.floor().max(0.0) as isize;
            let last = (hi.ceil() as isize).min(len as isize) - 1;
            if last < first || hi <= 0.0 || lo >= len as f32 {
                self.taps.push(Tap::default());
                continue;
            }
            // Normalise over the full footprint (not just the in-image part), so pixels
            // near the border fade to the black padding exactly as if it were real.
            let full = if step > 1.0 { step } else { 1.0 };
            let offset = self.weights.len();
            for i in first..=last {
                let w = if step > 1.0 {
                    // Area of overlap of pixel [i, i+1) with [lo, hi).
                    ((i + 1) as f32).min(hi) - (i as f32).max(lo)
                } else {
                    1.0 - (i as f32 - lo).abs()
                };
                self.weights.push(w.max(0.0) / full);
            }
            self.taps.push(Tap { start: first as usize, offset, len: (last - first + 1) as usize });
        }
        self.key = Some(key);
    }

    /// The source range `[lo, hi)` that any output reads.
    fn span(&self) -> (usize, usize) {
        let used = self.taps.iter().filter(|t| t.len > 0);
        let lo = used.clone().map(|t| t.start).min().unwrap_or(0);
        let hi = used.map(|t| t.start + t.len).max().unwrap_or(0);
        (lo, hi.max(lo))
    }
}

/// Resamples image regions into model inputs, keeping its tap tables and row buffer from
/// one call to the next (a detector or liveness model owns one and calls it every frame).
#[derive(Debug, Clone, Default)]
pub struct Resampler {
    xs: AxisTaps,
    ys: AxisTaps,
    /// One output row's vertical sums over the needed source columns, RGB interleaved.
    acc: Vec<f32>,
}

impl Resampler {
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`sample_square`].
    pub fn sample_square(&mut self, image: &RgbImage, left: f32, top: f32, size: f32, out_size: usize, out: &mut [f32]) {
        self.sample_region(image, left, top, size, size, out_size, out_size, out)
    }

    /// See [`sample_region`].
    #[allow(clippy::too_many_arguments)]
    pub fn sample_region(
        &mut self,
        image: &RgbImage,
        left: f32,
        top: f32,
        width: f32,
        height: f32,
        out_w: usize,
        out_h: usize,
        out: &mut [f32],
    ) {
        assert_eq!(out.len(), out_w * out_h * 3, "output buffer size");
        let (w, h) = (image.width() as usize, image.height() as usize);
        self.xs.compute(left, width / out_w as f32, out_w, w);
        self.ys.compute(top, height / out_h as f32, out_h, h);
        let pixels = image.as_raw();
        // Vertical pass first, one output row at a time, over only the columns some
        // output reads: it runs along contiguous bytes (so it vectorises) and its buffer
        // stays in L1, where a horizontal-first pass would fill a buffer of every source row.
        let (x_lo, x_hi) = self.xs.span();
        let span = 3 * (x_hi - x_lo);
        // One spare value at the end, so that the four-lane reads below stay in bounds.
        let Resampler { xs, ys, acc } = self;
        acc.resize(span + 1, 0.0);
        for (ty, dst) in ys.taps.iter().zip(out.chunks_exact_mut(out_w * 3)) {
            if ty.len == 0 || span == 0 {
                dst.fill(0.0);
                continue;
            }
            for (k, &wt) in ys.weights[ty.offset..ty.offset + ty.len].iter().enumerate() {
                let row = &pixels[(ty.start + k) * w * 3 + 3 * x_lo..][..span];
                accumulate(&mut acc[..span], row, wt, k == 0);
            }
            horizontal(acc, xs, x_lo, dst);
        }
    }
}

/// The horizontal pass of one output row: each output pixel the weighted sum of its taps
/// in `acc` (RGB interleaved, starting at source column `x_lo`, plus one spare value).
///
/// Each tap is read as four floats, the pixel's RGB and the next value, and the sums are
/// kept in four lanes, so that one vector operation does all three channels; the fourth
/// lane is garbage and is written over the next pixel's red, which that pixel then
/// overwrites (the row's last pixel writes three values).
#[inline]
fn horizontal(acc: &[f32], xs: &AxisTaps, x_lo: usize, dst: &mut [f32]) {
    let out_w = dst.len() / 3;
    for (ox, tx) in xs.taps.iter().enumerate() {
        let mut sum = [0f32; 4];
        let base = 3 * (tx.start.max(x_lo) - x_lo);
        for (k, &wt) in xs.weights[tx.offset..tx.offset + tx.len].iter().enumerate() {
            let p = &acc[base + 3 * k..base + 3 * k + 4];
            for (s, &v) in sum.iter_mut().zip(p) {
                *s += wt * v;
            }
        }
        if ox + 1 < out_w {
            dst[3 * ox..3 * ox + 4].copy_from_slice(&sum);
        } else {
            dst[3 * ox..3 * ox + 3].copy_from_slice(&sum[..3]);
        }
    }
}

/// `acc = wt * row` (`first`) or `acc += wt * row`, element-wise. The loop is the bulk of
/// every resampling, so where the CPU has AVX2 it runs in an AVX2 build of the same code
/// (same operations in the same order, hence the same results, eight lanes at a time).
#[inline]
fn accumulate(acc: &mut [f32], row: &[u8], wt: f32, first: bool) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { accumulate_avx2(acc, row, wt, first) };
        return;
    }
    accumulate_portable(acc, row, wt, first)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
// An `unsafe fn` (not a safe target-feature function) to stay within rust-version 1.85.
unsafe fn accumulate_avx2(acc: &mut [f32], row: &[u8], wt: f32, first: bool) {
    accumulate_portable(acc, row, wt, first)
}

#[inline(always)]
fn accumulate_portable(acc: &mut [f32], row: &[u8], wt: f32, first: bool) {
    if first {
        for (a, &p) in acc.iter_mut().zip(row) {
            *a = wt * f32::from(p);
        }
    } else {
        for (a, &p) in acc.iter_mut().zip(row) {
            *a += wt * f32::from(p);
        }
    }
}

/// Samples the square `size x size` region at (`left`, `top`) of `image` into
/// `out_size x out_size` RGB values in `0.0..=255.0`, written HWC into `out`
/// (`out_size * out_size * 3` floats). Callers that resample every frame should keep a
/// [`Resampler`] instead, which reuses its tables and buffer.
pub fn sample_square(image: &RgbImage, left: f32, top: f32, size: f32, out_size: usize, out: &mut [f32]) {
    Resampler::new().sample_square(image, left, top, size, out_size, out)
}

/// Like [`sample_square`] for a `width x height` region and output.
#[allow(clippy::too_many_arguments)]
pub fn sample_region(
    image: &RgbImage,
    left: f32,
    top: f32,
    width: f32,
    height: f32,
    out_w: usize,
    out_h: usize,
    out: &mut [f32],
) {
    Resampler::new().sample_region(image, left, top, width, height, out_w, out_h, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_image_stays_constant_and_padding_is_black() {
        let img = RgbImage::from_pixel(64, 32, image::Rgb([200, 100, 50]));
        let mut out = vec![0f32; 16 * 16 * 3];
        // Letterbox: a 64x64 square centred on the 64x32 image.
        sample_square(&img, 0.0, -16.0, 64.0, 16, &mut out);
        let px = |x: usize, y: usize| &out[(y * 16 + x) * 3..(y * 16 + x) * 3 + 3];
        assert_eq!(px(8, 8), &[200.0, 100.0, 50.0]);
        assert_eq!(px(8, 0), &[0.0, 0.0, 0.0]);
        assert_eq!(px(8, 15), &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn shrinking_averages_areas() {
        // Vertical stripes one pixel wide, black and white: an area filter gives grey,
        // point sampling would give pure black or white.
        let img = RgbImage::from_fn(64, 64, |x, _| if x % 2 == 0 { image::Rgb([0, 0, 0]) } else { image::Rgb([255, 255, 255]) });
        let mut out = vec![0f32; 8 * 8 * 3];
        sample_square(&img, 0.0, 0.0, 64.0, 8, &mut out);
        for v in out {
            assert!((v - 127.5).abs() < 1e-3, "{v}");
        }
    }

    #[test]
    fn enlarging_is_bilinear() {
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([(x * 100) as u8, 0, 0]));
        let mut out = vec![0f32; 4 * 1 * 3];
        sample_region(&img, 0.0, 0.0, 2.0, 1.0, 4, 1, &mut out);
        // Sample centres at source x = -0.25, 0.25, 0.75, 1.25.
        let reds: Vec<f32> = out.chunks(3).map(|p| p[0]).collect();
        assert!((reds[1] - 25.0).abs() < 1e-4 && (reds[2] - 75.0).abs() < 1e-4, "{reds:?}");
    }
}
