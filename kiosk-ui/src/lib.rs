//! The kiosk's touch UI in Slint, over the `kiosk` library: the attract screen with the
//! live camera picture, paid and declined screens, the pay-code screen, the return station,
//! the enrolment desk, settings and fault screens, in Chinese (the default) and English,
//! landscape 1280x800 and portrait 800x1280.
//!
//! The `.slint` files (`ui/`: a theme, shared widgets, one file per screen) only show what
//! they are given. [`model`] adapts the kiosk's events into the UI's state (pure, tested on
//! its own), [`view`] copies that state into the window, [`preview`] turns the kiosk's
//! preview frames into images, [`render`] draws without a display (tests, benchmark),
//! [`desk`] runs the enrolment desk's flow, [`settings`] the settings screen's (its PIN,
//! saving, the tare), and [`app`] wires a running kiosk to a window:
//! inference runs on the kiosk's threads, never on the UI thread, and preview frames are
//! dropped, never queued, when the UI is slow.

/// The code Slint generates from `ui/` (its placeholders for Rust-embedded components use
/// `todo!`, which the workspace lints refuse in our own code).
#[allow(clippy::todo)]
mod generated {
    slint::include_modules!();
}
pub use generated::*;

pub mod app;
pub mod desk;
pub mod model;
pub mod preview;
pub mod render;
pub mod settings;
pub mod view;
