//! The model directory (`models/dist/` by default) and its manifest: which archive each
//! file came from and the sha256 it must have. `model-setup` writes it; every start of the
//! pipeline checks it, so a truncated download, a stale conversion or a swapped file is
//! refused with a clear message instead of producing wrong faces.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MANIFEST_FORMAT: u32 = 1;

/// File names inside the model directory, fixed so that every consumer agrees.
pub mod files {
    pub const DETECTOR: &str = "detector.onnx";
    pub const LANDMARKS: &str = "landmarks5.ert";
    pub const EMBEDDER: &str = "embedder.onnx";
    pub const ANTISPOOF: &str = "antispoof.onnx";
    pub const LIVENESS: &str = "liveness.onnx";
    pub const ONNXRUNTIME: &str = "onnxruntime/libonnxruntime.so";
}

/// An archive fetched from a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceArchive {
    pub name: String,
    pub registry: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
    pub licence: String,
}

/// A file set-up produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducedFile {
    /// Relative to the model directory, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// The `name` of the [`SourceArchive`] it was made from.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub sources: Vec<SourceArchive>,
    pub files: Vec<ProducedFile>,
}

/// The verified paths of everything the pipeline loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    pub dir: PathBuf,
    pub detector: PathBuf,
    pub landmarks: PathBuf,
    pub embedder: PathBuf,
    pub antispoof: PathBuf,
    pub liveness: PathBuf,
    pub onnxruntime: PathBuf,
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::model_file(
                &path,
                format!("{e}; run scripts/setup-models.sh to fetch and convert the models"),
            )
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| Error::model_file(&path, e))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(Error::model_file(
                &path,
                format!(
                    "manifest format {} (expected {MANIFEST_FORMAT}); run scripts/setup-models.sh",
                    manifest.format
                ),
            ));
        }
        Ok(manifest)
    }

    /// Checks the size and sha256 of every listed file, and that every file the pipeline
    /// needs is listed.
    pub fn verify(&self, dir: &Path) -> Result<ModelPaths> {
        for f in &self.files {
            let path = dir.join(&f.path);
            let (bytes, sha) = sha256_file(&path)?;
            if bytes != f.bytes || sha != f.sha256 {
                return Err(Error::model_file(
                    &path,
                    format!(
                        "checksum mismatch: {bytes} bytes sha256 {sha}, manifest says {} bytes sha256 {}; \
                         delete {} and run scripts/setup-models.sh",
                        f.bytes,
                        f.sha256,
                        dir.display()
                    ),
                ));
            }
        }
        let need = |name: &str| -> Result<PathBuf> {
            if self.files.iter().any(|f| f.path == name) {
                Ok(dir.join(name))
            } else {
                Err(Error::model_file(
                    dir.join(MANIFEST_FILE),
                    format!("does not list {name}"),
                ))
            }
        };
        Ok(ModelPaths {
            dir: dir.to_path_buf(),
            detector: need(files::DETECTOR)?,
            landmarks: need(files::LANDMARKS)?,
            embedder: need(files::EMBEDDER)?,
            antispoof: need(files::ANTISPOOF)?,
            liveness: need(files::LIVENESS)?,
            onnxruntime: need(files::ONNXRUNTIME)?,
        })
    }
}

/// Loads and verifies the manifest in `dir`.
pub fn verified_paths(dir: &Path) -> Result<ModelPaths> {
    Manifest::load(dir)?.verify(dir)
}

/// Where the model directory is: `$CLEANPLATE_MODELS_DIR`, else the first `models/dist`
/// with a manifest found walking up from the current directory, then from the executable
/// (so `cargo run`, `cargo test` and an installed binary next to `models/` all find it).
pub fn locate_model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CLEANPLATE_MODELS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    for start in starts.iter().flatten() {
        for dir in start.ancestors() {
            let candidate = dir.join("models").join("dist");
            if candidate.join(MANIFEST_FILE).is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::model_file(
        "models/dist",
        "no model directory found (set CLEANPLATE_MODELS_DIR or run scripts/setup-models.sh)",
    ))
}

/// Size and lower-case hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::model_file(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::model_file(path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((total, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let all = [
            files::DETECTOR,
            files::LANDMARKS,
            files::EMBEDDER,
            files::ANTISPOOF,
            files::LIVENESS,
            files::ONNXRUNTIME,
        ];
        let mut produced = Vec::new();
        for name in all {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, name.as_bytes()).unwrap();
            let (bytes, sha256) = sha256_file(&path).unwrap();
            produced.push(ProducedFile {
                path: name.into(),
                sha256,
                bytes,
                source: "test".into(),
            });
        }
        let m = Manifest {
            format: MANIFEST_FORMAT,
            sources: vec![],
            files: produced,
        };
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            serde_json::to_string(&m).unwrap(),
        )
        .unwrap();
        let paths = verified_paths(dir.path()).unwrap();
        assert_eq!(paths.embedder, dir.path().join(files::EMBEDDER));

        std::fs::write(dir.path().join(files::EMBEDDER), b"embedder.onnY").unwrap();
        let err = verified_paths(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
    }
}
