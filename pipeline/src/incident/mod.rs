//! From alerts to incidents: the alert stream as a table (`alerts`) that windowed hunts — incident rules —
//! select from, and their result rows as OCSF Incident Findings.
//!
//! Every alert the hunts raise (SQL, Sigma, KQL; not the updates of suppressed ones) becomes a row of
//! `alerts` (`EventSchema::alerts`: time, hunt, severity, risk, ATT&CK, entities, one line of evidence),
//! built by the same decoder that reads such rows from JSON lines, so an incident rule's test samples and
//! the live stream give the same rows. Incident rules are ordinary windowed hunts planned over that table
//! (`SqlEvaluator`), and stepped after the events' hunts on each batch.
//!
//! **Time.** An alert's time is its events' time — a windowed hunt's alert: its window's end; any other:
//! its event's time — never the wall clock. A windowed hunt's alert comes out when the watermark passes its
//! window's end plus the hunt's lateness; a Sigma correlation fires when the watermark minus the lateness
//! passes its time. The incident rules therefore run on the pipeline's watermark held back by the largest
//! lateness of the loaded hunts ([`delay`]): every such alert reaches them before the windows it belongs
//! to close, and a replay gives the same incidents. An alert of an *event* that itself came later than
//! that (an unwindowed hunt alerts on late events too) may find its incident windows closed: it is
//! counted (`ghosthunt_late_records_total{hunt=<rule>}`) and logged, as late events are; an incident
//! rule's own `allowed_lateness` widens what it still takes.
//!
//! **Incidents.** A rule's result row must name the alerts it groups (`alert_ids`, e.g.
//! `array_agg(alert_id)`) and its `entity:` column names what the incident is about. The [`book`] turns
//! rows into incidents with an id per (rule, entity, first window start) and sends an Update, same id,
//! when a later window adds alerts to an open one.
//!
//! **Limits.** Incident state is not kept across restarts, and it does not hold back source
//! acknowledgements: the alerts themselves are at least once, an incident open across a restart is
//! rebuilt from the alerts raised after it (its first window, hence its id, may then differ).

pub mod book;
pub mod finding;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::alert::Alert;
use crate::decode::json::format_time;
use crate::decode::{Decoder, EventSchema};
use crate::hunt::{Hunt, HuntError};
use crate::query::PlannedHunt;
use crate::query::plan::Input as Table;
use crate::runtime::{BatchView, Detection, Evaluator, Rows, StepInput, StepOutput};
use crate::settings::{IncidentSettings, Settings};
use crate::source::{Input, InputKind, RawRecord};
use crate::telemetry::Metrics;
use crate::window::Watermark;
use crate::window::state::nanos;

pub use book::Book;
pub use finding::{Activity, Phase, phase_of};

/// The column of an incident rule's result naming the alerts it groups.
pub const ALERT_IDS: &str = "alert_ids";

/// Why an incident rule cannot be used (besides not planning).
pub fn check_rule(planned: &PlannedHunt) -> Result<(), HuntError> {
    let hunt = &planned.hunt;
    let refuse = |reason: String| HuntError {
        origin: hunt.origin.to_string(),
        line: hunt.sql_line(),
        reason,
    };
    if planned.input != Table::Alerts {
        return Err(refuse(
            "an incident rule selects FROM alerts (this one reads the events: put it with the hunts)"
                .into(),
        ));
    }
    if hunt.window.size_slide().is_none() {
        return Err(refuse(
            "an incident rule is windowed (window: tumbling … or hopping …): its incidents are per window"
                .into(),
        ));
    }
    match planned.result_schema().field_with_name(ALERT_IDS) {
        Ok(f)
            if matches!(
                f.data_type(),
                datafusion::arrow::datatypes::DataType::List(_)
                    | datafusion::arrow::datatypes::DataType::LargeList(_)
            ) => {}
        _ => {
            return Err(refuse(format!(
                "an incident rule's result names the alerts it groups in a list column `{ALERT_IDS}` (e.g. array_agg(DISTINCT alert_id) AS {ALERT_IDS})"
            )));
        }
    }
    if hunt.entity.is_none() {
        return Err(refuse(
            "an incident rule names its entity column (entity: host, user …): incidents are per entity"
                .into(),
        ));
    }
    Ok(())
}

/// How far behind the events' watermark incident rules run: the largest lateness of `hunts` (at least the
/// pipeline's default, which hunts without their own and Sigma correlations use).
pub fn delay<'a>(hunts: impl IntoIterator<Item = &'a Arc<Hunt>>, lateness: Duration) -> Duration {
    hunts
        .into_iter()
        .filter_map(|h| h.allowed_lateness)
        .fold(lateness, Duration::max)
}

/// A windowed hunt's window size plus its lateness: its windows still to close start after the
/// watermark minus this.
fn span(hunt: &Hunt, lateness: Duration) -> Duration {
    hunt.window
        .size_slide()
        .map_or(Duration::ZERO, |(size, _)| {
            size + hunt.allowed_lateness.unwrap_or(lateness)
        })
}

/// One alert as a row of the `alerts` table (the JSON shape `EventSchema::alerts` reads).
pub fn alert_row(alert: &Alert, risk: u32) -> Value {
    let s = &alert.subject;
    let hunt = &alert.hunt;
    json!({
        "time": format_time(alert.event_time),
        "alert_id": alert.id,
        "hunt_id": hunt.id,
        "hunt_title": hunt.title,
        "severity": hunt.severity.as_str(),
        "severity_id": hunt.severity.ocsf_id(),
        "risk": risk,
        "tactics": hunt.attack.tactics,
        "techniques": hunt.attack.techniques,
        "entity_kind": s.entity.as_ref().map(|e| &e.0),
        "entity": s.entity.as_ref().map(|e| &e.1),
        "host": s.host,
        "user": s.user,
        "src_ip": s.src_ip,
        "summary": s.summary,
    })
}

/// What one step of the incident rules produced.
#[derive(Default)]
pub struct IncidentOutput {
    /// Incident Findings to deliver (creations and updates).
    pub findings: Vec<Alert>,
    /// What each rule's step did (its detections taken), for the per-hunt metrics and logs.
    pub steps: Vec<(String, StepOutput)>,
    /// Rules disabled by this step (they panicked), with why.
    pub disabled: Vec<(String, String)>,
}

/// A rule's evaluator, `None` once it panicked.
struct Rule {
    hunt: Arc<Hunt>,
    evaluator: Option<Box<dyn Evaluator>>,
    /// Late alerts were logged for it already.
    warned_late: bool,
}

/// The incident rules, their input (the alerts) and the open incidents.
pub struct IncidentStage {
    rules: Vec<Rule>,
    decoder: Decoder,
    input: Arc<Input>,
    offset: u64,
    seq: u64,
    delay: i64,
    /// The longest rule window plus its lateness: how long an alert may still be named.
    horizon: i64,
    lateness: Duration,
    settings: IncidentSettings,
    book: Book,
    metrics: Metrics,
}

impl IncidentStage {
    /// A stage running `rules` (planned over `alerts` and checked by [`check_rule`]) over the alerts of
    /// `hunts`.
    pub fn new(
        rules: Vec<PlannedHunt>,
        hunts: &[Arc<Hunt>],
        settings: &Settings,
        metrics: &Metrics,
    ) -> IncidentStage {
        let schema = Arc::new(EventSchema::alerts());
        let lateness = settings.window.allowed_lateness;
        let horizon = rules
            .iter()
            .map(|r| span(&r.hunt, lateness))
            .max()
            .unwrap_or_default();
        let rules = rules
            .into_iter()
            .map(|p| {
                let hunt = Arc::clone(&p.hunt);
                let evaluator: Box<dyn Evaluator> = Box::new(crate::query::SqlEvaluator::new(
                    p,
                    schema.time_index,
                    lateness,
                    settings.window.max_rows_per_hunt,
                ));
                Rule {
                    hunt,
                    evaluator: Some(evaluator),
                    warned_late: false,
                }
            })
            .collect();
        IncidentStage {
            rules,
            // Its own metrics: alert rows are not events decoded.
            decoder: Decoder::new(Arc::clone(&schema), usize::MAX, &Metrics::new()),
            input: Input::new("alerts", InputKind::Stdin),
            offset: 0,
            seq: 0,
            delay: nanos(delay(hunts, lateness)),
            horizon: nanos(horizon),
            lateness,
            settings: settings.incidents.clone(),
            book: Book::default(),
            metrics: metrics.clone(),
        }
    }

    /// The hunts of a new hunt set (a hot reload) raise the alerts from now on. The delay never
    /// shrinks: the incident rules' windows already wait that long.
    pub fn set_hunts(&mut self, hunts: &[Arc<Hunt>]) {
        self.delay = self.delay.max(nanos(delay(hunts, self.lateness)));
    }

    /// Whether it holds anything a later step (a timer tick) could still turn into incidents.
    pub fn holding(&self) -> bool {
        !self.book.is_empty()
            || self
                .rules
                .iter()
                .filter_map(|r| r.evaluator.as_ref())
                .any(|e| e.state_size().is_some_and(|n| n > 0))
    }

    /// Takes the alerts a step of the hunts delivered, advances the rules to `watermark` (the events'),
    /// and returns the incidents opened or updated. `flush`: end of input, evaluate every open window.
    pub async fn step(
        &mut self,
        alerts: &[Alert],
        watermark: Watermark,
        flush: bool,
    ) -> IncidentOutput {
        let mut out = IncidentOutput::default();
        let mut records = Vec::new();
        for alert in alerts.iter().filter(|a| !a.update) {
            let risk = self.settings.risk_of(&alert.hunt);
            records.push(RawRecord {
                input: Arc::clone(&self.input),
                offset: self.offset,
                bytes: alert_row(alert, risk).to_string().into_bytes().into(),
                received: alert.received,
                source_timestamp: None,
            });
            self.offset += 1;
            self.book.note(finding::AlertInfo::of(alert));
        }
        let batch = match records.is_empty() {
            true => None,
            false => {
                let decoded = self.decoder.decode(self.seq, records);
                self.seq += 1;
                for letter in &decoded.dead_letters {
                    // Rows built here from our own alerts: a failure is a bug, said loudly.
                    tracing::error!(detail = %letter.detail, "An alert could not become a row of `alerts`; incident rules do not see it.");
                }
                Some(Arc::new(BatchView {
                    seq: decoded.seq,
                    batch: decoded.batch,
                    received: decoded.received,
                    parts: Vec::new(),
                    partitions: Vec::new(),
                    revoked: Vec::new(),
                    masks: None,
                }))
            }
        };
        let shifted = match watermark {
            Watermark::At(t) => Watermark::At(t.saturating_sub(self.delay)),
            Watermark::AllIdle(t) => Watermark::AllIdle(t.saturating_sub(self.delay)),
            Watermark::Unknown => Watermark::Unknown,
        };
        let input = StepInput {
            batch,
            watermark: shifted,
            flush,
        };
        let now_ms = Utc::now().timestamp_millis();
        for rule in &mut self.rules {
            let Some(evaluator) = rule.evaluator.take() else {
                continue;
            };
            // On its own task: a rule that panics is disabled, the pipeline goes on.
            match tokio::spawn(evaluator.step(input.clone())).await {
                Ok((evaluator, mut step)) => {
                    rule.evaluator = Some(evaluator);
                    // Said once per rule; ghosthunt_late_records_total counts them all.
                    if !step.late_rows.is_empty() && !rule.warned_late {
                        rule.warned_late = true;
                        tracing::warn!(rule = %rule.hunt.id, alerts = step.late_rows.len(), "Alerts of late events came after their incident windows closed; this rule did not see them (its allowed_lateness widens what it takes; further ones are counted in ghosthunt_late_records_total, not logged).");
                    }
                    if step.dropped > 0 {
                        tracing::warn!(rule = %rule.hunt.id, alerts = step.dropped, "Incident rule's window state is full; alerts are dropped until windows close (window.max_rows_per_hunt).");
                    }
                    for detection in std::mem::take(&mut step.detections) {
                        out.findings.extend(observe(
                            &mut self.book,
                            &self.settings,
                            &self.metrics,
                            detection,
                            now_ms,
                        ));
                    }
                    out.steps.push((rule.hunt.id.clone(), step));
                }
                // Disabled (the pipeline counts, logs and reports it like a hunt's panic).
                Err(e) => out.disabled.push((rule.hunt.id.clone(), e.to_string())),
            }
        }
        match (flush, shifted) {
            (true, _) => self.book.clear(),
            (false, Watermark::At(t) | Watermark::AllIdle(t)) => {
                let lateness = self.lateness;
                self.book
                    .expire(t, |h| nanos(span(h, lateness)), self.horizon);
            }
            (false, Watermark::Unknown) => {}
        }
        self.metrics
            .incidents_open
            .set(self.book.open_count() as i64);
        out
    }
}

/// The incidents one detection of a rule opens or updates (one per result row).
fn observe(
    book: &mut Book,
    settings: &IncidentSettings,
    metrics: &Metrics,
    detection: Detection,
    now_ms: i64,
) -> Vec<Alert> {
    let Some(window) = detection.time.window else {
        return Vec::new();
    };
    let Rows::Table { batches, .. } = detection.rows else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    for row in crate::alert::ocsf::rows_to_json(&batches) {
        let ids: Vec<String> = match row.get(ALERT_IDS) {
            Some(Value::Array(ids)) => ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let risk = row.get("risk").and_then(Value::as_f64);
        if let Some(outcome) = book.observe(
            &detection.hunt,
            window,
            row,
            ids,
            &settings.assignee_group,
            now_ms,
        ) {
            metrics
                .incidents
                .with_label_values(&[&detection.hunt.id, outcome.activity.as_str()])
                .inc();
            if let Some(risk) = risk {
                metrics.entity_risk.observe(risk);
            }
            findings.push(outcome.finding);
        }
    }
    findings
}
