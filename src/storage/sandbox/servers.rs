//! Servers a drill started inside its run folder (a throwaway PostgreSQL): the folder is never
//! removed under a running server. Whoever removes a run folder — the drill, a cancelled drill,
//! a sweep after the process died — stops the server first.

use std::path::Path;
use std::time::{Duration, Instant};

/// Where a drill's server keeps its data, below the run folder.
pub(crate) const SERVER_DATA: &str = "postgres/data";

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

/// Stops the server of the run folder `folder`, if one runs there.
pub(super) fn stop_run_server(folder: &Path) {
    stop_server(&folder.join(SERVER_DATA));
}
