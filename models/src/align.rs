//! Face alignment: the 150x150 chip the embedder reads, cut exactly as dlib cuts it.
//!
//! dlib's `get_face_chip_details(shape, 150, 0.25)` fits a similarity transform from five
//! template points (derived from its 68-point mean face) to the five landmarks, and
//! `extract_image_chip` samples the image through it with bilinear interpolation, after
//! first shrinking the image with its 2x Gaussian pyramid when the face is much larger than
//! the chip. The embedder was trained on such chips, so this module reproduces every step,
//! down to the integer arithmetic of the pyramid and the truncation of interpolated values,
//! and its chips are byte-identical to dlib's.

use image::RgbImage;

use crate::geometry::Point;
use crate::{Error, Result};

/// The chip the embedder expects.
pub const CHIP_SIZE: u32 = 150;
/// The padding around the template face that dlib's face recogniser uses.
pub const CHIP_PADDING: f32 = 0.25;

/// Larger chips are refused: nothing needs them and they would allocate without bound.
const MAX_CHIP_SIZE: u32 = 4096;
/// Landmarks farther out than this are refused as garbage.
const MAX_COORD: f64 = 1.0e7;

/// dlib's template for the 5-point model (`get_face_chip_details` in
/// `dlib/image_transforms/interpolation.h`), as fractions of the face square, in the order
/// the model outputs its points: outer then inner corner of the eye on the image's right,
/// outer then inner corner of the eye on the image's left, the base of the nose.
const TEMPLATE_5: [[f64; 2]; 5] = [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
];

/// A 2-D affine map `p -> m * p + b`, `m` row-major.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Affine {
    m: [f64; 4],
    b: [f64; 2],
}

impl Affine {
    #[inline]
    fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.m[0] * x + self.m[1] * y + self.b[0],
            self.m[2] * x + self.m[3] * y + self.b[1],
        )
    }

    fn inverse(&self) -> Option<Affine> {
        let det = self.m[0] * self.m[3] - self.m[1] * self.m[2];
        if det == 0.0 || !det.is_finite() {
            return None;
        }
        let m = [
            self.m[3] / det,
            -self.m[1] / det,
            -self.m[2] / det,
            self.m[0] / det,
        ];
        let b = [
            -(m[0] * self.b[0] + m[1] * self.b[1]),
            -(m[2] * self.b[0] + m[3] * self.b[1]),
        ];
        Some(Affine { m, b })
    }

    /// The affine map sending the chip corners `(0,0)`, `(w,0)`, `(0,h)` to `to[0..3]`
    /// (dlib's `find_affine_transform` on those three pairs, which has this exact solution).
    fn from_chip_corners(w: f64, h: f64, to: [(f64, f64); 3]) -> Affine {
        // A 1-pixel-wide chip has coincident corners; dlib's pseudo-inverse then gives a
        // zero column, which dividing by 1 instead of 0 reproduces.
        let (w, h) = (
            if w == 0.0 { 1.0 } else { w },
            if h == 0.0 { 1.0 } else { h },
        );
        Affine {
            m: [
                (to[1].0 - to[0].0) / w,
                (to[2].0 - to[0].0) / h,
                (to[1].1 - to[0].1) / w,
                (to[2].1 - to[0].1) / h,
            ],
            b: [to[0].0, to[0].1],
        }
    }
}

/// dlib's `drectangle`: float edges with dlib's inclusive width `right - left + 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DRect {
    l: f64,
    t: f64,
    r: f64,
    b: f64,
}

impl DRect {
    const EMPTY: DRect = DRect {
        l: 0.0,
        t: 0.0,
        r: -1.0,
        b: -1.0,
    };

    fn is_empty(&self) -> bool {
        self.t > self.b || self.l > self.r
    }
    fn width(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.r - self.l + 1.0
        }
    }
    fn height(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.b - self.t + 1.0
        }
    }
    fn area(&self) -> f64 {
        self.width() * self.height()
    }
    fn center(&self) -> (f64, f64) {
        ((self.l + self.r) / 2.0, (self.t + self.b) / 2.0)
    }
    /// `rect += point` (a drectangle grown to contain a point).
    fn add_point(self, x: f64, y: f64) -> DRect {
        if self.is_empty() {
            DRect {
                l: x,
                t: y,
                r: x,
                b: y,
            }
        } else {
            DRect {
                l: self.l.min(x),
                t: self.t.min(y),
                r: self.r.max(x),
                b: self.b.max(y),
            }
        }
    }
    fn intersect(&self, o: &DRect) -> DRect {
        DRect {
            l: self.l.max(o.l),
            t: self.t.max(o.t),
            r: self.r.min(o.r),
            b: self.b.min(o.b),
        }
    }
    fn translate(&self, dx: f64, dy: f64) -> DRect {
        DRect {
            l: self.l + dx,
            t: self.t + dy,
            r: self.r + dx,
            b: self.b + dy,
        }
    }
    /// `pyramid_down<2>::rect_down`: both corners through `p/2 - (1.25, 0.75)`, then the
    /// rectangle spanning them.
    fn pyramid_down(&self) -> DRect {
        let (x1, y1) = (self.l / 2.0 - 1.25, self.t / 2.0 - 0.75);
        let (x2, y2) = (self.r / 2.0 - 1.25, self.b / 2.0 - 0.75);
        DRect::EMPTY.add_point(x1, y1).add_point(x2, y2)
    }
    /// dlib's conversion to an integer `rectangle`: each edge `floor(v + 0.5)`.
    fn round(&self) -> IRect {
        let f = |v: f64| (v + 0.5).floor() as i64;
        IRect {
            l: f(self.l),
            t: f(self.t),
            r: f(self.r),
            b: f(self.b),
        }
    }
}

/// dlib's integer `rectangle` (inclusive edges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IRect {
    l: i64,
    t: i64,
    r: i64,
    b: i64,
}

impl IRect {
    const EMPTY: IRect = IRect {
        l: 0,
        t: 0,
        r: -1,
        b: -1,
    };

    fn is_empty(&self) -> bool {
        self.t > self.b || self.l > self.r
    }
    fn width(&self) -> i64 {
        if self.is_empty() {
            0
        } else {
            self.r - self.l + 1
        }
    }
    fn height(&self) -> i64 {
        if self.is_empty() {
            0
        } else {
            self.b - self.t + 1
        }
    }
    fn union(self, o: IRect) -> IRect {
        if o.is_empty() {
            self
        } else if self.is_empty() {
            o
        } else {
            IRect {
                l: self.l.min(o.l),
                t: self.t.min(o.t),
                r: self.r.max(o.r),
                b: self.b.max(o.b),
            }
        }
    }
    fn intersect(&self, o: &IRect) -> IRect {
        IRect {
            l: self.l.max(o.l),
            t: self.t.max(o.t),
            r: self.r.min(o.r),
            b: self.b.min(o.b),
        }
    }
}

/// `rotate_point(center, p, angle)`.
#[inline]
fn rotate_about((cx, cy): (f64, f64), (px, py): (f64, f64), (sin, cos): (f64, f64)) -> (f64, f64) {
    let (x, y) = (px - cx, py - cy);
    (cos * x - sin * y + cx, sin * x + cos * y + cy)
}

/// Where a chip comes from: dlib's `chip_details` (a rotated rectangle in the image and
/// the chip's size), plus the chip-to-image map for callers.
#[derive(Debug, Clone, PartialEq)]
pub struct ChipTransform {
    rect: DRect,
    angle: f64,
    rows: u32,
    cols: u32,
    /// Chip pixel -> image pixel at full resolution (what the sampling does, up to the
    /// pyramid's smoothing).
    to_image: Affine,
    to_chip: Affine,
}

impl ChipTransform {
    /// Chip width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.cols, self.rows)
    }

    /// Rotation of the chip in the image, radians (dlib's `chip_details::angle`).
    pub fn angle(&self) -> f64 {
        self.angle
    }

    /// Image pixels per chip pixel.
    pub fn scale(&self) -> f64 {
        self.to_image.m[0].hypot(self.to_image.m[2])
    }

    /// Where chip pixel `p` is sampled from in the source image.
    pub fn chip_to_image(&self, p: Point) -> Point {
        let (x, y) = self.to_image.apply(f64::from(p.x), f64::from(p.y));
        Point::new(x as f32, y as f32)
    }

    /// Where image point `p` lands in the chip.
    pub fn image_to_chip(&self, p: Point) -> Point {
        let (x, y) = self.to_chip.apply(f64::from(p.x), f64::from(p.y));
        Point::new(x as f32, y as f32)
    }
}

/// dlib's `get_face_chip_details(shape, size, padding)` for a 5-point shape.
///
/// `landmarks` are in the order the 5-point model outputs them; give them exactly as
/// [`crate::landmarks::ShapePredictor::predict`] returns them (whole pixels) to get
/// dlib's chip. `padding` is a fraction of the template face added on every side (dlib's
/// face recogniser uses 0.25, [`CHIP_PADDING`]).
pub fn chip_transform(landmarks: &[Point; 5], size: u32, padding: f32) -> Result<ChipTransform> {
    if size == 0 || size > MAX_CHIP_SIZE {
        return Err(Error::InvalidArgument(format!(
            "chip size {size} is not in 1..={MAX_CHIP_SIZE}"
        )));
    }
    let padding = f64::from(padding);
    if !(padding.is_finite() && (0.0..=100.0).contains(&padding)) {
        return Err(Error::InvalidArgument(format!(
            "chip padding {padding} is not in 0..=100"
        )));
    }
    let to: Vec<(f64, f64)> = landmarks
        .iter()
        .map(|p| (f64::from(p.x), f64::from(p.y)))
        .collect();
    if to.iter().any(|&(x, y)| {
        !(x.is_finite() && y.is_finite() && x.abs() < MAX_COORD && y.abs() < MAX_COORD)
    }) {
        return Err(Error::InvalidArgument(format!(
            "landmarks out of range: {landmarks:?}"
        )));
    }
    let sz = f64::from(size);
    let from: Vec<(f64, f64)> = TEMPLATE_5
        .iter()
        .map(|t| {
            (
                ((padding + t[0]) / (2.0 * padding + 1.0)) * sz,
                ((padding + t[1]) / (2.0 * padding + 1.0)) * sz,
            )
        })
        .collect();

    // Least-squares similarity transform chip -> image (Umeyama, as dlib's
    // find_similarity_transform; the 2-D closed form of its SVD solution).
    let n = from.len() as f64;
    let mean = |v: &[(f64, f64)]| {
        let (sx, sy) = v
            .iter()
            .fold((0.0, 0.0), |(ax, ay), &(x, y)| (ax + x, ay + y));
        (sx / n, sy / n)
    };
    let (mfx, mfy) = mean(&from);
    let (mtx, mty) = mean(&to);
    let (mut sigma_from, mut c00, mut c01, mut c10, mut c11) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (&(fx, fy), &(tx, ty)) in from.iter().zip(&to) {
        let (fx, fy, tx, ty) = (fx - mfx, fy - mfy, tx - mtx, ty - mty);
        sigma_from += fx * fx + fy * fy;
        c00 += tx * fx;
        c01 += tx * fy;
        c10 += ty * fx;
        c11 += ty * fy;
    }
    sigma_from /= n;
    let (p, q) = ((c00 + c11) / n, (c10 - c01) / n);
    // sigma_from > 0: the template points are fixed and distinct.
    let (a, b) = (p / sigma_from, q / sigma_from);
    let m = [a, -b, b, a];
    let t = [
        mtx - (m[0] * mfx + m[1] * mfy),
        mty - (m[2] * mfx + m[3] * mfy),
    ];
    if a == 0.0 && b == 0.0 {
        return Err(Error::InvalidArgument(format!(
            "degenerate landmarks (all at one point): {landmarks:?}"
        )));
    }

    // chip_details(from, to, dims): keep the rotation and scale as an angle and a
    // rectangle centred on the chip centre's image.
    let angle = b.atan2(a);
    // dlib's `length(p)`: sqrt(x*x + y*y), which can differ from hypot in the last bit.
    let scale = (a * a + b * b).sqrt();
    let (cols, rows) = (size, size);
    let half = (f64::from(cols) / 2.0, f64::from(rows) / 2.0);
    let (cx, cy) = (
        m[0] * half.0 + m[1] * half.1 + t[0],
        m[2] * half.0 + m[3] * half.1 + t[1],
    );
    let (w, h) = (f64::from(cols) * scale - 1.0, f64::from(rows) * scale - 1.0);
    let rect = DRect {
        l: cx - w / 2.0,
        t: cy - h / 2.0,
        r: cx + w / 2.0,
        b: cy + h / 2.0,
    };

    let sc = angle.sin_cos();
    let center = rect.center();
    let to_image = Affine::from_chip_corners(
        f64::from(cols - 1),
        f64::from(rows - 1),
        [
            rotate_about(center, (rect.l, rect.t), sc),
            rotate_about(center, (rect.r, rect.t), sc),
            rotate_about(center, (rect.l, rect.b), sc),
        ],
    );
    let to_chip = to_image
        .inverse()
        .ok_or_else(|| Error::InvalidArgument(format!("degenerate landmarks: {landmarks:?}")))?;
    Ok(ChipTransform {
        rect,
        angle,
        rows,
        cols,
        to_image,
        to_chip,
    })
}

/// An RGB image region: dlib's `sub_image` of a buffer (or a whole pyramid level).
struct View<'a> {
    data: &'a [u8],
    stride: usize,
    x0: usize,
    y0: usize,
    nc: i64,
    nr: i64,
}

/// dlib's `interpolate_bilinear` for RGB; `None` when the 2x2 neighbourhood leaves the view.
/// One pixel at a time: the reference that `sample_chip`, which does the same row by row,
/// is tested against.
#[cfg(test)]
fn bilinear(img: &View<'_>, x: f64, y: f64) -> Option<[u8; 3]> {
    // dlib's test, `floor(x) >= 0 && floor(x) + 1 < nc`, is `0 <= x < nc - 1` since nc - 1
    // is an integer (NaN fails both ways). Checked first, it makes the floor a plain
    // truncation of a small positive number.
    if !(x >= 0.0 && y >= 0.0 && x < (img.nc - 1) as f64 && y < (img.nr - 1) as f64) {
        return None;
    }
    let (left, top) = (x as u32 as usize, y as u32 as usize);
    let lr = x - left as f64;
    let tb = y - top as f64;
    // The two pixels of each row are adjacent: one slice per row.
    let i = (img.y0 + top) * img.stride + 3 * (img.x0 + left);
    let (upper, lower) = (
        &img.data[i..i + 6],
        &img.data[i + img.stride..i + img.stride + 6],
    );
    // Four lanes, the fourth a dummy, so the three channels compute as one vector; each lane
    // is dlib's expression, operation for operation.
    let lanes = |p: &[u8]| [f64::from(p[0]), f64::from(p[1]), f64::from(p[2]), 0.0];
    let (tl, tr, bl, br) = (
        lanes(&upper[..3]),
        lanes(&upper[3..]),
        lanes(&lower[..3]),
        lanes(&lower[3..]),
    );
    let mut v = [0f64; 4];
    for k in 0..4 {
        v[k] =
            (1.0 - tb) * ((1.0 - lr) * tl[k] + lr * tr[k]) + tb * ((1.0 - lr) * bl[k] + lr * br[k]);
    }
    // dlib's `assign_pixel` clamps to 0..=255 and truncates. A convex combination of bytes
    // is finite and within [0, 255] up to a few ulps, where Rust's saturating cast does
    // exactly that.
    Some([v[0] as u8, v[1] as u8, v[2] as u8])
}

/// Samples every chip pixel `(c, r)` at `map(c, r)` in `src` (row-major RGB into `out`,
/// `cols` pixels a row), leaving the pixels dlib leaves black untouched. With AVX2 where
/// the CPU has it: no FMA is enabled and Rust never fuses operations, so the bytes are the
/// same either way.
fn sample_chip(src: &View<'_>, map: &Affine, cols: usize, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { sample_chip_avx2(src, map, cols, out) };
        return;
    }
    sample_chip_portable(src, map, cols, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
// An `unsafe fn` (not a safe target-feature function) to stay within rust-version 1.85.
unsafe fn sample_chip_avx2(src: &View<'_>, map: &Affine, cols: usize, out: &mut [u8]) {
    sample_chip_portable(src, map, cols, out)
}

#[inline(always)]
fn sample_chip_portable(src: &View<'_>, map: &Affine, cols: usize, out: &mut [u8]) {
    // `map.apply(c, r)` is `(m0*c + m1*r) + b0` (and likewise for y): the products are
    // computed once per column and per row, and summed in that same order, so every
    // sample position is bit-identical to applying the map pixel by pixel.
    let cx: Vec<f64> = (0..cols).map(|c| map.m[0] * c as f64).collect();
    let cy: Vec<f64> = (0..cols).map(|c| map.m[2] * c as f64).collect();
    // dlib's test, `floor(x) >= 0 && floor(x) + 1 < nc`, is `0 <= x < nc - 1` since nc - 1
    // is an integer (NaN fails both ways); inside, the floor is a plain truncation.
    let (x_end, y_end) = ((src.nc - 1) as f64, (src.nr - 1) as f64);
    // One row at a time, in two passes over arrays (one entry per chip column): a scalar
    // pass reads the four neighbours of every sample, then the arithmetic runs channel by
    // channel across the row, where it vectorises. Each pixel's arithmetic is still exactly
    // `bilinear`'s.
    let (mut lr, mut tb) = (vec![0f64; cols], vec![0f64; cols]);
    // Each neighbour's RGB bytes as a little-endian word (the fourth byte is ignored).
    let mut words = [
        vec![0u32; cols],
        vec![0u32; cols],
        vec![0u32; cols],
        vec![0u32; cols],
    ];
    let mut inside = vec![false; cols];
    let mut channels = [vec![0u8; cols], vec![0u8; cols], vec![0u8; cols]];
    for (r, out_row) in out.chunks_exact_mut(3 * cols).enumerate() {
        let (rx, ry) = (map.m[1] * r as f64, map.m[3] * r as f64);
        for c in 0..cols {
            let (x, y) = (cx[c] + rx + map.b[0], cy[c] + ry + map.b[1]);
            inside[c] = x >= 0.0 && y >= 0.0 && x < x_end && y < y_end;
            if !inside[c] {
                (lr[c], tb[c]) = (0.0, 0.0);
                continue;
            }
            let (left, top) = (x as u32 as usize, y as u32 as usize);
            lr[c] = x - left as f64;
            tb[c] = y - top as f64;
            let i = (src.y0 + top) * src.stride + 3 * (src.x0 + left);
            let j = i + src.stride;
            words[0][c] = rgb_word(src.data, i);
            words[1][c] = rgb_word(src.data, i + 3);
            words[2][c] = rgb_word(src.data, j);
            words[3][c] = rgb_word(src.data, j + 3);
        }
        let (tl, tr, bl, br) = (
            &words[0][..cols],
            &words[1][..cols],
            &words[2][..cols],
            &words[3][..cols],
        );
        let (lr, tb) = (&lr[..cols], &tb[..cols]);
        for (k, channel) in channels.iter_mut().enumerate() {
            let shift = 8 * k as u32;
            let byte = |w: u32| f64::from((w >> shift) & 0xff);
            for (c, v) in channel[..cols].iter_mut().enumerate() {
                let (lr, tb) = (lr[c], tb[c]);
                let value = (1.0 - tb) * ((1.0 - lr) * byte(tl[c]) + lr * byte(tr[c]))
                    + tb * ((1.0 - lr) * byte(bl[c]) + lr * byte(br[c]));
                // dlib's `assign_pixel`: clamp to 0..=255 and truncate, which a saturating
                // cast does (the value is a convex combination of bytes, never NaN).
                *v = value as u8;
            }
        }
        for (c, px) in out_row.chunks_exact_mut(3).enumerate() {
            if inside[c] {
                px.copy_from_slice(&[channels[0][c], channels[1][c], channels[2][c]]);
            }
        }
    }
}

/// The RGB pixel at byte `i` of `data` as a little-endian word, with the byte after it (or
/// zero at the very end of the buffer) on top.
#[inline(always)]
fn rgb_word(data: &[u8], i: usize) -> u32 {
    match data.get(i..i + 4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => u32::from_le_bytes([data[i], data[i + 1], data[i + 2], 0]),
    }
}

/// One level of dlib's `pyramid_down<2>` on an RGB image: a separable 5-tap
/// `[1 4 6 4 1]` filter in 16-bit integers, keeping every other row and column; output
/// `((w-3)/2) x ((h-3)/2)`, empty for images of 8 pixels or fewer on a side.
///
/// dlib filters the rows first, then the columns; this filters the columns first, one
/// output row at a time. Every partial sum is an exact integer (at most 16 * 16 * 255), so
/// the order cannot change a single value, and this way the inner loop runs along
/// contiguous bytes (it vectorises) and no full-size intermediate image is needed.
fn pyramid_down_rgb(src: &View<'_>) -> (Vec<u8>, usize, usize) {
    let (w, h) = (src.nc.max(0) as usize, src.nr.max(0) as usize);
    if w <= 8 || h <= 8 {
        return (Vec::new(), 0, 0);
    }
    let (tw, oh) = ((w - 3) / 2, (h - 3) / 2);
    let mut out = Vec::with_capacity(oh * tw * 3);
    let mut vert = vec![0u16; 3 * w];
    let row = |r: usize| &src.data[(src.y0 + r) * src.stride + 3 * src.x0..][..3 * w];
    for dr in 0..oh {
        // Output row dr is centred on source row 2*dr + 2.
        let r = 2 * dr;
        filter_rows(
            &mut vert,
            [row(r), row(r + 1), row(r + 2), row(r + 3), row(r + 4)],
        );
        // Output column c is centred on source column 2*c + 2.
        for c in 0..tw {
            let v = &vert[6 * c..6 * c + 15];
            for k in 0..3 {
                let sum = u32::from(v[k])
                    + 4 * u32::from(v[3 + k])
                    + 6 * u32::from(v[6 + k])
                    + 4 * u32::from(v[9 + k])
                    + u32::from(v[12 + k]);
                out.push((sum / 256) as u8);
            }
        }
    }
    (out, tw, oh)
}

/// `out = r0 + 4*r1 + 6*r2 + 4*r3 + r4`, element-wise, in 16 bits (at most 16 * 255).
/// With AVX2 where the CPU has it: integers, so the result is the same either way.
#[inline]
fn filter_rows(out: &mut [u16], rows: [&[u8]; 5]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { filter_rows_avx2(out, rows) };
        return;
    }
    filter_rows_portable(out, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
// An `unsafe fn` (not a safe target-feature function) to stay within rust-version 1.85.
unsafe fn filter_rows_avx2(out: &mut [u16], rows: [&[u8]; 5]) {
    filter_rows_portable(out, rows)
}

#[inline(always)]
fn filter_rows_portable(out: &mut [u16], [r0, r1, r2, r3, r4]: [&[u8]; 5]) {
    let n = out.len();
    let (r0, r1, r2, r3, r4) = (&r0[..n], &r1[..n], &r2[..n], &r3[..n], &r4[..n]);
    for i in 0..n {
        out[i] = u16::from(r0[i])
            + 4 * u16::from(r1[i])
            + 6 * u16::from(r2[i])
            + 4 * u16::from(r3[i])
            + u16::from(r4[i]);
    }
}

/// dlib's `extract_image_chip(img, details, chip)` with bilinear interpolation: the chip
/// of `t.size()`, black where it reaches outside the image.
pub fn extract_chip(image: &RgbImage, t: &ChipTransform) -> RgbImage {
    let (cols, rows) = (t.cols, t.rows);
    let mut chip = RgbImage::new(cols, rows);
    let (iw, ih) = (i64::from(image.width()), i64::from(image.height()));
    let img_rect = IRect {
        l: 0,
        t: 0,
        r: iw - 1,
        b: ih - 1,
    };
    let data = image.as_raw().as_slice();
    let stride = 3 * image.width() as usize;

    // No rotation and no scaling: dlib copies pixels.
    if t.angle == 0.0 && f64::from(rows) == t.rect.height() && f64::from(cols) == t.rect.width() {
        let loc = t.rect.round();
        for r in 0..rows {
            for c in 0..cols {
                let (x, y) = (loc.l + i64::from(c), loc.t + i64::from(r));
                if x >= 0 && y >= 0 && x < iw && y < ih {
                    let i = y as usize * stride + 3 * x as usize;
                    chip.put_pixel(c, r, image::Rgb([data[i], data[i + 1], data[i + 2]]));
                }
            }
        }
        return chip;
    }

    let chip_area = f64::from(rows) * f64::from(cols);
    // How deep the pyramid must go so that bilinear sampling does not alias, and the
    // region of the image it needs (dlib's extract_image_chips).
    let mut depth = 0usize;
    let mut grow = 2.0f64;
    let mut r = t.rect.pyramid_down();
    while r.area() > chip_area {
        r = r.pyramid_down();
        depth += 1;
        grow = grow * 2.0 + 2.0;
    }
    let sc = t.angle.sin_cos();
    let center = t.rect.center();
    let rot_rect = [
        (t.rect.l, t.rect.t),
        (t.rect.r, t.rect.t),
        (t.rect.l, t.rect.b),
        (t.rect.r, t.rect.b),
    ]
    .into_iter()
    .fold(DRect::EMPTY, |acc, p| {
        let (x, y) = rotate_about(center, p, sc);
        acc.add_point(x, y)
    });
    let grown = DRect {
        l: rot_rect.l - grow,
        t: rot_rect.t - grow,
        r: rot_rect.r + grow,
        b: rot_rect.b + grow,
    };
    let img_drect = DRect {
        l: 0.0,
        t: 0.0,
        r: (iw - 1) as f64,
        b: (ih - 1) as f64,
    };
    let bbox = IRect::EMPTY.union(grown.intersect(&img_drect).round());
    // sub_image clips to the image.
    let sub = bbox.intersect(&img_rect);
    let base = View {
        data,
        stride,
        x0: sub.l.max(0) as usize,
        y0: sub.t.max(0) as usize,
        nc: sub.width(),
        nr: sub.height(),
    };

    // Which level to sample, and the chip -> level map.
    let mut level: isize = -1;
    let mut rect = t.rect.translate(-bbox.l as f64, -bbox.t as f64);
    while rect.pyramid_down().area() > chip_area {
        level += 1;
        rect = rect.pyramid_down();
    }
    let center = rect.center();
    let map = Affine::from_chip_corners(
        f64::from(cols - 1),
        f64::from(rows - 1),
        [
            rotate_about(center, (rect.l, rect.t), sc),
            rotate_about(center, (rect.r, rect.t), sc),
            rotate_about(center, (rect.l, rect.b), sc),
        ],
    );

    // Build only the levels needed (dlib builds `depth` of them; the chip reads one).
    let mut levels: Vec<(Vec<u8>, usize, usize)> = Vec::new();
    if level >= 0 {
        debug_assert!((level as usize) < depth.max(1));
        let mut cur = pyramid_down_rgb(&base);
        for _ in 0..level {
            let v = View {
                data: &cur.0,
                stride: 3 * cur.1,
                x0: 0,
                y0: 0,
                nc: cur.1 as i64,
                nr: cur.2 as i64,
            };
            let next = pyramid_down_rgb(&v);
            cur = next;
        }
        levels.push(cur);
    }
    let src = match levels.first() {
        Some((buf, w, h)) => View {
            data: buf,
            stride: 3 * w,
            x0: 0,
            y0: 0,
            nc: *w as i64,
            nr: *h as i64,
        },
        None => base,
    };

    sample_chip(&src, &map, cols as usize, chip.as_mut());
    chip
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template face mapped into an image by a known similarity transform.
    fn landmarks(scale: f64, angle: f64, (cx, cy): (f64, f64)) -> [Point; 5] {
        TEMPLATE_5.map(|[x, y]| {
            let (dx, dy) = ((x - 0.5) * 100.0 * scale, (y - 0.4) * 100.0 * scale);
            Point::new(
                (cx + angle.cos() * dx - angle.sin() * dy) as f32,
                (cy + angle.sin() * dx + angle.cos() * dy) as f32,
            )
        })
    }

    #[test]
    fn the_transform_recovers_rotation_and_scale() {
        // With padding 0.25 the template spans 150 / 1.5 = 100 chip pixels, like the
        // 100 * scale image pixels of `landmarks`.
        let t = chip_transform(&landmarks(2.0, 0.3, (400.0, 300.0)), 150, 0.25).unwrap();
        assert!((t.angle() - 0.3).abs() < 1e-6, "{}", t.angle());
        // dlib's chip rectangle is `150 * scale - 1` wide between the first and last pixel
        // centres, so the pixel pitch is (300 - 1) / 149, not 2.
        assert!(
            (t.scale() - (2.0 * 150.0 - 1.0) / 149.0).abs() < 1e-5,
            "{}",
            t.scale()
        );
        assert_eq!(t.size(), (150, 150));
        for p in [
            Point::new(0.0, 0.0),
            Point::new(149.0, 0.0),
            Point::new(37.5, 121.0),
        ] {
            let back = t.image_to_chip(t.chip_to_image(p));
            assert!(back.distance(p) < 1e-3, "{p:?} -> {back:?}");
        }
        // The landmarks land on the padded template.
        let lm = landmarks(2.0, 0.3, (400.0, 300.0));
        for (p, [tx, ty]) in lm.iter().zip(TEMPLATE_5) {
            let c = t.image_to_chip(*p);
            let want = Point::new(
                ((0.25 + tx) / 1.5 * 150.0) as f32,
                ((0.25 + ty) / 1.5 * 150.0) as f32,
            );
            assert!(c.distance(want) < 1.0, "{c:?} vs {want:?}");
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        let ok = landmarks(1.0, 0.0, (100.0, 100.0));
        assert!(chip_transform(&ok, 150, 0.25).is_ok());
        assert!(chip_transform(&ok, 0, 0.25).is_err());
        assert!(chip_transform(&ok, MAX_CHIP_SIZE + 1, 0.25).is_err());
        assert!(chip_transform(&ok, 150, -0.1).is_err());
        assert!(chip_transform(&ok, 150, f32::NAN).is_err());
        let mut nan = ok;
        nan[2].x = f32::NAN;
        assert!(chip_transform(&nan, 150, 0.25).is_err());
        assert!(chip_transform(&[Point::new(5.0, 5.0); 5], 150, 0.25).is_err());
        let mut far = ok;
        far[0].y = 1e30;
        assert!(chip_transform(&far, 150, 0.25).is_err());
    }

    #[test]
    fn bilinear_truncates_and_stays_inside() {
        let data = [0u8, 0, 0, 255, 255, 255, 10, 20, 30, 40, 50, 60];
        let v = View {
            data: &data,
            stride: 6,
            x0: 0,
            y0: 0,
            nc: 2,
            nr: 2,
        };
        // Midway between 0 and 255 is 127.5: dlib truncates to 127.
        assert_eq!(bilinear(&v, 0.5, 0.0), Some([127, 127, 127]));
        assert_eq!(bilinear(&v, 0.0, 0.0), Some([0, 0, 0]));
        assert_eq!(bilinear(&v, 0.0, 0.999), Some([9, 19, 29]));
        // The 2x2 neighbourhood must fit: the last row and column cannot be sampled.
        assert_eq!(bilinear(&v, 1.0, 0.0), None);
        assert_eq!(bilinear(&v, 0.0, 1.0), None);
        assert_eq!(bilinear(&v, -0.01, 0.0), None);
    }

    #[test]
    fn the_row_sampler_matches_the_per_pixel_reference() {
        let (w, h) = (41usize, 29usize);
        let data: Vec<u8> = (0..w * h * 3)
            .map(|i| ((i * 37 + i / 7) % 256) as u8)
            .collect();
        let whole = View {
            data: &data,
            stride: 3 * w,
            x0: 0,
            y0: 0,
            nc: w as i64,
            nr: h as i64,
        };
        let sub = View {
            data: &data,
            stride: 3 * w,
            x0: 3,
            y0: 2,
            nc: 30,
            nr: 20,
        };
        let cols = 23usize;
        // (scale, angle, x offset, y offset): inside, rotated, up- and down-sampling, partly
        // and wholly outside, and ending on the buffer's last pixels (whose four-byte reads
        // run out of buffer).
        let maps = [
            (1.0, 0.0, 2.0, 2.0),
            (0.37, 0.3, 5.25, 3.5),
            (1.7, -0.5, 10.0, 12.0),
            (2.5, 0.1, -20.0, -3.0),
            (1.0, 0.0, -100.0, -100.0),
            (
                1.0,
                0.0,
                f64::from(w as u32) - 23.5,
                f64::from(h as u32) - 23.5,
            ),
            (0.99, 0.0, 17.9, 5.9),
        ];
        for view in [&whole, &sub] {
            for &(scale, angle, bx, by) in &maps {
                let (sin, cos) = f64::sin_cos(angle);
                let map = Affine {
                    m: [scale * cos, -scale * sin, scale * sin, scale * cos],
                    b: [bx, by],
                };
                let mut got = vec![7u8; cols * cols * 3];
                sample_chip(view, &map, cols, &mut got);
                let mut want = vec![7u8; cols * cols * 3];
                for r in 0..cols {
                    for c in 0..cols {
                        let (x, y) = map.apply(c as f64, r as f64);
                        if let Some(px) = bilinear(view, x, y) {
                            want[3 * (r * cols + c)..][..3].copy_from_slice(&px);
                        }
                    }
                }
                assert_eq!(got, want, "map {map:?}, view at ({}, {})", view.x0, view.y0);
            }
        }
    }

    #[test]
    fn pyramid_level_sizes_and_flat_regions() {
        let img = vec![[10u8, 20, 30]; 20 * 15].concat();
        let v = View {
            data: &img,
            stride: 60,
            x0: 0,
            y0: 0,
            nc: 20,
            nr: 15,
        };
        let (out, w, h) = pyramid_down_rgb(&v);
        assert_eq!((w, h), (8, 6));
        // The [1 4 6 4 1] kernel sums to 16 per axis, so /256 keeps a flat image flat.
        assert_eq!(out, [[10u8, 20, 30]; 8 * 6].concat());
        let small = View {
            data: &img,
            stride: 60,
            x0: 0,
            y0: 0,
            nc: 8,
            nr: 15,
        };
        assert_eq!(pyramid_down_rgb(&small).1, 0);
        // A single bright pixel spreads with the kernel's weights: 6*6/256 of 255 at the
        // centre tap (pixel 6 of a row feeds output 2 with weight 6).
        let mut img = vec![0u8; 20 * 15 * 3];
        img[3 * (6 * 20 + 6)] = 255;
        let v = View {
            data: &img,
            stride: 60,
            x0: 0,
            y0: 0,
            nc: 20,
            nr: 15,
        };
        let (out, w, _) = pyramid_down_rgb(&v);
        assert_eq!(out[3 * (2 * w + 2)], (255 * 36 / 256) as u8);
        assert_eq!(out[3 * (2 * w + 3)], (255 * 6 / 256) as u8);
    }

    #[test]
    fn a_chip_outside_the_image_is_black() {
        let img = RgbImage::from_pixel(64, 48, image::Rgb([200, 100, 50]));
        let t = chip_transform(&landmarks(1.0, 0.2, (-500.0, -500.0)), 150, 0.25).unwrap();
        let chip = extract_chip(&img, &t);
        assert_eq!(chip.dimensions(), (150, 150));
        assert!(chip.as_raw().iter().all(|&v| v == 0));
        // Inside, a flat image gives a flat chip.
        let t = chip_transform(&landmarks(0.2, 0.2, (32.0, 24.0)), 40, 0.25).unwrap();
        let chip = extract_chip(&img, &t);
        assert!(
            chip.pixels().all(|p| p.0 == [200, 100, 50]),
            "{:?}",
            chip.get_pixel(0, 0)
        );
    }
}
