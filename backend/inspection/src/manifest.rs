//! `manifest.json`: what the zip holds and what it was taken from.

use serde::{Deserialize, Serialize};

/// The manifest's `format`; a reader refuses others.
pub const FORMAT: &str = "cleanplate-inspection-export/1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The first and last canteen-local dates exported (`YYYY-MM-DD`, both included).
    pub from: String,
    pub to: String,
    /// The canteen's UTC offset the dates are in, and the instants they span: `[from_ms, to_ms)`.
    pub utc_offset_minutes: i32,
    pub from_ms: i64,
    pub to_ms: i64,
    /// When the export was made (RFC 3339 in the canteen's offset, and ms since the epoch).
    pub exported_at: String,
    pub exported_at_ms: i64,
    /// The newest sealed audit entry when the export began (`None`: nothing sealed yet).
    pub audit_chain_head: Option<ChainHead>,
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    /// SHA-256 of the file's bytes as stored in the zip (uncompressed), hex.
    pub sha256: String,
    /// Records below the header line.
    pub rows: u64,
    /// Which time of a record put it in the range.
    pub selected_by: String,
}
