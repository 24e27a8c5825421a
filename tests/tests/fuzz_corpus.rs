//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, which include every crash
//! input found so far) through the fuzz targets' own bodies on stable Rust, so CI guards
//! every parser against them without nightly or cargo-fuzz. The bodies are compiled in from
//! `fuzz/src/` as they are, so the checks here are exactly the fuzzer's.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code, unexpected_cfgs)]
mod targets;

/// The HTTP target sits behind the fuzz crate's `http` feature (its backend stack doubles
/// the fuzz build); here the backend is linked anyway.
#[path = "../../fuzz/src/http.rs"]
mod http_target;

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = e2e::root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for f in &files {
        let data = std::fs::read(f).expect("reading a corpus file");
        // A panic names the input that caused it.
        let name = f.display().to_string();
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target} panicked on {name}");
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn image_decode() {
    replay("image_decode", targets::image_decode);
}

#[test]
fn scale_protocol() {
    replay("scale_protocol", targets::scale_protocol);
}

#[test]
fn paycode_qr() {
    replay("paycode_qr", targets::paycode_qr);
}

#[test]
fn wire_json() {
    replay("wire_json", targets::wire_json);
}

#[test]
fn http_bodies() {
    replay("http_bodies", http_target::http_bodies);
}

#[test]
fn ert_model() {
    replay("ert_model", targets::ert_model);
}

#[test]
fn dlib_models() {
    replay("dlib_models", targets::dlib_models);
}

#[test]
fn tfjs_graph() {
    replay("tfjs_graph", targets::tfjs_graph);
}

#[test]
fn local_store() {
    replay("local_store", targets::local_store::local_store);
}
