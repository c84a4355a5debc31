//! `restore-drill serve` as a process: drills on a schedule, `/metrics` checked by promtool and
//! read for values, `/jobs`, run-now, SIGHUP with a broken configuration, SIGTERM mid-drill.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::helpers::{JOB, Lake, SUITE};

/// A running `serve`; killed when dropped.
pub(crate) struct Service {
    child: Child,
    pub(crate) address: SocketAddr,
    logs: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Service {
    pub(crate) fn start(config: &Path) -> Service {
        Service::start_with(config, &[])
    }

    /// The same with more environment variables.
    pub(crate) fn start_with(config: &Path, env: &[(&str, &str)]) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_restore-drill"))
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env("RESTORE_DRILL_STATE_DIR", crate::helpers::state_dir())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut service = Service {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs,
            seen: Vec::new(),
        };
        let line = service.wait_for_log("\"serving\"", Duration::from_secs(30));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        service.address = value["fields"]["listen"].as_str().unwrap().parse().unwrap();
        service
    }

    /// Waits for a log line containing `needle` (lines already seen count too).
    pub(crate) fn wait_for_log(&mut self, needle: &str, within: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle} within {within:?}; the log so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        http(self.address, "GET", path)
    }

    /// Polls `/jobs` until `ready` holds for it.
    pub(crate) fn wait_for_jobs(
        &self,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self.get("/jobs");
            let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
            if ready(&jobs) {
                return jobs;
            }
            assert!(Instant::now() < deadline, "jobs never got ready: {jobs:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Every log line read so far, and those waiting to be read.
    pub(crate) fn log(&mut self) -> String {
        while let Ok(line) = self.logs.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Waits for the process to exit; returns its exit code and the rest of its log.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.logs.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return (status.code(), self.seen.join("\n"));
            }
            assert!(Instant::now() < deadline, "serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 request (so the answer is not chunked); returns the status code and the body.
pub(crate) fn http(address: SocketAddr, method: &str, path: &str) -> (u16, String) {
    http_with(address, method, path, "")
}

/// The same with more header lines (each ending in `\r\n`).
fn http_with(address: SocketAddr, method: &str, path: &str, headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\n{headers}Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one sample in a Prometheus text exposition.
pub(crate) fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A config with three jobs on the same lake: `transactions` passes, `impossible` fails (its
/// suite wants more rows than there are), `unfound` errs (no snapshot matches its pattern).
/// `history` goes into the `[history]` table, after the journal (in the lake's `journal/`).
pub(crate) fn three_job_config(
    lake: &Lake,
    schedule: &str,
    server: &str,
    history: &str,
) -> PathBuf {
    let path = lake.config(SUITE, "26h");
    std::fs::write(
        lake.root.join("checks/impossible.toml"),
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1000000000\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let scheduled = text.replace(
        "objectives =",
        &format!("schedule = \"{schedule}\"\nobjectives ="),
    );
    let impossible = scheduled
        .replace(&format!("name = \"{JOB}\""), "name = \"impossible\"")
        .replace("checks/suite.toml", "checks/impossible.toml");
    let unfound = scheduled
        .replace(&format!("name = \"{JOB}\""), "name = \"unfound\"")
        .replace("transactions_{date}", "nothing_{date}");
    std::fs::write(
        &path,
        format!(
            "[server]\n{server}\n\n[history]\njournal = \"journal\"\n{history}\n\n{scheduled}\n{impossible}\n{unfound}"
        ),
    )
    .unwrap();
    path
}

pub(crate) fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    found.expect("promtool is not installed: scripts/test installs Debian's `prometheus` package, which has it")
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_drills_on_schedule_exports_metrics_promtool_accepts_and_survives_a_bad_reload() {
    let lake = Lake::new(2, 500).await;
    lake.snapshot(&chrono::Utc::now().format("%Y-%m-%d").to_string());
    let db = crate::history::Database::new().await;
    let config = three_job_config(
        &lake,
        "*/2 * * * * *",
        "listen = \"127.0.0.1:0\"",
        &format!("postgres = \"{}\"", db.url()),
    );
    let mut service = Service::start(&config);

    let (status, body) = service.get("/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(service.get("/readyz").0, 200);
    let jobs = service.wait_for_jobs(|jobs| {
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["last"]["outcome"].is_string())
    });
    let by_name = |name: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name(JOB)["last"]["outcome"], "passed");
    assert_eq!(by_name(JOB)["schedule"], "*/2 * * * * *");
    assert_eq!(by_name(JOB)["timezone"], "UTC");
    assert!(by_name(JOB)["next_run"].is_string());
    assert!(by_name(JOB)["last_success"].is_string());
    assert_eq!(by_name("impossible")["last"]["outcome"], "failed");
    assert_eq!(by_name("unfound")["last"]["outcome"], "error");
    assert!(
        by_name("unfound")["last"]["error"]
            .as_str()
            .unwrap()
            .contains("nothing_{date}"),
        "{:#}",
        by_name("unfound")
    );
    assert!(by_name("impossible")["last_success"].is_null());

    let (status, metrics) = service.get("/metrics");
    assert_eq!(status, 200);
    let file = lake.root.join("scrape.prom");
    std::fs::write(&file, &metrics).unwrap();
    let lint = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "promtool check metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let value = |series: &str| {
        sample(&metrics, series).unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert_eq!(
        value(&format!("restore_drill_last_run_success{{job=\"{JOB}\"}}")),
        1.0
    );
    assert_eq!(
        value("restore_drill_last_run_success{job=\"impossible\"}"),
        0.0
    );
    assert_eq!(
        value("restore_drill_check_success{check=\"rows\",job=\"impossible\"}"),
        0.0
    );
    assert_eq!(
        value(&format!(
            "restore_drill_check_success{{check=\"rows\",job=\"{JOB}\"}}"
        )),
        1.0
    );
    assert!(
        value(&format!(
            "restore_drill_runs_total{{job=\"{JOB}\",outcome=\"passed\"}}"
        )) >= 1.0
    );
    assert!(value("restore_drill_runs_total{job=\"impossible\",outcome=\"failed\"}") >= 1.0);
    assert!(value("restore_drill_runs_total{job=\"unfound\",outcome=\"error\"}") >= 1.0);
    assert_eq!(
        value("restore_drill_last_run_success{job=\"unfound\"}"),
        0.0
    );
    assert_eq!(
        value(&format!(
            "restore_drill_rpo_objective_seconds{{job=\"{JOB}\"}}"
        )),
        26.0 * 3600.0
    );
    assert_eq!(
        value(&format!("restore_drill_restored_rows{{job=\"{JOB}\"}}")),
        1000.0
    );
    assert_eq!(value("restore_drill_config_last_reload_successful"), 1.0);
    let now = chrono::Utc::now().timestamp() as f64;
    let last_success = value(&format!(
        "restore_drill_last_success_timestamp_seconds{{job=\"{JOB}\"}}"
    ));
    assert!((now - last_success).abs() < 60.0, "{last_success} vs {now}");

    // Drilling now over HTTP: accepted, or refused while the job is already being drilled.
    let (status, body) = http(service.address, "POST", &format!("/jobs/{JOB}/run"));
    assert!(status == 202 || status == 409, "{status} {body}");
    assert_eq!(http(service.address, "POST", "/jobs/nope/run").0, 404);
    assert_eq!(
        http(service.address, "GET", &format!("/jobs/{JOB}/run")).0,
        405
    );

    // A broken configuration on SIGHUP is refused; the service and its schedules go on.
    let runs_before = by_name(JOB)["runs"].as_u64().unwrap();
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("[server]", "[server]\nmax_concurrent_drills = \"two\""),
    )
    .unwrap();
    service.signal("HUP");
    let refused = service.wait_for_log("configuration is refused", Duration::from_secs(10));
    assert!(
        refused.contains("`max_concurrent_drills` must be"),
        "{refused}"
    );
    assert_eq!(service.get("/readyz").0, 200);
    service.wait_for_jobs(|jobs| {
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"] == JOB && j["runs"].as_u64().unwrap() > runs_before + 1)
    });
    let (_, metrics) = service.get("/metrics");
    assert_eq!(
        sample(&metrics, "restore_drill_config_last_reload_successful"),
        Some(0.0)
    );

    // A good one is applied: the other jobs are gone from /jobs.
    std::fs::write(
        &config,
        good.split("\n[[job]]")
            .take(2)
            .collect::<Vec<_>>()
            .join("\n[[job]]"),
    )
    .unwrap();
    service.signal("HUP");
    service.wait_for_log("configuration reloaded", Duration::from_secs(10));
    let jobs = service.wait_for_jobs(|jobs| jobs.as_array().unwrap().len() == 1);
    assert_eq!(jobs[0]["name"], JOB);

    service.signal("TERM");
    let (code, _) = service.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0));

    // Every drill is in the journal, chained, and — after the last sync at shutdown — in
    // PostgreSQL, once each.
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let client = db.client().await;
    for job in [JOB, "impossible", "unfound"] {
        let (records, check) = journal.read(job).unwrap();
        assert!(check.intact(), "{job}: {:?}", check.problems);
        assert!(records.len() >= 2, "{job}: {} records", records.len());
        let stored: Vec<String> = client
            .query(
                "SELECT run_id FROM restore_drill_runs WHERE job = $1 ORDER BY seq",
                &[&job],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let journaled: Vec<String> = records.iter().map(|s| s.record.run_id.clone()).collect();
        assert_eq!(stored, journaled, "{job}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_drill_cancels_it_removes_its_sandbox_and_exits_zero() {
    let (lake, config) =
        crate::helpers::slow_drill(
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"0s\"\n\n[history]\njournal = \"journal\"",
    )
            .await;
    let mut service = Service::start(&config);
    let (status, body) = http(service.address, "POST", &format!("/jobs/{JOB}/run"));
    assert_eq!(status, 202, "{body}");
    let run_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run_folder = lake.sandbox().join(JOB).join(&run_id);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run_folder.exists() {
        assert!(
            Instant::now() < deadline,
            "the drill never created its sandbox"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    service.signal("TERM");
    let (code, log) = service.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{log}");
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let (records, _) = journal.read(JOB).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].record.report["outcome"], "aborted");
    assert_eq!(records[0].record.run_id, run_id);
    assert!(
        log.contains("\"outcome\":\"aborted\""),
        "the drill was not recorded as aborted:\n{log}"
    );
    lake.assert_no_run_left();
}

#[test]
fn serve_refuses_a_bad_configuration_and_a_taken_port_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let out = crate::helpers::cli(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = crate::helpers::stderr(&out);
    assert!(
        err.contains("bad.toml:2:10") && err.contains("`listen` must be an address"),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("suite.toml"),
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1\n",
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[job]]\nname = \"j\"\nsource = \"lake\"\nsnapshots = {{ kind = \"delta_copy\", location = \"backups\", pattern = \"t_{{date}}\" }}\nsandbox = \"sandbox\"\nsuite = \"suite.toml\"\nobjectives = {{ rpo = \"1d\", rto = \"1h\" }}\n"
        ),
    )
    .unwrap();
    let out = crate::helpers::cli(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = crate::helpers::stderr(&out);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

/// One HTTP/1.1 request over TLS, trusting `ca`; returns the status code, headers and body.
async fn https(
    address: SocketAddr,
    ca: &Path,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::IpAddress(address.ip().into());
    let mut stream = connector.connect(name, tcp).await.unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_over_tls_with_basic_auth_protects_metrics_jobs_and_run_now() {
    let lake = Lake::new(1, 100).await;
    lake.snapshot("2026-11-01");
    let dir = &lake.root;
    // A test CA and a server certificate for 127.0.0.1 signed by it.
    let made = Command::new("sh")
        .arg("-c")
        .arg(
            "set -e
             openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem
             openssl req -newkey rsa:2048 -nodes -subj /CN=restore-drill -keyout key.pem -out server.csr
             printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > server.ext
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out cert.pem",
        )
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    let config = lake.config(SUITE, "1000d");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:0\"\nweb_config = \"web.yml\"\n\n{text}"),
    )
    .unwrap();
    let service = Service::start(&config);
    let ca = dir.join("ca.pem");
    let good = "Basic cHJvbWV0aGV1czpzM2NyZXQ="; // prometheus:s3cret
    let wrong = "Basic cHJvbWV0aGV1czp3cm9uZw=="; // prometheus:wrong

    let (status, _) = https(service.address, &ca, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "probes need no credentials");
    let (status, response) = https(service.address, &ca, "GET", "/metrics", None).await;
    assert_eq!(status, 401);
    assert!(
        response.contains("www-authenticate: Basic realm=\"restore-drill\""),
        "{response}"
    );
    assert_eq!(
        https(service.address, &ca, "GET", "/metrics", Some(wrong))
            .await
            .0,
        401
    );
    assert_eq!(
        https(service.address, &ca, "GET", "/jobs", Some(wrong))
            .await
            .0,
        401
    );
    let (status, response) = https(service.address, &ca, "GET", "/metrics", Some(good)).await;
    assert_eq!(status, 200);
    assert!(response.contains("restore_drill_build_info"), "{response}");
    assert_eq!(
        https(
            service.address,
            &ca,
            "POST",
            &format!("/jobs/{JOB}/run"),
            None
        )
        .await
        .0,
        401
    );
    let (status, response) = https(
        service.address,
        &ca,
        "POST",
        &format!("/jobs/{JOB}/run"),
        Some(good),
    )
    .await;
    assert_eq!(status, 202, "{response}");

    // Plain HTTP on the TLS port gets no answer.
    let mut plain = TcpStream::connect(service.address).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = plain.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(!answer.contains("restore_drill_"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_network_listener_without_auth_the_pod_itself_triggers_reloads_and_health_checks() {
    let lake = Lake::new(1, 100).await;
    lake.snapshot(&chrono::Utc::now().format("%Y-%m-%d").to_string());
    let config = lake.config(SUITE, "1000d");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"0.0.0.0:0\"\n\n{text}"),
    )
    .unwrap();
    let service = Service::start(&config);
    // Requests from other hosts are refused (unit-tested in the server: no other host is
    // reachable here); from inside the pod, the commands an on-call engineer types work.
    let address = SocketAddr::from(([127, 0, 0, 1], service.address.port())).to_string();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--address", address.as_str()]);
        crate::helpers::cli(&all)
    };
    let out = cli(&["trigger", JOB]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::helpers::stderr(&out)
    );
    assert!(crate::helpers::stdout(&out).contains("run_id"));
    service.wait_for_jobs(|jobs| jobs[0]["last"]["outcome"] == "passed");
    let out = cli(&["trigger", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::helpers::stderr(&out).contains("404"),
        "{}",
        crate::helpers::stderr(&out)
    );
    let out = cli(&["reload"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::helpers::stderr(&out)
    );
    assert_eq!(cli(&["healthcheck"]).status.code(), Some(0));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let out = crate::helpers::cli(&["healthcheck", "--address", &closed_address]);
    assert_eq!(out.status.code(), Some(1));
}

/// One request that must be answered within `within`.
fn answered_within(address: SocketAddr, path: &str, within: Duration) -> u16 {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(within)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("{path} did not answer within {within:?}: {e}"));
    response[9..12].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ten_thousand_check_suite_drills_while_healthz_and_sigterm_answer() {
    let lake = Lake::new(1, 1_000).await;
    lake.snapshot("2026-11-01");
    let suite = crate::helpers::many_checks(10_000);
    let config = lake.config(&suite, "26h");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"0s\"\n\n[history]\njournal = \"journal\"\n\n{text}"),
    )
    .unwrap();
    let mut service = Service::start(&config);
    let (status, body) = http(service.address, "POST", &format!("/jobs/{JOB}/run"));
    assert_eq!(status, 202, "{body}");
    // While the drill plans and scans its 10,000 checks, the service answers at once.
    let mut answered_while_running = 0;
    let jobs = loop {
        let (_, body) = service.get("/jobs");
        let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
        if jobs[0]["running"].is_null() {
            break jobs;
        }
        assert_eq!(
            answered_within(service.address, "/healthz", Duration::from_secs(2)),
            200
        );
        answered_while_running += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        answered_while_running > 0,
        "the drill was over before /healthz was asked"
    );
    assert_eq!(jobs[0]["last"]["outcome"], "passed", "{jobs:#}");
    let journal = restore_drill::history::journal::Journal::new(lake.root.join("journal"));
    let (records, _) = journal.read(JOB).unwrap();
    let checks = records[0].record.report["checks"].as_array().unwrap();
    assert!(checks.len() > 10_000, "{}", checks.len());

    // A second drill, interrupted: SIGTERM is acted on while the drill is still planning.
    let (status, _) = http(service.address, "POST", &format!("/jobs/{JOB}/run"));
    assert_eq!(status, 202);
    service.wait_for_log("\"drill started\"", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    service.signal("TERM");
    service.wait_for_log("shutting down", Duration::from_secs(2));
    let (code, log) = service.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{log}");
}

/// `run --json` of the lake's job; returns the report.
fn run_once(config: &Path, expected_code: i32) -> serde_json::Value {
    let out = crate::helpers::cli(&["run", "--config", config.to_str().unwrap(), JOB, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(expected_code),
        "{}",
        crate::helpers::stderr(&out)
    );
    serde_json::from_str(&crate::helpers::stdout(&out)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_serve_reports_the_last_drill_from_the_journal_or_postgres() {
    let lake = Lake::new(1, 500).await;
    lake.snapshot(&chrono::Utc::now().format("%Y-%m-%d").to_string());
    let db = crate::history::Database::new().await;
    let config = lake.config(SUITE, "26h");
    let job_text = std::fs::read_to_string(&config).unwrap();
    let with_journal = |journal: &str| {
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n\n[history]\njournal = \"{journal}\"\npostgres = \"{}\"\n\n{job_text}",
                db.url()
            ),
        )
        .unwrap();
    };
    with_journal("journal");
    // A passed drill, then a failed one (the suite now wants more rows than there are).
    let passed = run_once(&config, 0);
    std::fs::write(
        lake.root.join("checks/suite.toml"),
        "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = 1000000\n",
    )
    .unwrap();
    let failed = run_once(&config, 1);
    // Then a restore for real (forced: no drill passed this suite), the newest record: it is
    // no drill, so the last drill stays the failed one; it is counted as a restore.
    let restored = crate::helpers::cli(&[
        "restore",
        "--config",
        config.to_str().unwrap(),
        JOB,
        "--to",
        lake.root.join("restored").to_str().unwrap(),
        "--reason",
        "INC-9",
        "--force",
    ]);
    assert_eq!(
        restored.status.code(),
        Some(1),
        "{}",
        crate::helpers::stderr(&restored)
    );
    let kinds = db.kinds_and_outcomes().await;
    let pair = |kind: &str, outcome: &str| (kind.to_string(), outcome.to_string());
    assert_eq!(
        kinds,
        vec![
            pair("drill", "passed"),
            pair("drill", "failed"),
            pair("restore", "failed")
        ]
    );
    let last_success = chrono::DateTime::parse_from_rfc3339(passed["finished_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis() as f64
        / 1000.0;

    // From the journal, and on a new volume with an empty journal, from PostgreSQL.
    for journal in ["journal", "new-volume/journal"] {
        with_journal(journal);
        let service = Service::start(&config);
        let (_, metrics) = service.get("/metrics");
        let value = |series: &str| {
            sample(&metrics, series)
                .unwrap_or_else(|| panic!("{journal}: no {series} in\n{metrics}"))
        };
        assert_eq!(
            value(&format!(
                "restore_drill_last_run_outcome{{job=\"{JOB}\",outcome=\"failed\"}}"
            )),
            1.0
        );
        assert_eq!(
            value(&format!("restore_drill_last_run_success{{job=\"{JOB}\"}}")),
            0.0
        );
        assert_eq!(
            value(&format!(
                "restore_drill_last_success_timestamp_seconds{{job=\"{JOB}\"}}"
            )),
            last_success
        );
        assert_eq!(
            value(&format!("restore_drill_rpo_seconds{{job=\"{JOB}\"}}")),
            failed["rpo_seconds"].as_f64().unwrap()
        );
        assert_eq!(
            value(&format!("restore_drill_rto_seconds{{job=\"{JOB}\"}}")),
            failed["rto_seconds"].as_f64().unwrap()
        );
        assert_eq!(
            value(&format!(
                "restore_drill_check_success{{check=\"rows\",job=\"{JOB}\"}}"
            )),
            0.0
        );
        assert!(
            value(&format!(
                "restore_drill_snapshot_timestamp_seconds{{job=\"{JOB}\"}}"
            )) > 0.0
        );
        assert_eq!(
            value(&format!(
                "restore_drill_job_info{{job=\"{JOB}\",kind=\"delta_copy\",owner=\"\"}}"
            )),
            1.0
        );
        // Restores are counted from the journal, which a new volume does not have: there the
        // job has no restore series yet.
        let restores = (journal == "journal").then_some(1.0);
        assert_eq!(
            sample(
                &metrics,
                &format!("restore_drill_restores_total{{job=\"{JOB}\",outcome=\"failed\"}}")
            ),
            restores
        );
        let (_, jobs) = service.get(&format!("/jobs/{JOB}"));
        let status: serde_json::Value = serde_json::from_str(&jobs).unwrap();
        assert_eq!(status["last"]["outcome"], "failed", "{journal}: {status:#}");
        assert_eq!(status["last"]["run_id"], failed["run_id"]);
        // The job's runbook, from the same history: the failed drill warned of, the passed
        // one's snapshot verified.
        let (code, runbook) = service.get(&format!("/jobs/{JOB}/runbook"));
        assert_eq!(code, 200, "{runbook}");
        assert!(
            runbook.contains("**Warning:** The last drill"),
            "{journal}: {runbook}"
        );
        assert!(
            runbook.contains(passed["run_id"].as_str().unwrap()),
            "{journal}: {runbook}"
        );
        assert_eq!(service.get("/jobs/nobody/runbook").0, 404);
        let (code, page) = http_with(
            service.address,
            "GET",
            &format!("/jobs/{JOB}/runbook"),
            "Accept: text/html,application/xhtml+xml\r\n",
        );
        assert_eq!(code, 200);
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_removed_by_a_reload_over_http_takes_its_series_with_it() {
    let lake = Lake::new(1, 500).await;
    lake.snapshot(&chrono::Utc::now().format("%Y-%m-%d").to_string());
    let config = three_job_config(&lake, "*/2 * * * * *", "listen = \"127.0.0.1:0\"", "");
    let service = Service::start(&config);
    service.wait_for_jobs(|jobs| {
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["last"]["outcome"].is_string())
    });
    let (_, before) = service.get("/metrics");
    assert!(before.contains("job=\"impossible\""), "{before}");
    // The same configuration without the job `impossible`.
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("name = \"impossible\"").unwrap();
    let job_start = text[..start].rfind("[[job]]").unwrap();
    let job_end = text[start..]
        .find("[[job]]")
        .map_or(text.len(), |i| start + i);
    let without = format!("{}{}", &text[..job_start], &text[job_end..]);
    // Reloaded over HTTP, as config-reloader sidecars do: a broken file is refused with its
    // problems, a good one applied.
    std::fs::write(
        &config,
        without.replace("[server]", "[server]\nmax_concurrent_drills = 0"),
    )
    .unwrap();
    let (status, body) = http(service.address, "POST", "/-/reload");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("max_concurrent_drills"), "{body}");
    assert_eq!(http(service.address, "GET", "/-/reload").0, 405);
    std::fs::write(&config, without).unwrap();
    let (status, body) = http(service.address, "POST", "/-/reload");
    assert_eq!((status, body.as_str()), (200, "configuration reloaded\n"));
    // A drill of the job still running when the reload came ends first.
    service.wait_for_jobs(|jobs| jobs.as_array().unwrap().len() == 2);
    std::thread::sleep(Duration::from_secs(3));
    let (_, after) = service.get("/metrics");
    assert!(!after.contains("job=\"impossible\""), "{after}");
    assert!(after.contains(&format!("restore_drill_last_run_success{{job=\"{JOB}\"}}")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_that_disagrees_with_postgres_shows_in_the_divergence_metric() {
    let lake = Lake::new(1, 100).await;
    lake.snapshot(&chrono::Utc::now().format("%Y-%m-%d").to_string());
    let db = crate::history::Database::new().await;
    let config = lake.config(SUITE, "1000d");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[history]\njournal = \"journal\"\npostgres = \"{}\"\n\n{text}",
            db.url()
        ),
    )
    .unwrap();
    let file = lake.root.join(format!("journal/{JOB}.jsonl"));
    run_once(&config, 0);
    let after_first = std::fs::read(&file).unwrap();
    run_once(&config, 0);
    // The journal rolled back by one record, then a drill: its sequence number is used twice.
    std::fs::write(&file, after_first).unwrap();
    run_once(&config, 0);
    let service = Service::start(&config);
    let series = format!("restore_drill_history_divergence{{job=\"{JOB}\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = service.get("/metrics");
        if sample(&metrics, &series) == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no {series} 1 in\n{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
