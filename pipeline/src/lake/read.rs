//! History out of the lake: the events table as a source for retro-hunts, and a query session for
//! ad-hoc hunting.
//!
//! A retro-hunt reads the events of its time range one date partition at a time, in event-time order, as
//! one input: the watermark advances with the events and no row is late, so windows and correlations see
//! every event of the range (live, a row later than the allowed lateness was a dead letter; here it
//! counts). When every hunt reads only columns the table has, the rows are read already decoded — only
//! those columns, the time range pruning partitions and row groups — and the decoder is skipped; when
//! some hunt reads a column the table lacks (Sigma rules read fields beyond the schema, and keywords read
//! every value), the records themselves (`_raw`) are read and decoded as live.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::runtime::SpawnedTask;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use deltalake_core::DeltaTable;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::scan::{Tests, for_files, merged, ordered_scan};
use super::slices::{Slice, cut, date_files, slices};
use super::table::{self, ALERTS, DATE, EVENTS, INPUT, OFFSET, RAW, TIME_NS};
use super::{LakeError, LakeSettings};
use crate::decode::EventSchema;
use crate::decode::schema::UTC;
use crate::source::progress::Progress;
use crate::source::{
    Acknowledge, Input, InputKind, NoAcknowledge, RawRecord, RecordSender, Source, SourceError,
    SourceMessage,
};

pub use crate::settings::TimeRange as Range;

/// The range as a predicate over the events or alerts table: on the date partition (pruning whole
/// directories) and on the exact time.
pub fn predicate(range: &Range) -> String {
    let mut terms = vec!["TRUE".to_string()];
    if let Some(from) = range.from {
        terms.push(format!("{DATE} >= '{}'", table::date_of(from)));
        terms.push(format!("{TIME_NS} >= {from}"));
    }
    if let Some(to) = range.to {
        terms.push(format!("{DATE} <= '{}'", table::date_of(to - 1)));
        terms.push(format!("{TIME_NS} < {to}"));
    }
    terms.join(" AND ")
}

/// Parses an RFC 3339 time (`2026-11-01T00:00:00Z`) or a date (`2026-11-01`, midnight UTC) to ns.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let parsed = chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        })
        .map_err(|_| {
            format!("`{t}` is not an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)")
        })?;
    parsed.timestamp_nanos_opt().ok_or_else(|| {
        format!("`{t}` is out of range: times are nanoseconds from 1677-09-21 to 2262-04-11 (UTC)")
    })
}

/// A session over the lake for ad-hoc queries: `lake_events` and `lake_alerts` (the tables as stored),
/// and the views hunts read — `events` (the range of the events table with the event schema's types) and
/// `alerts` — with the functions hunts may call.
pub async fn session(
    settings: &LakeSettings,
    schema: &EventSchema,
    range: &Range,
) -> Result<SessionContext, LakeError> {
    let (ctx, _) = session_and_events(settings, true).await?;
    register_views(&ctx, schema, range).await?;
    Ok(ctx)
}

/// A session with the lake's events table as `lake_events` (and with `alerts`, the alerts table as
/// `lake_alerts`) and the functions hunts may call, and the events table as opened for it. A retro-hunt
/// reads the events table alone, without the views of [`session`].
async fn session_and_events(
    settings: &LakeSettings,
    alerts: bool,
) -> Result<(SessionContext, DeltaTable), LakeError> {
    // DataFusion's own settings may be tuned from the environment (DATAFUSION_EXECUTION_…).
    let mut config = SessionConfig::from_env()?.with_information_schema(false);
    config.options_mut().sql_parser.recursion_limit = crate::query::plan::sql_nesting();
    let ctx = SessionContext::new_with_config(config);
    crate::query::plan::register_functions(&ctx);
    let mut events = None;
    let mut tables = vec![(EVENTS, "lake_events")];
    if alerts {
        tables.push((ALERTS, "lake_alerts"));
    }
    for (name, registered) in tables {
        // A lake whose alerts table was never written (no alert yet) is queried for its events.
        if name == ALERTS
            && matches!(
                super::table::existing(settings, name),
                Err(LakeError::NoTable { .. })
            )
        {
            continue;
        }
        let table = super::maintain::open(settings, name).await?;
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| LakeError::delta(name, e))?;
        let provider = table.table_provider().await.map_err(LakeError::from)?;
        ctx.register_table(registered, provider)?;
        if name == EVENTS {
            events = Some(table);
        }
    }
    let events = events.expect("the events table is opened first");
    Ok((ctx, events))
}

/// The views `events` (the range of the events table with the event schema's types) and `alerts`.
async fn register_views(
    ctx: &SessionContext,
    schema: &EventSchema,
    range: &Range,
) -> Result<(), LakeError> {
    let time = schema.time_column();
    // The table's columns: a schema extended since the table was made (Sigma rules add the fields they
    // read) has columns the table lacks; those stay in `_raw`.
    let stored = ctx.table_provider("lake_events").await?.schema();
    let columns: Vec<String> = schema
        .columns
        .iter()
        .filter(|c| c.name != crate::decode::schema::VALUES_COLUMN)
        .filter(|c| stored.field_with_name(&c.name).is_ok())
        .map(|c| {
            if c.name == time {
                format!("arrow_cast({TIME_NS}, 'Timestamp(Nanosecond, Some(\"{UTC}\"))') AS {time}")
            } else if matches!(c.ty, crate::decode::schema::ColumnType::Timestamp) {
                format!(
                    "arrow_cast({0}, 'Timestamp(Nanosecond, Some(\"{UTC}\"))') AS {0}",
                    c.name
                )
            } else {
                c.name.clone()
            }
        })
        .collect();
    let predicate = predicate(range);
    // Hunts may name window_start / window_end (KQL's ago() does): outside a window they are NULL.
    let null_time = format!("arrow_cast(NULL, 'Timestamp(Nanosecond, Some(\"{UTC}\"))')");
    ctx.sql(&format!(
        "CREATE VIEW events AS SELECT {}, {INPUT}, {OFFSET}, {RAW}, {null_time} AS window_start, \
         {null_time} AS window_end FROM lake_events WHERE {predicate}",
        columns.join(", ")
    ))
    .await?;
    if ctx.table_exist("lake_alerts")? {
        ctx.sql(&format!(
            "CREATE VIEW alerts AS SELECT id, arrow_cast({TIME_NS}, 'Timestamp(Nanosecond, Some(\"{UTC}\"))') AS time, hunt_id, title, severity, json FROM lake_alerts WHERE {predicate}"
        ))
        .await?;
    }
    Ok(())
}

/// How a retro-hunt reads the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadMode {
    /// These columns of the event schema, already decoded (the others are left empty); only the rows
    /// `filter` keeps, when given (the hunts' row filters OR-ed: no hunt can use the others).
    Columns {
        columns: Vec<String>,
        filter: Option<Expr>,
        /// Each hunt's row filter, by hunt id: answered in the scan for the rows it keeps, and passed
        /// on with them (see [`crate::runtime::HuntMasks`]).
        hunts: Vec<(String, Expr)>,
    },
    /// The records as received, decoded again.
    Raw,
}

/// The events of a time range, in event-time order, as a source (`ghosthunt hunt`).
pub struct LakeSource {
    settings: LakeSettings,
    schema: Arc<EventSchema>,
    range: Range,
    mode: ReadMode,
    /// Where progress lines go (every `progress_every`).
    progress_every: Duration,
}

impl LakeSource {
    pub fn new(
        settings: &LakeSettings,
        schema: Arc<EventSchema>,
        range: Range,
        mode: ReadMode,
    ) -> LakeSource {
        LakeSource {
            settings: settings.clone(),
            schema,
            range,
            mode,
            progress_every: Duration::from_secs(5),
        }
    }
}

impl Source for LakeSource {
    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move {
            self.read(tx, shutdown).await.map_err(|e| {
                let mut reason = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    reason.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                SourceError::Lake(reason)
            })
        })
    }

    fn acknowledger(&self) -> Arc<dyn Acknowledge> {
        Arc::new(NoAcknowledge)
    }
}

impl LakeSource {
    async fn read(self, tx: RecordSender, shutdown: CancellationToken) -> Result<(), LakeError> {
        let (ctx, events) = session_and_events(&self.settings, false).await?;
        let dates = dates(&events, &self.range)?;
        // The range's first and last event time only serve the progress line: asked while the first
        // date is read.
        let span = tokio::spawn(span(ctx.clone(), self.range));
        let input = Input::new("lake", InputKind::Lake);
        if tx
            .send(SourceMessage::Started(Arc::clone(&input)))
            .await
            .is_err()
        {
            return Ok(());
        }
        let (select, filter, hunts) = match &self.mode {
            ReadMode::Columns {
                columns,
                filter,
                hunts,
            } => {
                let mut list: Vec<String> = columns
                    .iter()
                    .filter(|c| c.as_str() != self.schema.time_column())
                    .cloned()
                    .collect();
                list.extend([TIME_NS.to_string(), INPUT.to_string(), OFFSET.to_string()]);
                (list.join(", "), filter.clone(), hunts.clone())
            }
            ReadMode::Raw => (
                format!("{RAW}, {TIME_NS}, {INPUT}, {OFFSET}"),
                None,
                Vec::new(),
            ),
        };
        let predicate = predicate(&self.range);
        let scanned = Arc::new(AtomicU64::new(0));
        let mut progress = ReadProgress {
            progress: Progress::new(self.progress_every),
            rows: 0,
            scanned: Arc::clone(&scanned),
            span: Some(span),
            known_span: None,
            newest: None,
            dates: dates.len(),
        };
        // Read columns come from the scan already in the event schema's types.
        let wanted = match self.mode {
            ReadMode::Columns { .. } => Some(Arc::clone(self.schema.arrow())),
            ReadMode::Raw => None,
        };
        let scan = Scan {
            ctx: ctx.clone(),
            select,
            predicate,
            filter,
            hunts,
            wanted,
            scanned,
        };
        // The scan's tests, compiled on the first date for all (every date's scan has the same columns).
        let mut tests: Option<Arc<Tests>> = None;
        // As many slices scanned at once as the session has partitions (cores): a slice of one small
        // file is one partition.
        let ahead = ctx.state().config().target_partitions().max(1);
        for (done, date) in dates.iter().enumerate() {
            // The date is planned once; each slice reads its files through a copy of the plan.
            let frame = ctx
                .sql(&format!(
                    "SELECT {} FROM lake_events WHERE {} AND {DATE} = '{date}'",
                    scan.select, scan.predicate
                ))
                .await?;
            let schema = Arc::new(frame.schema().clone());
            let plan = frame.create_physical_plan().await?;
            let tests = Arc::clone(tests.get_or_insert_with(|| {
                Arc::new(Tests::new(&ctx, &schema, scan.filter.as_ref(), &scan.hunts))
            }));
            let mut slices = if for_files(&plan, &[])?.is_some() {
                let files = date_files(&events, date, self.settings.read_rows).await?;
                slices(files, &self.range, self.settings.read_rows)
            } else {
                Vec::new()
            };
            if slices.is_empty() {
                slices = vec![Slice {
                    parts: None,
                    first: None,
                }];
            }
            // The slices are scanned `ahead` at a time, each on tasks of its own, while the rows of the
            // earliest go to the hunts.
            let mut scans = std::collections::VecDeque::new();
            let mut started = 0;
            let mut carried: Vec<RecordBatch> = Vec::new();
            for i in 0..slices.len() {
                while started < slices.len() && started < i + ahead {
                    scans.push_back(scan.start(&tests, &plan, &slices[started])?);
                    started += 1;
                }
                let task = scans
                    .pop_front()
                    .expect("each slice's scan is started before it is read");
                let batches = task.join().await.map_err(|e| LakeError::Invalid {
                    table: EVENTS.to_string(),
                    reason: format!("a scan of the table failed: {e}"),
                })??;
                let batches = match carried.is_empty() {
                    true => batches,
                    false => merged(&ctx, vec![std::mem::take(&mut carried), batches]).await?,
                };
                let (ready, rest) = cut(batches, slices.get(i + 1).and_then(|s| s.first))?;
                carried = rest;
                for batch in ready {
                    if shutdown.is_cancelled() {
                        progress
                            .progress
                            .stopped_at(progress.scanned.load(Ordering::Relaxed));
                        return Ok(());
                    }
                    let newest = int64(&batch, TIME_NS)?.iter().flatten().max();
                    let rows = batch.num_rows();
                    let message = match &self.mode {
                        ReadMode::Columns { .. } => {
                            decoded(&self.schema, &input, &batch, &tests.answered)?
                        }
                        ReadMode::Raw => SourceMessage::Records(raw_records(&input, &batch)?),
                    };
                    if tx.send(message).await.is_err() {
                        return Ok(());
                    }
                    progress.sent(rows, newest, done, date).await?;
                }
                // The rows read count even where the hunts' filters kept none.
                progress.sent(0, None, done, date).await?;
            }
        }
        let mut fields = serde_json::Map::new();
        fields.insert("kept".into(), progress.rows.into());
        fields.insert("dates_done".into(), dates.len().into());
        fields.insert("dates".into(), dates.len().into());
        let read = progress.scanned.load(Ordering::Relaxed);
        progress.progress.finish_at(read, Some(fields));
        let _ = tx.send(SourceMessage::Stopped(input)).await;
        Ok(())
    }
}

/// The task reading the range's first and last event time.
type SpanTask = tokio::task::JoinHandle<Result<Option<(i64, i64)>, LakeError>>;

/// A retro-hunt's progress: the rows come in event-time order, so the share of the range's time span
/// reached is the share of the work done.
struct ReadProgress {
    progress: Progress,
    /// Rows sent to the hunts: those some hunt's filter keeps.
    rows: u64,
    /// Rows read, kept or not (the scans', which run ahead of what is sent).
    scanned: Arc<AtomicU64>,
    /// The range's first and last event time, being read (see [`span`]).
    span: Option<SpanTask>,
    known_span: Option<(i64, i64)>,
    /// The newest event time sent so far.
    newest: Option<i64>,
    dates: usize,
}

impl ReadProgress {
    /// `rows` more were sent, up to event time `newest` (`None`: none newer), while reading `date` (after
    /// `done` dates).
    async fn sent(
        &mut self,
        rows: usize,
        newest: Option<i64>,
        done: usize,
        date: &str,
    ) -> Result<(), LakeError> {
        self.rows += rows as u64;
        // Where nothing newer was sent (a slice whose rows no hunt keeps), the share stays where it was.
        let newest = newest.max(self.newest);
        self.newest = newest;
        if let Some(task) = self.span.take() {
            self.known_span = task.await.map_err(|e| LakeError::Invalid {
                table: EVENTS.to_string(),
                reason: format!("the range's span was not read: {e}"),
            })??;
        }
        let share = self
            .known_span
            .zip(newest)
            .map(|((lo, hi), t)| (t - lo) as f64 / (hi - lo).max(1) as f64);
        let mut fields = serde_json::Map::new();
        fields.insert("kept".into(), self.rows.into());
        fields.insert("dates_done".into(), done.into());
        fields.insert("dates".into(), self.dates.into());
        fields.insert("date".into(), date.into());
        let dates = self.dates;
        let kept = self.rows;
        let message = || {
            let reached = newest
                .map(|t| {
                    chrono::DateTime::from_timestamp_nanos(t)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            format!(
                "event time {reached} · date {}/{dates} · {kept} kept by the hunts' filters",
                (done + 1).min(dates)
            )
        };
        let read = self.scanned.load(Ordering::Relaxed);
        self.progress.update(read, share, message, fields);
        Ok(())
    }
}

/// What the scans of a retro-hunt's slices share: the session, the columns and rows they read.
struct Scan {
    ctx: SessionContext,
    select: String,
    /// The time range, in SQL.
    predicate: String,
    filter: Option<Expr>,
    hunts: Vec<(String, Expr)>,
    wanted: Option<SchemaRef>,
    /// Rows read so far, kept or not.
    scanned: Arc<AtomicU64>,
}

/// A slice's rows in event-time order (see [`ordered_scan`]).
type Scanned = Result<Vec<RecordBatch>, LakeError>;

impl Scan {
    /// Starts the scan of `slice` on a task of its own: `plan` (the date's scan) reading the slice's
    /// files, keeping the rows `tests` keep.
    fn start(
        &self,
        tests: &Arc<Tests>,
        plan: &Arc<dyn ExecutionPlan>,
        slice: &Slice,
    ) -> Result<SpawnedTask<Scanned>, LakeError> {
        let plan = match &slice.parts {
            None => Arc::clone(plan),
            Some(parts) => for_files(plan, parts)?.ok_or_else(|| LakeError::Invalid {
                table: EVENTS.to_string(),
                reason: "the date's plan is not a scan of files".into(),
            })?,
        };
        let (ctx, tests, wanted) = (self.ctx.clone(), Arc::clone(tests), self.wanted.clone());
        let scanned = Arc::clone(&self.scanned);
        Ok(SpawnedTask::spawn(async move {
            let stream = ordered_scan(&ctx, plan, &tests, wanted.as_deref(), &scanned).await?;
            Ok(stream.try_collect().await?)
        }))
    }
}

/// The first and last event time of the range (from the files' statistics where they answer).
async fn span(ctx: SessionContext, range: Range) -> Result<Option<(i64, i64)>, LakeError> {
    let batches = ctx
        .sql(&format!(
            "SELECT min({TIME_NS}), max({TIME_NS}) FROM lake_events WHERE {}",
            predicate(&range)
        ))
        .await?
        .collect()
        .await?;
    let Some(batch) = batches.first().filter(|b| b.num_rows() == 1) else {
        return Ok(None);
    };
    let value = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .filter(|a| !a.is_null(0))
            .map(|a| a.value(0))
    };
    Ok(value(0).zip(value(1)))
}

/// The date partitions of the events table that the range reaches, in order: from the files the table's
/// log lists, without reading them. (A range that starts or ends within a date may find no row there.)
fn dates(events: &DeltaTable, range: &Range) -> Result<Vec<String>, LakeError> {
    let first = range.from.map(table::date_of);
    let last = range.to.map(|to| table::date_of(to - 1));
    Ok(table::files_per_date(events, EVENTS)?
        .into_keys()
        .filter(|date| first.as_ref().is_none_or(|f| date >= f))
        .filter(|date| last.as_ref().is_none_or(|l| date <= l))
        .collect())
}

pub(super) fn int64<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array, LakeError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| LakeError::Invalid {
            table: EVENTS.to_string(),
            reason: format!("column {name} is missing or not a long"),
        })
}

/// A batch read from the table (its columns already in the event schema's types: see `ordered_scan`) as
/// rows of the event schema, the columns not read left empty.
fn decoded(
    schema: &EventSchema,
    input: &Arc<Input>,
    batch: &RecordBatch,
    answered: &[(String, String)],
) -> Result<SourceMessage, LakeError> {
    let n = batch.num_rows();
    let times = int64(batch, TIME_NS)?;
    let offsets = int64(batch, OFFSET)?;
    // The hunts' row filters the scan answered, each a column of the scan's batch.
    let masks: std::collections::HashMap<String, BooleanArray> = answered
        .iter()
        .filter_map(|(hunt, column)| {
            let mask = batch.column_by_name(column)?.as_boolean_opt()?.clone();
            Some((hunt.clone(), mask))
        })
        .collect();
    let time = Arc::new(
        TimestampNanosecondArray::new(times.values().clone(), times.nulls().cloned())
            .with_timezone(UTC),
    ) as ArrayRef;
    let mut columns = Vec::with_capacity(schema.columns.len());
    for (i, column) in schema.columns.iter().enumerate() {
        let ty = column.ty.data_type();
        columns.push(if i == schema.time_index {
            Arc::clone(&time)
        } else {
            match batch.column_by_name(&column.name) {
                Some(c) => Arc::clone(c),
                None => new_null_array(&ty, n),
            }
        });
    }
    let batch = RecordBatch::try_new(Arc::clone(schema.arrow()), columns)?;
    let received = Instant::now();
    let records = offsets
        .values()
        .iter()
        .map(|&offset| RawRecord {
            input: Arc::clone(input),
            offset: offset as u64,
            bytes: Bytes::new(),
            received,
            source_timestamp: None,
        })
        .collect();
    Ok(SourceMessage::Decoded {
        batch,
        records,
        newest: times.iter().flatten().max(),
        masks: (!masks.is_empty()).then(|| Arc::new(masks)),
    })
}

/// The records of a batch read from the table (`_raw`, `_offset`), to decode again.
fn raw_records(input: &Arc<Input>, batch: &RecordBatch) -> Result<Vec<RawRecord>, LakeError> {
    let raws = cast(
        batch
            .column_by_name(RAW)
            .ok_or_else(|| LakeError::Invalid {
                table: EVENTS.to_string(),
                reason: "column _raw is missing".to_string(),
            })?,
        &datafusion::arrow::datatypes::DataType::Utf8,
    )?;
    let raws = raws
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8");
    let offsets = int64(batch, OFFSET)?;
    let received = Instant::now();
    Ok((0..batch.num_rows())
        .map(|i| RawRecord {
            input: Arc::clone(input),
            offset: offsets.value(i) as u64,
            bytes: if raws.is_null(i) {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(raws.value(i).as_bytes())
            },
            received,
            source_timestamp: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_dates() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1_000_000_000));
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000_000_000));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_time("9999-01-01").unwrap_err().contains("2262-04-11"));
    }

    #[test]
    fn a_range_prunes_dates_and_bounds_the_time() {
        let day = 86_400_000_000_000i64;
        let r = Range {
            from: Some(day),
            to: Some(3 * day),
        };
        assert_eq!(
            predicate(&r),
            format!(
                "TRUE AND event_date >= '1970-01-02' AND _time_ns >= {day} AND event_date <= '1970-01-03' AND _time_ns < {}",
                3 * day
            )
        );
        assert_eq!(predicate(&Range::default()), "TRUE");
    }
}
