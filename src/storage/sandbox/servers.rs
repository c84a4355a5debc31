//! Servers a drill started inside its run folder (a throwaway PostgreSQL), and databases it
//! created on an existing sandbox server: the folder is never removed under a running server,
//! nor without its database. Whoever removes a run folder — the drill, a cancelled drill, a
//! sweep after the process died — stops the server, or drops the database, first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Where a drill's server keeps its data, below the run folder.
pub(crate) const SERVER_DATA: &str = "postgres/data";
/// The record of a database a drill created on a sandbox server, below the run folder.
const SHARED_DATABASE: &str = "postgres/database.json";

/// A database a drill created on an existing server: enough to drop it without the drill.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SharedDatabase {
    /// The folder of the client binaries (`dropdb`).
    pub bin: PathBuf,
    /// `libpq` connection arguments of the server (host, port, user), without a password.
    pub server_args: Vec<String>,
    /// The database to connect to while dropping.
    pub maintenance: String,
    /// The environment variable holding the password, when the server needs one.
    pub password_env: Option<String>,
    /// The drill's database.
    pub database: String,
}

/// Records in the run folder `run` the database a drill is about to create, before it does.
pub fn record_shared_database(run: &Path, database: &SharedDatabase) -> Result<(), String> {
    let path = run.join(SHARED_DATABASE);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(database).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Drops the database recorded in the run folder `run`, if any (closing its connections), and
/// forgets it. A database that cannot be dropped is logged and kept on record: the folder's
/// next removal tries again.
pub fn drop_shared_database(run: &Path) -> Result<(), String> {
    let path = run.join(SHARED_DATABASE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let database: SharedDatabase = serde_json::from_str(&text)
        .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
    let mut command = std::process::Command::new(database.bin.join("dropdb"));
    command
        .args(["--if-exists", "--force"])
        .args(&database.server_args)
        .arg(format!("--maintenance-db={}", database.maintenance))
        .arg(&database.database)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::null());
    if let Some(var) = &database.password_env
        && let Ok(password) = std::env::var(var)
    {
        command.env("PGPASSWORD", password);
    }
    let out = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", database.bin.join("dropdb").display()))?;
    if !out.status.success() {
        return Err(format!(
            "dropping the drill's database {} failed: {}",
            database.database,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// Stops at once the server whose data folder is `data`, if one runs there: reads the process
/// id from its `postmaster.pid`, sends it SIGQUIT (immediate shutdown) and waits up to ten
/// seconds for it to go. A folder without a running server is left as it is.
pub fn stop_server(data: &Path) {
    let Ok(pid_file) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = pid_file
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return;
    };
    // The process must still be a server of this folder (a pid can be reused).
    let is_ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&*data.to_string_lossy()))
        .unwrap_or(false);
    if !is_ours {
        return;
    }
    let sent = std::process::Command::new("kill")
        .args(["-QUIT", &pid.to_string()])
        .output();
    if let Err(e) = sent {
        tracing::warn!(pid, error = %e, "could not stop the drill's server");
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the server of the run folder `folder`, if one runs there, and drops the database it
/// created on a sandbox server, if any. An error: the database is still there.
pub(super) fn release_run_server(folder: &Path) -> Result<(), String> {
    stop_server(&folder.join(SERVER_DATA));
    drop_shared_database(folder)
}
