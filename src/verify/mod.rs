//! Verification of a restored table: the suite compiled into one scan, evaluated against its
//! thresholds and against the source at the snapshot's version.

pub(crate) mod compare_settings;
pub mod compile;
pub mod diff;
pub mod evaluate;
pub mod fingerprint;
pub mod keys;
pub mod plan;
pub mod queries;
pub mod sample;
pub mod scan;
pub mod suite;
pub mod values;

pub use compile::{Context, plan_restored, plan_source};
pub use evaluate::{
    CheckOutcome, CheckResult, SourceValues, compare_fingerprints, compare_with_drill, evaluate,
};
