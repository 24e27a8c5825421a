//! Resampling a square region of an image into a small model input, with area
//! averaging when shrinking (so a 640x480 frame shrunk to 128x128 does not alias).
//!
//! Every model input (detector tiles, liveness crops) comes through here; the face chip
//! for the embedder does not, since it must match dlib's own interpolation (see `align`).
//! The region may extend past the image: those pixels are black, which is how the
//! detector's letterboxing pads.

use image::RgbImage;

/// Where one output coordinate reads from: the first source index and the weights of
/// the consecutive source pixels it averages (already normalised).
#[derive(Debug, Clone)]
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

/// Separable filter taps along one axis: output `o` covers source
/// `[origin + o*step, origin + (o+1)*step)`; with `step <= 1` it is bilinear. Taps outside
/// `0..len` are dropped; an output whose footprint is entirely outside gets no taps.
fn axis_taps(origin: f32, step: f32, out_len: usize, len: usize) -> Vec<Taps> {
    (0..out_len)
        .map(|o| {
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
                return Taps { start: 0, weights: Vec::new() };
            }
            let mut weights = Vec::with_capacity((last - first + 1) as usize);
            for i in first..=last {
                let w = if step > 1.0 {
                    // Area of overlap of pixel [i, i+1) with [lo, hi).
                    ((i + 1) as f32).min(hi) - (i as f32).max(lo)
                } else {
                    1.0 - (i as f32 - lo).abs()
                };
                weights.push(w.max(0.0));
            }
            // Normalise over the full footprint (not just the in-image part), so pixels
            // near the border fade to the black padding exactly as if it were real.
            let full = if step > 1.0 { step } else { 1.0 };
            for w in &mut weights {
                *w /= full;
            }
            Taps { start: first as usize, weights }
        })
        .collect()
}

/// Samples the square `size x size` region at (`left`, `top`) of `image` into
/// `out_size x out_size` RGB values in `0.0..=255.0`, written HWC into `out`
/// (`out_size * out_size * 3` floats).
pub fn sample_square(image: &RgbImage, left: f32, top: f32, size: f32, out_size: usize, out: &mut [f32]) {
    sample_region(image, left, top, size, size, out_size, out_size, out)
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
    assert_eq!(out.len(), out_w * out_h * 3, "output buffer size");
    let (w, h) = (image.width() as usize, image.height() as usize);
    let xs = axis_taps(left, width / out_w as f32, out_w, w);
    let ys = axis_taps(top, height / out_h as f32, out_h, h);
    let pixels = image.as_raw();
    // Horizontal pass per needed source row, then vertical: rows are read once each.
    let row_lo = ys.iter().filter(|t| !t.weights.is_empty()).map(|t| t.start).min().unwrap_or(0);
    let row_hi = ys.iter().map(|t| t.start + t.weights.len()).max().unwrap_or(0);
    let mut rows = vec![0f32; (row_hi.saturating_sub(row_lo)) * out_w * 3];
    for y in row_lo..row_hi {
        let src = &pixels[y * w * 3..(y + 1) * w * 3];
        let dst = &mut rows[(y - row_lo) * out_w * 3..(y - row_lo + 1) * out_w * 3];
        for (ox, t) in xs.iter().enumerate() {
            let (mut r, mut g, mut b) = (0f32, 0f32, 0f32);
            for (k, &wt) in t.weights.iter().enumerate() {
                let p = &src[(t.start + k) * 3..(t.start + k) * 3 + 3];
                r += wt * p[0] as f32;
                g += wt * p[1] as f32;
                b += wt * p[2] as f32;
            }
            dst[ox * 3] = r;
            dst[ox * 3 + 1] = g;
            dst[ox * 3 + 2] = b;
        }
    }
    for (oy, t) in ys.iter().enumerate() {
        let dst = &mut out[oy * out_w * 3..(oy + 1) * out_w * 3];
        dst.fill(0.0);
        for (k, &wt) in t.weights.iter().enumerate() {
            let row = &rows[(t.start + k - row_lo) * out_w * 3..(t.start + k - row_lo + 1) * out_w * 3];
            for (d, s) in dst.iter_mut().zip(row) {
                *d += wt * s;
            }
        }
    }
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
