//! Helpers shared by the integration tests: a scripted source, a pipeline with memory sinks, hunt files
//! in a temporary directory; the Kafka test broker (`kafka`) and the operators' stack files and tools
//! (`stack`); and what tests need from outside the repository, the corpus and installed programs
//! (`needs`: missing, the test is skipped and reported, or fails under `GHOSTHUNT_REQUIRE_ALL=1`).
#![allow(dead_code)]

pub mod kafka;
/// The library's own `test_needs` (its unit tests use it too).
#[path = "../../src/test_needs.rs"]
pub mod needs;
pub mod stack;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use ghosthunt::alert::{Alert, MemorySink};
use ghosthunt::decode::{DeadLetter, EventSchema};
use ghosthunt::pipeline::{self, Components, Summary};
use ghosthunt::query::{self, PlannedHunt};
use ghosthunt::settings::Settings;
use ghosthunt::source::{
    Acknowledge, Input, InputKind, Positions, RawRecord, RecordSender, Source, SourceError,
    SourceMessage,
};
use ghosthunt::telemetry::{Health, Metrics};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One step of a scripted source.
pub enum Step {
    /// Send these lines on this input (as one chunk).
    Lines(&'static str, Vec<String>),
    /// Wait (wall clock).
    Sleep(Duration),
}

/// A source that plays a script and records what was acknowledged.
pub struct ScriptedSource {
    pub steps: Vec<Step>,
    pub acknowledged: Arc<Mutex<Vec<(String, u64)>>>,
    /// Keep the source open (idle) after the script until shutdown.
    pub linger: bool,
}

struct Recorder(Arc<Mutex<Vec<(String, u64)>>>);

impl Acknowledge for Recorder {
    fn acknowledge(&self, positions: &Positions) {
        let mut acks = self.0.lock().unwrap();
        for (input, offset) in &positions.0 {
            acks.push((input.name.clone(), *offset));
        }
    }
}

impl Source for ScriptedSource {
    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move {
            let mut inputs: Vec<Arc<Input>> = Vec::new();
            let mut offsets: std::collections::HashMap<&'static str, u64> = Default::default();
            for step in self.steps {
                match step {
                    Step::Sleep(d) => tokio::time::sleep(d).await,
                    Step::Lines(name, lines) => {
                        let input = match inputs.iter().find(|i| i.name == name) {
                            Some(i) => Arc::clone(i),
                            None => {
                                let i = Input::new(name, InputKind::Stdin);
                                inputs.push(Arc::clone(&i));
                                i
                            }
                        };
                        let chunk = lines
                            .into_iter()
                            .map(|l| {
                                let offset = offsets.entry(name).or_insert(0);
                                *offset += 1;
                                RawRecord {
                                    input: Arc::clone(&input),
                                    offset: *offset,
                                    bytes: l.into_bytes().into(),
                                    received: Instant::now(),
                                    source_timestamp: None,
                                }
                            })
                            .collect();
                        if tx.send(SourceMessage::Records(chunk)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            if self.linger {
                shutdown.cancelled().await;
            }
            Ok(())
        })
    }

    fn acknowledger(&self) -> Arc<dyn Acknowledge> {
        Arc::new(Recorder(Arc::clone(&self.acknowledged)))
    }
}

/// Settings for tests: defaults with short timers.
pub fn test_settings() -> Settings {
    let mut s = Settings::load(None, Vec::new()).expect("defaults load");
    s.decode.batch_timeout = Duration::from_millis(20);
    s.window.idle_timeout = Duration::from_secs(30);
    s.window.allowed_lateness = Duration::ZERO;
    s.metrics_listen = None;
    // Incidents (the built-in rules run) are written, but neither into the test output nor into a file
    // left behind; tests that read incidents set a file of their own.
    s.incidents.output = ghosthunt::settings::OutputSettings::File("/dev/null".into());
    s
}

/// Writes hunt files into a temporary directory and plans them.
pub async fn plan_hunts(files: &[(&str, &str)]) -> Vec<PlannedHunt> {
    let dir = tempfile::tempdir().unwrap();
    for (id, text) in files {
        std::fs::write(dir.path().join(format!("{id}.sql")), text).unwrap();
    }
    let loaded = query::load::load(false, &[dir.path().to_path_buf()]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let (planned, errors) =
        query::plan_all(loaded.hunts.into_values(), &EventSchema::windows()).await;
    assert!(errors.is_empty(), "{errors:?}");
    planned
}

/// A hunt file with minimal metadata.
pub fn hunt(id: &str, window: &str, extra: &str, sql: &str) -> String {
    format!(
        "/*\nid: {id}\ntitle: Test hunt {id}\nhypothesis: Tests need hunts.\nseverity: high\nwindow: {window}\n{extra}response:\n  - Look.\n*/\n{sql}\n"
    )
}

/// What a run produced.
pub struct Run {
    pub summary: Summary,
    pub alerts: Vec<Alert>,
    pub dead_letters: Vec<DeadLetter>,
    pub metrics: Metrics,
    pub acknowledged: Vec<(String, u64)>,
}

impl Run {
    /// Evidence rows of the alerts.
    pub fn rows(&self) -> Vec<Value> {
        self.alerts
            .iter()
            .map(ghosthunt::testing::evidence)
            .collect()
    }
}

/// Logs of the pipeline in the test's captured output (shown when a test fails).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Runs the pipeline on a source with memory sinks.
pub async fn run_pipeline(
    settings: Settings,
    hunts: Vec<PlannedHunt>,
    source: Box<dyn Source>,
    shutdown: CancellationToken,
) -> Run {
    run_pipeline_with(settings, hunts, None, source, shutdown).await
}

/// Runs the pipeline with the Sigma rules of `settings.sigma` (and no SQL hunt) over a scripted source.
pub async fn run_sigma_script(settings: Settings, steps: Vec<Step>) -> Run {
    let setup = ghosthunt::app::sigma(&settings, Arc::new(EventSchema::windows()))
        .expect("the Sigma rules load");
    assert!(setup.refusals.is_empty(), "{:?}", setup.refusals);
    let source = ScriptedSource {
        steps,
        acknowledged: Arc::new(Mutex::new(Vec::new())),
        linger: false,
    };
    run_pipeline_with(
        settings,
        Vec::new(),
        Some((setup.schema, setup.engine.expect("rules are configured"))),
        Box::new(source),
        CancellationToken::new(),
    )
    .await
}

/// Runs the pipeline with SQL hunts and optionally a Sigma rule set (with the schema it extended).
pub async fn run_pipeline_with(
    settings: Settings,
    hunts: Vec<PlannedHunt>,
    sigma: Option<(Arc<EventSchema>, ghosthunt::sigma::engine::SigmaEngine)>,
    source: Box<dyn Source>,
    shutdown: CancellationToken,
) -> Run {
    init_logs();
    let (schema, sigma) = match sigma {
        Some((schema, engine)) => (schema, Some(engine)),
        None => (Arc::new(EventSchema::windows()), None),
    };
    let evaluators = ghosthunt::app::evaluators(&settings, &schema, hunts, sigma);
    let alerts = MemorySink::<Alert>::default();
    let dead = MemorySink::<DeadLetter>::default();
    let metrics = Metrics::new();
    let summary = pipeline::run(
        Components {
            settings,
            schema,
            evaluators,
            source,
            alerts: Box::new(alerts.clone()),
            dead_letters: Box::new(dead.clone()),
            metrics: metrics.clone(),
            health: Health::default(),
            reloads: None,
            lake: None,
            incidents: None,
            stage: ghosthunt::pipeline::Stage::Events(None),
        },
        shutdown,
    )
    .await
    .expect("pipeline runs");
    Run {
        summary,
        alerts: alerts.take(),
        dead_letters: dead.take(),
        metrics,
        acknowledged: Vec::new(),
    }
}

/// A pipeline running in the background with memory sinks, for tests that look at it while it runs.
pub struct Running {
    pub alerts: MemorySink<Alert>,
    pub dead_letters: MemorySink<DeadLetter>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<Summary, pipeline::PipelineError>>,
}

impl Running {
    /// Waits (up to 10 s) until at least `n` alerts were acknowledged; returns how many there are.
    pub async fn wait_for_alerts(&self, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alerts.snapshot().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.alerts.snapshot().len()
    }

    /// Shuts the pipeline down and waits for it to drain.
    pub async fn stop(self) -> Summary {
        self.shutdown.cancel();
        self.task.await.unwrap().expect("pipeline drains")
    }
}

/// Starts the pipeline on a source in the background.
pub fn spawn_pipeline(
    settings: Settings,
    hunts: Vec<PlannedHunt>,
    source: Box<dyn Source>,
) -> Running {
    init_logs();
    let alerts = MemorySink::<Alert>::default();
    let dead_letters = MemorySink::<DeadLetter>::default();
    let shutdown = CancellationToken::new();
    let schema = Arc::new(EventSchema::windows());
    let evaluators = ghosthunt::app::evaluators(&settings, &schema, hunts, None);
    let task = tokio::spawn(pipeline::run(
        Components {
            settings,
            schema,
            evaluators,
            source,
            alerts: Box::new(alerts.clone()),
            dead_letters: Box::new(dead_letters.clone()),
            metrics: Metrics::new(),
            health: Health::default(),
            reloads: None,
            lake: None,
            incidents: None,
            stage: ghosthunt::pipeline::Stage::Events(None),
        },
        shutdown.clone(),
    ));
    Running {
        alerts,
        dead_letters,
        shutdown,
        task,
    }
}

/// Runs a script to its end.
pub async fn run_script(settings: Settings, hunts: Vec<PlannedHunt>, steps: Vec<Step>) -> Run {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let source = ScriptedSource {
        steps,
        acknowledged: Arc::clone(&acknowledged),
        linger: false,
    };
    let mut run = run_pipeline(settings, hunts, Box::new(source), CancellationToken::new()).await;
    run.acknowledged = acknowledged.lock().unwrap().clone();
    run
}

/// A flat Windows event at an RFC 3339 time with extra fields.
pub fn event(time: &str, event_id: u32, fields: &[(&str, &str)]) -> String {
    let mut v = serde_json::json!({ "@timestamp": time, "EventID": event_id, "Channel": "Security", "Hostname": "DC01" });
    for (k, val) in fields {
        v[*k] = Value::String(val.to_string());
    }
    v.to_string()
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A metric's value from Prometheus text format: `name{labels}` exactly as rendered, or a bare name.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// `n` generated events (the seeded generator, attack scenarios included), `rate` per second of event
/// time, as a JSON-lines file at `path`.
pub fn generated_events(path: &Path, n: u64, rate: u64) {
    let options = ghosthunt::cli::bench::BenchOptions {
        events: n,
        event_rate: rate,
        ..ghosthunt::cli::bench::BenchOptions::default()
    };
    let settings = Settings::load(None, Vec::new()).unwrap();
    ghosthunt::cli::bench::generate_file(&settings.generator, &options, path).unwrap();
}

/// Generated events (attack scenarios included, 25 per second of event time), in time order, as
/// `all.jsonl` in `dir`, and its lines.
pub fn generated_lines(dir: &Path, n: u64) -> (PathBuf, Vec<String>) {
    let path = dir.join("all.jsonl");
    generated_events(&path, n, 25);
    let lines = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (path, lines)
}

/// Runs the whole application (`ghosthunt run`) with `settings` to its end.
pub async fn run_app(settings: Settings) -> Summary {
    ghosthunt::app::run(
        settings,
        ghosthunt::app::Handles::default(),
        CancellationToken::new(),
    )
    .await
    .expect("the run finishes")
}

/// (alert id, hunt id) of every alert in a JSON-lines alerts file; none when it does not exist.
pub fn alert_and_hunt_ids(path: &Path) -> std::collections::BTreeSet<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let info = &v["finding_info"];
            (
                info["uid"].as_str().unwrap().to_string(),
                info["analytic"]["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A hunt directory under `dir` with one hunt, `per_minute`: every event counted per minute of event
/// time (any row dropped or late changes a count, so an alert id).
pub fn per_minute_hunt(dir: &Path) -> PathBuf {
    let hunts = dir.join("hunts");
    std::fs::create_dir(&hunts).unwrap();
    std::fs::write(
        hunts.join("per_minute.sql"),
        hunt(
            "per_minute",
            "tumbling 1m",
            "",
            "SELECT window_start, count(*) AS n FROM events GROUP BY window_start",
        ),
    )
    .unwrap();
    hunts
}

/// The alert ids (OCSF `finding_info.uid`) of a JSON-lines alerts file; none when it does not exist.
pub fn alert_ids_in(path: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["finding_info"]["uid"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The last progress line a retro-hunt (`ghosthunt hunt`) wrote to stderr (not a terminal: JSON lines).
pub fn last_progress(stderr: &[u8]) -> Value {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["progress"] == "retro-hunt")
        .unwrap_or_else(|| panic!("no progress line in\n{}", String::from_utf8_lossy(stderr)))
}

/// The rows of an ad-hoc query over the settings' lake (`ghosthunt query --format json`), all of its
/// time range.
pub async fn lake_rows(settings: &Settings, sql: &str) -> Vec<Value> {
    let mut out = Vec::new();
    ghosthunt::cli::lake::query(
        settings,
        sql,
        false,
        ghosthunt::lake::read::Range::default(),
        ghosthunt::cli::lake::Format::Json,
        &mut out,
    )
    .await
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Writes `minutes` of generated events (one every 250 ms of event time, no attack scenarios but one
/// campaign an hour) and returns the campaigns' hosts.
pub fn campaign_events(path: &Path, minutes: i64) -> Vec<String> {
    let mut generator =
        ghosthunt::generator::EventGenerator::new(ghosthunt::generator::GeneratorConfig {
            hosts: 20,
            users: 40,
            seed: 11,
            attack_interval: Duration::ZERO,
            campaign_interval: Duration::from_secs(3600),
        });
    let start: chrono::DateTime<chrono::Utc> = "2024-05-01T08:00:00Z".parse().unwrap();
    let mut out = Vec::new();
    let mut line = Vec::new();
    for i in 0..minutes * 240 {
        line.clear();
        generator.next_event(start + chrono::Duration::milliseconds(i * 250), &mut line);
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    std::fs::write(path, out).unwrap();
    generator.campaign_hosts()
}

/// An Incident Finding as a run's tests compare it: (incident id, activity id, its alert ids).
pub fn incident_digest(finding: &Value) -> (String, u64, Vec<String>) {
    (
        finding["metadata"]["correlation_uid"]
            .as_str()
            .unwrap()
            .to_string(),
        finding["activity_id"].as_u64().unwrap(),
        finding["finding_info_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["uid"].as_str().unwrap().to_string())
            .collect(),
    )
}

/// `ghosthunt hunt ARGS` with `env` over the defaults, alerts to `alerts` and dead letters beside it
/// (`.dead`); asserts that it succeeded.
pub fn run_hunt(args: &[&str], alerts: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ghosthunt"));
    cmd.arg("hunt")
        .args(args)
        .env_remove("RUST_LOG")
        .env("GHOSTHUNT__ALERTS__SINK", "file")
        .env("GHOSTHUNT__ALERTS__PATH", alerts)
        .env(
            "GHOSTHUNT__DEAD_LETTERS__PATH",
            alerts.with_extension("dead"),
        )
        .envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ghosthunt hunt --source files --file PATTERN` (see [`run_hunt`]).
pub fn hunt_files(pattern: &Path, alerts: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let pattern = pattern.to_str().expect("a UTF-8 path");
    run_hunt(&["--source", "files", "--file", pattern], alerts, env)
}

/// The alert ids of a JSON-lines alerts file without the window of the sentinel events stamped
/// 2026-06-01 (they close every window of the events before them; a live run closes theirs when it is
/// stopped, a file without them has none).
fn ids_before_the_sentinels(path: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("2026-06-01"))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["finding_info"]["uid"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Counts `events` (one file in time order) per minute with `hunt --source files`, then runs `ghosthunt
/// run` on a source that does not end (`source_env`), with windows that have room for 40,000 rows, until
/// it has given as many windows (or 150 s passed), stops it with SIGTERM, and asserts the same counts
/// (the sentinels' window left out). Returns the run's log (`ghosthunt::source::align` at debug).
/// `window.idle_timeout` is 2 s: an input held back longer than that must still hold the watermark
/// (not idle), or rows it sends once let go are late.
pub async fn assert_live_windows_count_as_the_file(
    dir: &Path,
    events: &Path,
    source_env: &[(&str, String)],
) -> String {
    let hunts = per_minute_hunt(dir).display().to_string();
    let env = [
        ("GHOSTHUNT__HUNTS__BUILTIN", "false"),
        ("GHOSTHUNT__HUNTS__DIRECTORIES", hunts.as_str()),
        ("GHOSTHUNT__WINDOW__ALLOWED_LATENESS", "0s"),
        ("GHOSTHUNT__WINDOW__MAX_ROWS_PER_HUNT", "40000"),
        ("GHOSTHUNT__DECODE__BATCH_SIZE", "1024"),
        ("GHOSTHUNT__WINDOW__IDLE_TIMEOUT", "2s"),
    ];
    let from_file = dir.join("file.jsonl");
    hunt_files(events, &from_file, &env);
    let expected = ids_before_the_sentinels(&from_file);
    assert!(expected.len() >= 60, "{} windows", expected.len());

    let live = dir.join("live.jsonl");
    let log = dir.join("live.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ghosthunt"))
        .arg("run")
        .env_remove("RUST_LOG")
        .env(
            "GHOSTHUNT__LOG__FILTER",
            "info,ghosthunt::source::align=debug",
        )
        .env("GHOSTHUNT__ALERTS__SINK", "file")
        .env("GHOSTHUNT__ALERTS__PATH", &live)
        .env("GHOSTHUNT__DEAD_LETTERS__PATH", dir.join("live.dead"))
        .env("GHOSTHUNT__METRICS__LISTEN", "")
        .envs(env)
        .envs(source_env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(150);
    while ids_before_the_sentinels(&live).len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    let got = ids_before_the_sentinels(&live);
    let notes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("paused or resumed") || l.contains("filling"))
        .take(40)
        .collect();
    assert_eq!(
        got,
        expected,
        "the windows' counts differ between the live run and the file ({} and {} windows): rows were dropped or late; log:\n{}",
        got.len(),
        expected.len(),
        notes.join("\n")
    );
    log
}
