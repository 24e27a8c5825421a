//! The landmark predictor and the face chip against dlib's own outputs.
//!
//! Two references, both in `tests/fixtures`:
//! - `dlib_reference_decoded.json`: dlib run on exactly the pixels our decoder
//!   (`models::image_io`) produces, plus synthetic images the tests regenerate. Here the
//!   ports must agree with dlib bit for bit: every landmark and every chip byte.
//! - `dlib_reference.json`: dlib run on the photo files, which it decodes with its own
//!   libjpeg 9. Our decoder differs from that one on JPEGs by up to tens of grey levels (a
//!   decoder difference, not a port difference), so there the landmarks agree to about a
//!   pixel and the chips are close but not identical; PNG photos agree exactly.
//!
//! Tests reading the photos in `../shared/faces` print "skipped" and pass when that
//! directory is absent. Tests needing the landmark model fail when it is missing.

use std::path::{Path, PathBuf};

use image::RgbImage;
use models::align::{self, ChipTransform};
use models::landmarks::{DlibRect, ShapePredictor};
use models::Point;
use serde::Deserialize;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// Fixtures and data
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Reference {
    faces: Vec<RefFace>,
}

#[derive(Deserialize)]
struct RefFace {
    image: String,
    #[serde(rename = "box")]
    rect: [i64; 4],
    landmarks: [[i64; 2]; 5],
    chip_sha256: String,
    chip_png: Option<String>,
}

#[derive(Deserialize)]
struct Decoded {
    dlib_version: String,
    faces: Vec<DecodedFace>,
    synthetic: Vec<Synthetic>,
}

#[derive(Deserialize)]
struct DecodedFace {
    image: String,
    rgb_sha256: String,
    #[serde(rename = "box")]
    rect: [i64; 4],
    landmarks: [[i64; 2]; 5],
    chip_sha256: String,
    chip_sha256_from_reference_landmarks: String,
    #[serde(default)]
    shifted_boxes: Vec<BoxAndLandmarks>,
}

#[derive(Deserialize)]
struct BoxAndLandmarks {
    #[serde(rename = "box")]
    rect: [i64; 4],
    landmarks: [[i64; 2]; 5],
}

#[derive(Deserialize)]
struct Synthetic {
    name: String,
    image_size: [u32; 2],
    landmarks: [[i64; 2]; 5],
    chip_size: u32,
    padding: f32,
    chip_sha256: String,
    #[serde(rename = "box")]
    rect: [i64; 4],
    predicted_landmarks: [[i64; 2]; 5],
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = manifest_dir().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the fixture is committed with the repository)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `../shared/faces` next to the repository, or `None` (with a message) when absent.
fn faces_dir(test: &str) -> Option<PathBuf> {
    let dir = manifest_dir().join("../../shared/faces");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "{test}: skipped: ../shared/faces not found (looked in {})",
            dir.display()
        );
        None
    }
}

/// The converted landmark model: from the model directory set-up writes, or the file the
/// `write_ert` developer example leaves in `models/dist` without a manifest.
fn predictor() -> ShapePredictor {
    let name = models::manifest::files::LANDMARKS;
    let path = match models::manifest::locate_model_dir() {
        Ok(dir) => dir.join(name),
        Err(_) => manifest_dir().join("dist").join(name),
    };
    if !path.is_file() {
        panic!(
            "landmark model {} not found: run scripts/setup-models.sh \
             (or, for development only, `cargo run -p model-setup --example write_ert`)",
            path.display()
        );
    }
    ShapePredictor::load(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

fn decode(path: &Path) -> RgbImage {
    models::image_io::decode_file(path, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn rect(r: [i64; 4]) -> DlibRect {
    DlibRect::new(r[0], r[1], r[2], r[3])
}

fn points(p: &[[i64; 2]; 5]) -> [Point; 5] {
    p.map(|[x, y]| Point::new(x as f32, y as f32))
}

fn max_error(got: &[Point], want: &[[i64; 2]; 5]) -> f32 {
    assert_eq!(got.len(), 5);
    got.iter()
        .zip(want)
        .map(|(g, w)| g.distance(Point::new(w[0] as f32, w[1] as f32)))
        .fold(0.0, f32::max)
}

fn chip(
    img: &RgbImage,
    landmarks: &[Point; 5],
    size: u32,
    padding: f32,
) -> (ChipTransform, RgbImage) {
    let t = align::chip_transform(landmarks, size, padding).expect("valid landmarks");
    let c = align::extract_chip(img, &t);
    (t, c)
}

/// The synthetic test image of `scripts/dev/dlib_reference_decoded.py` (`pattern()`):
/// varied enough that any sampling error changes bytes.
fn pattern(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (x, y) = (i64::from(x), i64::from(y));
        let r = (x * x / 7 + 3 * y) % 256;
        let g = (x * y / 11 + 5 * x + 50) % 256;
        let b = ((x ^ y) * 5 + (x / 16 + y / 16) % 2 * 100) % 256;
        image::Rgb([r as u8, g as u8, b as u8])
    })
}

// ---------------------------------------------------------------------------------------
// Bit-exact: dlib on our pixels
// ---------------------------------------------------------------------------------------

/// Rotated, clipped, entirely outside, up-sampled and 1-3 pyramid levels deep, other sizes
/// and paddings: every chip byte as dlib's. Needs neither the photos nor the model.
#[test]
fn synthetic_chips_match_dlib_byte_for_byte() {
    let fx: Decoded = read_json("dlib_reference_decoded.json");
    assert!(
        fx.synthetic.len() >= 10,
        "the fixture lost its synthetic cases"
    );
    let mut failed = Vec::new();
    for s in &fx.synthetic {
        let img = pattern(s.image_size[0], s.image_size[1]);
        let (t, c) = chip(&img, &points(&s.landmarks), s.chip_size, s.padding);
        assert_eq!(c.dimensions(), (s.chip_size, s.chip_size));
        let got = sha256(c.as_raw());
        println!(
            "{}: scale {:.3}, angle {:.3} rad, sha256 {}",
            s.name,
            t.scale(),
            t.angle(),
            &got[..12]
        );
        if got != s.chip_sha256 {
            failed.push(s.name.as_str());
        }
    }
    assert!(
        failed.is_empty(),
        "chips differing from dlib {}: {failed:?}",
        fx.dlib_version
    );
}

/// The predictor on the synthetic pattern, boxes partly outside the image included.
#[test]
fn synthetic_landmarks_match_dlib() {
    let fx: Decoded = read_json("dlib_reference_decoded.json");
    let sp = predictor();
    for s in &fx.synthetic {
        let img = pattern(s.image_size[0], s.image_size[1]);
        let got = sp.predict(&img, rect(s.rect));
        assert_eq!(
            max_error(&got, &s.predicted_landmarks),
            0.0,
            "{}: {got:?} vs dlib {:?}",
            s.name,
            s.predicted_landmarks
        );
    }
}

/// Landmarks from dlib's detector boxes (and from boxes pushed across the image border)
/// on the 45 photos as our decoder sees them.
#[test]
fn landmarks_match_dlib_on_identical_pixels() {
    let Some(faces) = faces_dir("landmarks_match_dlib_on_identical_pixels") else {
        return;
    };
    let fx: Decoded = read_json("dlib_reference_decoded.json");
    let sp = predictor();
    let (mut exact, mut total, mut worst) = (0usize, 0usize, 0.0f32);
    for f in &fx.faces {
        let img = decode(&faces.join(&f.image));
        assert_eq!(
            sha256(img.as_raw()),
            f.rgb_sha256,
            "{}: our decoder's pixels changed since dlib_reference_decoded.json was made; \
             regenerate it (see scripts/dev/dlib_reference_decoded.py)",
            f.image
        );
        let cases = std::iter::once((f.rect, &f.landmarks))
            .chain(f.shifted_boxes.iter().map(|b| (b.rect, &b.landmarks)));
        for (r, want) in cases {
            let got = sp.predict(&img, rect(r));
            let err = max_error(&got, want);
            // dlib outputs whole pixels, so any error is at least 1 px; 1e-3 px is "identical".
            if err < 1e-3 {
                exact += 1;
            } else {
                println!("{} box {r:?}: ours {got:?}, dlib {want:?}", f.image);
            }
            worst = worst.max(err);
            total += 1;
        }
    }
    println!("landmarks identical to dlib's in {exact} of {total} boxes; worst error {worst} px");
    assert!(total >= 45, "only {total} boxes");
    assert!(worst < 1.0, "a landmark differs from dlib's by {worst} px");
    assert!(exact * 10 >= total * 9, "only {exact} of {total} identical");
}

/// Chips from dlib's landmarks (the chip step alone) and from ours (landmarks + chip), on
/// the photos as our decoder sees them. The four Obama photos need the pyramid.
#[test]
fn chips_match_dlib_on_identical_pixels() {
    let Some(faces) = faces_dir("chips_match_dlib_on_identical_pixels") else {
        return;
    };
    let fx: Decoded = read_json("dlib_reference_decoded.json");
    let reference: Reference = read_json("dlib_reference.json");
    let sp = predictor();
    let mut failed = Vec::new();
    for (f, r) in fx.faces.iter().zip(&reference.faces) {
        assert_eq!(f.image, r.image, "the two fixtures list different photos");
        let img = decode(&faces.join(&f.image));
        assert_eq!(
            sha256(img.as_raw()),
            f.rgb_sha256,
            "{}: decoder output changed; regenerate the fixture",
            f.image
        );
        let (t, c) = chip(
            &img,
            &points(&r.landmarks),
            align::CHIP_SIZE,
            align::CHIP_PADDING,
        );
        if sha256(c.as_raw()) != f.chip_sha256_from_reference_landmarks {
            failed.push(format!(
                "{} (dlib's landmarks, scale {:.2})",
                f.image,
                t.scale()
            ));
        }
        let ours = sp.predict5(&img, rect(f.rect)).expect("a 5-point model");
        let (_, c) = chip(&img, &ours, align::CHIP_SIZE, align::CHIP_PADDING);
        if sha256(c.as_raw()) != f.chip_sha256 {
            failed.push(format!("{} (our landmarks)", f.image));
        }
    }
    println!(
        "{} of {} chips identical to dlib's",
        2 * fx.faces.len() - failed.len(),
        2 * fx.faces.len()
    );
    assert!(
        failed.is_empty(),
        "chips differing from dlib's: {failed:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// End to end: dlib on the files (its own JPEG decoder) vs our decoder + ports
// ---------------------------------------------------------------------------------------

/// On JPEGs this measures the decoders, not the ports (above they are exact): with
/// zune-jpeg against dlib's libjpeg 9, 8 of the 45 photos gave identical landmarks and the
/// worst point was 2 px off. The bounds leave some room for decoder updates; the PNG
/// photo (identical pixels) must match exactly.
#[test]
fn close_to_dlib_on_the_original_files() {
    let Some(faces) = faces_dir("close_to_dlib_on_the_original_files") else {
        return;
    };
    let fx: Reference = read_json("dlib_reference.json");
    let sp = predictor();
    let (mut exact, mut worst, mut sum, mut pngs) = (0usize, 0.0f32, 0.0f32, 0usize);
    for f in &fx.faces {
        let img = decode(&faces.join(&f.image));
        let got = sp.predict5(&img, rect(f.rect)).expect("a 5-point model");
        let err = max_error(&got, &f.landmarks);
        let (_, c) = chip(
            &img,
            &points(&f.landmarks),
            align::CHIP_SIZE,
            align::CHIP_PADDING,
        );
        let same_chip = sha256(c.as_raw()) == f.chip_sha256;
        if f.image.ends_with(".png") {
            assert_eq!(
                err, 0.0,
                "{}: lossless source, landmarks must be dlib's",
                f.image
            );
            assert!(
                same_chip,
                "{}: lossless source, the chip must be dlib's",
                f.image
            );
            pngs += 1;
        }
        if let Some(png) = &f.chip_png {
            let want = image::open(manifest_dir().join("tests/fixtures").join(png))
                .unwrap_or_else(|e| panic!("{png}: {e}"))
                .to_rgb8();
            let diffs: Vec<u32> = c
                .as_raw()
                .iter()
                .zip(want.as_raw())
                .map(|(a, b)| u32::from(a.abs_diff(*b)))
                .collect();
            let mean = diffs.iter().sum::<u32>() as f32 / diffs.len() as f32;
            println!(
                "{}: chip vs dlib's {png}: mean |diff| {mean:.3}, max {}",
                f.image,
                diffs.iter().max().unwrap_or(&0)
            );
            assert!(
                mean < 2.0,
                "{}: chip differs from dlib's by {mean} on average",
                f.image
            );
        }
        exact += usize::from(err == 0.0);
        worst = worst.max(err);
        sum += err;
    }
    let n = fx.faces.len();
    println!(
        "landmarks identical on {exact} of {n} photos; worst point {worst} px; mean worst-point error {:.2} px",
        sum / n as f32
    );
    assert!(pngs >= 1, "the fixture has no lossless photo");
    assert!(worst <= 3.0, "a landmark is {worst} px from dlib's");
    assert!(
        sum / (n as f32) <= 1.5,
        "landmarks are {} px from dlib's on average",
        sum / n as f32
    );
}
