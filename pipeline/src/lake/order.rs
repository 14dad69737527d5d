//! The retro-hunt's rows in event-time order, sorting only what is out of order.
//!
//! The lake sink writes rows in the order they arrived. A file written from one input read in order (a
//! file of events, one topic partition) is then already in (time, input, offset) order, and so is each
//! partition of a scan over such files. Sorting them again took a seventh of a retro-hunt's CPU
//! (`benches/README.md`). Here each partition is collected, as a sort would collect it, and checked in
//! one pass; only a partition out of order is sorted. Partitions whose ranges follow one another are
//! then chained as they are; the others are merged.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{LexicographicalComparator, SortColumn, concat_batches};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::runtime::SpawnedTask;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::sorts::sort::sort_batch_chunked;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{SendableRecordBatchStream, execute_stream};
use futures::TryStreamExt;

/// The rows of the `partitions` (of `schema`) in `order`: each partition read on its own task (as a
/// sort per partition would be) and sorted only when out of order, then the partitions chained or
/// merged.
pub(super) async fn in_order(
    partitions: Vec<SendableRecordBatchStream>,
    schema: SchemaRef,
    order: LexOrdering,
    ctx: Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let batch_size = ctx.session_config().batch_size();
    let tasks: Vec<_> = partitions
        .into_iter()
        .map(|stream| {
            let order = order.clone();
            SpawnedTask::spawn(async move {
                let batches: Vec<RecordBatch> = stream.try_collect().await?;
                sorted_run(batches, &order, batch_size)
            })
        })
        .collect();
    let mut runs = Vec::with_capacity(tasks.len());
    for task in tasks {
        let run = task
            .join()
            .await
            .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))??;
        if !run.is_empty() {
            runs.push(run);
        }
    }
    let chain = chained(&mut runs, &order)?;
    tracing::debug!(
        runs = runs.len(),
        chained = chain.is_some(),
        "The scan's partitions put in order."
    );
    if let Some(chain) = chain {
        let batches = futures::stream::iter(chain.into_iter().map(Ok));
        return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)));
    }
    let source = MemorySourceConfig::try_new(&runs, Arc::clone(&schema), None)?
        .try_with_sort_information(vec![order.clone()])?;
    let merged = SortPreservingMergeExec::new(order, DataSourceExec::from_data_source(source));
    execute_stream(Arc::new(merged), ctx)
}

/// The non-empty `batches` of one partition in `order`: as they are when already in it, otherwise
/// sorted into batches of `batch_size` rows.
fn sorted_run(
    batches: Vec<RecordBatch>,
    order: &LexOrdering,
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    if is_sorted(&batches, order)? {
        return Ok(batches);
    }
    tracing::debug!(
        rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        "A partition of the scan is out of order: sorted."
    );
    let all = concat_batches(&batches[0].schema(), &batches)?;
    drop(batches);
    sort_batch_chunked(&all, order, batch_size.max(1))
}

/// Whether the rows of the non-empty `batches`, one after the other, are in `order`.
fn is_sorted(batches: &[RecordBatch], order: &LexOrdering) -> Result<bool> {
    let mut previous: Option<Vec<SortColumn>> = None;
    for batch in batches {
        let keys = keys(batch, order)?;
        if let Some(last) = &previous
            && compare(last, 0, &keys, 0)? == Ordering::Greater
        {
            return Ok(false);
        }
        let within = LexicographicalComparator::try_new(&keys)?;
        if (1..batch.num_rows()).any(|i| within.compare(i - 1, i) == Ordering::Greater) {
            return Ok(false);
        }
        previous = Some(row(&keys, batch.num_rows() - 1));
    }
    Ok(true)
}

/// The runs (each in `order`, none empty) one after the other when each ends no later than the next
/// begins, in the order of their first rows; `None` when their ranges overlap.
fn chained(runs: &mut [Vec<RecordBatch>], order: &LexOrdering) -> Result<Option<Vec<RecordBatch>>> {
    let mut ends = Vec::with_capacity(runs.len());
    for run in runs.iter() {
        let (first, last) = (&run[0], &run[run.len() - 1]);
        ends.push((
            row(&keys(first, order)?, 0),
            row(&keys(last, order)?, last.num_rows() - 1),
        ));
    }
    let mut index: Vec<usize> = (0..runs.len()).collect();
    let mut failed = None;
    index.sort_by(|&a, &b| {
        compare(&ends[a].0, 0, &ends[b].0, 0).unwrap_or_else(|e| {
            failed = Some(e);
            Ordering::Equal
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    for pair in index.windows(2) {
        if compare(&ends[pair[0]].1, 0, &ends[pair[1]].0, 0)? == Ordering::Greater {
            return Ok(None);
        }
    }
    Ok(Some(
        index
            .into_iter()
            .flat_map(|i| std::mem::take(&mut runs[i]))
            .collect(),
    ))
}

/// The sort keys of `batch`.
fn keys(batch: &RecordBatch, order: &LexOrdering) -> Result<Vec<SortColumn>> {
    order
        .iter()
        .map(|e| e.evaluate_to_sort_column(batch))
        .collect()
}

/// Row `i` of `keys` alone.
fn row(keys: &[SortColumn], i: usize) -> Vec<SortColumn> {
    keys.iter()
        .map(|k| SortColumn {
            values: k.values.slice(i, 1),
            options: k.options,
        })
        .collect()
}

/// Row `i` of `a` against row `j` of `b`, key by key (the options of `a`'s keys).
fn compare(a: &[SortColumn], i: usize, b: &[SortColumn], j: usize) -> Result<Ordering> {
    for (x, y) in a.iter().zip(b) {
        let cmp = datafusion::arrow::array::make_comparator(
            x.values.as_ref(),
            y.values.as_ref(),
            x.options.unwrap_or_default(),
        )?;
        match cmp(i, j) {
            Ordering::Equal => continue,
            other => return Ok(other),
        }
    }
    Ok(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::compute::SortOptions;
    use datafusion::datasource::MemTable;
    use datafusion::physical_expr::{PhysicalSortExpr, expressions};
    use datafusion::physical_plan::ExecutionPlanProperties;
    use datafusion::prelude::SessionContext;

    fn batch(times: &[i64], inputs: &[&str], offsets: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("t", Arc::new(Int64Array::from(times.to_vec())) as ArrayRef),
            ("i", Arc::new(StringArray::from(inputs.to_vec()))),
            ("o", Arc::new(Int64Array::from(offsets.to_vec()))),
        ])
        .unwrap()
    }

    fn order(schema: &SchemaRef) -> LexOrdering {
        let keys = ["t", "i", "o"].map(|c| {
            PhysicalSortExpr::new(
                expressions::col(c, schema).unwrap(),
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            )
        });
        LexOrdering::new(keys).unwrap()
    }

    /// `partitions` through `in_order`: the rows as (time, input, offset), and the output batches.
    async fn through(
        partitions: Vec<Vec<RecordBatch>>,
    ) -> (Vec<(i64, String, i64)>, Vec<RecordBatch>) {
        let schema = partitions[0][0].schema();
        let table = MemTable::try_new(Arc::clone(&schema), partitions).unwrap();
        let ctx = SessionContext::new();
        let state = ctx.state();
        let plan = datafusion::catalog::TableProvider::scan(&table, &state, None, &[], None)
            .await
            .unwrap();
        let partitions = (0..plan.output_partitioning().partition_count())
            .map(|p| plan.execute(p, ctx.task_ctx()).unwrap())
            .collect();
        let stream = in_order(
            partitions,
            Arc::clone(&schema),
            order(&schema),
            ctx.task_ctx(),
        )
        .await
        .unwrap();
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        let mut rows = Vec::new();
        for b in &batches {
            let t = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let i = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            let o = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
            for r in 0..b.num_rows() {
                rows.push((t.value(r), i.value(r).to_string(), o.value(r)));
            }
        }
        (rows, batches)
    }

    #[tokio::test]
    async fn partitions_already_in_order_pass_through_uncopied() {
        // Two partitions in order, the later one first; ties on time broken by input, then offset.
        let late = vec![batch(&[20, 20, 30], &["a", "b", "a"], &[5, 1, 6])];
        let early = vec![
            batch(&[1, 2, 2], &["a", "a", "a"], &[1, 2, 3]),
            batch(&[2, 20], &["b", "a"], &[1, 4]),
        ];
        let (rows, batches) = through(vec![late.clone(), early.clone()]).await;
        let times: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(times, [1, 2, 2, 2, 20, 20, 20, 30]);
        assert_eq!(rows[4], (20, "a".to_string(), 4));
        // The very batches that came in: nothing sorted, copied or merged.
        let same = |a: &RecordBatch, b: &RecordBatch| {
            a.column(0).to_data().buffers()[0].as_ptr()
                == b.column(0).to_data().buffers()[0].as_ptr()
        };
        assert_eq!(batches.len(), 3);
        assert!(same(&batches[0], &early[0]) && same(&batches[1], &early[1]));
        assert!(same(&batches[2], &late[0]));
    }

    #[tokio::test]
    async fn rows_out_of_order_within_or_across_partitions_are_sorted_and_merged() {
        // In order within each partition but overlapping: merged.
        let (rows, _) = through(vec![
            vec![batch(&[1, 5, 9], &["a", "a", "a"], &[1, 2, 3])],
            vec![batch(&[2, 5, 7], &["a", "a", "b"], &[9, 1, 1])],
        ])
        .await;
        let keys: Vec<(i64, i64)> = rows.iter().map(|r| (r.0, r.2)).collect();
        assert_eq!(keys, [(1, 1), (2, 9), (5, 1), (5, 2), (7, 1), (9, 3)]);
        // Out of order only across a batch boundary of one partition.
        let (rows, _) = through(vec![vec![
            batch(&[1, 3], &["a", "a"], &[1, 2]),
            batch(&[2, 4], &["a", "a"], &[3, 4]),
        ]])
        .await;
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    /// Random partitions, some in order and some not, give every row once, in order.
    #[tokio::test]
    async fn any_partitions_give_every_row_once_in_order() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..40 {
            let mut partitions = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..1 + next(4) {
                let sorted = next(2) == 0;
                let mut rows: Vec<(i64, String, i64)> = (0..1 + next(30))
                    .map(|_| {
                        (
                            next(12) as i64,
                            ["a", "b"][next(2) as usize].to_string(),
                            next(50) as i64,
                        )
                    })
                    .collect();
                if sorted {
                    rows.sort();
                }
                expected.extend(rows.iter().cloned());
                let mut batches = Vec::new();
                let mut rest = rows.as_slice();
                while !rest.is_empty() {
                    let (now, later) = rest.split_at((1 + next(8) as usize).min(rest.len()));
                    let t: Vec<i64> = now.iter().map(|r| r.0).collect();
                    let i: Vec<&str> = now.iter().map(|r| r.1.as_str()).collect();
                    let o: Vec<i64> = now.iter().map(|r| r.2).collect();
                    batches.push(batch(&t, &i, &o));
                    rest = later;
                }
                partitions.push(batches);
            }
            expected.sort();
            let (rows, _) = through(partitions).await;
            assert_eq!(rows, expected);
        }
    }
}
