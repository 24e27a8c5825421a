//! Face quality: is this face good enough to enrol (or to trust at a kiosk)? Measures the
//! face's resolution, sharpness, pose and exposure from the five landmarks and the
//! aligned chip, and lists every problem so the person taking an enrolment photo knows
//! what to fix ("too dark", "turn towards the camera").
//!
//! The measures are cheap on purpose (they run on every kiosk frame): the distance
//! between the eyes in source pixels, the variance of the Laplacian of the grey chip,
//! the eye line's angle and the nose's offset from the eyes' midpoint, and the chip's
//! mean and spread of brightness.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::geometry::Point;

/// What was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// Distance between the eye centres, in source-image pixels.
    pub eye_distance_px: f32,
    /// Variance of the Laplacian over the chip's centre (grey levels squared).
    pub sharpness: f32,
    /// In-plane rotation of the eye line, degrees.
    pub roll_deg: f32,
    /// Horizontal offset of the nose from the eyes' midpoint, over the eye distance
    /// (0 = frontal, about ±0.5 = strongly turned).
    pub yaw: f32,
    /// Mean grey level of the chip's centre, 0..255.
    pub brightness: f32,
    /// Standard deviation of the grey levels of the chip's centre.
    pub contrast: f32,
    /// 0..1, the product of per-measure scores; 1 is an ideal enrolment photo.
    pub score: f32,
    /// Every measure outside the policy.
    pub problems: Vec<QualityProblem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityProblem {
    TooSmall,
    Blurry,
    Tilted,
    TurnedAway,
    TooDark,
    TooBright,
    LowContrast,
}

impl QualityProblem {
    /// A hint for the person in front of the camera.
    pub fn hint(self) -> &'static str {
        match self {
            QualityProblem::TooSmall => "come closer to the camera",
            QualityProblem::Blurry => "hold still; the photo is blurred",
            QualityProblem::Tilted => "hold your head upright",
            QualityProblem::TurnedAway => "look straight at the camera",
            QualityProblem::TooDark => "the face is too dark",
            QualityProblem::TooBright => "the face is over-exposed",
            QualityProblem::LowContrast => "the face has too little contrast",
        }
    }
}

/// Limits a face must meet. The defaults are for enrolment photos; a kiosk may relax
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityPolicy {
    pub min_eye_distance_px: f32,
    pub min_sharpness: f32,
    pub max_roll_deg: f32,
    pub max_yaw: f32,
    pub min_brightness: f32,
    pub max_brightness: f32,
    pub min_contrast: f32,
}

impl Default for QualityPolicy {
    fn default() -> Self {
        QualityPolicy {
            min_eye_distance_px: 30.0,
            min_sharpness: 40.0,
            max_roll_deg: 20.0,
            max_yaw: 0.3,
            min_brightness: 50.0,
            max_brightness: 215.0,
            min_contrast: 18.0,
        }
    }
}

/// The eye centres from dlib's five points (two corners per eye, then the nose base),
/// left-to-right in the image.
pub fn eye_centres(landmarks: &[Point; 5]) -> (Point, Point) {
    let a = Point::new(
        (landmarks[0].x + landmarks[1].x) / 2.0,
        (landmarks[0].y + landmarks[1].y) / 2.0,
    );
    let b = Point::new(
        (landmarks[2].x + landmarks[3].x) / 2.0,
        (landmarks[2].y + landmarks[3].y) / 2.0,
    );
    if a.x <= b.x {
        (a, b)
    } else {
        (b, a)
    }
}

/// Measures a face: `landmarks` in source pixels, `chip` the aligned 150x150 chip.
pub fn assess(landmarks: &[Point; 5], chip: &RgbImage, policy: &QualityPolicy) -> QualityReport {
    let (le, re) = eye_centres(landmarks);
    let eye_distance_px = le.distance(re);
    let roll_deg = (re.y - le.y).atan2(re.x - le.x).to_degrees();
    // Project the nose onto the eye line: its offset from the midpoint along the line.
    let mid = Point::new((le.x + re.x) / 2.0, (le.y + re.y) / 2.0);
    let yaw = if eye_distance_px > 0.0 {
        let (ux, uy) = (
            (re.x - le.x) / eye_distance_px,
            (re.y - le.y) / eye_distance_px,
        );
        ((landmarks[4].x - mid.x) * ux + (landmarks[4].y - mid.y) * uy) / eye_distance_px
    } else {
        0.0
    };
    let (brightness, contrast, sharpness) = chip_statistics(chip);

    let mut problems = Vec::new();
    let p = policy;
    let mut check = |bad: bool, problem| {
        if bad {
            problems.push(problem)
        }
    };
    check(
        eye_distance_px < p.min_eye_distance_px,
        QualityProblem::TooSmall,
    );
    check(sharpness < p.min_sharpness, QualityProblem::Blurry);
    check(roll_deg.abs() > p.max_roll_deg, QualityProblem::Tilted);
    check(yaw.abs() > p.max_yaw, QualityProblem::TurnedAway);
    check(brightness < p.min_brightness, QualityProblem::TooDark);
    check(brightness > p.max_brightness, QualityProblem::TooBright);
    check(contrast < p.min_contrast, QualityProblem::LowContrast);

    // Each factor is 1 when comfortably inside the policy and falls to 0.5 at its limit.
    let ramp = |value: f32, limit: f32| (value / limit / 2.0).clamp(0.0, 1.0);
    let score = ramp(eye_distance_px, p.min_eye_distance_px)
        * ramp(sharpness, p.min_sharpness)
        * ramp(p.max_roll_deg, roll_deg.abs().max(1e-3))
        * ramp(p.max_yaw, yaw.abs().max(1e-3))
        * ramp(brightness, p.min_brightness)
        * ramp(255.0 - brightness, 255.0 - p.max_brightness)
        * ramp(contrast, p.min_contrast);

    QualityReport {
        eye_distance_px,
        sharpness,
        roll_deg,
        yaw,
        brightness,
        contrast,
        score,
        problems,
    }
}

/// Mean, standard deviation and Laplacian variance of the grey levels of the chip's
/// central region (the face itself; the border holds hair and background).
fn chip_statistics(chip: &RgbImage) -> (f32, f32, f32) {
    let (w, h) = (chip.width() as usize, chip.height() as usize);
    if w < 8 || h < 8 {
        return (0.0, 0.0, 0.0);
    }
    let (x0, x1, y0, y1) = (w / 5, w - w / 5, h / 5, h - h / 5);
    // Grey levels of the centre and the one-pixel ring around it that the Laplacian
    // reads (x0, y0 >= 1 and x1 < w, y1 < h since w, h >= 8), not of the whole chip.
    let (gx0, gy0) = (x0 - 1, y0 - 1);
    let gw = x1 + 1 - gx0;
    let raw = chip.as_raw();
    let mut grey = Vec::with_capacity(gw * (y1 + 1 - gy0));
    for y in gy0..=y1 {
        grey.extend(
            raw[3 * (y * w + gx0)..3 * (y * w + x1 + 1)]
                .chunks_exact(3)
                .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32),
        );
    }
    let (mut n, mut sum, mut sum2) = (0f64, 0f64, 0f64);
    let (mut lsum, mut lsum2) = (0f64, 0f64);
    for y in y0..y1 {
        let (up, row, down) = (
            &grey[(y - 1 - gy0) * gw..][..gw],
            &grey[(y - gy0) * gw..][..gw],
            &grey[(y + 1 - gy0) * gw..][..gw],
        );
        for x in x0 - gx0..x1 - gx0 {
            let v = row[x] as f64;
            sum += v;
            sum2 += v * v;
            let lap = up[x] + down[x] + row[x - 1] + row[x + 1] - 4.0 * row[x];
            lsum += lap as f64;
            lsum2 += (lap as f64) * (lap as f64);
            n += 1.0;
        }
    }
    let mean = sum / n;
    let var = (sum2 / n - mean * mean).max(0.0);
    let lmean = lsum / n;
    let lvar = (lsum2 / n - lmean * lmean).max(0.0);
    (mean as f32, var.sqrt() as f32, lvar as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontal() -> [Point; 5] {
        // Two corners per eye (image right eye first, as dlib orders them), nose base.
        [
            Point::new(110.0, 100.0),
            Point::new(90.0, 100.0),
            Point::new(40.0, 100.0),
            Point::new(60.0, 100.0),
            Point::new(75.0, 130.0),
        ]
    }

    fn textured_chip(level: u8, amplitude: u8) -> RgbImage {
        RgbImage::from_fn(150, 150, |x, y| {
            let v = if (x / 3 + y / 3) % 2 == 0 {
                level.saturating_add(amplitude)
            } else {
                level.saturating_sub(amplitude)
            };
            image::Rgb([v, v, v])
        })
    }

    #[test]
    fn a_good_frontal_face_passes() {
        let r = assess(
            &frontal(),
            &textured_chip(128, 40),
            &QualityPolicy::default(),
        );
        assert!(r.problems.is_empty(), "{r:?}");
        assert!((r.eye_distance_px - 50.0).abs() < 1e-4);
        assert!(r.roll_deg.abs() < 1e-4 && r.yaw.abs() < 1e-4);
        assert!(r.score > 0.5);
    }

    /// `chip_statistics` as first written, over a grey copy of the whole chip.
    fn statistics_reference(chip: &RgbImage) -> (f32, f32, f32) {
        let (w, h) = (chip.width() as usize, chip.height() as usize);
        let grey: Vec<f32> = chip
            .as_raw()
            .chunks_exact(3)
            .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
            .collect();
        let (x0, x1, y0, y1) = (w / 5, w - w / 5, h / 5, h - h / 5);
        let (mut n, mut sum, mut sum2) = (0f64, 0f64, 0f64);
        let (mut lsum, mut lsum2) = (0f64, 0f64);
        for y in y0..y1 {
            for x in x0..x1 {
                let v = grey[y * w + x] as f64;
                sum += v;
                sum2 += v * v;
                let lap = grey[(y - 1) * w + x]
                    + grey[(y + 1) * w + x]
                    + grey[y * w + x - 1]
                    + grey[y * w + x + 1]
                    - 4.0 * grey[y * w + x];
                lsum += lap as f64;
                lsum2 += (lap as f64) * (lap as f64);
                n += 1.0;
            }
        }
        let mean = sum / n;
        let lmean = lsum / n;
        (
            mean as f32,
            (sum2 / n - mean * mean).max(0.0).sqrt() as f32,
            (lsum2 / n - lmean * lmean).max(0.0) as f32,
        )
    }

    #[test]
    fn statistics_read_only_the_centre_but_agree_with_the_whole_chip() {
        for (w, h) in [(150, 150), (8, 8), (9, 13), (40, 23)] {
            let chip = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 31 + y * 7) as u8, (x * y) as u8, ((x ^ y) * 9) as u8])
            });
            assert_eq!(
                chip_statistics(&chip),
                statistics_reference(&chip),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn each_problem_is_named() {
        let policy = QualityPolicy::default();
        let small: [Point; 5] = frontal().map(|p| Point::new(p.x / 4.0, p.y / 4.0));
        assert!(assess(&small, &textured_chip(128, 40), &policy)
            .problems
            .contains(&QualityProblem::TooSmall));
        let flat = RgbImage::from_pixel(150, 150, image::Rgb([128, 128, 128]));
        let r = assess(&frontal(), &flat, &policy);
        assert!(
            r.problems.contains(&QualityProblem::Blurry)
                && r.problems.contains(&QualityProblem::LowContrast)
        );
        assert!(assess(&frontal(), &textured_chip(20, 10), &policy)
            .problems
            .contains(&QualityProblem::TooDark));
        assert!(assess(&frontal(), &textured_chip(240, 10), &policy)
            .problems
            .contains(&QualityProblem::TooBright));
        let mut turned = frontal();
        turned[4].x += 25.0;
        assert!(assess(&turned, &textured_chip(128, 40), &policy)
            .problems
            .contains(&QualityProblem::TurnedAway));
        let tilted: [Point; 5] = frontal().map(|p| Point::new(p.x, p.y + p.x * 0.6));
        assert!(assess(&tilted, &textured_chip(128, 40), &policy)
            .problems
            .contains(&QualityProblem::Tilted));
    }
}
