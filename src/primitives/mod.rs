//! Small helpers every layer uses: durations, byte sizes, hashes, run ids, and the reader of
//! TOML documents that reports every problem with its position. They import no other module
//! of restore-drill.

pub mod bytes;
pub mod duration;
pub mod fields;
pub mod hash;
pub mod run_id;
