//! The face gallery kept on disk between runs, encrypted (face templates are biometric
//! data), so the kiosk recognises people while the network is down and starts without a
//! full re-download. Also the small secret files (device token, gallery key), all written
//! owner-only (0600) and atomically (temp file, fsync, rename), so a crash leaves either
//! the old file or the new one.
//!
//! File format: `CPGC1` magic, a 12-byte random nonce, then AES-256-GCM ciphertext (with
//! the magic as associated data) of a JSON document holding the sync version and every
//! template. A wrong key or a tampered file fails authentication and is reported, never
//! half-read.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use models::gallery::Gallery;
use rand::RngCore;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8] = b"CPGC1";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not a gallery cache file (bad magic or too short)")]
    Format(PathBuf),
    #[error("{0}: does not decrypt with the configured key (wrong key or tampered file)")]
    Decrypt(PathBuf),
    #[error("{path}: {reason}")]
    Content { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedTemplate {
    pub template_id: i64,
    pub staff_id: i64,
    pub embedding: Vec<f32>,
}

/// What is persisted: the version to sync from next, and the templates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GalleryState {
    pub since: i64,
    pub templates: Vec<CachedTemplate>,
}

impl GalleryState {
    /// Applies one change from the backend (insert/replace, or a tombstone).
    pub fn apply(&mut self, template_id: i64, staff_id: i64, embedding: Option<Vec<f32>>) {
        self.templates.retain(|t| t.template_id != template_id);
        if let Some(embedding) = embedding {
            self.templates.push(CachedTemplate {
                template_id,
                staff_id,
                embedding,
            });
        }
    }

    /// The searchable gallery. Templates of the wrong length are skipped with a warning.
    pub fn to_gallery(&self) -> Gallery<i64> {
        let mut g = Gallery::with_capacity(self.templates.len());
        for t in &self.templates {
            if let Err(e) = g.insert(t.staff_id, t.template_id as u64, &t.embedding) {
                tracing::warn!(template = t.template_id, "skipping a cached template: {e}");
            }
        }
        g
    }
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable only once the directory entry is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads a secret file, warning when others may read it.
pub fn read_private(path: &Path) -> Result<Option<Vec<u8>>, CacheError> {
    match std::fs::read(path) {
        Ok(b) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(m) = std::fs::metadata(path) {
                    if m.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(path = %path.display(), "secret file is readable by others; chmod 600 it");
                    }
                }
            }
            Ok(Some(b))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CacheError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// The gallery key: the configured one, or one made on first use and kept in `key_file`.
pub fn load_or_create_key(
    configured: Option<[u8; 32]>,
    key_file: &Path,
) -> Result<[u8; 32], CacheError> {
    if let Some(k) = configured {
        return Ok(k);
    }
    if let Some(bytes) = read_private(key_file)? {
        let text = String::from_utf8_lossy(&bytes);
        let decoded =
            hex::decode(text.trim()).map_err(|_| CacheError::Format(key_file.to_path_buf()))?;
        return decoded
            .try_into()
            .map_err(|_| CacheError::Format(key_file.to_path_buf()));
    }
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    write_private(key_file, hex::encode(k).as_bytes())?;
    tracing::info!(path = %key_file.display(), "made a new gallery key");
    Ok(k)
}

pub struct GalleryCache {
    path: PathBuf,
    cipher: Aes256Gcm,
}

impl GalleryCache {
    pub fn new(path: PathBuf, key: &[u8; 32]) -> GalleryCache {
        GalleryCache {
            path,
            cipher: Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(key)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached state; empty when there is no cache file yet.
    pub fn load(&self) -> Result<GalleryState, CacheError> {
        let Some(bytes) = read_private(&self.path)? else {
            return Ok(GalleryState::default());
        };
        if bytes.len() < MAGIC.len() + 12 + 16 || !bytes.starts_with(MAGIC) {
            return Err(CacheError::Format(self.path.clone()));
        }
        let (nonce, ct) = bytes[MAGIC.len()..].split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: MAGIC,
                },
            )
            .map_err(|_| CacheError::Decrypt(self.path.clone()))?;
        serde_json::from_slice(&plain).map_err(|e| CacheError::Content {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    pub fn save(&self, state: &GalleryState) -> Result<(), CacheError> {
        let plain = serde_json::to_vec(state).map_err(|e| CacheError::Content {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: MAGIC,
                },
            )
            .map_err(|_| CacheError::Content {
                path: self.path.clone(),
                reason: "encryption failed".into(),
            })?;
        let mut out = Vec::with_capacity(MAGIC.len() + 12 + ct.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        write_private(&self.path, &out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> GalleryState {
        let mut s = GalleryState::default();
        s.apply(1, 10, Some(vec![0.25; 128]));
        s.apply(2, 11, Some(vec![0.5; 128]));
        s.since = 7;
        s
    }

    #[test]
    fn round_trip_encrypted_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.bin");
        let c = GalleryCache::new(path.clone(), &[7u8; 32]);
        assert_eq!(c.load().unwrap(), GalleryState::default());
        c.save(&state()).unwrap();
        assert_eq!(c.load().unwrap(), state());
        let raw = std::fs::read(&path).unwrap();
        assert!(
            !raw.windows(4).any(|w| w == 0.25f32.to_le_bytes()),
            "no plaintext floats"
        );
        assert!(!String::from_utf8_lossy(&raw).contains("staff_id"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn wrong_key_and_tampering_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.bin");
        GalleryCache::new(path.clone(), &[7u8; 32])
            .save(&state())
            .unwrap();
        assert!(matches!(
            GalleryCache::new(path.clone(), &[8u8; 32]).load(),
            Err(CacheError::Decrypt(_))
        ));
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        assert!(matches!(
            GalleryCache::new(path.clone(), &[7u8; 32]).load(),
            Err(CacheError::Decrypt(_))
        ));
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(
            GalleryCache::new(path, &[7u8; 32]).load(),
            Err(CacheError::Format(_))
        ));
    }

    #[test]
    fn tombstones_remove_and_the_gallery_searches() {
        let mut s = state();
        s.apply(1, 10, None);
        let g = s.to_gallery();
        assert_eq!(g.len(), 1);
        assert_eq!(g.persons().copied().collect::<Vec<_>>(), vec![11]);
    }

    #[test]
    fn a_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/gallery.key");
        let a = load_or_create_key(None, &f).unwrap();
        assert_eq!(load_or_create_key(None, &f).unwrap(), a);
        assert_eq!(load_or_create_key(Some([1; 32]), &f).unwrap(), [1; 32]);
    }
}
