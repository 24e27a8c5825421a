//! Fetching and verifying archives.
