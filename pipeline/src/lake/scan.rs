//! The retro-hunt's scan of one date of the events table: the rows some hunt can use (the hunts' row
//! filters OR-ed, shared tests factored out), in event-time order.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, ParquetRowSelection};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::{conjunction, disjunction, split_conjunction};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr, expressions};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, SendableRecordBatchStream,
};
use futures::TryStreamExt;

use super::LakeError;
use super::slices::Part;
use super::table::{INPUT, OFFSET, TIME_NS};

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

/// The rows of `plan` (a scan of the events table) that `tests` keep, in event-time order.
///
/// The filter runs on the scan's batches, above the scan, not inside the Parquet reader (where delta-rs
/// would push it, with late materialisation): the hunts' tests are on event kinds that interleave row by
/// row, so the reader's selection of the rows to decode for the other columns is a run of a row or two
/// at a time, which cost more than decoding those columns whole (retro-hunt over 1M events: 1.35 →
/// 1.15 s, `benches/README.md`). The time range stays in the scan, pruning dates and row groups.
///
/// The columns `wanted` names come cast to its types (text is read as views), on the scan's tasks, one
/// per partition, before the rows are put in order (see [`for_files`]).
///
/// Each hunt's row filter in `tests` is answered there for the kept rows, while their text is still
/// views into the decoded pages, where a value repeated on a page is tested once: the answers come as
/// boolean columns after the others, named as [`Tests::answered`] says.
pub(super) async fn ordered_scan(
    ctx: &SessionContext,
    plan: Arc<dyn ExecutionPlan>,
    tests: &Tests,
    wanted: Option<&Schema>,
    scanned: &Arc<AtomicU64>,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, LakeError> {
    let state = ctx.state();
    let (predicate, answers, answered) = (&tests.predicate, &tests.answers, &tests.answered);
    let output = super::kept::with_types(&plan.schema(), wanted);
    let output = match answered.is_empty() {
        true => output,
        false => {
            let mut fields: Vec<_> = output.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.extend(
                answered
                    .iter()
                    .map(|(_, column)| Field::new(column, DataType::Boolean, false)),
            );
            Arc::new(Schema::new_with_metadata(fields, output.metadata().clone()))
        }
    };
    let batch_size = state.config().batch_size();
    let partitions = (0..plan.output_partitioning().partition_count())
        .map(|p| {
            Ok(super::kept::kept(
                plan.execute(p, ctx.task_ctx())?,
                predicate.clone(),
                answers.clone(),
                Arc::clone(&output),
                batch_size,
                Arc::clone(scanned),
            ))
        })
        .collect::<datafusion::error::Result<Vec<SendableRecordBatchStream>>>()?;
    let order = event_order(&output)?;
    Ok(super::order::in_order(partitions, output, order, ctx.task_ctx()).await?)
}

/// What a retro-hunt's scan tests, compiled once for every slice of the range: the rows to keep and
/// each hunt's row filter (see [`Tests::new`]).
pub(super) struct Tests {
    predicate: Option<Arc<dyn PhysicalExpr>>,
    answers: Vec<Arc<dyn PhysicalExpr>>,
    /// (hunt id, the column of its answer), in the order of the answers.
    pub answered: Vec<(String, String)>,
}

impl Tests {
    /// `filter` (the rows some hunt can use) and each of `hunts` (hunt id, its row filter) over the
    /// columns `schema` names. A filter this table cannot take (a column stored differently) is left
    /// to the hunts: every row is kept. A hunt's filter the table cannot take is left out (the hunt
    /// evaluates its own), and so are all when the scan has no filter (it keeps every row).
    pub(super) fn new(
        ctx: &SessionContext,
        schema: &DFSchema,
        filter: Option<&Expr>,
        hunts: &[(String, Expr)],
    ) -> Tests {
        let state = ctx.state();
        let compile = |e: &Expr| {
            state
                .create_physical_expr(e.clone(), schema)
                .and_then(crate::query::selective::selective)
        };
        let predicate = filter.and_then(|filter| {
            tracing::debug!(%filter, "The hunts' row filter for the lake scan.");
            compile(filter)
                .inspect_err(
                    |e| tracing::debug!(error = %e, "The hunts' row filter is left to the hunts."),
                )
                .ok()
        });
        let mut answers = Vec::new();
        let mut answered = Vec::new();
        // Without a scan filter every row is kept, and each hunt tests its own.
        let hunts = if predicate.is_some() { hunts } else { &[] };
        for (hunt, filter) in hunts {
            match compile(filter) {
                Ok(answer) => {
                    answers.push(answer);
                    answered.push((hunt.clone(), format!("{ANSWER_PREFIX}{}", answered.len())));
                }
                Err(e) => {
                    tracing::debug!(%hunt, error = %e, "A hunt's row filter is left to the hunt.")
                }
            }
        }
        Tests {
            predicate,
            answers,
            answered,
        }
    }
}

/// `plan`, a scan of the events table, reading only `files` (paths relative to the table), each piece
/// of a file (the byte ranges the plan split it into, or the one row group asked) a partition of its
/// own, in the order of `files`:
/// a partition then gives one file's rows as the file holds them (in order when the sink wrote them
/// from an ordered input), where the scan's own partitions read several files one after another in an
/// order of delta-rs' choosing, which the retro-hunt had to sort. A file the plan does not read (its
/// statistics put it outside the range) is left out. `None` when `plan` is not one scan of files.
pub(super) fn for_files(
    plan: &Arc<dyn ExecutionPlan>,
    files: &[Part],
) -> Result<Option<Arc<dyn ExecutionPlan>>, LakeError> {
    let mut scans = 0;
    let rewritten = Arc::clone(plan).transform_up(|node| {
        let Some(config) = node
            .downcast_ref::<DataSourceExec>()
            .and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
        else {
            return Ok(Transformed::no(node));
        };
        scans += 1;
        let read: Vec<&PartitionedFile> =
            config.file_groups.iter().flat_map(|g| g.iter()).collect();
        let mut groups = Vec::new();
        for part in files {
            let mut pieces: Vec<PartitionedFile> = read
                .iter()
                .filter(|f| {
                    f.object_meta
                        .location
                        .as_ref()
                        .ends_with(part.path.as_str())
                })
                .map(|f| (*f).clone())
                .collect();
            if let Some((group, count)) = part.row_group {
                // One row group: the file whole (not a byte range of it), told which to read.
                let Some(mut file) = pieces.into_iter().next() else {
                    continue;
                };
                file.range = None;
                if file.extensions.get::<ParquetRowSelection>().is_some() {
                    return Err(DataFusionError::NotImplemented(format!(
                        "a row group of {}, read with a row selection",
                        part.path
                    )));
                }
                // Any plan the table gave (e.g. rows deleted) still applies to the row group.
                let mut access = match file.extensions.get::<ParquetAccessPlan>() {
                    Some(given) if given.len() == count => given.clone(),
                    _ => ParquetAccessPlan::new_all(count),
                };
                for other in (0..count).filter(|i| *i != group) {
                    access.skip(other);
                }
                file.extensions.insert(access);
                groups.push(FileGroup::new(vec![file]));
                continue;
            }
            pieces.sort_by_key(|f| f.range.as_ref().map(|r| r.start));
            groups.extend(pieces.into_iter().map(|f| FileGroup::new(vec![f])));
        }
        let config = FileScanConfigBuilder::from(config.clone())
            .with_file_groups(groups)
            .with_output_partitioning(None)
            .build();
        Ok(Transformed::yes(
            DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
        ))
    })?;
    Ok((scans == 1).then_some(rewritten.data))
}

/// (time, input, offset), ascending: the order a retro-hunt's rows are read in.
fn event_order(schema: &SchemaRef) -> Result<LexOrdering, LakeError> {
    let order = [TIME_NS, INPUT, OFFSET]
        .iter()
        .map(|c| {
            Ok(PhysicalSortExpr::new(
                expressions::col(c, schema)?,
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            ))
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    Ok(LexOrdering::new(order).expect("three sort keys"))
}

/// The rows of `runs` (each in event-time order, batches of one schema, as [`ordered_scan`] gives
/// them) in event-time order.
pub(super) async fn merged(
    ctx: &SessionContext,
    runs: Vec<Vec<RecordBatch>>,
) -> Result<Vec<RecordBatch>, LakeError> {
    let Some(schema) = runs.iter().flatten().next().map(|b| b.schema()) else {
        return Ok(Vec::new());
    };
    let streams: Vec<SendableRecordBatchStream> = runs
        .into_iter()
        .map(|run| {
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&schema),
                futures::stream::iter(run.into_iter().map(Ok)),
            )) as SendableRecordBatchStream
        })
        .collect();
    let order = event_order(&schema)?;
    let stream = super::order::in_order(streams, schema, order, ctx.task_ctx()).await?;
    Ok(stream.try_collect().await?)
}

/// The names of the scan's columns of hunts' answers: `{ANSWER_PREFIX}0`, `…1`, ….
const ANSWER_PREFIX: &str = "_hunt_answer_";

#[cfg(test)]
mod tests {
    use super::super::read::int64;
    use super::*;
    use datafusion::arrow::array::{ArrayRef, RecordBatch};
    use futures::StreamExt;

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
                let schema = frame.schema().clone();
                let plan = frame.create_physical_plan().await.unwrap();
                let tests = Tests::new(&ctx, &schema, filter.as_ref(), &[]);
                let stream = ordered_scan(&ctx, plan, &tests, None, &Arc::default())
                    .await
                    .unwrap();
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
}
