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
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray, new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::{conjunction, disjunction, split_conjunction};
use datafusion::prelude::SessionConfig;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

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

/// What a retro-hunt's scan of the events table keeps: the rows some hunt can use — the hunts' row
/// filters OR-ed, with the conjuncts several hunts share taken out of the OR (`a AND b OR a AND c` is
/// `a AND (b OR c)`, in SQL's three-valued logic too), the most shared first. Hunts over one kind of
/// event repeat its test (the channel and event id of a process creation); in one plain OR the scan
/// would evaluate it once per hunt over every row of the range. `None`: a hunt needs every row.
pub fn scan_filter(filters: &[Expr]) -> Option<Expr> {
    let conjuncts = filters
        .iter()
        .map(|f| split_conjunction(f).into_iter().cloned().collect())
        .collect();
    factored(conjuncts)
}

/// The OR of the conjunctions `filters`, shared conjuncts factored out (see [`scan_filter`]).
fn factored(filters: Vec<Vec<Expr>>) -> Option<Expr> {
    if filters.is_empty() || filters.iter().any(Vec::is_empty) {
        return None;
    }
    // The conjunct in the most filters (the first seen among equals: the hunts' order).
    let mut best: Option<(&Expr, usize)> = None;
    for conjunct in filters.iter().flatten() {
        let n = filters.iter().filter(|f| f.contains(conjunct)).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((conjunct, n));
        }
    }
    let Some((shared, _)) = best.filter(|(_, n)| *n > 1) else {
        return disjunction(filters.into_iter().filter_map(conjunction));
    };
    let shared = shared.clone();
    let (with, without): (Vec<_>, Vec<_>) = filters.into_iter().partition(|f| f.contains(&shared));
    let rest: Vec<Vec<Expr>> = with
        .into_iter()
        .map(|f| f.into_iter().filter(|c| *c != shared).collect())
        .collect();
    let with = match factored(rest) {
        Some(rest) => shared.and(rest),
        None => shared,
    };
    if without.is_empty() {
        return Some(with);
    }
    Some(with.or(factored(without)?))
}

/// The rows of `frame` (a scan of the events table) that `filter` keeps, in event-time order.
///
/// The filter runs on the scan's batches, above the scan, not inside the Parquet reader (where delta-rs
/// would push it, with late materialisation): the hunts' tests are on event kinds that interleave row by
/// row, so the reader's selection of the rows to decode for the other columns is a run of a row or two
/// at a time, which cost more than decoding those columns whole (retro-hunt over 1M events: 1.35 →
/// 1.15 s, `benches/README.md`). The time range stays in the scan, pruning dates and row groups. A filter
/// this table cannot take (a column stored differently) is left to the hunts.
async fn ordered_scan(
    ctx: &SessionContext,
    frame: datafusion::dataframe::DataFrame,
    filter: Option<&Expr>,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, LakeError> {
    use datafusion::arrow::compute::SortOptions;
    use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr, expressions};
    use datafusion::physical_plan::filter::FilterExec;
    use datafusion::physical_plan::sorts::sort::SortExec;
    use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
    use datafusion::physical_plan::{ExecutionPlan, execute_stream};

    let schema = frame.schema().clone();
    let mut plan: Arc<dyn ExecutionPlan> = frame.create_physical_plan().await?;
    if let Some(filter) = filter {
        tracing::debug!(%filter, "The hunts' row filter for the lake scan.");
        match ctx
            .state()
            .create_physical_expr(filter.clone(), &schema)
            .and_then(|predicate| FilterExec::try_new(predicate, Arc::clone(&plan)))
        {
            Ok(filtered) => plan = Arc::new(filtered),
            Err(e) => {
                tracing::debug!(error = %e, "The hunts' row filter is left to the hunts.")
            }
        }
    }
    let order = [TIME_NS, INPUT, OFFSET]
        .iter()
        .map(|c| {
            Ok(PhysicalSortExpr::new(
                expressions::col(c, &plan.schema())?,
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            ))
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let order = LexOrdering::new(order).expect("three sort keys");
    // Each partition of the scan sorted on its own, then merged.
    let sorted = SortExec::new(order.clone(), plan).with_preserve_partitioning(true);
    let merged = SortPreservingMergeExec::new(order, Arc::new(sorted));
    Ok(execute_stream(Arc::new(merged), ctx.task_ctx())?)
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
    parsed
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("`{t}` is out of range"))
}

/// A session over the lake for ad-hoc queries: `lake_events` and `lake_alerts` (the tables as stored),
/// and the views hunts read — `events` (the range of the events table with the event schema's types) and
/// `alerts` — with the functions hunts may call.
pub async fn session(
    settings: &LakeSettings,
    schema: &EventSchema,
    range: &Range,
) -> Result<SessionContext, LakeError> {
    // DataFusion's own settings may be tuned from the environment (DATAFUSION_EXECUTION_…).
    let config = SessionConfig::from_env()?.with_information_schema(false);
    let ctx = SessionContext::new_with_config(config);
    crate::query::plan::register_functions(&ctx);
    for (name, registered) in [(EVENTS, "lake_events"), (ALERTS, "lake_alerts")] {
        let table = super::maintain::open(settings, name).await?;
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| LakeError::delta(name, e))?;
        let provider = table.table_provider().await.map_err(LakeError::from)?;
        ctx.register_table(registered, provider)?;
    }
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
    ctx.sql(&format!(
        "CREATE VIEW alerts AS SELECT id, arrow_cast({TIME_NS}, 'Timestamp(Nanosecond, Some(\"{UTC}\"))') AS time, hunt_id, title, severity, json FROM lake_alerts WHERE {predicate}"
    ))
    .await?;
    Ok(ctx)
}

/// How a retro-hunt reads the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadMode {
    /// These columns of the event schema, already decoded (the others are left empty); only the rows
    /// `filter` keeps, when given (the hunts' row filters OR-ed: no hunt can use the others).
    Columns {
        columns: Vec<String>,
        filter: Option<Expr>,
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
        let ctx = session(&self.settings, &self.schema, &self.range).await?;
        let dates = dates(&ctx, &self.range).await?;
        let input = Input::new("lake", InputKind::Lake);
        if tx
            .send(SourceMessage::Started(Arc::clone(&input)))
            .await
            .is_err()
        {
            return Ok(());
        }
        let (select, filter) = match &self.mode {
            ReadMode::Columns { columns, filter } => {
                let mut list: Vec<String> = columns
                    .iter()
                    .filter(|c| c.as_str() != self.schema.time_column())
                    .cloned()
                    .collect();
                list.extend([TIME_NS.to_string(), INPUT.to_string(), OFFSET.to_string()]);
                (list.join(", "), filter.clone())
            }
            ReadMode::Raw => (format!("{RAW}, {TIME_NS}, {INPUT}, {OFFSET}"), None),
        };
        let predicate = predicate(&self.range);
        // The rows come in event-time order: the share of the range's time span reached is the share
        // of the work done.
        let span = span(&ctx, &self.range).await?;
        let mut progress = Progress::new(self.progress_every);
        let mut rows = 0u64;
        for (done, date) in dates.iter().enumerate() {
            let sql =
                format!("SELECT {select} FROM lake_events WHERE {predicate} AND {DATE} = '{date}'");
            let frame = ctx.sql(&sql).await?;
            let mut stream = ordered_scan(&ctx, frame, filter.as_ref()).await?;
            while let Some(batch) = stream.next().await {
                if shutdown.is_cancelled() {
                    progress.stopped();
                    return Ok(());
                }
                let batch = batch?;
                rows += batch.num_rows() as u64;
                let newest = int64(&batch, TIME_NS)?.iter().flatten().max();
                let message = match &self.mode {
                    ReadMode::Columns { .. } => decoded(&self.schema, &input, &batch)?,
                    ReadMode::Raw => SourceMessage::Records(raw_records(&input, &batch)?),
                };
                if tx.send(message).await.is_err() {
                    return Ok(());
                }
                let share = span
                    .zip(newest)
                    .map(|((lo, hi), t)| (t - lo) as f64 / (hi - lo).max(1) as f64);
                let mut fields = serde_json::Map::new();
                fields.insert("dates_done".into(), done.into());
                fields.insert("dates".into(), dates.len().into());
                fields.insert("date".into(), date.as_str().into());
                let message = || {
                    let reached = newest
                        .map(|t| {
                            chrono::DateTime::from_timestamp_nanos(t)
                                .format("%Y-%m-%d %H:%M:%S")
                                .to_string()
                        })
                        .unwrap_or_default();
                    format!(
                        "event time {reached} · date {}/{}",
                        (done + 1).min(dates.len()),
                        dates.len()
                    )
                };
                progress.update(rows, share, message, fields);
            }
        }
        let mut fields = serde_json::Map::new();
        fields.insert("dates_done".into(), dates.len().into());
        fields.insert("dates".into(), dates.len().into());
        progress.finish(Some(fields));
        let _ = tx.send(SourceMessage::Stopped(input)).await;
        Ok(())
    }
}

/// The first and last event time of the range (from the files' statistics where they answer).
async fn span(ctx: &SessionContext, range: &Range) -> Result<Option<(i64, i64)>, LakeError> {
    let batches = ctx
        .sql(&format!(
            "SELECT min({TIME_NS}), max({TIME_NS}) FROM lake_events WHERE {}",
            predicate(range)
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

/// The date partitions holding events of the range, in order.
async fn dates(ctx: &SessionContext, range: &Range) -> Result<Vec<String>, LakeError> {
    let batches = ctx
        .sql(&format!(
            "SELECT DISTINCT {DATE} FROM lake_events WHERE {} AND {DATE} IS NOT NULL ORDER BY {DATE}",
            predicate(range)
        ))
        .await?
        .collect()
        .await?;
    let mut dates = Vec::new();
    for batch in &batches {
        let column = cast(
            batch.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )?;
        let column = column
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to Utf8");
        dates.extend(column.iter().flatten().map(str::to_string));
    }
    Ok(dates)
}

fn int64<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array, LakeError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| LakeError::Invalid {
            table: EVENTS.to_string(),
            reason: format!("column {name} is missing or not a long"),
        })
}

/// A batch read from the table as rows of the event schema (the columns not read left empty).
fn decoded(
    schema: &EventSchema,
    input: &Arc<Input>,
    batch: &RecordBatch,
) -> Result<SourceMessage, LakeError> {
    let n = batch.num_rows();
    let times = int64(batch, TIME_NS)?;
    let offsets = int64(batch, OFFSET)?;
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
                Some(c) if c.data_type() == &ty => Arc::clone(c),
                Some(c) => cast(c, &ty)?,
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
    }

    #[test]
    fn conjuncts_hunts_share_are_tested_once_in_the_scan_filter() {
        use datafusion::prelude::{col, lit};
        let (a, b, c, d, e) = (
            col("channel").eq(lit("security")),
            col("event_id").eq(lit(4688)),
            col("command_line").like(lit("%-enc%")),
            col("command_line").like(lit("%mimikatz%")),
            col("event_id").eq(lit(4624)),
        );
        let hunts = [
            a.clone().and(b.clone()).and(c.clone()),
            a.clone().and(b.clone()).and(d.clone()),
            a.clone().and(e.clone()),
            d.clone(),
        ];
        assert_eq!(
            scan_filter(&hunts),
            Some(
                a.clone()
                    .and(b.clone().and(c.clone().or(d.clone())).or(e.clone()))
                    .or(d.clone())
            )
        );
        // A hunt whose filter is all shared: the shared part alone is its test.
        assert_eq!(
            scan_filter(&[a.clone().and(b.clone()), a.clone()]),
            Some(a.clone())
        );
        // Nothing shared: the plain OR; no hunts, no filter.
        assert_eq!(
            scan_filter(&[c.clone(), e.clone()]),
            Some(c.clone().or(e.clone()))
        );
        assert_eq!(scan_filter(&[]), None);
    }

    #[tokio::test]
    async fn a_scan_gives_the_rows_the_filter_keeps_in_event_time_order() {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::datasource::MemTable;
        use datafusion::prelude::{col, lit};
        // Two partitions, each out of order; times tie across inputs and offsets.
        let part = |times: &[i64], inputs: &[&str], offsets: &[i64], ids: &[i64]| {
            RecordBatch::try_from_iter([
                (
                    TIME_NS,
                    Arc::new(Int64Array::from(times.to_vec())) as ArrayRef,
                ),
                (INPUT, Arc::new(StringArray::from(inputs.to_vec()))),
                (OFFSET, Arc::new(Int64Array::from(offsets.to_vec()))),
                ("event_id", Arc::new(Int64Array::from(ids.to_vec()))),
            ])
            .unwrap()
        };
        let a = part(
            &[30, 10, 20, 10],
            &["b", "a", "a", "a"],
            &[1, 2, 3, 1],
            &[1, 1, 2, 1],
        );
        let b = part(&[5, 30, 10], &["a", "a", "b"], &[9, 8, 7], &[1, 1, 1]);
        let table = MemTable::try_new(a.schema(), vec![vec![a], vec![b]]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let read = |filter: Option<Expr>| {
            let ctx = ctx.clone();
            async move {
                let frame = ctx.table("t").await.unwrap();
                let stream = ordered_scan(&ctx, frame, filter.as_ref()).await.unwrap();
                let batches: Vec<RecordBatch> = stream.map(|b| b.unwrap()).collect().await;
                let mut rows = Vec::new();
                for batch in batches {
                    let times = int64(&batch, TIME_NS).unwrap();
                    let offsets = int64(&batch, OFFSET).unwrap();
                    let inputs = batch.column_by_name(INPUT).unwrap();
                    let inputs = inputs.as_any().downcast_ref::<StringArray>().unwrap();
                    for i in 0..batch.num_rows() {
                        rows.push((
                            times.value(i),
                            inputs.value(i).to_string(),
                            offsets.value(i),
                        ));
                    }
                }
                rows
            }
        };
        let row = |t: i64, i: &str, o: i64| (t, i.to_string(), o);
        assert_eq!(
            read(Some(col("event_id").eq(lit(1i64)))).await,
            [
                row(5, "a", 9),
                row(10, "a", 1),
                row(10, "a", 2),
                row(10, "b", 7),
                row(30, "a", 8),
                row(30, "b", 1)
            ]
        );
        assert_eq!(read(None).await.len(), 7);
        // A filter over a column the scan lacks is left to the hunts: every row comes.
        assert_eq!(read(Some(col("image").eq(lit("x")))).await.len(), 7);
    }

    /// The factored filter keeps exactly the rows the plain OR keeps, NULLs included.
    #[tokio::test]
    async fn the_factored_scan_filter_keeps_the_rows_the_plain_or_keeps() {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::prelude::{col, lit};
        let channels = [Some("security"), Some("sysmon"), None];
        let ids = [Some(1), Some(4688), Some(4624), None];
        let lines = [Some("x -enc y"), Some("mimikatz"), Some("none"), None];
        let (mut c, mut i, mut l) = (vec![], vec![], vec![]);
        for ch in channels {
            for id in ids {
                for line in lines {
                    c.push(ch);
                    i.push(id);
                    l.push(line);
                }
            }
        }
        let batch = RecordBatch::try_from_iter([
            ("channel", Arc::new(StringArray::from(c)) as ArrayRef),
            ("event_id", Arc::new(Int64Array::from(i)) as ArrayRef),
            ("command_line", Arc::new(StringArray::from(l)) as ArrayRef),
        ])
        .unwrap();
        let (a, b) = (
            col("channel").eq(lit("security")),
            col("event_id").eq(lit(4688)),
        );
        let hunts = [
            a.clone()
                .and(b.clone())
                .and(col("command_line").like(lit("%-enc%"))),
            a.clone()
                .and(b.clone())
                .and(col("command_line").like(lit("%mimikatz%"))),
            a.clone().and(col("event_id").not_eq(lit(1))),
            col("channel").eq(lit("sysmon")).and(b.clone()),
        ];
        let ctx = SessionContext::new();
        ctx.register_batch("t", batch).unwrap();
        let count = |filter: Expr| {
            let ctx = ctx.clone();
            async move {
                ctx.table("t")
                    .await
                    .unwrap()
                    .filter(filter)
                    .unwrap()
                    .count()
                    .await
                    .unwrap()
            }
        };
        let plain = count(disjunction(hunts.clone()).unwrap()).await;
        let factored = count(scan_filter(&hunts).unwrap()).await;
        // security with event id 4688 or 4624 (8 rows), sysmon with 4688 (4 rows).
        assert_eq!((factored, plain), (plain, 12));
        assert_ne!(scan_filter(&hunts), disjunction(hunts));
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
