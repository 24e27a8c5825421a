//! Resampling a square region of an image into a small model input, with area
//! averaging when shrinking (so a 640x480 frame shrunk to 128x128 does not alias).
//!
//! Every model input (detector tiles, liveness crops) comes through here; the face chip
//! for the embedder does not, since it must match dlib's own interpolation (see `align`).
//! The region may extend past the image: those pixels are black, which is how the
//! detector's letterboxing pads.
//!
//! It runs on every frame, so it is built for speed: a [`Resampler`] keeps its filter taps
//! and row buffer between calls, filters columns first (a pass along contiguous bytes that
//! vectorises) and then rows, and a whole-pixel step from a whole-pixel origin (a 640x480
//! frame letterboxed into 128x128 is exactly 5x5 pixels per output) is summed in integers.

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
            self.taps.push(Tap {
                start: first as usize,
                offset,
                len: (last - first + 1) as usize,
            });
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
    /// The same in integers, for [`Resampler::sample_box`].
    acc_int: Vec<u16>,
}

impl Resampler {
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`sample_square`].
    pub fn sample_square(
        &mut self,
        image: &RgbImage,
        left: f32,
        top: f32,
        size: f32,
        out_size: usize,
        out: &mut [f32],
    ) {
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
        if let Some(step) = whole_box(left, top, width / out_w as f32, height / out_h as f32) {
            return self.sample_box(image, left as i64, top as i64, step, out_w, out);
        }
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
        let Resampler { xs, ys, acc, .. } = self;
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

impl Resampler {
    /// The common case of a whole-pixel origin and a whole-pixel step (a 640x480 frame
    /// letterboxed into the detector's 128x128: 5x5 pixels per output, starting 80 rows
    /// above the frame): each output is the mean of `step x step` pixels (those outside the
    /// image black), summed exactly in integers and scaled once. The general path gives the
    /// same means up to float rounding, at several times the cost.
    fn sample_box(
        &mut self,
        image: &RgbImage,
        left: i64,
        top: i64,
        step: usize,
        out_w: usize,
        out: &mut [f32],
    ) {
        let (w, h) = (i64::from(image.width()), i64::from(image.height()));
        let s = step as i64;
        let pixels = image.as_raw();
        let x_lo = left.clamp(0, w);
        let x_hi = (left + out_w as i64 * s).clamp(0, w);
        let span = 3 * (x_hi - x_lo) as usize;
        let scale = 1.0 / (step * step) as f32;
        self.acc_int.resize(span, 0);
        let acc = &mut self.acc_int[..];
        for (oy, dst) in out.chunks_exact_mut(out_w * 3).enumerate() {
            let y0 = top + oy as i64 * s;
            let rows = y0.clamp(0, h)..(y0 + s).clamp(0, h);
            if rows.is_empty() || span == 0 {
                dst.fill(0.0);
                continue;
            }
            // At most 257 rows of 255 fit in 16 bits (`whole_box` bounds the step).
            for (k, y) in rows.enumerate() {
                let row =
                    &pixels[y as usize * image.width() as usize * 3 + 3 * x_lo as usize..][..span];
                add_row(acc, row, k == 0);
            }
            for (ox, px) in dst.chunks_exact_mut(3).enumerate() {
                let x0 = left + ox as i64 * s;
                let cols = (x0.clamp(x_lo, x_hi) - x_lo) as usize
                    ..((x0 + s).clamp(x_lo, x_hi) - x_lo) as usize;
                let mut sum = [0u32; 3];
                for p in acc[3 * cols.start..3 * cols.end].chunks_exact(3) {
                    for (t, &v) in sum.iter_mut().zip(p) {
                        *t += u32::from(v);
                    }
                }
                for (o, t) in px.iter_mut().zip(sum) {
                    // Below 2^31: the signed conversion, which has an instruction.
                    *o = t as i32 as f32 * scale;
                }
            }
        }
    }
}

/// `acc = row` (`first`) or `acc += row`, element-wise, in 16 bits; with AVX2 where the CPU
/// has it (integers: the same result either way).
#[inline]
fn add_row(acc: &mut [u16], row: &[u8], first: bool) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { add_row_avx2(acc, row, first) };
        return;
    }
    add_row_portable(acc, row, first)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
// An `unsafe fn` (not a safe target-feature function) to stay within rust-version 1.85.
unsafe fn add_row_avx2(acc: &mut [u16], row: &[u8], first: bool) {
    add_row_portable(acc, row, first)
}

#[inline(always)]
fn add_row_portable(acc: &mut [u16], row: &[u8], first: bool) {
    if first {
        for (a, &p) in acc.iter_mut().zip(row) {
            *a = u16::from(p);
        }
    } else {
        for (a, &p) in acc.iter_mut().zip(row) {
            *a += u16::from(p);
        }
    }
}

/// The step of [`Resampler::sample_box`] if this geometry qualifies: a square step of 2 to
/// 257 whole pixels (so a column of sums fits 16 bits) from a whole-pixel origin.
fn whole_box(left: f32, top: f32, step_x: f32, step_y: f32) -> Option<usize> {
    let whole = |v: f32| v.is_finite() && v.abs() < 1.0e7 && v == v.round();
    (step_x == step_y
        && whole(step_x)
        && (2.0..=257.0).contains(&step_x)
        && whole(left)
        && whole(top))
    .then_some(step_x as usize)
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
pub fn sample_square(
    image: &RgbImage,
    left: f32,
    top: f32,
    size: f32,
    out_size: usize,
    out: &mut [f32],
) {
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
        let img = RgbImage::from_fn(64, 64, |x, _| {
            if x % 2 == 0 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let mut out = vec![0f32; 8 * 8 * 3];
        sample_square(&img, 0.0, 0.0, 64.0, 8, &mut out);
        for v in out {
            assert!((v - 127.5).abs() < 1e-3, "{v}");
        }
    }

    /// A deterministic test image with detail in every channel.
    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 7 + y * 3) as u8,
                (x * y / 3 + 50) as u8,
                ((x ^ y) * 5) as u8,
            ])
        })
    }

    /// The resampling written plainly, in f64, one output at a time: each output is the
    /// area-weighted (shrinking) or bilinear (enlarging) mean of the pixels under it, black
    /// outside the image.
    fn reference(
        img: &RgbImage,
        left: f64,
        top: f64,
        width: f64,
        height: f64,
        out_w: usize,
        out_h: usize,
    ) -> Vec<f64> {
        let weights = |origin: f64, step: f64, o: usize, len: u32| -> Vec<(u32, f64)> {
            (0..len)
                .filter_map(|i| {
                    let i_f = f64::from(i);
                    let w = if step > 1.0 {
                        let (lo, hi) = (origin + o as f64 * step, origin + (o + 1) as f64 * step);
                        ((i_f + 1.0).min(hi) - i_f.max(lo)).max(0.0) / step
                    } else {
                        let c = origin + (o as f64 + 0.5) * step - 0.5;
                        (1.0 - (i_f - c).abs()).max(0.0)
                    };
                    (w > 0.0).then_some((i, w))
                })
                .collect()
        };
        let mut out = Vec::with_capacity(out_w * out_h * 3);
        for oy in 0..out_h {
            let wy = weights(top, height / out_h as f64, oy, img.height());
            for ox in 0..out_w {
                let wx = weights(left, width / out_w as f64, ox, img.width());
                for c in 0..3 {
                    let mut v = 0.0;
                    for &(y, a) in &wy {
                        for &(x, b) in &wx {
                            v += a * b * f64::from(img.get_pixel(x, y)[c]);
                        }
                    }
                    out.push(v);
                }
            }
        }
        out
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() < 2e-3,
                "{what}: value {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn every_geometry_matches_the_plain_reference() {
        let img = pattern(67, 45);
        // One resampler for every case, as the detector and liveness keep theirs: the
        // cached taps must follow each new geometry.
        let mut r = Resampler::new();
        let cases: &[(f32, f32, f32, f32, usize, usize)] = &[
            (0.0, -11.0, 67.0, 67.0, 16, 16), // letterbox, fractional step
            (0.0, -10.5, 67.0, 67.0, 16, 16),
            (-4.0, -8.0, 60.0, 60.0, 12, 12), // whole step 5 from a whole origin: the box path
            (3.0, 2.0, 40.0, 40.0, 8, 8),     // whole step 5 inside the image
            (-30.0, -30.0, 50.0, 50.0, 10, 10), // mostly outside
            (60.0, 40.0, 20.0, 20.0, 4, 4),   // straddling the bottom-right corner
            (10.3, 7.7, 31.9, 28.2, 13, 9),   // non-square, fractional everything
            (5.5, 5.5, 10.0, 10.0, 32, 32),   // enlarging (bilinear)
            (-2.0, -2.0, 8.0, 8.0, 20, 20),   // enlarging across the border
            (100.0, 100.0, 10.0, 10.0, 4, 4), // entirely outside
        ];
        for &(left, top, w, h, ow, oh) in cases {
            let what = format!("region ({left}, {top}) {w}x{h} -> {ow}x{oh}");
            let mut out = vec![0f32; ow * oh * 3];
            r.sample_region(&img, left, top, w, h, ow, oh, &mut out);
            assert_close(
                &out,
                &reference(&img, left.into(), top.into(), w.into(), h.into(), ow, oh),
                &what,
            );
            let mut fresh = vec![0f32; ow * oh * 3];
            sample_region(&img, left, top, w, h, ow, oh, &mut fresh);
            assert_eq!(
                out, fresh,
                "{what}: a reused resampler differs from a fresh one"
            );
        }
    }

    #[test]
    fn the_box_path_is_only_taken_for_whole_steps_from_whole_origins() {
        assert_eq!(whole_box(0.0, -80.0, 5.0, 5.0), Some(5));
        assert_eq!(whole_box(0.5, -80.0, 5.0, 5.0), None);
        assert_eq!(whole_box(0.0, -80.0, 5.5, 5.5), None);
        assert_eq!(whole_box(0.0, 0.0, 5.0, 4.0), None);
        assert_eq!(whole_box(0.0, 0.0, 1.0, 1.0), None);
        assert_eq!(whole_box(0.0, 0.0, 258.0, 258.0), None);
        assert_eq!(whole_box(f32::NAN, 0.0, 5.0, 5.0), None);
        // The largest step still sums a full column of 255s without overflowing 16 bits.
        let white = RgbImage::from_pixel(257, 257, image::Rgb([255, 255, 255]));
        let mut out = vec![0f32; 3];
        sample_square(&white, 0.0, 0.0, 257.0, 1, &mut out);
        assert!(out.iter().all(|&v| (v - 255.0).abs() < 1e-3), "{out:?}");
    }

    #[test]
    fn enlarging_is_bilinear() {
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([(x * 100) as u8, 0, 0]));
        let mut out = vec![0f32; 4 * 3]; // 4x1 pixels, RGB
        sample_region(&img, 0.0, 0.0, 2.0, 1.0, 4, 1, &mut out);
        // Sample centres at source x = -0.25, 0.25, 0.75, 1.25.
        let reds: Vec<f32> = out.chunks(3).map(|p| p[0]).collect();
        assert!(
            (reds[1] - 25.0).abs() < 1e-4 && (reds[2] - 75.0).abs() < 1e-4,
            "{reds:?}"
        );
    }
}
