//! Verification of a restored table: the suite compiled into one scan, evaluated against its
//! thresholds and against the source at the snapshot's version.

pub mod damage;
pub mod evaluate;
pub mod scan;
pub mod suite;

pub use evaluate::{CheckOutcome, CheckResult, SourceValues, compile, evaluate};
