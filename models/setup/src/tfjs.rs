//! TF.js graph models to ONNX.
