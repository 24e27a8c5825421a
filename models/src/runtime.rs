//! ONNX Runtime, loaded once per process from the library set-up extracted from the
//! `onnxruntime` PyPI wheel (`ort`'s `load-dynamic`; its feature that downloads prebuilt
//! binaries would reach a CDN this network refuses), and sessions built with the project's
//! settings.
//!
//! Sessions are expensive to build (graph optimisation, weight packing) and cheap to run,
//! so callers build each one once and keep it; see `pipeline::Pipeline`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::{Error, Result};

/// How sessions are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Threads ONNX Runtime may use inside one model run; 0 lets it choose (one per core).
    pub intra_threads: usize,
    /// Use the CUDA execution provider (needs the `cuda` feature and CUDA libraries).
    /// When requested and unavailable, building a session fails rather than silently
    /// falling back to the CPU.
    pub cuda: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            intra_threads: 1,
            cuda: false,
        }
    }
}

/// The process-wide ONNX Runtime environment plus our session options.
#[derive(Clone)]
pub struct Runtime {
    env: Environment,
    options: RuntimeOptions,
}

/// The library can only be loaded once per process; remember which one (or why it failed)
/// so a second `Runtime::load` with the same path is free and a different path is a clear
/// error instead of undefined behaviour.
static LOADED: OnceLock<std::result::Result<(PathBuf, Environment), String>> = OnceLock::new();

impl Runtime {
    /// Loads `libonnxruntime.so` from `library` (once per process) and returns a handle
    /// that builds sessions with `options`.
    pub fn load(library: &Path, options: RuntimeOptions) -> Result<Runtime> {
        if options.cuda && !cfg!(feature = "cuda") {
            return Err(Error::Runtime(
                "CUDA was requested but this build lacks the `cuda` feature (cargo build --features models/cuda)".into(),
            ));
        }
        let loaded = LOADED.get_or_init(|| {
            if !library.is_file() {
                return Err(format!(
                    "ONNX Runtime library {} not found; run scripts/setup-models.sh",
                    library.display()
                ));
            }
            let builder = ort::init_from(library)
                .map_err(|e| format!("cannot load {}: {e}", library.display()))?;
            let env = builder
                .with_name("cleanplate")
                .build()
                .map_err(|e| e.to_string())?;
            Ok((library.to_path_buf(), env))
        });
        match loaded {
            Ok((path, env)) if path == library => Ok(Runtime {
                env: env.clone(),
                options,
            }),
            Ok((path, _)) => Err(Error::Runtime(format!(
                "ONNX Runtime is already loaded from {} in this process; cannot also load {}",
                path.display(),
                library.display()
            ))),
            Err(e) => Err(Error::Runtime(e.clone())),
        }
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Builds a session for the ONNX model at `model`.
    pub fn session(&self, model: &Path) -> Result<Session> {
        let bytes = std::fs::read(model).map_err(|e| Error::model_file(model, e))?;
        self.session_from_memory(&bytes).map_err(|e| match e {
            Error::Runtime(msg) => Error::model_file(model, msg),
            other => other,
        })
    }

    /// Builds a session from ONNX bytes already in memory.
    pub fn session_from_memory(&self, onnx: &[u8]) -> Result<Session> {
        let mut builder = Session::builder(&self.env)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| Error::Runtime(e.to_string()))?;
        if self.options.intra_threads > 0 {
            builder = builder
                .with_intra_threads(self.options.intra_threads)
                .map_err(|e| Error::Runtime(e.to_string()))?;
        }
        #[cfg(feature = "cuda")]
        if self.options.cuda {
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| Error::Runtime(e.to_string()))?;
        }
        Ok(builder.commit_from_memory(onnx)?)
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("options", &self.options)
            .finish()
    }
}
