//! Running one smoke test: its own process group, a clean environment, its output kept
//! (bounded, secrets masked), stopped with SIGTERM then SIGKILL — with its children — when it
//! outlives its timeout or its drill is cancelled.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::SmokeTest;

/// The most output kept of one command: its last 64 KiB.
const KEPT_OUTPUT: usize = 64 * 1024;
/// How many of its last lines a failure's message quotes.
const QUOTED_LINES: usize = 10;

/// What a smoke test runs with.
#[derive(Debug, Clone, Default)]
pub struct RunSmoke {
    /// The environment: the restored data's description and `PATH`, nothing else.
    pub env: Vec<(String, String)>,
    /// Values masked wherever output or messages would show them.
    pub secrets: Vec<String>,
    /// How long a stopped command has between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// How a smoke test ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seconds: f64,
    pub exit_code: Option<i32>,
    /// Its output (stdout and stderr as they came), the last 64 KiB, secrets masked.
    pub output: String,
    /// Why it did not pass: a non-zero exit, a timeout, a command that did not start.
    pub problem: Option<String>,
}

/// Runs `test` to its end, its timeout, or until the future is dropped (then the command and
/// its children get SIGTERM, and SIGKILL after the grace period).
pub async fn run(test: &SmokeTest, with: &RunSmoke) -> Outcome {
    let started = Instant::now();
    let mut command = if test.shell {
        let mut c = Command::new("sh");
        c.arg("-c").arg(&test.command[0]);
        c
    } else {
        let program = &test.command[0];
        let mut c = if program.contains('/') {
            Command::new(test.working_dir.join(program))
        } else {
            Command::new(program)
        };
        c.args(&test.command[1..]);
        c
    };
    command
        .env_clear()
        .envs(with.env.iter().map(|(k, v)| (k, v)))
        .envs(&test.env)
        .current_dir(&test.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mask = |text: &str| mask(text, &with.secrets);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome {
                seconds: started.elapsed().as_secs_f64(),
                exit_code: None,
                output: String::new(),
                problem: Some(mask(&format!("`{}` could not start: {e}", test.display()))),
            };
        }
    };
    let group = Group {
        pgid: child.id().unwrap_or_default(),
        grace: with.grace,
        ended: false,
    };
    let tail = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        child.stdout.take().map(|out| collect(out, tail.clone())),
        child.stderr.take().map(|err| collect(err, tail.clone())),
    ];
    let waited = tokio::time::timeout(test.timeout, child.wait()).await;
    let (exit_code, problem) = match waited {
        Ok(Ok(status)) => {
            // Children it left running are no part of the test.
            group.kill("KILL");
            match status.code() {
                Some(0) => (Some(0), None),
                Some(code) => (
                    Some(code),
                    Some(format!("`{}` exited with status {code}", test.display())),
                ),
                None => (
                    None,
                    Some(format!("`{}` was ended by {status}", test.display())),
                ),
            }
        }
        Ok(Err(e)) => (
            None,
            Some(format!("waiting for `{}` failed: {e}", test.display())),
        ),
        Err(_) => {
            group.stop(&mut child).await;
            (
                None,
                Some(format!(
                    "`{}` did not finish within its timeout of {}; it and its children were stopped",
                    test.display(),
                    crate::primitives::duration::format_duration(test.timeout)
                )),
            )
        }
    };
    drop(group.defused());
    for reader in readers.into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    }
    let bytes = tail.lock().map(|t| t.clone()).unwrap_or_default();
    let output = mask(&String::from_utf8_lossy(&bytes));
    let problem = problem.map(|p| {
        let last: Vec<&str> = output.lines().rev().take(QUOTED_LINES).collect();
        let quoted: Vec<&str> = last.into_iter().rev().collect();
        let elapsed = started.elapsed().as_secs_f64();
        let mut message = format!("{} after {elapsed:.1}s", mask(&p));
        if !quoted.is_empty() {
            message.push_str(&format!("; its last lines: {}", quoted.join(" | ")));
        }
        message
    });
    Outcome {
        seconds: started.elapsed().as_secs_f64(),
        exit_code,
        output,
        problem,
    }
}

/// Reads a pipe to its end, keeping the last [`KEPT_OUTPUT`] bytes of all pipes in `tail`.
fn collect(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    tail: Arc<Mutex<Vec<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 8192];
        while let Ok(n) = pipe.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            if let Ok(mut tail) = tail.lock() {
                tail.extend_from_slice(&buffer[..n]);
                if tail.len() > KEPT_OUTPUT {
                    let cut = tail.len() - KEPT_OUTPUT;
                    tail.drain(..cut);
                }
            }
        }
    })
}

/// Every secret in `text` as `***`.
fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// A command's process group: signalled as a whole. Dropped before the command ended (its
/// drill was cancelled), it sends SIGTERM at once and SIGKILL after the grace period.
struct Group {
    pgid: u32,
    grace: Duration,
    ended: bool,
}

impl Group {
    /// Sends `signal` to every process of the group.
    fn kill(&self, signal: &str) {
        if self.pgid == 0 {
            return;
        }
        let _ = std::process::Command::new("kill")
            .args(["-s", signal, "--", &format!("-{}", self.pgid)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM, then SIGKILL if the command has not ended within the grace period.
    async fn stop(&self, child: &mut tokio::process::Child) {
        self.kill("TERM");
        if tokio::time::timeout(self.grace, child.wait())
            .await
            .is_err()
        {
            self.kill("KILL");
            let _ = child.wait().await;
        }
        self.kill("KILL");
    }

    fn defused(mut self) -> Self {
        self.ended = true;
        self
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.ended || self.pgid == 0 {
            return;
        }
        self.kill("TERM");
        let (pgid, grace) = (self.pgid, self.grace);
        std::thread::spawn(move || {
            std::thread::sleep(grace);
            Group {
                pgid,
                grace,
                ended: true,
            }
            .kill("KILL");
        });
    }
}
