//! Lake maintenance (`ghosthunt lake optimize | vacuum`), through delta-rs' own operations.

use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use deltalake_core::operations::optimize::OptimizeType;
use deltalake_core::{DeltaTable, FilterOp, FilterValue};

use super::table::{self, ALERTS, DATE, EVENTS, TIME_NS};
use super::{LakeError, LakeSettings};

/// Opens an existing table of the lake.
pub async fn open(settings: &LakeSettings, name: &str) -> Result<DeltaTable, LakeError> {
    let (url, builder) = table::builder(settings, name)?;
    let mut table = builder
        .build()
        .map_err(|e| LakeError::delta(url.as_str(), e))?;
    table
        .load()
        .await
        .map_err(|e| LakeError::delta(url.as_str(), e))?;
    Ok(table)
}

/// What `optimize` did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub table: &'static str,
    pub files_removed: u64,
    pub files_added: u64,
}

/// Memory the sort of a date being compacted in event-time order may hold before it spills to disk.
const SORT_MEMORY: usize = 1 << 30;

/// Compacts each table's small files (per date partition) into files of about `target_bytes`.
///
/// `in_time_order`: the events of each date held in several files are rewritten sorted by event time
/// (delta-rs' Z-order on `_time_ns` alone, which is a sort by it, spilling to disk past
/// [`SORT_MEMORY`]). Compacted as they are, a date's rows come one file after another in an order of
/// delta-rs' choosing, and a retro-hunt sorts each slice of them; sorted, it only orders rows of the same
/// time (by input and offset), and row groups' statistics prune a time range within the date. It costs
/// the sort: more time and memory than compaction. A date already in one file is left as it is (a
/// Z-order rewrites every file it is given).
pub async fn optimize(
    settings: &LakeSettings,
    target_bytes: u64,
    in_time_order: bool,
) -> Result<Vec<Compacted>, LakeError> {
    let mut report = Vec::new();
    let target = std::num::NonZeroU64::new(target_bytes.max(1)).expect("at least one byte");
    for name in [EVENTS, ALERTS] {
        let table = open(settings, name).await?;
        let snapshot = table.snapshot().map_err(|e| LakeError::delta(name, e))?;
        let schema = snapshot.snapshot().arrow_schema();
        let properties =
            super::layout::writer_properties(&super::layout::timestamp_columns(&schema));
        let dates = dates_of_several_files(&table)?;
        let optimize = table.optimize().with_target_size(target);
        let metrics = if name == EVENTS && in_time_order {
            if dates.is_empty() {
                report.push(Compacted {
                    table: name,
                    files_removed: 0,
                    files_added: 0,
                });
                continue;
            }
            let filters = [(
                DATE,
                FilterOp::In,
                FilterValue::Set(dates.iter().map(String::as_str).collect()),
            )];
            let runtime = RuntimeEnvBuilder::new()
                .with_memory_limit(SORT_MEMORY, 1.0)
                .build_arc()
                .map_err(|e| LakeError::Query(Box::new(e)))?;
            let session = SessionStateBuilder::new()
                .with_default_features()
                .with_runtime_env(runtime)
                .build();
            optimize
                .with_type(OptimizeType::ZOrder(vec![TIME_NS.to_string()]))
                .with_filters(&filters)
                .with_session_state(Arc::new(session))
                .with_writer_properties(properties)
                .await
        } else {
            optimize.with_writer_properties(properties).await
        }
        .map_err(|e| LakeError::delta(name, e))?
        .1;
        report.push(Compacted {
            table: name,
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
        });
    }
    Ok(report)
}

/// The dates of the events table held in more than one file.
fn dates_of_several_files(events: &DeltaTable) -> Result<Vec<String>, LakeError> {
    let snapshot = events.snapshot().map_err(|e| LakeError::delta(EVENTS, e))?;
    let mut files: std::collections::BTreeMap<String, usize> = Default::default();
    for file in snapshot.log_data().iter() {
        if let Some(date) = file.partition_values_map().remove(DATE).flatten() {
            *files.entry(date).or_default() += 1;
        }
    }
    Ok(files
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(date, _)| date)
        .collect())
}

/// What `vacuum` did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacuumed {
    pub table: &'static str,
    /// Files of dates older than `lake.retention`, removed from the table (None: no retention set).
    pub expired_files: Option<usize>,
    /// Unreferenced files older than `retain` deleted from storage.
    pub files_deleted: usize,
}

/// Drops the dates older than `lake.retention` from both tables (a Delta delete, whole partitions), then
/// deletes from storage the files no version newer than `retain` references.
pub async fn vacuum(
    settings: &LakeSettings,
    retain: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Vacuumed>, LakeError> {
    let mut report = Vec::new();
    for name in [EVENTS, ALERTS] {
        let mut table = open(settings, name).await?;
        let mut expired_files = None;
        if let Some(retention) = settings.retention {
            let cutoff =
                now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
            let first_kept = cutoff.format("%Y-%m-%d").to_string();
            let (t, metrics) = table
                .delete()
                .with_predicate(format!("{DATE} < '{first_kept}'"))
                .await
                .map_err(|e| LakeError::delta(name, e))?;
            table = t;
            expired_files = Some(metrics.num_removed_files);
        }
        let (_, metrics) = table
            .vacuum()
            .with_retention_period(
                chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX),
            )
            .with_enforce_retention_duration(false)
            .await
            .map_err(|e| LakeError::delta(name, e))?;
        report.push(Vacuumed {
            table: name,
            expired_files,
            files_deleted: metrics.files_deleted.len(),
        });
    }
    Ok(report)
}
