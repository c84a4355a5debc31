//! Smoke tests: the team's own programs (`[[job.smoke]]`), run against the restored data after
//! the suite passed — does the nightly job, the report query, still run on it? Each is a
//! command with the restored data described in its environment and nothing else of
//! restore-drill's, in a process group of its own so that a timeout or a cancelled drill stops
//! it and its children.

mod run;

pub use run::{Outcome as SmokeOutcome, RunSmoke, run};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::primitives::fields::{Fields, Problems};
use crate::verify::suite::Severity;

/// How long a smoke test may run unless its entry says `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// One `[[job.smoke]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeTest {
    pub name: String,
    /// The program and its arguments; with `shell`, one script for `sh -c`.
    pub command: Vec<String>,
    pub shell: bool,
    pub timeout: Duration,
    pub severity: Severity,
    /// Variables set for the command besides the restored data's.
    pub env: BTreeMap<String, String>,
    /// Where it runs: `working_dir`, relative to the configuration's folder, else that folder.
    pub working_dir: PathBuf,
}

impl SmokeTest {
    /// The command as a line, for plans and messages.
    pub fn display(&self) -> String {
        if self.shell {
            format!("sh -c {:?}", self.command.join(" "))
        } else {
            self.command.join(" ")
        }
    }

    /// Why the command cannot start on this machine, if it cannot: its program is not found,
    /// or not executable, or its working folder is missing.
    pub fn check(&self) -> Result<(), String> {
        if !self.working_dir.is_dir() {
            return Err(format!(
                "its working_dir {} is not a folder",
                self.working_dir.display()
            ));
        }
        let program = if self.shell {
            "sh"
        } else {
            self.command[0].as_str()
        };
        match find_program(program, &self.working_dir) {
            Some(path) if is_executable(&path) => Ok(()),
            Some(path) => Err(format!(
                "{} is not executable (chmod +x it, or run it through an interpreter: command = [\"sh\", \"{program}\"])",
                path.display()
            )),
            None => Err(format!(
                "`{program}` is not found{}",
                if program.contains('/') {
                    format!(" (relative to {})", self.working_dir.display())
                } else {
                    " on the PATH".to_string()
                }
            )),
        }
    }
}

/// The program `name`: a path (relative to `dir`), or the first match on the PATH.
fn find_program(name: &str, dir: &Path) -> Option<PathBuf> {
    if name.contains('/') {
        let path = dir.join(name);
        return path.exists().then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Reads the `smoke` entries of a job (`[[job.smoke]]`); `base` is the configuration's folder.
pub fn read(f: &mut Fields, base: &Path, p: &mut Problems) -> Option<Vec<SmokeTest>> {
    let Some((item, at)) = f.item("smoke", p) else {
        return Some(Vec::new());
    };
    let context = f.context().to_string();
    let Some(tables) = item.as_array_of_tables() else {
        p.report(
            at,
            format!("{context}: `smoke` must be an array of tables: write `[[job.smoke]]`"),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, table) in tables.iter().enumerate() {
        let at = p.position_of(table.span());
        let mut t = Fields::new(table, at, format!("{context} smoke #{}", i + 1));
        match read_one(&mut t, base, p) {
            Some(test) => {
                if out.iter().any(|o: &SmokeTest| o.name == test.name) {
                    p.report(
                        at,
                        format!(
                            "{context}: two smoke tests are named `{}`; each needs its own name",
                            test.name
                        ),
                    );
                    ok = false;
                }
                out.push(test);
            }
            None => ok = false,
        }
        t.finish(p);
    }
    ok.then_some(out)
}

fn read_one(f: &mut Fields, base: &Path, p: &mut Problems) -> Option<SmokeTest> {
    let name = f.required_string("name", "the smoke test's name, e.g. \"nightly-report\"", p);
    let shell = f.boolean("shell", p).is_some_and(|b| b.value);
    let command = match f.item("command", p) {
        None => {
            p.report(
                f.at(),
                format!(
                    "{}: `command` is missing: the program and its arguments, e.g. [\"python3\", \"checks/report.py\"]",
                    f.context()
                ),
            );
            None
        }
        Some((item, at)) => match (item.as_str(), shell) {
            (Some(script), true) => Some(vec![script.to_string()]),
            (Some(_), false) => {
                p.report(
                    at,
                    format!(
                        "{}: `command` is one string, which runs only through a shell: write it as a list of arguments, or add `shell = true`",
                        f.context()
                    ),
                );
                None
            }
            (None, _) => f
                .strings("command", p)
                .map(|c| c.value)
                .filter(|c| !c.is_empty())
                .or_else(|| {
                    p.report(at, format!("{}: `command` is empty", f.context()));
                    None
                }),
        },
    };
    let timeout = f
        .duration("timeout", p)
        .map(|d| d.map_or(DEFAULT_TIMEOUT, |d| d.value));
    let severity = crate::verify::suite::read_severity(f, p);
    let env = match f.table("env", format!("{} env", f.context()), p) {
        None => Some(BTreeMap::new()),
        Some(mut t) => {
            let mut env = BTreeMap::new();
            for key in t.keys() {
                if let Some(value) = t.string_key(&key, p) {
                    env.insert(key, value.value);
                }
            }
            Some(env)
        }
    };
    let working_dir = f
        .string("working_dir", p)
        .map_or(base.to_path_buf(), |d| base.join(d.value));
    Some(SmokeTest {
        name: name?.value,
        command: command?,
        shell,
        timeout: timeout?,
        severity: severity?,
        env: env?,
        working_dir,
    })
}
