//! Sigma correlations scaled out (`scale.mode = "repartition"`): each chain of correlations (those
//! joined by chaining, see [`Correlator::chains`]) is evaluated where its key is, like a windowed hunt.
//!
//! The instance that decodes an event evaluates the detection rules as usual; a match of a rule a chain
//! references leaves it as a row (rule, event time, the chain's fields for that rule) keyed by the
//! chain's outermost `group-by` values ([`Correlator::route_key`]), which the pipeline sends through the
//! repartition topic with the event's source position. The instance owning the key's partition keeps a
//! correlator per partition ([`RoutedCorrelations`]) on that partition's watermark. A chain with no key
//! (several outermost correlations, or aliases giving one match different keys) sends all its matches to
//! one partition: correct, not spread.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, AsArray, Int64Builder, ListArray, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use super::correlate::{BaseRule, Correlator};
use super::correlation::CorrelationRule;
use super::engine::{SigmaEngine, firing_detection, text_value};
use crate::hunt::Hunt;
use crate::runtime::{Evaluator, Routed, StepInput, StepOutput, Stepping};
use crate::window::{Brought, Origin, Watermark};

/// A detection rule a chain references, as its sender sees it.
pub(super) struct RouteRule {
    /// The name the chain's correlator knows it by.
    ident: String,
    /// Batch column of each field the chain wants of its matches (its correlator's `fields_for`).
    columns: Vec<Option<usize>>,
    /// Positions, among those fields, of the chain's key; `None`: one partition for all its matches.
    key: Option<Vec<usize>>,
}

/// Where a chain's matches go, on the instance that decodes events.
pub(super) struct Route {
    /// The chain's name on the repartition topic: its outermost correlation's hunt id.
    id: String,
    /// By index of the detection rule in the set.
    rules: HashMap<usize, RouteRule>,
}

/// The rows of one chain's matches: the repartition record's columns.
fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("rule", DataType::Utf8, false),
        Field::new("time", DataType::Int64, false),
        Field::new(
            "fields",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            false,
        ),
    ]))
}

/// Collects one chain's matches of a batch.
pub(super) struct Collected {
    rule: StringBuilder,
    time: Int64Builder,
    fields: ListBuilder<StringBuilder>,
    rows: Vec<u32>,
    keys: Vec<Vec<Option<String>>>,
}

impl Collected {
    pub(super) fn new() -> Collected {
        Collected {
            rule: StringBuilder::new(),
            time: Int64Builder::new(),
            fields: ListBuilder::new(StringBuilder::new()),
            rows: Vec::new(),
            keys: Vec::new(),
        }
    }

    fn finish(mut self, id: &str, fingerprint: &str) -> Result<Option<Routed>, ArrowError> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(self.rule.finish()),
                Arc::new(self.time.finish()),
                Arc::new(self.fields.finish()),
            ],
        )?;
        Ok(Some(Routed {
            hunt: id.to_string(),
            fingerprint: fingerprint.to_string(),
            batch,
            rows: self.rows,
            keys: self.keys,
        }))
    }
}

impl SigmaEngine {
    /// Scaled out: the correlations leave this engine, which keeps the detection rules and hands each
    /// correlated match to the pipeline to send on (see [`Routed`]); the returned evaluators, one per
    /// chain, run the correlations on the instance that owns a key.
    pub fn route_correlations(mut self) -> (SigmaEngine, Vec<RoutedCorrelations>) {
        let Some(full) = self.correlator.take() else {
            return (self, Vec::new());
        };
        let mut routes = Vec::new();
        let mut receivers = Vec::new();
        for chain in full.chains() {
            let rules: Vec<CorrelationRule> =
                chain.iter().map(|&c| full.rules()[c].clone()).collect();
            let one = Correlator::with_base_rules(rules.clone(), &self.base)
                .expect("a chain of a valid rule set is valid on its own");
            let hunts: Vec<Arc<Hunt>> = chain
                .iter()
                .map(|&c| Arc::clone(&self.correlations[c]))
                .collect();
            // Named after the correlation that alerts for the chain (the first, when several do).
            let top = one.outermost();
            let id = hunts[top.unwrap_or(0)].id.clone();
            let mut route = Route {
                id: id.clone(),
                rules: HashMap::new(),
            };
            for (index, rule) in self.rules.iter().enumerate() {
                let Some(rule) = rule else { continue };
                let Some((ident, columns)) = &rule.correlated else {
                    continue;
                };
                if !one.references(ident) {
                    continue;
                }
                let all = full.fields_for(ident);
                let columns = one
                    .fields_for(ident)
                    .iter()
                    .map(|f| {
                        let at = all.iter().position(|x| x == f);
                        at.and_then(|i| columns[i])
                    })
                    .collect();
                route.rules.insert(
                    index,
                    RouteRule {
                        ident: ident.clone(),
                        columns,
                        key: one.route_key(ident),
                    },
                );
            }
            let max_span = rules
                .iter()
                .map(|r| r.timespan.as_nanos() as i64)
                .max()
                .unwrap_or(0);
            let keyed = top.filter(|_| route.rules.values().all(|r| r.key.is_some()));
            receivers.push(RoutedCorrelations {
                id,
                fingerprint: self.fingerprint.clone(),
                rules,
                base: self.base.clone(),
                hunts,
                keyed,
                lateness: self.lateness,
                max_span,
                partitions: BTreeMap::new(),
            });
            routes.push(route);
        }
        self.correlations.clear();
        self.held.clear();
        self.max_span = 0;
        self.routes = routes;
        (self, receivers)
    }

    /// Collectors for this batch's matches, one per chain (empty when the correlations are local).
    pub(super) fn collectors(&self) -> Vec<Collected> {
        self.routes.iter().map(|_| Collected::new()).collect()
    }

    /// Adds the matches of detection rule `index` (`rows` of `batch`) to the chains referencing it.
    pub(super) fn collect(
        &self,
        index: usize,
        batch: &RecordBatch,
        rows: &[u32],
        into: &mut [Collected],
    ) {
        let times = batch
            .column(self.time_index)
            .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>();
        for (route, out) in self.routes.iter().zip(into.iter_mut()) {
            let Some(rule) = route.rules.get(&index) else {
                continue;
            };
            for &row in rows {
                let fields: Vec<Option<String>> = rule
                    .columns
                    .iter()
                    .map(|c| c.and_then(|c| text_value(batch.column(c).as_ref(), row as usize)))
                    .collect();
                let key = match &rule.key {
                    Some(positions) => positions.iter().map(|&p| fields[p].clone()).collect(),
                    None => Vec::new(),
                };
                out.rule.append_value(&rule.ident);
                out.time.append_value(times.value(row as usize));
                out.fields.append_value(fields);
                out.rows.push(row);
                out.keys.push(key);
            }
        }
    }

    /// The chains' rows of this batch.
    pub(super) fn routed(&self, collected: Vec<Collected>) -> Result<Vec<Routed>, ArrowError> {
        let mut out = Vec::new();
        for (route, c) in self.routes.iter().zip(collected) {
            out.extend(c.finish(&route.id, &self.fingerprint)?);
        }
        Ok(out)
    }
}

/// One repartition partition's correlation state.
struct PartitionState {
    correlator: Correlator,
    /// Instants before this were judged by the partition's previous owner (its last commit's
    /// watermark, less the allowed lateness): their firings are not reported again.
    quiet: i64,
    /// (event time, batch seq) of the matches held, in arrival order (so the oldest batch first).
    held: VecDeque<(i64, u64)>,
    /// What its correlator was last advanced to.
    until: i64,
    /// Matches held by source position and rule, to keep a match sent twice once; by event time, to
    /// forget them with the matches.
    seen: HashSet<(Origin, Arc<str>)>,
    seen_at: BTreeMap<i64, Vec<(Origin, Arc<str>)>>,
    /// How far each source partition's matches came (a late one at or below was judged already).
    brought: Brought,
}

/// A chain of Sigma correlations evaluated on the matches repartitioned to this instance, one correlator
/// per repartition partition on that partition's watermark.
pub struct RoutedCorrelations {
    id: String,
    fingerprint: String,
    rules: Vec<CorrelationRule>,
    base: Vec<BaseRule>,
    hunts: Vec<Arc<Hunt>>,
    /// The outermost correlation, whose `group-by` is the key; `None`: one partition for all.
    keyed: Option<usize>,
    lateness: i64,
    max_span: i64,
    partitions: BTreeMap<Arc<str>, PartitionState>,
}

impl std::fmt::Debug for RoutedCorrelations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedCorrelations")
            .field("id", &self.id)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl RoutedCorrelations {
    /// Its name on the repartition topic and in metrics.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Fingerprint of the rule set that selects its matches.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// How its matches are placed: by the outermost correlation's `group-by`, or all on one partition.
    pub fn placement(&self) -> String {
        match self.keyed {
            Some(top) => format!("by {}", self.rules[top].group_by.join(", ")),
            None => "one partition (no key common to the chain)".to_string(),
        }
    }

    fn state(&mut self, partition: &Arc<str>, floor: Option<i64>) -> &mut PartitionState {
        let (rules, base, lateness) = (&self.rules, &self.base, self.lateness);
        self.partitions
            .entry(Arc::clone(partition))
            .or_insert_with(|| PartitionState {
                correlator: Correlator::with_base_rules(rules.clone(), base)
                    .expect("the chain was valid when routed"),
                quiet: floor.map_or(i64::MIN, |f| f.saturating_sub(lateness)),
                held: VecDeque::new(),
                until: i64::MIN,
                seen: HashSet::new(),
                seen_at: BTreeMap::new(),
                brought: Brought::default(),
            })
    }

    fn step_inner(&mut self, input: &StepInput, out: &mut StepOutput) {
        let received = input
            .batch
            .as_ref()
            .map_or_else(Instant::now, |b| b.received);
        let mut fired = Vec::new();
        if let Some(view) = &input.batch {
            for partition in &view.revoked {
                // Its next owner reads it again from the last commit.
                self.partitions.remove(partition);
            }
            let id = self.id.clone();
            for part in view.parts.iter().filter(|p| p.hunt == id) {
                let started = Instant::now();
                let max_span = self.max_span;
                let state = self.state(&part.partition, part.floor);
                if let Err(e) = observe(state, part, view.seq, max_span, out) {
                    out.errors.push(crate::runtime::EvaluationError {
                        hunt: part.hunt.clone(),
                        reason: format!("repartitioned matches: {e}"),
                    });
                }
                out.evaluations.push(started.elapsed().as_secs_f64());
            }
            for p in &view.partitions {
                let lateness = self.lateness;
                let state = self.state(&p.partition, p.floor);
                let until = match p.watermark {
                    Watermark::At(t) | Watermark::AllIdle(t) => t.saturating_sub(lateness),
                    Watermark::Unknown => continue,
                };
                state.until = state.until.max(until);
                let quiet = state.quiet;
                let from = state.held.front().map_or(view.seq, |&(_, s)| s);
                fired.extend(
                    state
                        .correlator
                        .advance(until)
                        .into_iter()
                        .filter(|f| f.time >= quiet)
                        .map(|f| (f, from)),
                );
            }
        }
        if input.flush {
            for state in self.partitions.values_mut() {
                let (quiet, from) = (state.quiet, state.held.front().map(|&(_, s)| s));
                fired.extend(
                    state
                        .correlator
                        .flush()
                        .into_iter()
                        .filter(|f| f.time >= quiet)
                        .map(|f| (f, from.unwrap_or(0))),
                );
            }
        }
        // What a new owner must read again: every match within the longest timespan of the pipeline
        // watermark (what the commit's metadata records), so it rebuilds the groups of every instant it
        // has to judge.
        if let Watermark::At(t) | Watermark::AllIdle(t) = input.watermark {
            let cutoff = t
                .saturating_sub(self.lateness)
                .saturating_sub(self.max_span);
            for state in self.partitions.values_mut() {
                let own = state.until.saturating_sub(self.max_span);
                forget_before(state, cutoff.min(own));
            }
        }
        for (f, seq) in fired.into_iter().filter(|(f, _)| f.output) {
            out.detections
                .push(firing_detection(&self.hunts[f.rule], &f, received, seq));
        }
    }
}

/// Feeds a part's matches to the partition's correlator; a match sent twice counts once.
fn observe(
    state: &mut PartitionState,
    part: &crate::runtime::Part,
    seq: u64,
    max_span: i64,
    out: &mut StepOutput,
) -> Result<(), ArrowError> {
    let bad = || ArrowError::SchemaError("not a Sigma correlation record".into());
    let batch = &part.batch;
    if batch.num_columns() != 3 {
        return Err(bad());
    }
    let rules = batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(bad)?;
    let times = batch
        .column(1)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(bad)?;
    let fields = batch
        .column(2)
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(bad)?;
    for row in 0..batch.num_rows() {
        let (rule, time) = (rules.value(row), times.value(row));
        if time < state.quiet.saturating_sub(max_span) {
            // Re-read after taking the partition over: no instant left to judge needs it.
            out.duplicates += 1;
            continue;
        }
        let seen = part
            .origins
            .get(row)
            .map(|o| (o.clone(), Arc::<str>::from(rule)));
        if seen.as_ref().is_some_and(|key| state.seen.contains(key)) {
            out.duplicates += 1;
            continue;
        }
        let values = fields.value(row);
        let values = values
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(bad)?;
        let values: Vec<Option<String>> = values.iter().map(|v| v.map(str::to_string)).collect();
        if state.correlator.observe(rule, time, &values) {
            state.held.push_back((time, seq));
            if let Some(key) = seen {
                state.seen.insert(key.clone());
                state.seen_at.entry(time).or_default().push(key);
            }
        } else if part
            .origins
            .get(row)
            .is_some_and(|o| state.brought.before(o))
        {
            // Sent again by the source partition's next reader: judged already.
            out.duplicates += 1;
        } else {
            out.late_rows.push(part.record);
        }
    }
    state.brought.note(&part.origins);
    Ok(())
}

/// Drops what no window can use any more: held matches (for acknowledgement) and remembered positions
/// older than `cutoff`.
fn forget_before(state: &mut PartitionState, cutoff: i64) {
    while state.held.front().is_some_and(|&(t, _)| t < cutoff) {
        state.held.pop_front();
    }
    while let Some(entry) = state.seen_at.first_entry() {
        if *entry.key() >= cutoff {
            break;
        }
        for key in entry.remove() {
            state.seen.remove(&key);
        }
    }
}

impl Evaluator for RoutedCorrelations {
    fn label(&self) -> &str {
        &self.id
    }

    fn hunts(&self) -> Vec<Arc<Hunt>> {
        self.hunts.clone()
    }

    fn step(mut self: Box<Self>, input: StepInput) -> Stepping {
        Box::pin(async move {
            let task = tokio::task::spawn_blocking(move || {
                let mut out = StepOutput::default();
                self.step_inner(&input, &mut out);
                (self as Box<dyn Evaluator>, out)
            });
            crate::runtime::blocking_result(task.await).await
        })
    }

    fn min_seq(&self) -> Option<u64> {
        self.partitions
            .values()
            .filter_map(|s| s.held.front().map(|&(_, seq)| seq))
            .min()
    }

    fn state_size(&self) -> Option<usize> {
        Some(
            self.partitions
                .values()
                .map(|s| s.correlator.state_size())
                .sum(),
        )
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}
