//! The operators' stack for the tests: the external tools (Prometheus, promtool, docker-compose) it needs,
//! the stack's files as data (compose as docker-compose normalises it, the dashboard, the alert rules), the
//! metric selectors in a PromQL expression, and a Prometheus server and child processes that are killed on
//! drop.
//!
//! A missing tool skips the test that needs it, reported with the command that installs it (see
//! `common::needs`); under `GHOSTHUNT_REQUIRE_ALL=1` (CI) it fails the test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::needs;
use super::repo;

const INSTALL: &str = "install them with `apt-get install --no-install-recommends prometheus docker-compose` \
                       (Debian; `.ci/run` does, and exports GHOSTHUNT_PROMETHEUS)";

/// The Prometheus server: `GHOSTHUNT_PROMETHEUS` or `prometheus` on PATH; `None` when missing (skipped).
pub fn prometheus() -> Option<PathBuf> {
    needs::tool("GHOSTHUNT_PROMETHEUS", "prometheus", None, INSTALL)
}

/// promtool: `GHOSTHUNT_PROMTOOL`, beside the Prometheus server, or on PATH; `None` when missing.
pub fn promtool() -> Option<PathBuf> {
    let beside = needs::locate("GHOSTHUNT_PROMETHEUS", "prometheus", None)
        .ok()
        .map(|p| p.with_file_name("promtool"));
    needs::tool("GHOSTHUNT_PROMTOOL", "promtool", beside, INSTALL)
}

/// docker-compose (v1, which validates and prints a compose file without a Docker engine); `None` when
/// missing.
pub fn docker_compose() -> Option<PathBuf> {
    needs::tool("GHOSTHUNT_DOCKER_COMPOSE", "docker-compose", None, INSTALL)
}

/// Runs a command to its end: (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A YAML file of the repository as JSON values.
pub fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// `docker/compose.yaml` as `docker-compose config` prints it: validated against the compose schema,
/// anchors and interpolation resolved, relative paths made absolute. `None` when docker-compose is not
/// installed (the test is skipped).
pub fn compose() -> Option<Value> {
    let docker_compose = docker_compose()?;
    let file = repo().join("docker/compose.yaml");
    let (code, out, err) = run(Command::new(docker_compose)
        .arg("-f")
        .arg(&file)
        .arg("config"));
    assert_eq!(
        code,
        0,
        "docker-compose config refused {}:\n{err}",
        file.display()
    );
    let compose = serde_saphyr::from_str(&out)
        .unwrap_or_else(|e| panic!("docker-compose config output: {e}\n{out}"));
    Some(compose)
}

/// A service's environment as (name, value) strings.
pub fn environment(compose: &Value, service: &str) -> Vec<(String, String)> {
    let env = &compose["services"][service]["environment"];
    let map = env
        .as_object()
        .unwrap_or_else(|| panic!("service {service} has no environment map: {env}"));
    map.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// One value of a service's environment.
pub fn env_value(compose: &Value, service: &str, key: &str) -> Option<String> {
    environment(compose, service)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// A service's command as arguments.
pub fn command(compose: &Value, service: &str) -> Vec<String> {
    compose["services"][service]["command"]
        .as_array()
        .unwrap_or_else(|| panic!("service {service} has no command list"))
        .iter()
        .map(|a| a.as_str().expect("string argument").to_string())
        .collect()
}

/// The topics kafka-init creates: (topic, partitions), read from its `kafka-topics.sh --create` lines.
pub fn init_topics(compose: &Value) -> Vec<(String, i32)> {
    let script = command(compose, "kafka-init").join("\n");
    let mut topics = Vec::new();
    for line in script.lines().filter(|l| l.contains("kafka-topics.sh")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .and_then(|i| words.get(i + 1))
                .copied()
        };
        assert!(
            words.contains(&"--create"),
            "kafka-init line does not create: {line}"
        );
        let topic = after("--topic").unwrap_or_else(|| panic!("no --topic in: {line}"));
        let partitions = after("--partitions")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no --partitions N in: {line}"));
        topics.push((topic.to_string(), partitions));
    }
    topics
}

/// Every `expr` of the Grafana dashboard: (panel title, expression as written).
pub fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default().to_string();
            out.push((panel["title"].as_str().unwrap_or("?").to_string(), expr));
        }
    }
    out
}

/// Every alerting rule: (alert name, expression).
pub fn alert_rules(rules: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in rules["groups"].as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alerting rules only");
            out.push((
                name.to_string(),
                rule["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    out
}

/// A series selector in PromQL: the metric name and the selector as written (`name{…}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: String,
    pub text: String,
}

/// The selectors of metrics ghosthunt's scrape can hold (`ghosthunt_*`, `process_*`, `up`) in `expr`.
/// A small scanner, not a parser: it skips strings and comments, and takes an identifier as a metric when
/// it is not a function call; label names in `by (…)` never have those prefixes.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let call = j < b.len() && b[j] == b'(';
                let mut end = i;
                if j < b.len() && b[j] == b'{' {
                    end = skip_braces(b, j);
                }
                let ours =
                    word.starts_with("ghosthunt_") || word.starts_with("process_") || word == "up";
                if ours && !call {
                    let braces = if end > i { expr[j..end].trim() } else { "" };
                    out.push(Selector {
                        metric: word.to_string(),
                        text: format!("{word}{braces}"),
                    });
                }
                i = end.max(i);
            }
            b'{' => i = skip_braces(b, i),
            _ => i += 1,
        }
    }
    out
}

fn skip_string(b: &[u8], open: usize) -> usize {
    let quote = b[open];
    let mut i = open + 1;
    while i < b.len() && b[i] != quote {
        i += if b[i] == b'\\' && quote != b'`' { 2 } else { 1 };
    }
    i + 1
}

fn skip_braces(b: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    while i < b.len() && b[i] != b'}' {
        i = match b[i] {
            b'"' | b'\'' | b'`' => skip_string(b, i),
            _ => i + 1,
        };
    }
    i + 1
}

/// A child process killed on drop; its stdout and stderr go to a log file, printed when the test fails.
pub struct Proc {
    pub name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name,
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            eprintln!("--- {} log, last lines ---\n{tail}", self.name);
        }
    }
}

/// A Prometheus server on 127.0.0.1 with its own storage, for one test.
pub struct Prometheus {
    pub url: String,
    proc: Proc,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts `prometheus` (the server binary, see `prometheus()`) with `config` (YAML) and waits until it
    /// is ready.
    pub async fn start(prometheus: &Path, config: &str, dir: &Path, port: u16) -> Prometheus {
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut cmd = Command::new(prometheus);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        let mut prometheus = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            proc: Proc::spawn("prometheus", cmd, dir),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                prometheus.proc.alive(),
                "prometheus exited:\n{}",
                prometheus.proc.log()
            );
            let ready = prometheus
                .http
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s:\n{}",
                prometheus.proc.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET an API path with query parameters; the `data` of a successful answer, else the error.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .query(params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let text = response.text().await.map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => Err(format!("{}: {}", body["errorType"], body["error"])),
        }
    }

    /// An instant query: its samples as (labels, value). Errors are PromQL errors.
    pub async fn query(&self, expr: &str) -> Result<Vec<(Value, f64)>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await?;
        let sample = |v: &Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok());
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| Some((s["metric"].clone(), sample(&s["value"])?)))
                .collect()),
            Some("scalar") => Ok(sample(&data["result"])
                .map(|v| (Value::Null, v))
                .into_iter()
                .collect()),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}
