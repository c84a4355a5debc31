//! `selftest`: the job's drill, then damaged copies of what it restored drilled one by one
//! (see [`crate::selftest`]), as a matrix or JSON.

use std::path::Path;

use super::{CommandError, Exit, load};
use crate::clock::SystemClock;
use crate::selftest::{self, Status};

/// `selftest`: exit 0 when every damage that applies is caught, 1 when one is missed (or the
/// drill failed), 2 when the self-test cannot judge the job (or the drill could not run).
pub(super) async fn selftest(config: &Path, job: &str, seed: Option<u64>, json: bool) -> Exit {
    let config = load(config)?;
    let job = config.job(job).map_err(CommandError::error)?;
    drill_sweep(job).await;
    let seed = seed.unwrap_or_else(rand::random);
    let report = selftest::run(job, seed, &SystemClock).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", selftest::render(&report));
    }
    let value = serde_json::to_value(&report)?;
    super::drill::record(&config, job, &report.run_id, value, "self-test").await?;
    Ok(match report.status {
        Status::Judged if report.caught == report.applicable => 0,
        Status::Judged => 1,
        Status::DrillNotPassed => report.drill_outcome.exit_code(),
        Status::CannotJudge => 2,
    })
}

/// Sandboxes of earlier runs whose process died go first, as before `run`.
async fn drill_sweep(job: &crate::config::Job) {
    use crate::clock::Clock;
    crate::drill::sweep_sandboxes(std::slice::from_ref(job), SystemClock.now()).await;
}
