//! The kiosk library.
