//! Helpers for the end-to-end tests: spawning the real `backend` and `kiosk` binaries.
