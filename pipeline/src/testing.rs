//! Detection as code: run a hunt over its sample events through the real pipeline and compare the result
//! rows with the expected ones.
//!
//! For a hunt `DIR/hunts/<id>.sql` the samples are `DIR/tests/<id>/events.jsonl` and the expected rows
//! `DIR/tests/<id>/expected.jsonl` (one JSON object per line, any order). Windows close at the end of the
//! sample, so every window holding rows is evaluated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, MemorySink};
use crate::decode::{DeadLetter, EventSchema};
use crate::hunt::{Hunt, HuntError};
use crate::pipeline::{self, Components, PipelineError};
use crate::settings::{FileSettings, Settings, SourceSettings};
use crate::source::{FileSource, SourceError};
use crate::telemetry::{Health, Metrics};

/// Why a hunt's test could not run (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The hunt's fault.
    #[error("the hunt does not plan: {0}")]
    Plan(#[from] HuntError),
    /// The sample files'.
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Expected {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the samples cannot be read: {0}")]
    Samples(#[from] SourceError),
    /// The pipeline's.
    #[error("the pipeline failed: {0}")]
    Pipeline(#[from] PipelineError),
    /// The hunt's, at run time: its alerts for some rows were lost, whatever the rows compared.
    #[error("the hunt failed on the samples: {0}")]
    Evaluation(String),
}

/// The outcome of one hunt's test.
#[derive(Debug)]
pub struct HuntTest {
    pub hunt: String,
    /// Rows expected but not produced.
    pub missing: Vec<Value>,
    /// Rows produced but not expected.
    pub unexpected: Vec<Value>,
    /// Rows produced.
    pub produced: usize,
    /// Sample events that were dead letters (a broken sample).
    pub dead_letters: Vec<String>,
    /// The test could not run.
    pub error: Option<TestError>,
}

impl HuntTest {
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.dead_letters.is_empty()
    }
}

/// Where a hunt's samples live, if it has any.
pub fn test_dir(hunts_dir: &Path, id: &str) -> Option<PathBuf> {
    let dir = hunts_dir.parent()?.join("tests").join(id);
    dir.join("events.jsonl").is_file().then_some(dir)
}

/// The result rows of running `hunt` on the events of a JSON-lines file (alerts and dead letters).
pub async fn run_on_file(
    hunt: Hunt,
    events: &Path,
    schema: Arc<EventSchema>,
    settings: &Settings,
) -> Result<(Vec<Alert>, Vec<DeadLetter>), TestError> {
    let planned = crate::query::plan::plan(hunt, &schema).await?;
    // An incident rule's samples are rows of `alerts`.
    let schema = match planned.input {
        crate::query::plan::Input::Events => schema,
        crate::query::plan::Input::Alerts => Arc::new(EventSchema::alerts()),
    };
    let mut settings = settings.clone();
    let file = FileSettings {
        paths: vec![events.display().to_string()],
        follow: false,
        poll_interval: std::time::Duration::from_millis(100),
        max_open: 64,
    };
    settings.source = SourceSettings::File(file.clone());
    let source = FileSource::new(
        file,
        settings.decode.max_record_bytes,
        settings.window.max_lead,
    )?;
    let alerts = MemorySink::<Alert>::default();
    let dead = MemorySink::<DeadLetter>::default();
    let evaluators = crate::app::evaluators(&settings, &schema, vec![planned], None);
    let summary = pipeline::run(
        Components {
            settings,
            schema,
            evaluators,
            source: Box::new(source),
            alerts: Box::new(alerts.clone()),
            dead_letters: Box::new(dead.clone()),
            metrics: Metrics::new(),
            health: Health::default(),
            reloads: None,
            lake: None,
            incidents: None,
            stage: crate::pipeline::Stage::Events(None),
        },
        CancellationToken::new(),
    )
    .await?;
    if let Some((_, reason)) = summary.failures.into_iter().next() {
        return Err(TestError::Evaluation(reason));
    }
    Ok((alerts.take(), dead.take()))
}

/// The evidence row of an alert.
pub fn evidence(alert: &Alert) -> Value {
    let v: Value = serde_json::from_str(&alert.json).expect("alerts are valid JSON");
    v["evidences"][0]["data"].clone()
}

/// Runs one hunt's test.
pub async fn run_test(
    hunt: Hunt,
    dir: &Path,
    schema: Arc<EventSchema>,
    settings: &Settings,
) -> HuntTest {
    let id = hunt.id.clone();
    let mut result = HuntTest {
        hunt: id,
        missing: Vec::new(),
        unexpected: Vec::new(),
        produced: 0,
        dead_letters: Vec::new(),
        error: None,
    };
    let expected = match read_expected(&dir.join("expected.jsonl")) {
        Ok(e) => e,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    let (alerts, dead) = match run_on_file(hunt, &dir.join("events.jsonl"), schema, settings).await
    {
        Ok(x) => x,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    result.dead_letters = dead
        .iter()
        .map(|d| format!("events.jsonl:{}: {}", d.offset, d.detail))
        .collect();
    let produced: Vec<Value> = alerts.iter().map(evidence).collect();
    result.produced = produced.len();
    let (missing, unexpected) = multiset_difference(&expected, &produced);
    result.missing = missing;
    result.unexpected = unexpected;
    result
}

fn read_expected(path: &Path) -> Result<Vec<Value>, TestError> {
    let text = std::fs::read_to_string(path).map_err(|source| TestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, reason: String| TestError::Expected {
        path: path.to_path_buf(),
        line,
        reason,
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| match serde_json::from_str::<Value>(l) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(bad(i + 1, "expected a JSON object".into())),
            Err(e) => Err(bad(i + 1, e.to_string())),
        })
        .collect()
}

/// (expected but not produced, produced but not expected), counting duplicates.
pub fn multiset_difference(expected: &[Value], produced: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let mut counts: BTreeMap<String, (i64, Value)> = BTreeMap::new();
    let text = |v: &Value| crate::decode::json::canonical_text(v.clone());
    for v in expected {
        counts.entry(text(v)).or_insert((0, v.clone())).0 += 1;
    }
    for v in produced {
        counts.entry(text(v)).or_insert((0, v.clone())).0 -= 1;
    }
    let mut missing = Vec::new();
    let mut unexpected = Vec::new();
    for (n, v) in counts.into_values() {
        for _ in 0..n.max(0) {
            missing.push(v.clone());
        }
        for _ in 0..(-n).max(0) {
            unexpected.push(v.clone());
        }
    }
    (missing, unexpected)
}

/// What `ghosthunt test` did over hunt directories.
#[derive(Debug, Default)]
pub struct TestReport {
    pub tests: Vec<HuntTest>,
    /// Hunt files that could not be read or parsed.
    pub refused: Vec<crate::hunt::HuntError>,
    /// Hunts without samples.
    pub untested: Vec<String>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.tests.iter().filter(|t| t.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.tests.len() - self.passed() + self.refused.len()
    }

    /// At least one test ran and none failed.
    pub fn ok(&self) -> bool {
        self.failed() == 0 && self.passed() > 0
    }
}

/// Runs the test of every hunt in `dirs` that has samples (`DIR/../tests/<id>/`).
pub async fn run_dirs(
    dirs: &[PathBuf],
    schema: Arc<EventSchema>,
    settings: &Settings,
) -> Result<TestReport, crate::hunt::HuntError> {
    let mut report = TestReport::default();
    for dir in dirs {
        for path in crate::query::load::hunt_files(dir)? {
            let hunt = match crate::query::load::read_hunt(&path) {
                Ok(h) => h,
                Err(e) => {
                    report.refused.push(e);
                    continue;
                }
            };
            let Some(tests) = test_dir(dir, &hunt.id) else {
                report.untested.push(hunt.id.clone());
                continue;
            };
            report
                .tests
                .push(run_test(hunt, &tests, Arc::clone(&schema), settings).await);
        }
    }
    Ok(report)
}

impl std::fmt::Display for TestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.refused {
            writeln!(f, "FAIL {e}")?;
        }
        for t in &self.tests {
            if t.passed() {
                writeln!(f, "ok   {} ({} rows)", t.hunt, t.produced)?;
                continue;
            }
            writeln!(f, "FAIL {}", t.hunt)?;
            if let Some(e) = &t.error {
                writeln!(f, "     {e}")?;
            }
            for d in &t.dead_letters {
                writeln!(f, "     sample is a dead letter: {d}")?;
            }
            for row in &t.missing {
                writeln!(f, "   - expected, not produced: {row}")?;
            }
            for row in &t.unexpected {
                writeln!(f, "   + produced, not expected: {row}")?;
            }
        }
        if !self.untested.is_empty() {
            writeln!(f, "no samples for: {}", self.untested.join(", "))?;
        }
        write!(
            f,
            "hunt tests: {} passed, {} failed",
            self.passed(),
            self.failed()
        )
    }
}
