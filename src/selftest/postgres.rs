//! The self-test of a `pg_dump` job: the verified dump restored once into a scratch server;
//! for each damage a copy of its database damaged with SQL (or its dump cut or flipped), dumped
//! again in the dump's format under the dump's own name, and drilled by the job's own drill as
//! its backup.

use std::path::{Path, PathBuf};

use super::damage::{self, Applied, Damage};
use super::{Copies, SelfTestReport, drill_as_backup, matrix};
use crate::clock::Clock;
use crate::config::Job;
use crate::drill::{DrillOptions, DrillReport};
use crate::kinds::postgres::lab::{Edit, Lab};
use crate::kinds::postgres::settings::DumpSettings;
use crate::kinds::{self, RestoreMethod, SnapshotSource};
use crate::storage::{Location, SandboxRoot};

/// What a damage is for a dump: an edit of the database before it is dumped again, a damage of
/// the dump's file after, or why it means nothing for a dump.
fn plan(damage: Option<Damage>) -> Result<(Edit, Option<Damage>), &'static str> {
    Ok(match damage {
        None => (Edit::None, None),
        Some(Damage::MissingFile) => (Edit::DataLeftOut, None),
        Some(d @ (Damage::TruncatedFile | Damage::FlippedBytes)) => (Edit::None, Some(d)),
        Some(Damage::MissingCommit) => return Err("a dump has no commit log"),
        Some(Damage::OldSnapshot) => {
            return Err("a dump's time is the one pg_dump writes into its header");
        }
        Some(Damage::RowsLost) => (Edit::RowsLost, None),
        Some(Damage::RowsDuplicated) => (Edit::RowsDuplicated, None),
        Some(Damage::ValuesNulled) => (Edit::ValuesNulled, None),
        Some(Damage::ValuesDrifted) => (Edit::ValuesDrifted, None),
        Some(Damage::StringChanged) => (Edit::StringChanged, None),
        Some(Damage::ColumnDropped) => (Edit::ColumnDropped, None),
    })
}

pub(super) async fn judge(
    job: &Job,
    settings: &DumpSettings,
    drilled: &DrillReport,
    seed: u64,
    clock: &dyn Clock,
    report: &mut SelfTestReport,
) -> Result<(), String> {
    let snapshot = drilled
        .snapshot
        .as_ref()
        .map(|s| s.id.clone())
        .ok_or("the drill names no snapshot")?;
    let chosen = kinds::of(&job.snapshots)
        .choose(Some(&snapshot), clock.now())
        .await
        .map_err(|e| e.to_string())?;
    let RestoreMethod::PgRestore(dump) = chosen.method else {
        return Err(format!("snapshot {snapshot} is not a dump"));
    };
    let run = drilled
        .restore
        .as_ref()
        .map(|r| PathBuf::from(&r.sandbox))
        .ok_or("the drill restored nothing")?;
    let table = job
        .suite
        .tables()
        .into_iter()
        .next()
        .map(str::to_string)
        .ok_or("the job's suite names no table to damage")?;
    let lab_run = SandboxRoot::new(&job.sandbox)
        .create_run(&job.name, &report.run_id)
        .await
        .map_err(|e| e.to_string())?;
    let lab_dir = lab_run
        .local_path()
        .ok_or("a pg_dump job's sandbox is on local disk")?
        .to_path_buf();
    let judged = async {
        let lab = Lab::start(settings, &dump, &run.join(dump.restore_path()), &lab_dir).await?;
        let copies = DumpCopies {
            job,
            settings,
            lab: &lab,
            dir: &lab_dir,
            dump_name: &dump.name,
            table: &table,
            seed,
        };
        let judged = matrix(&copies, clock).await;
        if let Err(e) = lab.stop().await {
            tracing::warn!(job = %job.name, error = %e, "could not stop the self-test's server");
        }
        judged
    }
    .await;
    if let Err(e) = lab_run.remove().await {
        tracing::warn!(job = %job.name, error = %e, "could not remove the self-test's folder");
    }
    report.damages = judged?;
    Ok(())
}

/// The damaged dumps of a restored database.
struct DumpCopies<'a> {
    job: &'a Job,
    settings: &'a DumpSettings,
    lab: &'a Lab,
    dir: &'a Path,
    /// The verified dump's file or folder name, which each damaged dump takes.
    dump_name: &'a str,
    /// The table the database damages change (`schema.name`).
    table: &'a str,
    seed: u64,
}

impl Copies for DumpCopies<'_> {
    const WHAT: &'static str = "dump of the restored database";

    /// Makes the dump `<dir>/dumps/<name>/<dump name>` with `damage` (none for the control)
    /// and drills it as the job's backup.
    async fn drill(
        &self,
        name: &str,
        damage: Option<Damage>,
        clock: &dyn Clock,
    ) -> Result<(DrillReport, Applied), String> {
        let job = self.job;
        let at = clock.now();
        let not_applicable = |reason: String| {
            Ok((
                DrillReport::new(job, String::new(), at),
                Applied::NotApplicable(reason),
            ))
        };
        let (edit, file_damage) = match plan(damage) {
            Ok(plan) => plan,
            Err(reason) => return not_applicable(reason.into()),
        };
        let backups = self.dir.join("dumps").join(name);
        std::fs::create_dir_all(&backups).map_err(|e| format!("{}: {e}", backups.display()))?;
        let out = backups.join(self.dump_name);
        let mut done = match self
            .lab
            .damaged_dump(edit, self.table, self.seed, &out)
            .await?
        {
            Ok(what) => what,
            Err(reason) => return not_applicable(reason),
        };
        if edit == Edit::DataLeftOut {
            done = format!("the data of {} left out of the dump", self.table);
        }
        if let Some(file_damage) = file_damage {
            let file = largest_file(&out).ok_or("the dump holds no file")?;
            let size = std::fs::metadata(&file).map_err(|e| e.to_string())?.len();
            let what = match file_damage {
                Damage::TruncatedFile => damage::truncate(&file, size)?,
                _ => damage::flip(&file, size)?,
            };
            let shown = file.strip_prefix(&backups).unwrap_or(&file);
            done = format!("{}: {what}", shown.display());
        }
        let mut settings = self.settings.clone();
        settings.location = Location::from_path(&backups);
        let mut copy_job = job.clone();
        copy_job.snapshots = SnapshotSource::PgDump(Box::new(settings));
        let options = DrillOptions {
            snapshot: Some(self.dump_name.to_string()),
            ..Default::default()
        };
        let drill = drill_as_backup(job, &copy_job, options, clock).await;
        Ok((drill, Applied::Done(done)))
    }
}

/// The dump's file, or the largest file of a directory dump.
fn largest_file(dump: &Path) -> Option<PathBuf> {
    if dump.is_file() {
        return Some(dump.to_path_buf());
    }
    std::fs::read_dir(dump)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .map(|e| e.path())
}
