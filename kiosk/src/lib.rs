//! The CleanPlate kiosk, as a library: everything between a camera frame and a charge or
//! plate-waste record, offline-first. The Slint screens (another crate) and the headless
//! binary only render what this library decides.
//!
//! Pure logic, tested fast: [`decide`] (who is in front of the camera), [`scale`] (the
//! plate scale's lines and stable weights), [`outbox`] (the durable queue and local
//! state). I/O around it: [`frames`] (camera and replay sources), [`api`] (the backend over
//! HTTP behind the [`api::BackendApi`] trait), [`gallery_cache`] (encrypted templates on
//! disk), [`canteen`] (the canteen's clock, meal windows and prices, cached on disk),
//! [`scale_io`] (serial port, TCP and a simulator), [`paycode`] (QR codes on the frames),
//! and [`station`], which wires them into the pay and return stations.

pub mod api;
pub mod canteen;
pub mod config;
pub mod decide;
pub mod desk;
pub mod frames;
pub mod gallery_cache;
pub mod outbox;
pub mod paycode;
pub mod run;
pub mod scale;
pub mod scale_io;
pub mod station;
