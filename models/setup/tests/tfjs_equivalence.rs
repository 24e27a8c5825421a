//! Our TF.js-to-ONNX converter against TF.js itself: both liveness models of
//! `@vladmandic/human@3.3.6` are converted, run on ONNX Runtime, and compared with the
//! outputs TF.js (pure-JS CPU backend) gave on the same inputs. The inputs and TF.js's
//! outputs are in `models/tests/fixtures/tfjs_reference.json`, made by
//! `scripts/dev/tfjs_reference/reference.js` (see `models/tests/fixtures/README.md`).
//! Also: the conversion is byte-for-byte deterministic and corrupt files give errors.

use std::path::{Path, PathBuf};

use models::runtime::{Runtime, RuntimeOptions};
use ort::session::Session;
use ort::value::TensorRef;
use sha2::{Digest, Sha256};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Largest |ONNX - TF.js| accepted on any output value.
const TOLERANCE: f32 = 1e-4;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<name>.json` and `<name>.bin`: from set-up's cache, else from the scratch extraction
/// used while developing. Missing data is a failure, not a skip.
fn model_files(name: &str) -> (Vec<u8>, Vec<u8>) {
    let dirs = [
        repo().join("models/.cache/vladmandic-human-3.3.6/package/models"),
        PathBuf::from("/tmp/dl/extract/package/models"),
    ];
    for d in &dirs {
        if let (Ok(j), Ok(b)) = (
            std::fs::read(d.join(format!("{name}.json"))),
            std::fs::read(d.join(format!("{name}.bin"))),
        ) {
            return (j, b);
        }
    }
    panic!("{name}.json/.bin not found (looked in {dirs:?}); run scripts/setup-models.sh");
}

fn ort_library() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB") {
        return PathBuf::from(p);
    }
    let dist = repo().join("models/dist/onnxruntime/libonnxruntime.so");
    if dist.exists() {
        return dist;
    }
    let scratch = PathBuf::from("/tmp/dl/x/onnxruntime/capi/libonnxruntime.so.1.32.0");
    if scratch.exists() {
        return scratch;
    }
    panic!(
        "ONNX Runtime not found (set ORT_DYLIB, or run scripts/setup-models.sh to make {})",
        dist.display()
    );
}

fn session(onnx: &[u8]) -> Result<Session, Box<dyn std::error::Error>> {
    let rt = Runtime::load(&ort_library(), RuntimeOptions::default())?;
    Ok(rt.session_from_memory(onnx)?)
}

struct Case {
    name: String,
    pixels: Vec<u8>,
    expected: Vec<f32>,
}

struct Reference {
    /// Height, width (channels are 3).
    hw: [usize; 2],
    output: String,
    width: usize,
    cases: Vec<Case>,
    /// The model's whole fixture entry, for the fields only some models have.
    entry: serde_json::Value,
}

impl Reference {
    fn text(&self, key: &str) -> &str {
        self.entry[key]
            .as_str()
            .unwrap_or_else(|| panic!("fixture: {key} missing"))
    }
}

fn reference(model: &str) -> Reference {
    let path = repo().join("models/tests/fixtures/tfjs_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate it with scripts/dev/tfjs_reference/reference.js)",
            path.display()
        )
    });
    let mut root: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
    let m = root["models"][model].take();
    let n = |v: &serde_json::Value| {
        v.as_u64()
            .unwrap_or_else(|| panic!("fixture: {model}: bad number {v}")) as usize
    };
    let shape: Vec<usize> = m["input_shape"]
        .as_array()
        .unwrap_or_else(|| panic!("fixture: {model}.input_shape missing"))
        .iter()
        .map(n)
        .collect();
    assert_eq!(shape.len(), 3, "fixture: {model}.input_shape");
    assert_eq!(shape[2], 3, "fixture: {model}: RGB input expected");
    let cases = m["cases"]
        .as_array()
        .expect("fixture: cases")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().expect("case name").to_string(),
            pixels: b64(c["pixels_b64"].as_str().expect("pixels_b64")),
            expected: c["output"]
                .as_array()
                .expect("output")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect(),
        })
        .collect();
    Reference {
        hw: [shape[0], shape[1]],
        output: m["output_name"]
            .as_str()
            .expect("fixture: output_name")
            .to_string(),
        width: n(&m["output_width"]),
        cases,
        entry: m,
    }
}

/// Standard base64 with padding (what Node's `Buffer.toString('base64')` writes).
fn b64(text: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("fixture: bad base64 character {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (val(c) << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Runs `batch` images (bytes, NHWC) through the model as byte / 255, like the fixture.
fn run(
    session: &mut Session,
    output: &str,
    [h, w]: [usize; 2],
    batch: &[&[u8]],
) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let data: Vec<f32> = batch
        .iter()
        .flat_map(|p| p.iter().map(|&b| f32::from(b) / 255.0))
        .collect();
    let input = TensorRef::from_array_view(([batch.len(), h, w, 3], &data[..]))?;
    let outputs = session.run(ort::inputs!["image" => input])?;
    let (_, values) = outputs[output].try_extract_tensor::<f32>()?;
    Ok(values.to_vec())
}

/// Converts the real model and checks it against TF.js.
fn equivalence(model: &str) -> TestResult {
    let r = reference(model);
    let (json, bin) = model_files(model);
    assert_eq!(
        sha256_hex(&json),
        r.text("json_sha256"),
        "{model}.json differs from the file the fixture was made with"
    );
    assert_eq!(
        sha256_hex(&bin),
        r.text("bin_sha256"),
        "{model}.bin differs from the file the fixture was made with"
    );
    assert!(r.cases.len() >= 4, "fixture has too few cases");
    compare(model, &model_setup::tfjs::convert(&json, &bin, model)?, &r)
}

/// Runs every case alone and all cases as one batch; each output within [`TOLERANCE`].
fn compare(model: &str, onnx: &[u8], r: &Reference) -> TestResult {
    let mut s = session(onnx)?;
    let mut worst = 0f32;
    for c in &r.cases {
        assert_eq!(
            c.pixels.len(),
            r.hw[0] * r.hw[1] * 3,
            "{model}/{}: pixel count",
            c.name
        );
        assert_eq!(
            c.expected.len(),
            r.width,
            "{model}/{}: output width",
            c.name
        );
        let got = run(&mut s, &r.output, r.hw, &[&c.pixels])?;
        assert_eq!(got.len(), r.width, "{model}/{}: ONNX output width", c.name);
        let diff = got
            .iter()
            .zip(&c.expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{model} {:<16} onnx {:?} tfjs {:?} max|diff| {diff:.2e}",
            c.name, got, c.expected
        );
        assert!(
            diff < TOLERANCE,
            "{model}/{}: ONNX {got:?} vs TF.js {:?}",
            c.name,
            c.expected
        );
        worst = worst.max(diff);
    }

    // The same cases as one batch: the dynamic batch dimension must not mix images.
    let all: Vec<&[u8]> = r.cases.iter().map(|c| c.pixels.as_slice()).collect();
    let got = run(&mut s, &r.output, r.hw, &all)?;
    let expected: Vec<f32> = r
        .cases
        .iter()
        .flat_map(|c| c.expected.iter().copied())
        .collect();
    assert_eq!(got.len(), expected.len());
    let diff = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < TOLERANCE,
        "{model}: batched run differs from TF.js by {diff}"
    );
    eprintln!(
        "{model}: {} cases, max|ONNX - TF.js| {:.2e} single, {diff:.2e} batched",
        r.cases.len(),
        worst
    );
    Ok(())
}

#[test]
fn antispoof_matches_tfjs() -> TestResult {
    equivalence("antispoof")
}

#[test]
fn liveness_matches_tfjs() -> TestResult {
    equivalence("liveness")
}

/// A hand-written graph (it travels in the fixture) with what the real models lack: SAME
/// padding at stride 2 on even and odd sizes, MaxPool SAME, Relu6 that clips, a dilated
/// convolution with EXPLICIT padding, a rank-4 constant, uint8 and float16 quantised
/// weights, a non-square input and `transpose_b`.
#[test]
fn synthetic_graph_matches_tfjs() -> TestResult {
    let r = reference("synthetic");
    let json = r.text("model_json").as_bytes().to_vec();
    let bin = b64(r.text("weights_b64"));
    let onnx = model_setup::tfjs::convert_with_names(&json, &bin, "synthetic", "image", &r.output)?;
    compare("synthetic", &onnx, &r)
}

#[test]
fn conversion_is_deterministic() -> TestResult {
    for model in ["antispoof", "liveness"] {
        let (json, bin) = model_files(model);
        let a = model_setup::tfjs::convert(&json, &bin, model)?;
        let b = model_setup::tfjs::convert(&json, &bin, model)?;
        assert_eq!(a, b, "{model}: two conversions differ");
        eprintln!("{model}.onnx: {} bytes, sha256 {}", a.len(), sha256_hex(&a));
    }
    Ok(())
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    use model_setup::tfjs::{convert, TfjsError};
    let (json, bin) = model_files("antispoof");

    // Truncated or padded weights.
    for cut in [0, 1, 2, bin.len() / 2, bin.len() - 1] {
        let e = convert(&json, &bin[..cut], "antispoof").expect_err("truncated weights");
        assert!(matches!(e, TfjsError::Weights(_)), "cut at {cut}: {e}");
    }
    let mut long = bin.clone();
    long.push(0);
    assert!(matches!(
        convert(&json, &long, "antispoof"),
        Err(TfjsError::Weights(_))
    ));
    // The other model's weights.
    let (_, liveness_bin) = model_files("liveness");
    assert!(convert(&json, &liveness_bin, "antispoof").is_err());

    // Bad JSON.
    for cut in [0, 1, json.len() / 3, json.len() - 1] {
        assert!(
            matches!(
                convert(&json[..cut], &bin, "antispoof"),
                Err(TfjsError::Json(_))
            ),
            "JSON cut at {cut}"
        );
    }

    // An op we do not lower, on the output's path.
    let mut doc: serde_json::Value = serde_json::from_slice(&json).expect("model.json parses");
    let nodes = doc["modelTopology"]["node"].as_array_mut().expect("nodes");
    let sigmoid = nodes
        .iter_mut()
        .find(|n| n["op"] == "Sigmoid")
        .expect("antispoof has a Sigmoid");
    sigmoid["op"] = "Tanh".into();
    let changed = serde_json::to_vec(&doc).expect("serialises");
    let e = convert(&changed, &bin, "antispoof").expect_err("Tanh is unsupported");
    assert!(
        matches!(&e, TfjsError::UnsupportedOp { op, .. } if op == "Tanh"),
        "{e}"
    );
    assert!(e.to_string().contains("Tanh"), "{e}");

    // An unknown model name.
    assert!(matches!(
        convert(&json, &bin, "blazeface"),
        Err(TfjsError::UnknownModel(_))
    ));

    // Byte flips all over model.json: any result but a panic is acceptable.
    let (ljson, lbin) = model_files("liveness");
    for (j, b) in [(&json, &bin), (&ljson, &lbin)] {
        for pos in (0..j.len()).step_by(97) {
            let mut m = j.clone();
            m[pos] ^= 0x5a;
            let _ = convert(&m, b, "antispoof");
        }
    }
}
