//! What `deploy/` ships, checked by real tools: promtool on the alert rules, a real Prometheus
//! scraping a real `restore-drill serve` and evaluating every expression of the rules and the
//! dashboard, and the structure of the compose stack and the Kubernetes manifests.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{JOB, Lake};
use crate::serve::{Service, http, promtool};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The alerting rules of alerts.yml.
fn prometheus_rules() -> Vec<serde_yaml::Value> {
    let doc = yaml(&repo().join("deploy/prometheus/alerts.yml"));
    doc["groups"][0]["rules"].as_sequence().unwrap().clone()
}

fn dashboard() -> Value {
    let path = repo().join("deploy/grafana/dashboards/restore-drill.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every PromQL expression of the dashboard, with the job variable meaning all jobs.
fn dashboard_expressions() -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard()["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push(target["expr"].as_str().unwrap().replace("$job", ".*"));
        }
    }
    out
}

#[test]
fn status_panels_say_unknown_when_restore_drill_does_not_report() {
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().unwrap();
    let titled = |title: &str| {
        panels
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title}"))
    };
    for title in [
        "Last drill per job",
        "Time since last verified restore",
        "restore-drill",
        "Configuration",
    ] {
        let panel = titled(title);
        // The value now, not the last one of the time range: none while nothing reports.
        assert_eq!(panel["targets"][0]["instant"], true, "{title}");
        assert_eq!(
            panel["options"]["reduceOptions"]["calcs"][0], "last",
            "{title}"
        );
        assert!(
            panel["fieldConfig"]["defaults"]["noValue"].is_string(),
            "{title}"
        );
    }
    assert!(
        titled("Jobs that never passed")["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .contains(
                "unless on (job) max by (job) (restore_drill_last_success_timestamp_seconds)"
            )
    );
    assert!(titled("Build")["targets"][0]["expr"] == "restore_drill_build_info");
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    let dir = repo().join("deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new(promtool())
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert is unit-tested.
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for rule in prometheus_rules() {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "{name} has no test"
        );
        assert!(
            rule["labels"]["severity"].is_string(),
            "{name} has no severity"
        );
    }
}

#[test]
fn every_runbook_url_resolves_to_a_runbook_in_the_repository() {
    let mut urls = BTreeSet::new();
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/kubernetes/prometheusrule.yaml",
        "deploy/grafana/provisioning/alerting/restore-drill.yml",
    ] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let found: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("runbook_url: "))
            .collect();
        assert_eq!(found.len(), prometheus_rules().len(), "{file}");
        urls.extend(found.into_iter().map(String::from));
    }
    for url in urls {
        let (_, path) = url
            .split_once("/blob/main/")
            .unwrap_or_else(|| panic!("{url} does not point into the repository"));
        let file = repo().join(path);
        assert!(file.is_file(), "{url}: {} does not exist", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        for section in [
            "## Overview",
            "## Prerequisites",
            "## Steps",
            "## Post-incident",
        ] {
            assert!(text.contains(section), "{}: no {section}", file.display());
        }
    }
}

#[test]
fn operator_and_grafana_rules_equal_the_prometheus_rules() {
    let rules = prometheus_rules();
    let operator = yaml(&repo().join("deploy/kubernetes/prometheusrule.yaml"));
    assert_eq!(
        operator["spec"]["groups"][0]["rules"]
            .as_sequence()
            .unwrap(),
        &rules
    );
    let grafana = yaml(&repo().join("deploy/grafana/provisioning/alerting/restore-drill.yml"));
    let grafana_rules = grafana["groups"][0]["rules"].as_sequence().unwrap();
    assert_eq!(grafana_rules.len(), rules.len());
    for (g, p) in grafana_rules.iter().zip(&rules) {
        assert_eq!(g["title"], p["alert"]);
        assert_eq!(g["data"][0]["model"]["expr"], p["expr"], "{:?}", p["alert"]);
        assert_eq!(g["data"][0]["datasourceUid"], "prometheus");
        assert_eq!(g["labels"], p["labels"]);
        let for_ = p.get("for").cloned().unwrap_or_else(|| "0m".into());
        assert_eq!(g["for"], for_, "{:?}", p["alert"]);
        assert_eq!(
            g["annotations"]["runbook_url"],
            p["annotations"]["runbook_url"]
        );
    }
    let datasources = yaml(&repo().join("deploy/grafana/provisioning/datasources/prometheus.yml"));
    assert_eq!(datasources["datasources"][0]["uid"], "prometheus");
}

#[test]
fn compose_stack_and_kubernetes_manifests_parse_and_reference_only_files_that_exist() {
    let compose_dir = repo().join("deploy/compose");
    let compose = yaml(&compose_dir.join("docker-compose.yml"));
    let services = compose["services"].as_mapping().unwrap();
    for name in [
        "minio",
        "postgres",
        "seeder",
        "seed-minio",
        "restore-drill",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(
            services.contains_key(serde_yaml::Value::from(name)),
            "no service {name}"
        );
    }
    let mut mounted = Vec::new();
    for (name, service) in services {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let spec = volume.as_str().unwrap();
            let source = spec.split(':').next().unwrap();
            if source.starts_with('.') {
                let path = compose_dir.join(source);
                assert!(
                    path.exists(),
                    "service {name:?} mounts {source}, which does not exist"
                );
                mounted.push(path);
            } else {
                assert!(
                    compose["volumes"]
                        .as_mapping()
                        .unwrap()
                        .contains_key(serde_yaml::Value::from(source)),
                    "service {name:?} uses an undeclared volume {source}"
                );
            }
        }
        if let Some(build) = service.get("build") {
            let context = compose_dir.join(build["context"].as_str().unwrap());
            assert!(
                context
                    .join(build["dockerfile"].as_str().unwrap())
                    .is_file()
            );
        }
    }
    // Every mounted configuration parses.
    for path in &mounted {
        if path.is_dir() {
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => {
                yaml(path);
            }
            Some("toml") => {}
            other => panic!("{}: unexpected mounted file kind {other:?}", path.display()),
        }
    }
    // restore-drill's configuration validates as the container sees it: the config at
    // /etc/restore-drill/restore-drill.toml with the repository's checks/ beside it.
    let etc = tempfile::tempdir().unwrap();
    std::fs::copy(
        compose_dir.join("restore-drill.toml"),
        etc.path().join("restore-drill.toml"),
    )
    .unwrap();
    restore_drill::demo::data::copy_folder(&repo().join("checks"), &etc.path().join("checks"))
        .unwrap();
    // With the environment the compose file gives the container.
    let environment = &services[serde_yaml::Value::from("restore-drill")]["environment"];
    let env = |name: &str| environment[name].as_str().map(String::from);
    let path = etc.path().join("restore-drill.toml");
    let config = restore_drill::config::parse(&path, &std::fs::read_to_string(&path).unwrap(), env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(config.jobs.iter().all(|j| j.schedule.is_some()));
    assert!(config.history.postgres.is_some());
    // Every S3 location reads MinIO with keys the container has.
    for job in &config.jobs {
        for location in [job.source.location().unwrap(), job.snapshots.location()] {
            let restore_drill::storage::Backend::S3(s3) = location.backend() else {
                panic!("the compose jobs read MinIO, not {location}");
            };
            let profile = s3.profile;
            assert_eq!(profile.endpoint.as_deref(), Some("http://minio:9000"));
            for var in [&profile.access_key_id_env, &profile.secret_access_key_env] {
                let var = var.as_deref().unwrap();
                assert!(env(var).is_some(), "the container lacks {var}");
            }
        }
    }
    // MinIO gets the seeder's table and snapshots where the job looks for them.
    let seed = services[serde_yaml::Value::from("seed-minio")]["command"][0]
        .as_str()
        .unwrap();
    assert!(
        seed.contains("local/lake") && seed.contains("local/backups"),
        "{seed}"
    );
    // The scrape config keeps restore-drill's job label and loads the shipped rules.
    let prometheus = yaml(&compose_dir.join("prometheus.yml"));
    assert_eq!(prometheus["scrape_configs"][0]["honor_labels"], true);
    assert_eq!(prometheus["scrape_configs"][0]["job_name"], "restore-drill");

    // `--scale restore-drill=2`: replicas that claim drills, a journal of each container's own,
    // no fixed name or host port two containers would fight over, every replica scraped.
    let service = &services[serde_yaml::Value::from("restore-drill")];
    assert!(service.get("container_name").is_none());
    for port in service["ports"].as_sequence().unwrap() {
        let host = port.as_str().unwrap().split(':').next().unwrap();
        assert!(
            host.contains('-'),
            "host port {host} cannot serve two replicas"
        );
    }
    assert_eq!(
        config.server.replicas,
        restore_drill::config::Replicas::Postgres
    );
    let journal_of = |hostname: &str| {
        restore_drill::config::parse(&path, &std::fs::read_to_string(&path).unwrap(), |name| {
            if name == "HOSTNAME" {
                Some(hostname.to_string())
            } else {
                env(name)
            }
        })
        .unwrap()
        .history
        .journal
    };
    assert_ne!(journal_of("4f2a9c1d"), journal_of("b7e3d0aa"));
    let discovery = &prometheus["scrape_configs"][0]["dns_sd_configs"][0];
    assert_eq!(discovery["names"][0], "restore-drill");
    assert_eq!(discovery["port"], 9841);

    // Kubernetes: every kustomization resource exists and parses; the ConfigMap's configuration
    // and suite validate together.
    let k8s = repo().join("deploy/kubernetes");
    let kustomization = yaml(&k8s.join("kustomization.yaml"));
    let mut kinds = BTreeSet::new();
    for resource in kustomization["resources"].as_sequence().unwrap() {
        let doc = yaml(&k8s.join(resource.as_str().unwrap()));
        kinds.insert(doc["kind"].as_str().unwrap().to_string());
        if doc["kind"] == "ConfigMap" {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("checks")).unwrap();
            for (key, value) in doc["data"].as_mapping().unwrap() {
                let key = key.as_str().unwrap();
                let target = if key == "restore-drill.toml" {
                    dir.path().join(key)
                } else {
                    dir.path().join("checks").join(key)
                };
                std::fs::write(target, value.as_str().unwrap()).unwrap();
            }
            // With the URL the Secret gives the pods.
            let path = dir.path().join("restore-drill.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            restore_drill::config::parse(&path, &text, |name| {
                (name == "RESTORE_DRILL_PG_URL").then(|| "postgres://rd@db:5432/rd".to_string())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    for kind in [
        "Namespace",
        "ConfigMap",
        "StatefulSet",
        "PodDisruptionBudget",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.contains(kind), "no {kind} in the kustomization");
    }
    kustomized_manifests_work_as_shipped(&k8s);

    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    for needed in [
        "USER 10001",
        "HEALTHCHECK",
        "CMD [\"restore-drill\", \"healthcheck\"",
        "CMD [\"serve\"",
        "VOLUME",
        // The dependencies build from the manifest alone, before the sources are copied.
        "COPY Cargo.toml Cargo.lock build.rs ./",
        // Mount points of named volumes exist with the service user's ownership.
        "install -d -o 10001 -g 10001",
    ] {
        assert!(dockerfile.contains(needed), "the Dockerfile lacks {needed}");
    }
    assert!(
        dockerfile
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .all(|l| !l.contains("curl")),
        "the image needs no curl"
    );
    let dependencies = dockerfile.find("COPY Cargo.toml").unwrap();
    assert!(dependencies < dockerfile.find("COPY . .").unwrap());
    // The dependency layer builds from the manifest alone: every target it declares needs a
    // stand-in file there, or cargo refuses the manifest.
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let stubs = dockerfile
        .lines()
        .find(|l| l.contains("for target in"))
        .unwrap()
        .to_string();
    let mut section = "";
    let mut targets = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|n| n.strip_suffix('"'))
            && section == "[[bench]]"
        {
            targets.push(format!("benches/{name}"));
        } else if let Some(path) = line
            .strip_prefix("path = \"")
            .and_then(|p| p.strip_suffix(".rs\""))
            && section == "[[test]]"
        {
            targets.push(path.to_string());
        }
    }
    assert!(
        targets.len() >= 2,
        "the manifest's targets were not read: {targets:?}"
    );
    for target in targets {
        assert!(
            stubs
                .split_whitespace()
                .any(|word| word.trim_end_matches(';') == target),
            "the Dockerfile's dependency layer has no stand-in for {target}.rs: {stubs}"
        );
    }
    // pg_dump jobs need PostgreSQL's server binaries in the image.
    assert!(
        dockerfile.contains("postgresql-15"),
        "the image lacks PostgreSQL's server binaries"
    );
    // Every folder a named volume of the compose file is mounted on exists in the image with
    // the service user's ownership, or belongs to another image.
    let owned = dockerfile
        .lines()
        .find(|l| l.contains("install -d -o 10001"))
        .unwrap()
        .to_string();
    for (name, service) in services {
        let own_image = service["image"].as_str() == Some("restore-drill:local");
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let spec = volume.as_str().unwrap();
            let mut parts = spec.split(':');
            let (source, target) = (parts.next().unwrap(), parts.next().unwrap());
            if own_image && !source.starts_with('.') {
                assert!(
                    owned.contains(target) || target == "/var/lib/restore-drill",
                    "service {name:?} mounts the volume {source} on {target}, which the image does not create for user 10001"
                );
            }
        }
    }
    // restore-drill gets longer to stop than its own shutdown grace.
    let stop = services[serde_yaml::Value::from("restore-drill")]["stop_grace_period"]
        .as_str()
        .expect("a stop_grace_period for restore-drill");
    let stop = restore_drill::primitives::duration::parse_duration(stop).unwrap();
    assert!(
        stop > config.server.shutdown_grace,
        "docker stops restore-drill after {stop:?}, before its shutdown grace of {:?}",
        config.server.shutdown_grace
    );
}

/// What `kubectl kustomize` renders, as the cluster would get it: the Prometheus Operator's
/// objects carry the label a default kube-prometheus-stack selects; the configuration is a
/// mounted folder (so edits arrive) whose restore-drill.toml validates with the PostgreSQL
/// Secret and is refused, saying why, without it; two replicas, spread, with a disruption
/// budget, each with its journal on a claim that outlives the pod, the sandbox on a volume
/// with a size limit; probes, security context and the shutdown grace fit the service.
fn kustomized_manifests_work_as_shipped(k8s: &Path) {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(k8s)
        .output()
        .expect("kubectl is on the machine (scripts/test installs it where missing)");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let of_kind = |kind: &str| -> &serde_yaml::Value {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in the kustomized manifests"))
    };
    for doc in &docs {
        assert_eq!(
            doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or("restore-drill"),
            "restore-drill"
        );
    }
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert_eq!(
            of_kind(kind)["metadata"]["labels"]["release"],
            "kube-prometheus-stack",
            "{kind} is not selected by a default kube-prometheus-stack"
        );
    }
    let monitor = of_kind("ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);
    let service = of_kind("Service");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor misses the Service"
        );
    }

    // Two replicas, each with its own journal, at most one of them disrupted at a time, spread
    // across nodes, each named by its pod.
    let replicas = of_kind("StatefulSet");
    assert_eq!(replicas["spec"]["replicas"], 2);
    let budget = of_kind("PodDisruptionBudget");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    let pods = &replicas["spec"]["template"]["metadata"]["labels"];
    for selector in [
        &budget["spec"]["selector"]["matchLabels"],
        &replicas["spec"]["selector"]["matchLabels"],
    ] {
        for (key, value) in selector.as_mapping().unwrap() {
            assert_eq!(&pods[key], value, "a selector misses the replicas' pods");
        }
    }
    let pod = &replicas["spec"]["template"]["spec"];
    let spread = pod["topologySpreadConstraints"].as_sequence().unwrap();
    assert!(
        spread
            .iter()
            .any(|c| c["topologyKey"] == "kubernetes.io/hostname"),
        "the replicas are not spread across nodes"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "restore-drill:0.1.0");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    assert!(
        mounts.iter().all(|m| m.get("subPath").is_none()),
        "a subPath mount never receives ConfigMap updates: {mounts:?}"
    );
    let volume = |name: &str| {
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    let mounted_at = |name: &str| {
        mounts
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("volume {name} is not mounted"))["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(mounted_at("config"), "/etc/restore-drill");
    assert!(
        replicas["spec"]["volumeClaimTemplates"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|t| t["metadata"]["name"] == "journal"),
        "the journal is not on a volume of each replica's own"
    );
    let env = container["env"].as_sequence().unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "RESTORE_DRILL_REPLICA"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"),
        "the replicas are not named by their pods"
    );
    assert!(volume("sandbox")["emptyDir"]["sizeLimit"].is_string());

    // The configuration as the pod sees it: the ConfigMap's items under /etc/restore-drill.
    let configmap = of_kind("ConfigMap");
    let etc = tempfile::tempdir().unwrap();
    for item in volume("config")["configMap"]["items"]
        .as_sequence()
        .unwrap()
    {
        let target = etc.path().join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(
            &target,
            configmap["data"][item["key"].as_str().unwrap()]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    }
    let path = etc.path().join("restore-drill.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Replicas need the database they claim drills in: without the Secret, the configuration
    // is refused and says why.
    let without = restore_drill::config::parse(&path, &text, |_| None)
        .expect_err("replicas without PostgreSQL")
        .to_string();
    assert!(without.contains("RESTORE_DRILL_PG_URL"), "{without}");
    let with = restore_drill::config::parse(&path, &text, |name| {
        (name == "RESTORE_DRILL_PG_URL").then(|| "postgres://rd:secret@db:5432/rd".to_string())
    })
    .unwrap_or_else(|e| panic!("with the PostgreSQL Secret: {e}"));
    assert!(with.history.postgres.is_some());
    assert_eq!(
        with.server.replicas,
        restore_drill::config::Replicas::Postgres
    );
    assert!(
        with.history.journal.starts_with(mounted_at("journal")),
        "the journal {} is not on its claim",
        with.history.journal.display()
    );
    for job in &with.jobs {
        let sandbox = job.sandbox.local_path().expect("a local sandbox");
        assert!(
            sandbox.starts_with(mounted_at("sandbox")),
            "{}",
            sandbox.display()
        );
    }
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > with.server.shutdown_grace.as_secs(),
        "Kubernetes kills the pod after {grace}s, before shutdown_grace ends"
    );
}

#[test]
fn the_compose_seeder_seeds_once_and_leaves_its_data_alone_after() {
    let compose = yaml(&repo().join("deploy/compose/docker-compose.yml"));
    let seeder = &compose["services"]["seeder"];
    assert_eq!(seeder["entrypoint"][0], "/bin/sh");
    let data = tempfile::tempdir().unwrap();
    let script = seeder["command"][0]
        .as_str()
        .unwrap()
        .replace("/data", data.path().to_str().unwrap())
        .replace("--rows 200000", "--rows 2000");
    let binary = Path::new(env!("CARGO_BIN_EXE_restore-drill"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let seed = || {
        let out = Command::new("/bin/sh")
            .args(["-c", &script])
            .env("PATH", &path)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    seed();
    let log = data
        .path()
        .join("demo/lake/financial_transactions/_delta_log");
    let commits = std::fs::read_dir(&log).unwrap().count();
    assert!(seed().contains("already seeded"));
    assert_eq!(
        std::fs::read_dir(&log).unwrap().count(),
        commits,
        "the second up appended"
    );
    // And what it seeded drills clean.
    let config = data.path().join("demo/config.toml");
    let out = crate::helpers::cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "financial_transactions",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::helpers::stderr(&out)
    );
}

/// A free port on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus server on loopback; killed when dropped.
struct Prometheus {
    child: Child,
    address: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        std::fs::copy(
            repo().join("deploy/prometheus/alerts.yml"),
            dir.join("alerts.yml"),
        )
        .unwrap();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\nscrape_configs:\n  - job_name: restore-drill\n    honor_labels: true\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus; scripts/test installs it)");
        let prometheus = Prometheus { child, address };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(address).is_err()
            || http(address, "GET", "/-/ready").0 != 200
        {
            assert!(Instant::now() < deadline, "Prometheus did not get ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// An instant query; panics unless Prometheus accepts it.
    fn query(&self, expr: &str) -> Vec<Value> {
        let encoded: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let (status, body) = http(
            self.address,
            "GET",
            &format!("/api/v1/query?query={encoded}"),
        );
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {body}"));
        assert_eq!(status, 200, "{expr}: {body}");
        assert_eq!(answer["status"], "success", "{expr}: {body}");
        answer["data"]["result"].as_array().unwrap().clone()
    }

    fn wait_until(&self, what: &str, ready: impl Fn(&Prometheus) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !ready(self) {
            assert!(Instant::now() < deadline, "Prometheus never saw {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn jobs_in(result: &[Value]) -> BTreeSet<String> {
    result
        .iter()
        .filter_map(|s| s["metric"]["job"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_evaluates_every_rule_and_dashboard_expression_against_a_real_serve() {
    let lake = Lake::new(2, 500).await;
    lake.snapshot(&chrono::Utc::now().format("%Y-%m-%d").to_string());
    // A replica ([server] replicas): the rules about replicas have data too.
    let db = crate::history::Database::new().await;
    let config = crate::serve::three_job_config(
        &lake,
        "*/2 * * * * *",
        "listen = \"127.0.0.1:0\"\nreplicas = \"postgres\"",
        &format!("postgres = \"{}\"", db.url()),
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "objectives =",
        "compare = { key = [\"transaction_id\"], sample_fraction = 0.5 }\nobjectives =",
    );
    std::fs::write(&config, text).unwrap();
    // A self-test of the passing job, recorded before the service starts: its metrics come
    // from the journal.
    let out = crate::helpers::cli(&[
        "selftest",
        "--config",
        config.to_str().unwrap(),
        JOB,
        "--seed",
        "3",
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}{}",
        crate::helpers::stdout(&out),
        crate::helpers::stderr(&out)
    );
    let service = Service::start(&config);
    let prometheus = Prometheus::start(&lake.root, service.address);

    let all_jobs: BTreeSet<String> = [JOB, "impossible", "unfound"].map(String::from).into();
    prometheus.wait_until("two scrapes of every job's drills", |p| {
        jobs_in(&p.query("count_over_time(restore_drill_last_run_success[1m]) >= 2")) == all_jobs
    });

    // Every metric the rules and the dashboard use has data for the jobs.
    let mut expressions: Vec<String> = prometheus_rules()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect();
    let dashboard = dashboard_expressions();
    expressions.extend(dashboard.iter().cloned());
    let metric = regex::Regex::new(r"\b(restore_drill_[a-z_]+|up)\b").unwrap();
    let mut names = BTreeSet::new();
    for e in &expressions {
        names.extend(metric.find_iter(e).map(|m| m.as_str().to_string()));
    }
    for name in &names {
        let result = prometheus.query(name);
        assert!(!result.is_empty(), "no data for {name}");
        if name.starts_with("restore_drill_") && !result[0]["metric"]["check"].is_string() {
            let per_job = jobs_in(&result);
            let expected: BTreeSet<String> = match name.as_str() {
                // Not measured for drills that erred before the restore, or never passed.
                "restore_drill_rpo_seconds"
                | "restore_drill_rto_seconds"
                | "restore_drill_restore_duration_seconds"
                | "restore_drill_verify_duration_seconds"
                | "restore_drill_phase_seconds"
                | "restore_drill_restored_bytes"
                | "restore_drill_restored_rows"
                | "restore_drill_snapshot_age_seconds" => {
                    [JOB, "impossible"].map(String::from).into()
                }
                "restore_drill_compare_mismatched_rows" => {
                    [JOB, "impossible"].map(String::from).into()
                }
                "restore_drill_last_success_timestamp_seconds"
                | "restore_drill_selftest_caught_ratio" => [JOB].map(String::from).into(),
                // The service's own series carry the scrape job's name.
                "restore_drill_start_time_seconds"
                | "restore_drill_config_last_reload_successful"
                | "restore_drill_coordination_up"
                | "restore_drill_build_info" => ["restore-drill".to_string()].into(),
                _ => all_jobs.clone(),
            };
            assert_eq!(per_job, expected, "jobs of {name}");
        }
    }
    // Every expression is valid PromQL; the dashboard's all return data.
    for e in &expressions {
        prometheus.query(e);
    }
    for e in &dashboard {
        assert!(
            !prometheus.query(e).is_empty(),
            "no data for the panel query {e}"
        );
    }

    // The failing job's alert is active; the passing job has none.
    prometheus.wait_until("RestoreDrillFailed for the failing job", |p| {
        jobs_in(&p.query("ALERTS{alertname=\"RestoreDrillFailed\"}"))
            == ["impossible".to_string()].into()
    });
    let active = prometheus.query("ALERTS");
    let alerts_of = |job: &str| -> BTreeSet<String> {
        active
            .iter()
            .filter(|a| a["metric"]["job"] == job)
            .map(|a| a["metric"]["alertname"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        alerts_of(JOB).is_empty(),
        "the passing job alerts: {:?}",
        alerts_of(JOB)
    );
    assert!(alerts_of("impossible").contains("RestoreDrillFailed"));
    assert!(alerts_of("unfound").contains("RestoreDrillErroring"));
    assert!(alerts_of("restore-drill").is_empty(), "restore-drill is up");
}
