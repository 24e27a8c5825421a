//! Reading dlib's serialisation format and converting dlib's two models with our own code:
//! the face-recognition ResNet to ONNX ([`convert_embedder`]) and the 5-point ERT shape
//! predictor to our landmark model ([`convert_shape_predictor`]). No dlib code runs here;
//! the formats were read from dlib's headers and the conversions are checked against
//! dlib's own outputs (`models/tests/fixtures/dlib_reference.json`).

pub mod resnet;
pub mod serialize;
pub mod shape_predictor;

pub use resnet::convert_embedder;
pub use serialize::DlibError;
pub use shape_predictor::convert_shape_predictor;
