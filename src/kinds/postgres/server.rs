//! The throwaway PostgreSQL a drill restores into: a cluster initialised in the run's folder,
//! listening on a Unix socket in that folder only (no TCP port), stopped before the folder is
//! kept or removed. Its binaries are a major version able to restore the dump: the job's
//! `postgres_bin`, or the newest `/usr/lib/postgresql/N/bin` on the machine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::storage::SERVER_DATA;

/// Where the drill's server keeps its files (data, socket, log), below the run folder.
pub(crate) const SERVER_FOLDER: &str = "postgres";
/// The superuser the throwaway cluster is initialised with.
pub(crate) const SUPERUSER: &str = "restore_drill";
/// Where server binaries are looked for, one folder per major version.
const INSTALLED: &str = "/usr/lib/postgresql";
/// The longest Unix socket path the kernel accepts (`sun_path` less its terminating zero).
const SOCKET_PATH_MAX: usize = 107;

/// A folder of PostgreSQL server and client binaries, and their major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub dir: PathBuf,
    pub major: u32,
}

impl Binaries {
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The binaries in `dir` (the job's `postgres_bin`), with the version `pg_ctl` reports.
    pub async fn at(dir: &Path) -> Result<Binaries, String> {
        let pg_ctl = dir.join("pg_ctl");
        let out = Command::new(&pg_ctl)
            .arg("--version")
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", pg_ctl.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // `pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`
        let major = text
            .split_once(')')
            .and_then(|(_, v)| super::archive::major_of(v))
            .ok_or_else(|| format!("{} --version said `{}`", pg_ctl.display(), text.trim()))?;
        Ok(Binaries {
            dir: dir.to_path_buf(),
            major,
        })
    }

    /// The newest installed binaries (`/usr/lib/postgresql/N/bin`) of major version `at_least`
    /// or newer: a server restores dumps of older servers, `pg_restore` reads archives of older
    /// `pg_dump`s.
    pub fn installed(at_least: u32) -> Result<Binaries, String> {
        let found = installed_majors(Path::new(INSTALLED));
        found
            .iter()
            .filter(|b| b.major >= at_least)
            .max_by_key(|b| b.major)
            .cloned()
            .ok_or_else(|| {
                let seen: Vec<String> = found.iter().map(|b| b.major.to_string()).collect();
                format!(
                    "the dump needs PostgreSQL {at_least} or newer to restore, and {INSTALLED} holds {}; install the server package of that version or name its bin folder with the job's `postgres_bin`",
                    if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
                )
            })
    }
}

fn installed_majors(root: &Path) -> Vec<Binaries> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let dir = e.path().join("bin");
            dir.join("pg_ctl")
                .is_file()
                .then_some(Binaries { dir, major })
        })
        .collect()
}

/// A PostgreSQL cluster running for one drill.
#[derive(Debug)]
pub struct Throwaway {
    pub binaries: Binaries,
    /// The run folder: the server keeps its data, socket and log in `<run>/postgres`.
    run: PathBuf,
    /// The operating-system user the server runs as when restore-drill runs as root (the
    /// server refuses to run as root).
    run_as: Option<String>,
    running: bool,
}

impl Throwaway {
    /// Initialises a cluster in `<run>/postgres/data` and starts it on a socket in
    /// `<run>/postgres/socket`. `run_as`: the user to run it as when this process is root.
    pub async fn start(binaries: Binaries, run: &Path, run_as: &str) -> Result<Throwaway, String> {
        let folder = run.join(SERVER_FOLDER);
        let socket = folder.join("socket");
        let socket_file = socket.join(".s.PGSQL.5432");
        if socket_file.as_os_str().len() > SOCKET_PATH_MAX {
            return Err(format!(
                "the server's socket {} would be longer than the {SOCKET_PATH_MAX} bytes a Unix socket path may have; choose a sandbox folder with a shorter path",
                socket_file.display()
            ));
        }
        let text = socket.to_string_lossy();
        if text.contains('\'') || text.contains('"') || text.contains('\\') {
            return Err(format!(
                "the sandbox path {} holds a quote or backslash, which the server's settings cannot carry; choose another sandbox folder",
                socket.display()
            ));
        }
        let run_as = is_root().then(|| run_as.to_string());
        std::fs::create_dir_all(&socket)
            .map_err(|e| format!("cannot create {}: {e}", socket.display()))?;
        if let Some(user) = &run_as {
            hand_over(&folder, user)?;
        }
        let mut server = Throwaway {
            binaries,
            run: run.to_path_buf(),
            run_as,
            running: false,
        };
        let data = server.data_dir();
        server
            .run_tool(
                "initdb",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-U".as_ref(),
                    SUPERUSER.as_ref(),
                    "--auth=trust".as_ref(),
                    "--encoding=UTF8".as_ref(),
                    "--locale=C".as_ref(),
                    "--no-sync".as_ref(),
                    "--no-instructions".as_ref(),
                ],
            )
            .await?;
        server.launch().await?;
        Ok(server)
    }

    /// Starts the initialised cluster (again, after [`Throwaway::stop`]).
    pub async fn launch(&mut self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=20",
            self.socket_dir().display()
        );
        let log = self.run.join(SERVER_FOLDER).join("server.log");
        let data = self.data_dir();
        self.running = true;
        self.run_tool(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "120".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
            ],
        )
        .await
        .map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}; the server's log says: {}", last_lines(&tail, 5))
        })
    }

    /// The folder of the server's socket: the `host` of a connection.
    pub fn socket_dir(&self) -> PathBuf {
        self.run.join(SERVER_FOLDER).join("socket")
    }

    /// A connection to `database` as the cluster's superuser.
    pub fn config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(self.socket_dir())
            .user(SUPERUSER)
            .dbname(database)
            .application_name("restore-drill");
        config
    }

    /// The same, as `libpq` arguments for the client tools.
    pub fn client_args(&self, database: &str) -> Vec<String> {
        let mut args = self.server_args();
        args.extend(["-d".into(), database.into()]);
        args
    }

    /// The server and its superuser as `libpq` arguments (no database).
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.socket_dir().to_string_lossy().into_owned(),
            "-U".into(),
            SUPERUSER.into(),
        ]
    }

    /// The server's data folder, where a sweep looks for a server left running.
    pub fn data_dir(&self) -> PathBuf {
        self.run.join(SERVER_DATA)
    }

    /// Stops the server (fast shutdown); its files stay until the run folder goes.
    pub async fn stop(&mut self) -> Result<(), String> {
        if !self.running {
            return Ok(());
        }
        let data = self.data_dir();
        let result = self
            .run_tool(
                "pg_ctl",
                &[
                    "stop".as_ref(),
                    "-w".as_ref(),
                    "-m".as_ref(),
                    "fast".as_ref(),
                    "-D".as_ref(),
                    data.as_os_str(),
                ],
            )
            .await;
        self.running = false;
        result
    }

    /// Runs a server tool (as `run_as` when this process is root), its output kept for errors.
    async fn run_tool(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let program = self.binaries.program(tool);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .env("LC_ALL", "C");
        let out = tokio::time::timeout(Duration::from_secs(300), command.output())
            .await
            .map_err(|_| format!("{} did not finish within 5 minutes", program.display()))?
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        Err(format!(
            "{tool} failed ({}): {}",
            out.status,
            last_lines(&said, 5)
        ))
    }
}

impl Drop for Throwaway {
    /// A drill cancelled mid-way (timeout, shutdown) drops the server: stop it at once rather
    /// than leave it running on a folder about to be removed.
    fn drop(&mut self) {
        if self.running {
            crate::storage::stop_server(&self.data_dir());
        }
    }
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Gives `folder` to `user`, who runs the server.
fn hand_over(folder: &Path, user: &str) -> Result<(), String> {
    let out = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(folder)
        .output()
        .map_err(|e| format!("cannot run chown: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "restore-drill runs as root and the server must not: giving {} to the user `{user}` failed: {}; set the job's `postgres_user` to an existing unprivileged user",
            folder.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The last `n` non-empty lines of a tool's output, joined.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_folder_is_inside_the_folder_handed_to_the_server_user() {
        assert!(Path::new(SERVER_DATA).starts_with(SERVER_FOLDER));
    }

    #[test]
    fn installed_binaries_are_found_by_major_version() {
        let root = tempfile::tempdir().unwrap();
        for major in ["13", "15", "notes"] {
            let bin = root.path().join(major).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("pg_ctl"), "").unwrap();
        }
        let mut found: Vec<u32> = installed_majors(root.path())
            .iter()
            .map(|b| b.major)
            .collect();
        found.sort();
        assert_eq!(found, vec![13, 15]);
    }
}
