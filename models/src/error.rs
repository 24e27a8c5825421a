//! The crate's error type: every way the pipeline can refuse, each with a message a
//! person can act on. Nothing on an input path panics.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image bytes could not be turned into pixels (corrupt, truncated, too large...).
    #[error(transparent)]
    Image(#[from] crate::image_io::ImageError),

    /// A model file is missing, unreadable, malformed, or not the one the manifest names.
    #[error("model file {path}: {reason}")]
    ModelFile { path: PathBuf, reason: String },

    /// ONNX Runtime failed to load, to build a session, or to run one.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// A caller broke an API contract (wrong embedding length, empty gallery id, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl From<ort::Error> for Error {
    fn from(e: ort::Error) -> Self {
        Error::Runtime(e.to_string())
    }
}

impl Error {
    pub(crate) fn model_file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::ModelFile {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
