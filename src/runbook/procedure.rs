//! The runbook's procedure for a job: the access and tools a restore needs, and the steps with
//! their exact commands — restore-drill's own, and for the recovery itself the commands of the
//! job's snapshot kind that work without restore-drill.

use super::{Command, Step, Verified};
use crate::config::Job;
use crate::kinds::{PointInTime, SnapshotSource};
use crate::primitives::duration::seconds;
use crate::storage::{Backend, Location};

/// What the steps are written from.
pub(super) struct Context<'a> {
    /// The configuration file as the commands name it.
    pub config: &'a str,
    pub job: &'a Job,
    /// The newest verified snapshot.
    pub verified: Option<&'a Verified>,
    /// The median RTO of the recent drills.
    pub rto: Option<f64>,
}

impl Context<'_> {
    /// `restore-drill <words>` with the configuration and the job.
    fn ours(&self, command: &str, rest: &str) -> Command {
        let job = quote(&self.job.name);
        let config = quote(self.config);
        let line = match command {
            "history" => format!("restore-drill history --config {config} --job {job}{rest}"),
            _ => format!("restore-drill {command} --config {config} {job}{rest}"),
        };
        Command::ours(line)
    }

    /// `restore-drill restore` of `snapshot`, its plan first: into the source's place (what
    /// is there moved aside) when the source is not where the backups are, else into a new
    /// folder beside it; a time-travel table as a new version of itself; a dump into a new
    /// database beside the source's.
    fn restore(&self, snapshot: &str) -> Vec<Command> {
        let reason = format!(" --reason {}", quote(RESTORE_REASON));
        if let SnapshotSource::PgDump(settings) = &self.job.snapshots {
            let source = &settings.source;
            let database = source.database().unwrap_or_else(|| "app".into());
            let password = source
                .password_env
                .as_deref()
                .map_or(String::new(), |v| format!(" --password-env {}", quote(v)));
            let rest = format!(
                " --snapshot {} --to {}{password}{reason}",
                quote(snapshot),
                quote(&source.with_database(&format!("{database}_restored")).url)
            );
            return vec![
                self.ours("restore", &format!("{rest} --dry-run")),
                self.ours("restore", &rest),
            ];
        }
        let (source, backups) = match &self.job.snapshots {
            SnapshotSource::DeltaCopy {
                location, source, ..
            }
            | SnapshotSource::S3Versions {
                location, source, ..
            } => (source, location),
            SnapshotSource::DeltaTimeTravel { source, .. } => (source, source),
            SnapshotSource::PgDump(_) => return Vec::new(),
        };
        // A time-travel table is restored as a new version of itself; a table whose place holds
        // its backups (a versioned bucket) into a new folder beside it; any other in its place.
        let to = if matches!(self.job.snapshots, SnapshotSource::DeltaTimeTravel { .. }) {
            Some((source.clone(), ""))
        } else if source.overlaps(backups) {
            source.sibling(".restored").map(|l| (l, ""))
        } else {
            Some((source.clone(), " --replace"))
        };
        let Some((to, replace)) = to else {
            return Vec::new();
        };
        let rest = format!(
            " --snapshot {} --to {}{replace}{reason}",
            quote(snapshot),
            quote(&to.to_string()),
        );
        vec![
            self.ours("restore", &format!("{rest} --dry-run")),
            self.ours("restore", &rest),
        ]
    }

    /// The snapshot the steps restore: the newest verified one, else a placeholder.
    fn snapshot(&self) -> String {
        self.verified
            .map_or_else(|| "SNAPSHOT".to_string(), |v| v.snapshot.clone())
    }
}

/// Where the backups are, in words.
pub(super) fn backups(job: &Job) -> String {
    match &job.snapshots {
        SnapshotSource::DeltaCopy {
            location, pattern, ..
        } => format!("copies of the table named `{pattern}` under {location}"),
        SnapshotSource::DeltaTimeTravel { source, at } => {
            format!("the table's own history at {source} ({})", point(at))
        }
        SnapshotSource::S3Versions { location, at, .. } => format!(
            "object versions of the versioned bucket prefix {location} ({})",
            point(at)
        ),
        SnapshotSource::PgDump(settings) => format!(
            "pg_dump files named `{}` under {}",
            settings.pattern, settings.location
        ),
    }
}

fn point(at: &PointInTime) -> String {
    match at {
        PointInTime::Lag(lag) => format!(
            "the newest state at least {} old",
            crate::primitives::duration::format_duration(*lag)
        ),
        PointInTime::Timestamp(t) => format!("the state at {}", super::time(*t)),
        PointInTime::Version(v) => format!("version {v}"),
    }
}

/// The access to `location` a restore needs, `role` being what is there.
fn storage(role: &str, location: &Location, rights: &str) -> String {
    match location.backend() {
        Backend::Local(path) => format!("{role}: {rights} on the folder {}", path.display()),
        Backend::S3(s3) => {
            let profile = &s3.profile;
            let mut said = format!(
                "{role}: {rights} on s3://{}/{} through the storage profile `{}`",
                s3.bucket, s3.prefix, profile.name
            );
            if let Some(region) = &profile.region {
                said.push_str(&format!(", region {region}"));
            }
            if let Some(endpoint) = &profile.endpoint {
                said.push_str(&format!(", endpoint {endpoint}"));
            }
            if let (Some(id), Some(secret)) =
                (&profile.access_key_id_env, &profile.secret_access_key_env)
            {
                said.push_str(&format!(" (keys in the variables {id} and {secret})"));
            }
            said
        }
    }
}

/// The access a restore needs: storage profiles and database roles, by name (never a secret).
pub(super) fn access(job: &Job) -> Vec<String> {
    let mut out = Vec::new();
    match &job.snapshots {
        SnapshotSource::DeltaCopy {
            location, source, ..
        } => {
            out.push(storage("the backups", location, "read"));
            out.push(storage("the table", source, "read and write"));
        }
        SnapshotSource::S3Versions { location, .. } => out.push(storage(
            "the table and its object versions",
            location,
            "read (with versions) and write (copies of old versions, delete markers)",
        )),
        SnapshotSource::DeltaTimeTravel { source, .. } => {
            out.push(storage(
                "the table",
                source,
                "read and write (a restore commits a new version)",
            ));
        }
        SnapshotSource::PgDump(settings) => {
            out.push(storage("the dumps", &settings.location, "read"));
            let password = settings
                .source
                .password_env
                .as_ref()
                .map_or(String::new(), |v| {
                    format!(" (password in the variable {v})")
                });
            out.push(format!(
                "the database server of {}{password}: a role that may create a database{}",
                settings.source,
                match settings.owners {
                    crate::kinds::postgres::restore::Owners::Create =>
                        " and the roles owning the dump's objects",
                    crate::kinds::postgres::restore::Owners::Skip => "",
                }
            ));
        }
    }
    out
}

/// The tools a restore needs.
pub(super) fn tools(job: &Job) -> Vec<String> {
    let mut out = vec![format!(
        "restore-drill {} (this runbook's commands), with the configuration file",
        env!("CARGO_PKG_VERSION")
    )];
    match &job.snapshots {
        SnapshotSource::DeltaCopy { location, .. } | SnapshotSource::S3Versions { location, .. }
            if matches!(location.backend(), Backend::S3(_)) =>
        {
            out.push("the AWS CLI (`aws`), for the recovery without restore-drill".into());
        }
        SnapshotSource::DeltaCopy { .. } => {
            out.push("`cp` and `mv`, for the recovery without restore-drill".into())
        }
        SnapshotSource::S3Versions { .. } => {}
        SnapshotSource::DeltaTimeTravel { .. } => out.push(
            "Python with the `deltalake` package, or Spark with Delta Lake, for the recovery without restore-drill"
                .into(),
        ),
        SnapshotSource::PgDump(settings) => out.push(format!(
            "PostgreSQL client tools (`createdb`, `pg_restore`, `psql`) of the dump's major version or newer{}",
            settings
                .postgres_bin
                .as_ref()
                .map_or(String::new(), |b| format!(" (the job names {})", b.display()))
        )),
    }
    out
}

/// The steps of the procedure.
pub(super) fn steps(c: &Context) -> Vec<Step> {
    let job = c.job;
    let channel = job.incident.incident_channel.as_deref().map_or_else(
        || "the team's incident channel (the job names none: set `incident_channel`)".to_string(),
        |ch| format!("`{ch}`"),
    );
    let mut declare = vec![format!(
        "Declare an incident in {channel}{}, naming this runbook and the job `{}`.",
        job.incident
            .severity
            .as_deref()
            .map_or(String::new(), |s| format!(" at severity {s}")),
        job.name
    )];
    if let Some(owner) = &job.owner {
        declare.push(format!("Page the data's owner: {owner}."));
    }
    let dependents = if job.incident.dependents.is_empty() {
        "Pause whatever writes to or reads from the data (the job names no `dependents`)."
            .to_string()
    } else {
        format!(
            "Pause the dependents so they neither write to nor read from the damaged data: {}.",
            job.incident.dependents.join(", ")
        )
    };
    let snapshot = c.snapshot();
    let rto = c.rto.map_or(String::new(), |r| {
        format!(
            " A drill takes about {} (the recent median RTO).",
            seconds(r)
        )
    });
    vec![
        Step {
            title: "Declare the incident".into(),
            text: declare,
            items: Vec::new(),
            commands: Vec::new(),
        },
        Step {
            title: "Isolate and confirm".into(),
            text: vec![
                dependents,
                "Confirm what is damaged: a drill of the newest backup compares it with the source and names each difference (rows, columns, schema).".into(),
            ],
            items: Vec::new(),
            commands: vec![c.ours("run", "")],
        },
        Step {
            title: "Identify the last known good state".into(),
            text: vec![
                "The snapshots that passed a drill are listed above, newest first; the history shows every drill with its findings, and `snapshots` every backup there is.".into(),
                format!("Prove the snapshot you choose restores and passes the checks now, in the sandbox, before touching the data.{rto}"),
            ],
            items: Vec::new(),
            commands: vec![
                c.ours("history", ""),
                c.ours("snapshots", ""),
                c.ours("run", &format!(" --snapshot {}", quote(&snapshot))),
            ],
        },
        Step {
            title: "Recover".into(),
            text: recovery_text(job),
            items: Vec::new(),
            commands: c
                .restore(&snapshot)
                .into_iter()
                .chain(recovery(job, &snapshot))
                .collect(),
        },
        Step {
            title: "Post-restore checks".into(),
            text: vec!["The restored data must pass the job's checks, the ones every drill runs:".into()],
            items: suite_in_words(job),
            commands: Vec::new(),
        },
        Step {
            title: "Resync dependents".into(),
            text: vec![if job.incident.dependents.is_empty() {
                "Resume what was paused; let each consumer catch up from the restored state.".into()
            } else {
                format!(
                    "Resume {}; each catches up from the restored state (data written after the snapshot's time is not in it: replay it from its origin).",
                    job.incident.dependents.join(", ")
                )
            }],
            items: Vec::new(),
            commands: Vec::new(),
        },
        Step {
            title: "Verify and hand over".into(),
            text: vec![format!(
                "Tell {channel}{} what was restored (snapshot, time, what was lost since), and that the checks passed.",
                job.owner
                    .as_deref()
                    .map_or(String::new(), |o| format!(" and {o}"))
            )],
            items: Vec::new(),
            commands: Vec::new(),
        },
        Step {
            title: "Clean up".into(),
            text: vec![
                "Keep the damaged data that was moved aside until the incident is closed, then remove it. restore-drill removes its own sandbox folders.".into(),
            ],
            items: Vec::new(),
            commands: Vec::new(),
        },
    ]
}

/// What to record after the incident.
pub(super) fn post_incident(c: &Context) -> Vec<String> {
    vec![
        "Record in the incident: the snapshot restored, when the restore started and ended, what was lost (the RPO), and any step of this runbook that did not work.".into(),
        "A `restore-drill restore` records itself in the journal, beside the drills: who ran it (OS user and host), when, why (`--reason`), the snapshot, the target and where its previous contents went, whether the gate was forced, each phase's time and the verification; `history` lists it and the audit report names it.".into(),
        format!(
            "The drills' evidence stays in restore-drill's history (`restore-drill history --config {} --job {}`) and audit reports (`restore-drill report`).",
            quote(c.config),
            quote(&c.job.name)
        ),
    ]
}

/// The job's checks and smoke tests, in words: what to look at after the restore.
fn suite_in_words(job: &Job) -> Vec<String> {
    let mut out = Vec::new();
    for check in &job.suite.checks {
        out.push(format!(
            "`{}`: {}{} ({})",
            check.id,
            check.kind.name(),
            check
                .table
                .as_deref()
                .map_or(String::new(), |t| format!(" of {t}")),
            check.severity.as_str()
        ));
    }
    for test in &job.smoke {
        out.push(format!(
            "`smoke:{}`: the team's own `{}` on the restored data ({})",
            test.name,
            test.display(),
            test.severity.as_str()
        ));
    }
    out
}

/// The reason the runbook's `restore` command records, for the engineer to replace.
const RESTORE_REASON: &str = "INCIDENT-ID: what was lost";

fn recovery_text(job: &Job) -> Vec<String> {
    let mut text: Vec<String> = match &job.snapshots {
        SnapshotSource::DeltaCopy { .. } => vec![
            "Move the damaged table aside (nothing is deleted), then copy the verified snapshot in its place.".into(),
        ],
        SnapshotSource::DeltaTimeTravel { .. } => vec![
            "Restore the table to the verified version: a new commit whose contents are that version's (the damaged versions stay in the history).".into(),
        ],
        SnapshotSource::S3Versions { .. } => vec![
            "Copy each object's version current at the verified time over the object, and put a delete marker on each object written since (the damaged versions stay in the bucket's history).".into(),
        ],
        SnapshotSource::PgDump(_) => vec![
            "Do not restore over the damaged database: restore the verified dump into a new database, check it, then point the applications at it (or swap the names).".into(),
        ],
    };
    for line in &mut text {
        let mut chars = line.chars();
        let first = chars.next().map(|c| c.to_lowercase().to_string());
        *line = format!(
            "Without restore-drill (the commands after its two): {}{}",
            first.unwrap_or_default(),
            chars.as_str()
        );
    }
    text.insert(
        0,
        "With restore-drill — the first command prints the plan and writes nothing: it restores only a snapshot a drill passed with this configuration and suite, moves what the target holds aside (`--replace`; nothing is deleted), restores with the drilled procedure, then checks the result with the job's suite and the fingerprints the drill recorded. Put the incident in `--reason`; the restore is recorded.".into(),
    );
    text
}

/// The recovery commands of the job's kind, without restore-drill.
fn recovery(job: &Job, snapshot: &str) -> Vec<Command> {
    let stamp = "$(date -u +%Y%m%dT%H%M%SZ)";
    match &job.snapshots {
        SnapshotSource::DeltaCopy {
            location, source, ..
        } => {
            let from = location.child(snapshot);
            match (from.backend(), source.backend()) {
                (Backend::Local(from), Backend::Local(to)) => vec![
                    Command::theirs(format!(
                        "mv {} {}",
                        quote(&to.display().to_string()),
                        quote(&format!("{}.before-restore-", to.display())) + stamp
                    )),
                    Command::theirs(format!(
                        "cp -a {} {}",
                        quote(&from.display().to_string()),
                        quote(&to.display().to_string())
                    )),
                ],
                _ => {
                    let endpoint = endpoint_flag(source);
                    let target = source.to_string();
                    let aside = format!("{}.before-restore-", target.trim_end_matches('/'));
                    vec![
                        Command::theirs(format!(
                            "aws s3 mv --recursive{endpoint} {} {}{stamp}/",
                            quote(&target),
                            quote(&aside)
                        )),
                        Command::theirs(format!(
                            "aws s3 sync{endpoint} {} {}",
                            quote(&from.to_string()),
                            quote(&target)
                        )),
                    ]
                }
            }
        }
        SnapshotSource::DeltaTimeTravel { source, .. } => {
            let version = snapshot.trim_start_matches('v');
            vec![Command::theirs(format!(
                "python3 -c 'from deltalake import DeltaTable; DeltaTable(\"{}\").restore({version})'",
                source.url()
            ))]
        }
        SnapshotSource::S3Versions { location, .. } => {
            let (bucket, prefix) = match location.backend() {
                Backend::S3(s3) => (s3.bucket.to_string(), s3.prefix.to_string()),
                Backend::Local(p) => (p.display().to_string(), String::new()),
            };
            let endpoint = endpoint_flag(location);
            let prefix = quote(&prefix);
            vec![
                // Each key's newest version or delete marker at the point in time; keys that
                // were deleted then are left out.
                Command::theirs(format!(
                    "aws s3api list-object-versions{endpoint} --bucket {bucket} --prefix {prefix} --query \"[Versions[?LastModified<='{snapshot}'].[Key,LastModified,VersionId,'version'], DeleteMarkers[?LastModified<='{snapshot}'].[Key,LastModified,VersionId,'deleted']][]\" --output text | sort -k1,1 -k2,2r | awk -F'\\t' '!seen[$1]++ && $4 == \"version\"' > versions.txt"
                )),
                Command::theirs(format!(
                    "while IFS=\"$(printf '\\t')\" read -r key _ version _; do aws s3api copy-object{endpoint} --bucket {bucket} --key \"$key\" --copy-source \"{bucket}/$key?versionId=$version\"; done < versions.txt"
                )),
                // Objects written after the point in time (later log entries, new data files)
                // get a delete marker; their versions stay in the bucket.
                Command::theirs(format!(
                    "aws s3api list-objects-v2{endpoint} --bucket {bucket} --prefix {prefix} --query 'Contents[].Key' --output text | tr '\\t' '\\n' | sort > now.txt; cut -f1 versions.txt | sort > then.txt; comm -23 now.txt then.txt | while read -r key; do aws s3 rm{endpoint} \"s3://{bucket}/$key\"; done"
                )),
            ]
        }
        SnapshotSource::PgDump(settings) => {
            let server: String = settings
                .source
                .server_args()
                .iter()
                .map(|a| format!(" {}", quote(a)))
                .collect();
            let database = settings
                .source
                .database()
                .unwrap_or_else(|| "app".to_string());
            let restored = format!("{database}_restored");
            let dump = quote(&settings.location.child(snapshot).to_string());
            let owners = match settings.owners {
                crate::kinds::postgres::restore::Owners::Create => "",
                crate::kinds::postgres::restore::Owners::Skip => " --no-owner --no-privileges",
            };
            vec![
                Command::theirs(format!("createdb{server} {restored}")),
                Command::theirs(format!(
                    "pg_restore{server}{owners} -d {restored} {dump}    # custom, directory or tar dumps"
                )),
                Command::theirs(format!(
                    "psql{server} -d {restored} -v ON_ERROR_STOP=1 -f {dump}    # plain SQL dumps (gzip: gunzip -c {dump} | psql{server} -d {restored} -v ON_ERROR_STOP=1)"
                )),
            ]
        }
    }
}

/// ` --endpoint-url URL` when the location's profile names an endpoint.
fn endpoint_flag(location: &Location) -> String {
    match location.backend() {
        Backend::S3(s3) => s3
            .profile
            .endpoint
            .as_ref()
            .map_or(String::new(), |e| format!(" --endpoint-url {e}")),
        Backend::Local(_) => String::new(),
    }
}

/// `text` as one shell word.
fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(quote("/etc/restore-drill.toml"), "/etc/restore-drill.toml");
        assert_eq!(quote("my config.toml"), "'my config.toml'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
