//! The loaded Sigma rule set at run time: every detection rule evaluated together on each batch, each match
//! an alert of the rule's own hunt, matches of rules that correlations reference fed to the correlator, and
//! correlation firings turned into alerts as the watermark passes them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use datafusion::arrow::array::{Array, AsArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, TimestampNanosecondType};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Map, Value, json};

use crate::alert::ocsf::{alert_from_row, format_time, rows_to_json};
use crate::alert::{Alert, AlertTime};
use crate::decode::EventSchema;
use crate::decode::schema::ColumnType;
use crate::query::{Attack, Hunt, Origin, Severity, WindowSpec};
use crate::sigma::correlate::{BaseRule, Correlator, Firing};
use crate::sigma::correlation::CorrelationRule;
use crate::sigma::eval::{RuleInput, RuleSet};
use crate::sigma::ir::{Expr, Level, Test};
use crate::sigma::load::{Loaded, SigmaRefusal};
use crate::sigma::mapping::Mapping;
use crate::sigma::parse::attack_from_tags;

/// Columns every Sigma alert shows (when the event has them), before the rule's own.
const CONTEXT_COLUMNS: &[&str] = &[
    "event_time",
    "host",
    "channel",
    "provider",
    "event_id",
    "record_id",
];

struct EngineRule {
    hunt: Arc<Hunt>,
    /// Batch columns shown in the alert.
    show: Vec<usize>,
    /// Whether a match alerts on its own (false when a correlation with `generate: false` uses it).
    alone: bool,
    /// Name the correlator knows the rule by, and the batch column of each field it wants.
    correlated: Option<(String, Vec<Option<usize>>)>,
}

/// The compiled rule set and the correlation state.
pub struct SigmaEngine {
    set: RuleSet,
    /// Aligned with the rule set's indices; `None` for a rule that failed to compile.
    rules: Vec<Option<EngineRule>>,
    correlations: Vec<Arc<Hunt>>,
    correlator: Option<Correlator>,
    time_index: usize,
    /// Longest correlation timespan (ns): how long matches stay in correlation state.
    max_span: i64,
    /// (event time, batch seq) of matches fed to the correlator, in arrival order: batches that may still
    /// be needed to rebuild correlation state after a crash are not acknowledged.
    held: VecDeque<(i64, u64)>,
}

impl std::fmt::Debug for SigmaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigmaEngine")
            .field("rules", &self.rule_count())
            .field("correlations", &self.correlations.len())
            .finish()
    }
}

/// What one batch or watermark step produced.
#[derive(Default)]
pub struct SigmaOutput {
    pub alerts: Vec<Alert>,
    /// Rows that matched a correlated rule after the correlator's watermark had passed them.
    pub late_rows: Vec<usize>,
}

fn severity(level: Option<Level>) -> Severity {
    match level {
        Some(Level::Informational) => Severity::Informational,
        Some(Level::Low) => Severity::Low,
        None | Some(Level::Medium) => Severity::Medium,
        Some(Level::High) => Severity::High,
        Some(Level::Critical) => Severity::Critical,
    }
}

fn attack(tags: &[String]) -> Attack {
    let (techniques, tactics) = attack_from_tags(tags);
    Attack {
        techniques,
        tactics,
    }
}

fn response(falsepositives: &[String]) -> Vec<String> {
    let mut steps =
        vec!["Review the matched event (evidence) and the process, user and host it names.".into()];
    let known: Vec<&str> = falsepositives
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("unknown"))
        .collect();
    if !known.is_empty() {
        steps.push(format!(
            "Rule out the rule's known false positives: {}.",
            known.join("; ")
        ));
    }
    steps
        .push("If it is malicious, scope the host and account and start incident response.".into());
    steps
}

/// Replaces keyword (full-text) tests by the same test on every string column.
pub fn expand_keywords(e: &Expr, string_columns: &[String]) -> Expr {
    match e {
        Expr::Keyword { pattern, cased } => Expr::Or(
            string_columns
                .iter()
                .map(|c| Expr::Field {
                    field: c.clone(),
                    test: Test::Str {
                        pattern: pattern.clone(),
                        cased: *cased,
                    },
                })
                .collect(),
        ),
        Expr::And(v) => Expr::And(
            v.iter()
                .map(|e| expand_keywords(e, string_columns))
                .collect(),
        ),
        Expr::Or(v) => Expr::Or(
            v.iter()
                .map(|e| expand_keywords(e, string_columns))
                .collect(),
        ),
        Expr::Not(inner) => Expr::Not(Box::new(expand_keywords(inner, string_columns))),
        other => other.clone(),
    }
}

/// The rule's whole condition over columns: OR over variants of (logsource condition AND detection).
pub fn rule_expr(variants: &[(Expr, Expr)]) -> Expr {
    let parts: Vec<Expr> = variants
        .iter()
        .map(|(when, det)| match when {
            Expr::True => det.clone(),
            w => Expr::And(vec![w.clone(), det.clone()]),
        })
        .collect();
    if parts.len() == 1 {
        parts.into_iter().next().expect("one part")
    } else {
        Expr::Or(parts)
    }
}

/// The SQL a rule becomes, over the `events` table (non-text columns read as text, as the evaluator does).
pub fn rule_sql(expr: &Expr, schema: &EventSchema) -> String {
    let text_of = |name: &str| -> String {
        match schema.columns.iter().find(|c| c.name == name) {
            Some(c) if c.ty != ColumnType::String => format!("CAST({name} AS VARCHAR)"),
            _ => name.to_string(),
        }
    };
    let expr = expr.map_fields(&mut |f| text_of(f));
    crate::sigma::sql::rule_to_sql(&expr, "*")
}

/// The hunt a detection rule becomes.
fn rule_hunt(rule: &crate::sigma::ir::SigmaRule, file: PathBuf, sql: String) -> Hunt {
    Hunt {
        id: rule.id.clone(),
        title: rule.title.clone(),
        description: rule.description.trim().to_string(),
        hypothesis: if rule.description.trim().is_empty() {
            rule.title.clone()
        } else {
            rule.description.trim().to_string()
        },
        attack: attack(&rule.tags),
        severity: severity(rule.level),
        window: WindowSpec::None,
        allowed_lateness: None,
        entity: Some("host".into()),
        response: response(&rule.falsepositives),
        references: rule.references.clone(),
        sql,
        origin: Origin::File(file),
    }
}

fn correlation_hunt(c: &CorrelationRule, file: PathBuf) -> Hunt {
    let id =
        c.id.clone()
            .or_else(|| c.name.clone())
            .unwrap_or_else(|| c.title.clone());
    Hunt {
        id,
        title: c.title.clone(),
        description: c.description.trim().to_string(),
        hypothesis: if c.description.trim().is_empty() {
            c.title.clone()
        } else {
            c.description.trim().to_string()
        },
        attack: attack(&c.tags),
        severity: severity(c.level),
        window: WindowSpec::None,
        allowed_lateness: None,
        entity: None,
        response: response(&c.falsepositives),
        references: c.references.clone(),
        sql: format!(
            "-- Sigma correlation ({:?}) over rules {}; group by {}; timespan {}",
            c.kind,
            c.rules.join(", "),
            c.group_by.join(", "),
            humantime::format_duration(c.timespan)
        ),
        origin: Origin::File(file),
    }
}

impl SigmaEngine {
    /// Compiles the loaded rules for batches of `schema`: the base schema (`base_columns`, what the rules
    /// were bound against) with `loaded.extra_columns()` and the correlations' fields added.
    /// Rules that fail to compile and correlations that cannot be resolved are returned as refusals.
    pub fn build(
        loaded: Loaded,
        mapping: &Mapping,
        base_columns: &[&str],
        schema: &EventSchema,
    ) -> (SigmaEngine, Vec<SigmaRefusal>) {
        let mut refusals = Vec::new();
        let string_columns: Vec<String> = schema
            .columns
            .iter()
            .filter(|c| c.ty == ColumnType::String)
            .map(|c| c.name.clone())
            .collect();
        // Fields resolve against the base schema's columns, as when the rules were bound.
        let base = base_columns;
        let variants: Vec<Vec<(Expr, Expr)>> = loaded
            .rules
            .iter()
            .map(|r| {
                r.bound
                    .variants
                    .iter()
                    .map(|v| {
                        (
                            v.when.clone(),
                            expand_keywords(&v.detection, &string_columns),
                        )
                    })
                    .collect()
            })
            .collect();
        let inputs: Vec<RuleInput> = variants
            .iter()
            .map(|v| RuleInput {
                variants: v.iter().map(|(w, d)| (w, d)).collect(),
            })
            .collect();
        let (set, errors) = RuleSet::compile(&inputs);
        let column_of = |name: &str| schema.columns.iter().position(|c| c.name == name);

        // Correlations first: they decide which rules alert alone and which fields to extract.
        let base_rules: Vec<BaseRule> = loaded
            .rules
            .iter()
            .zip(&errors)
            .filter(|(_, e)| e.is_none())
            .map(|(r, _)| BaseRule {
                id: r.rule.id.clone(),
                name: r.rule.name.clone(),
            })
            .collect();
        let (correlator, correlations) =
            resolve_correlations(loaded.correlations, &base_rules, &mut refusals);

        let mut rules = Vec::with_capacity(loaded.rules.len());
        for ((r, error), variants) in loaded.rules.into_iter().zip(errors).zip(&variants) {
            if let Some(reason) = error {
                refusals.push(SigmaRefusal {
                    file: r.file.clone(),
                    title: Some(r.rule.title.clone()),
                    id: Some(r.rule.id.clone()),
                    reason,
                });
                rules.push(None);
                continue;
            }
            let mut show: Vec<usize> = CONTEXT_COLUMNS
                .iter()
                .filter_map(|c| column_of(c))
                .collect();
            let mut add = |name: &str| {
                if let Some(i) = column_of(name)
                    && !show.contains(&i)
                {
                    show.push(i);
                }
            };
            for v in &r.bound.variants {
                v.detection.visit_fields(&mut |f| add(f));
            }
            for f in &r.rule.fields {
                if let Ok(c) = mapping.column_for(f, base) {
                    add(c.name());
                }
            }
            let (alone, correlated) = match &correlator {
                Some(c) if c.references(&r.rule.id) => {
                    let columns = c
                        .fields_for(&r.rule.id)
                        .iter()
                        .map(|f| {
                            mapping
                                .column_for(f, base)
                                .ok()
                                .and_then(|c| column_of(c.name()))
                        })
                        .collect();
                    (
                        c.emits_alone(&r.rule.id),
                        Some((r.rule.id.clone(), columns)),
                    )
                }
                _ => (true, None),
            };
            let sql = rule_sql(&rule_expr(variants), schema);
            rules.push(Some(EngineRule {
                hunt: Arc::new(rule_hunt(&r.rule, r.file, sql)),
                show,
                alone,
                correlated,
            }));
        }
        let max_span = correlations
            .iter()
            .map(|(c, _)| c.timespan.as_nanos() as i64)
            .max()
            .unwrap_or(0);
        (
            SigmaEngine {
                set,
                rules,
                correlations: correlations
                    .into_iter()
                    .map(|(c, file)| Arc::new(correlation_hunt(&c, file)))
                    .collect(),
                correlator,
                time_index: schema.time_index,
                max_span,
                held: VecDeque::new(),
            },
            refusals,
        )
    }

    /// Detection rules compiled and running.
    pub fn rule_count(&self) -> usize {
        self.rules.iter().flatten().count()
    }

    /// The hunts of the compiled detection rules and the correlations.
    pub fn hunts(&self) -> impl Iterator<Item = &Arc<Hunt>> {
        self.rules
            .iter()
            .flatten()
            .map(|r| &r.hunt)
            .chain(&self.correlations)
    }

    /// Correlation state held (matches in windows), for the window-rows gauge.
    pub fn state_size(&self) -> usize {
        self.correlator.as_ref().map_or(0, Correlator::state_size)
    }

    /// The oldest batch that correlation state may still need.
    pub fn min_seq(&self) -> Option<u64> {
        self.held.iter().map(|&(_, seq)| seq).min()
    }

    /// The detection rules matching rows of `batch` (rule id, rows), whatever their alerting: for tests
    /// and benchmarks.
    pub fn matching(&self, batch: &RecordBatch) -> Vec<(&str, Vec<u32>)> {
        self.set
            .evaluate(batch)
            .into_iter()
            .filter_map(|(i, rows)| self.rules[i].as_ref().map(|r| (r.hunt.id.as_str(), rows)))
            .collect()
    }

    /// Runs every rule on a batch.
    pub fn evaluate(&mut self, batch: &RecordBatch, seq: u64, received: Instant) -> SigmaOutput {
        let mut out = SigmaOutput::default();
        let matches = self.set.evaluate(batch);
        if matches.is_empty() {
            return out;
        }
        let times = batch
            .column(self.time_index)
            .as_primitive::<TimestampNanosecondType>();
        let now_ms = Utc::now().timestamp_millis();
        for (index, rows) in matches {
            let Some(rule) = &self.rules[index] else {
                continue;
            };
            if rule.alone {
                out.alerts
                    .extend(rule_alerts(rule, batch, &rows, received, now_ms));
            }
            if let (Some((ident, columns)), Some(correlator)) =
                (&rule.correlated, self.correlator.as_mut())
            {
                for &row in &rows {
                    let row = row as usize;
                    let fields: Vec<Option<String>> = columns
                        .iter()
                        .map(|c| c.and_then(|c| text_value(batch.column(c).as_ref(), row)))
                        .collect();
                    let time = times.value(row);
                    if correlator.observe(ident, time, &fields) {
                        self.held.push_back((time, seq));
                    } else {
                        out.late_rows.push(row);
                    }
                }
            }
        }
        out
    }

    /// Event time has reached `watermark`: correlations judge what it passed (`flush`: everything).
    pub fn advance(
        &mut self,
        watermark: Option<i64>,
        flush: bool,
        received: Instant,
    ) -> Vec<Alert> {
        let Some(correlator) = self.correlator.as_mut() else {
            return Vec::new();
        };
        let firings = match (flush, watermark) {
            (true, _) => correlator.flush(),
            (false, Some(w)) => correlator.advance(w),
            (false, None) => return Vec::new(),
        };
        if let Some(w) = watermark {
            let cutoff = w.saturating_sub(self.max_span);
            while self.held.front().is_some_and(|&(t, _)| t < cutoff) {
                self.held.pop_front();
            }
        }
        if flush {
            self.held.clear();
        }
        let now_ms = Utc::now().timestamp_millis();
        firings
            .into_iter()
            .filter(|f| f.output)
            .map(|f| firing_alert(&self.correlations[f.rule], &f, received, now_ms))
            .collect()
    }
}

/// Resolves correlations against the compiled rules, refusing the ones that cannot be (unknown rule,
/// cycle …) so that the rest still run.
fn resolve_correlations(
    mut remaining: Vec<(CorrelationRule, PathBuf)>,
    base: &[BaseRule],
    refusals: &mut Vec<SigmaRefusal>,
) -> (Option<Correlator>, Vec<(CorrelationRule, PathBuf)>) {
    loop {
        if remaining.is_empty() {
            return (None, remaining);
        }
        let rules: Vec<CorrelationRule> = remaining.iter().map(|(c, _)| c.clone()).collect();
        match Correlator::with_base_rules(rules, base) {
            Ok(c) => return (Some(c), remaining),
            Err(reason) => {
                // Drop the first correlation whose removal resolves the rest (or the first one).
                let culprit = (0..remaining.len())
                    .find(|&i| {
                        let others: Vec<CorrelationRule> = remaining
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| j != i)
                            .map(|(_, (c, _))| c.clone())
                            .collect();
                        Correlator::with_base_rules(others, base).is_ok()
                    })
                    .unwrap_or(0);
                let (c, file) = remaining.remove(culprit);
                refusals.push(SigmaRefusal {
                    file,
                    title: Some(c.title.clone()),
                    id: c.id.clone(),
                    reason: format!("correlation: {reason}"),
                });
            }
        }
    }
}

/// A cell as text (the correlator's group-by and value fields).
fn text_value(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row).to_string()),
        _ => datafusion::arrow::util::display::array_value_to_string(array, row).ok(),
    }
}

fn rule_alerts(
    rule: &EngineRule,
    batch: &RecordBatch,
    rows: &[u32],
    received: Instant,
    now_ms: i64,
) -> Vec<Alert> {
    let Ok(projected) = batch.project(&rule.show) else {
        return Vec::new();
    };
    let Ok(taken) = take_record_batch(&projected, &UInt32Array::from(rows.to_vec())) else {
        return Vec::new();
    };
    rows_to_json(&[taken])
        .into_iter()
        .map(|mut row| {
            row.retain(|_, v| !v.is_null());
            let t = row
                .get("event_time")
                .and_then(Value::as_str)
                .and_then(crate::decode::json::parse_timestamp)
                .unwrap_or_default();
            alert_from_row(
                &rule.hunt,
                row,
                AlertTime {
                    window: None,
                    rows: (t, t),
                    received,
                },
                now_ms,
            )
        })
        .collect()
}

fn firing_alert(hunt: &Arc<Hunt>, f: &Firing, received: Instant, now_ms: i64) -> Alert {
    let mut row = Map::new();
    let group: Map<String, Value> = f
        .group
        .iter()
        .map(|(k, v)| (k.clone(), v.as_ref().map_or(Value::Null, |v| json!(v))))
        .collect();
    row.insert("group".into(), Value::Object(group));
    row.insert("count".into(), json!(f.count));
    row.insert("events".into(), json!(f.events));
    row.insert("first_event_time".into(), json!(format_time(f.first)));
    row.insert("last_event_time".into(), json!(format_time(f.last)));
    row.insert("fired_at".into(), json!(format_time(f.time)));
    if let Some(values) = &f.values {
        row.insert("values".into(), json!(values));
    }
    alert_from_row(
        hunt,
        row,
        AlertTime {
            window: Some((f.first, f.time)),
            rows: (f.first, f.last),
            received,
        },
        now_ms,
    )
}
