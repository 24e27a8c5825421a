//! The face pipeline of CleanPlate: from an image to "who is this, and how sure are we".
//!
//! Stages, each in its own module: [`image_io`] decodes untrusted bytes safely,
//! [`detect`] finds faces (BlazeFace), [`landmarks`] places dlib's five points (a Rust port
//! of dlib's ERT shape predictor), [`align`] cuts the 150x150 chip exactly as dlib does,
//! [`liveness`] gives passive anti-spoof signals, [`embed`] turns a chip into a 128-d
//! descriptor (dlib's ResNet converted to ONNX), [`quality`] judges whether a photo is good
//! enough to enrol, and [`gallery`] searches enrolled templates 1:N. [`pipeline`] strings
//! them together (running liveness alongside landmarks, chip and embedding on a second core); [`resample`]
//! makes the small model inputs; [`runtime`] owns ONNX Runtime and [`manifest`] checks
//! that the model files on disk are the ones set-up produced.
//!
//! Everything here is synchronous and free of global state except ONNX Runtime's
//! process-wide environment, which [`runtime`] initialises once.

pub mod align;
pub mod detect;
pub mod embed;
pub mod error;
pub mod gallery;
pub mod geometry;
pub mod image_io;
pub mod landmarks;
pub mod liveness;
pub mod manifest;
pub mod pipeline;
pub mod quality;
pub mod resample;
pub mod runtime;

pub use error::{Error, Result};
pub use geometry::{Point, Rect};
