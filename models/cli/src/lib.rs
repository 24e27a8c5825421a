//! The library half of the `faces` command: accuracy evaluation on LFW-style protocols,
//! shared by the CLI and by the tests that hold the pipeline to its accuracy targets.

pub mod eval;
pub mod identify;
pub mod stats;
