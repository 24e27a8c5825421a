//! Checking an export: the manifest is read, then every file it lists is read through (the
//! zip's own CRC checked on the way) and its SHA-256 and record count compared with the
//! manifest's; a file the manifest does not list is refused too. Every failure names the file.

use crate::csv::RecordCounter;
use crate::manifest::{Manifest, FORMAT};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek};

pub(crate) const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("not a readable zip: {0}")]
    NotAZip(String),
    #[error("the zip has no {MANIFEST}")]
    NoManifest,
    #[error("{MANIFEST} is not a manifest of this format: {0}")]
    BadManifest(String),
    #[error("{file}: listed in the manifest but missing from the zip")]
    Missing { file: String },
    #[error("{file}: in the zip but not listed in the manifest")]
    Unlisted { file: String },
    #[error("{file}: cannot be read (damaged in the zip): {detail}")]
    Unreadable { file: String, detail: String },
    #[error("{file}: SHA-256 is {found}, the manifest says {expected}: the file was changed")]
    Hash {
        file: String,
        expected: String,
        found: String,
    },
    #[error("{file}: {found} rows, the manifest says {expected}")]
    Rows {
        file: String,
        expected: u64,
        found: u64,
    },
}

fn manifest_of<R: Read + Seek>(zip: &mut zip::ZipArchive<R>) -> Result<Manifest, VerifyError> {
    let mut f = zip.by_name(MANIFEST).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => VerifyError::NoManifest,
        e => VerifyError::Unreadable {
            file: MANIFEST.into(),
            detail: e.to_string(),
        },
    })?;
    let mut bytes = Vec::new();
    // A manifest is a few hundred bytes; a huge one is not ours.
    (&mut f)
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| VerifyError::Unreadable {
            file: MANIFEST.into(),
            detail: e.to_string(),
        })?;
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| VerifyError::BadManifest(e.to_string()))?;
    if m.format != FORMAT {
        return Err(VerifyError::BadManifest(format!(
            "format {:?}, expected {FORMAT:?}",
            m.format
        )));
    }
    Ok(m)
}

/// Re-checks every file of an export against its manifest; answers the manifest when all
/// match, else the first mismatch found.
pub fn verify_export<R: Read + Seek>(r: R) -> Result<Manifest, VerifyError> {
    let mut zip = zip::ZipArchive::new(r).map_err(|e| VerifyError::NotAZip(e.to_string()))?;
    let manifest = manifest_of(&mut zip)?;
    for name in zip.file_names() {
        if name != MANIFEST && !manifest.files.iter().any(|f| f.name == name) {
            return Err(VerifyError::Unlisted { file: name.into() });
        }
    }
    for entry in &manifest.files {
        let unreadable = |e: &dyn std::fmt::Display| VerifyError::Unreadable {
            file: entry.name.clone(),
            detail: e.to_string(),
        };
        let mut f = match zip.by_name(&entry.name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(VerifyError::Missing {
                    file: entry.name.clone(),
                })
            }
            Err(e) => return Err(unreadable(&e)),
        };
        let mut hash = Sha256::new();
        let mut records = RecordCounter::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(|e| unreadable(&e))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            records.feed(&buf[..n]);
        }
        let found = hex::encode(hash.finalize());
        if found != entry.sha256 {
            return Err(VerifyError::Hash {
                file: entry.name.clone(),
                expected: entry.sha256.clone(),
                found,
            });
        }
        // The header is a record too.
        let rows = records.records().saturating_sub(1);
        if rows != entry.rows {
            return Err(VerifyError::Rows {
                file: entry.name.clone(),
                expected: entry.rows,
                found: rows,
            });
        }
    }
    Ok(manifest)
}
