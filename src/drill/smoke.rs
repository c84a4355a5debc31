//! The smoke phase: the job's own programs (`[[job.smoke]]`) run one after another against the
//! restored data once the suite passed, each a check `smoke:<name>`, their time a phase.

use serde_json::json;

use super::Drill;
use crate::kinds::{PhaseTime, Snapshot};
use crate::smoke::{self, RunSmoke};
use crate::storage::Backend;
use crate::verify::suite::Severity;
use crate::verify::{CheckOutcome, CheckResult};

/// How long a smoke test stopped by a timeout or a cancelled drill has between SIGTERM and
/// SIGKILL.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl Drill<'_> {
    /// Runs the job's smoke tests when every check so far held; each is a check of the report.
    /// Returns their seconds in all.
    pub(super) async fn smoke(&mut self, snapshot: &Snapshot) -> f64 {
        let job = self.job;
        if job.smoke.is_empty() {
            return 0.0;
        }
        let failed = self
            .report
            .checks
            .iter()
            .any(|c| c.outcome == CheckOutcome::Failed && c.severity == Severity::Fail);
        if failed {
            for test in &job.smoke {
                let mut check = check_of(test);
                check.outcome = CheckOutcome::Skipped;
                check.message = Some("not run: the restored data did not pass its checks".into());
                self.report.checks.push(check);
            }
            return 0.0;
        }
        let with = self.smoke_environment(snapshot).await;
        let mut seconds = 0.0;
        for test in &job.smoke {
            self.progress
                .scan_started(&format!("smoke test {}", test.name));
            let ran = smoke::run(test, &with).await;
            self.progress.scan_finished();
            seconds += ran.seconds;
            let mut check = check_of(test);
            check.observed = json!({
                "exit_code": ran.exit_code,
                "seconds": (ran.seconds * 1000.0).round() / 1000.0,
                "output": ran.output,
            });
            check.expected =
                json!({ "exit_code": 0, "within_seconds": test.timeout.as_secs_f64() });
            if let Some(problem) = ran.problem {
                check.fail(problem);
            }
            self.report.checks.push(check);
        }
        self.report.phases.push(PhaseTime::new("smoke", seconds));
        seconds
    }

    /// What a smoke test sees: the restored data's description, `PATH`, and — only when the job
    /// says `smoke_credentials = true` — the sandbox's keys.
    async fn smoke_environment(&self, snapshot: &Snapshot) -> RunSmoke {
        let job = self.job;
        let run = self.run();
        let mut env = vec![
            ("RESTORE_DRILL_JOB".to_string(), job.name.clone()),
            ("RESTORE_DRILL_RUN_ID".into(), self.report.run_id.clone()),
            ("RESTORE_DRILL_SNAPSHOT".into(), snapshot.id.clone()),
            ("RESTORE_DRILL_RESTORED_URI".into(), run.url().to_string()),
        ];
        if let Some(version) = snapshot.version() {
            env.push(("RESTORE_DRILL_SNAPSHOT_VERSION".into(), version.to_string()));
        }
        if let Some(path) = run.local_path() {
            env.push((
                "RESTORE_DRILL_RESTORED_PATH".into(),
                path.display().to_string(),
            ));
        }
        if let Some(path) = std::env::var_os("PATH") {
            env.push(("PATH".into(), path.to_string_lossy().into_owned()));
        }
        let mut secrets = Vec::new();
        if let Backend::S3(s3) = run.location().backend() {
            if let Some(endpoint) = &s3.profile.endpoint {
                env.push(("AWS_ENDPOINT_URL".into(), endpoint.clone()));
            }
            if let Some(region) = &s3.profile.region {
                env.push(("AWS_REGION".into(), region.clone()));
                env.push(("AWS_DEFAULT_REGION".into(), region.clone()));
            }
            if job.smoke_credentials {
                for (name, var) in [
                    ("AWS_ACCESS_KEY_ID", &s3.profile.access_key_id_env),
                    ("AWS_SECRET_ACCESS_KEY", &s3.profile.secret_access_key_env),
                ] {
                    if let Some(value) = var.as_ref().and_then(|v| std::env::var(v).ok()) {
                        secrets.push(value.clone());
                        env.push((name.to_string(), value));
                    }
                }
            }
        }
        for (name, value) in self.kind.restored_env(job.smoke_credentials).await {
            if name == "PGPASSWORD" {
                secrets.push(value.clone());
            }
            env.push((name, value));
        }
        RunSmoke {
            env,
            secrets,
            grace: GRACE,
        }
    }
}

/// The report's check of a smoke test.
fn check_of(test: &smoke::SmokeTest) -> CheckResult {
    CheckResult::new(&format!("smoke:{}", test.name), "smoke", test.severity)
}
