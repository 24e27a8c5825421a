//! The CleanPlate kiosk, as a library: everything between a camera frame and a charge or
//! plate-waste record, offline-first. The Slint screens (the `kiosk-ui` crate) and the
//! headless binary only render what this library decides, as [`event::KioskEvent`]s.
//!
//! Pure logic, tested fast: [`decide`] (who is in front of the camera), [`offline`] (serving
//! a diner when the backend cannot be asked), [`scale`] (the plate scale's lines and stable
//! weights). State and I/O around it: [`local_store`] (the durable outbox and local state,
//! a module per table), [`courier`] (the one way queued requests reach the backend),
//! [`api`] (the backend over HTTP behind the [`api::BackendApi`] trait), [`frames`] (camera
//! and replay sources), [`gallery_cache`] (encrypted templates on disk), [`canteen`] (the
//! canteen's clock, meal windows and prices by `ledger`'s rules, cached on disk),
//! [`scale_io`] (serial port, TCP and a simulator), [`paycode`] (QR codes on the frames),
//! [`station`] (the pay and return stations), [`sync`] (the background thread keeping the
//! kiosk in step with the backend) and [`run`] (the main loop). [`frontend`] is what a
//! screen needs besides the events: a preview of the camera and a command channel.

pub mod api;
pub mod canteen;
pub mod config;
pub mod courier;
pub mod decide;
pub mod desk;
pub mod event;
pub mod frames;
pub mod frontend;
pub mod gallery_cache;
pub mod local_store;
pub mod offline;
pub mod paycode;
pub mod run;
pub mod scale;
pub mod scale_io;
pub mod settings;
pub mod station;
pub mod sync;

/// Milliseconds since the Unix epoch by the kiosk's clock (the outbox's timestamps).
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
