//! The inspection export: what an inspector takes away from a canteen. A date range (canteen
//! local dates) of charges, refunds, top-ups and plate-waste records as CSV files, plus
//! `manifest.json` with each file's SHA-256 and row count, the range, the time of export and
//! the audit chain's head (seq and hash) at that time, all in one zip. [`write_export`] reads
//! the store page by page and writes the zip as it goes (a year of a large canteen is never
//! held in memory); [`verify_export`] re-reads a zip and checks every file against the
//! manifest. Whether the manifest's chain head is still in the database's chain is for the
//! caller to ask the store (`backend verify-export` does).
//!
//! [`csv`] holds the CSV cell rules every export of this backend uses (the managers' journal
//! too): text from people is escaped against formula injection.

pub mod csv;
mod manifest;
mod verify;
mod write;

pub use manifest::{ChainHead, FileEntry, Manifest, FORMAT};
pub use verify::{verify_export, VerifyError};
pub use write::{write_export, ExportError, Period};
