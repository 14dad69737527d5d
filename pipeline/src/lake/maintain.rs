//! Lake maintenance (`ghosthunt lake optimize | vacuum`), through delta-rs' own operations.

use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use deltalake_core::operations::optimize::OptimizeType;
use deltalake_core::{DeltaTable, FilterOp, FilterValue};

use super::table::{self, ALERTS, DATE, EVENTS, TIME_NS};
use super::{LakeError, LakeSettings};

/// Opens an existing table of the lake.
pub async fn open(settings: &LakeSettings, name: &str) -> Result<DeltaTable, LakeError> {
    table::existing(settings, name)?;
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

/// The lake's tables there are: the events table must be (else the lake path is wrong); the alerts
/// table is written with the first alert.
fn tables(settings: &LakeSettings) -> Result<Vec<&'static str>, LakeError> {
    table::existing(settings, EVENTS)?;
    Ok(match table::existing(settings, ALERTS) {
        Ok(()) => vec![EVENTS, ALERTS],
        Err(_) => vec![EVENTS],
    })
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
    for name in tables(settings)? {
        let table = open(settings, name).await?;
        let schema = table
            .snapshot()
            .map_err(|e| LakeError::delta(name, e))?
            .snapshot()
            .arrow_schema();
        let properties = super::layout::writer_properties(
            &super::layout::timestamp_columns(&schema),
            settings.row_group_rows,
        );
        // Sorted: the dates held in several files (a Z-order rewrites every file it is given).
        let sorted: Option<Vec<String>> = match name == EVENTS && in_time_order {
            true => Some(
                table::files_per_date(&table, name)?
                    .into_iter()
                    .filter(|(_, files)| *files > 1)
                    .map(|(date, _)| date)
                    .collect(),
            ),
            false => None,
        };
        let optimize = table
            .optimize()
            .with_target_size(target)
            .with_writer_properties(properties);
        let metrics = match sorted {
            None => optimize.await,
            Some(dates) if dates.is_empty() => {
                report.push(Compacted {
                    table: name,
                    files_removed: 0,
                    files_added: 0,
                });
                continue;
            }
            Some(dates) => {
                let filters = [(
                    DATE,
                    FilterOp::In,
                    FilterValue::Set(dates.iter().map(String::as_str).collect()),
                )];
                optimize
                    .with_type(OptimizeType::ZOrder(vec![TIME_NS.to_string()]))
                    .with_filters(&filters)
                    .with_session_state(Arc::new(spilling_session()?))
                    .await
            }
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

/// A session whose sorts spill to disk past [`SORT_MEMORY`].
fn spilling_session() -> Result<SessionState, LakeError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(SORT_MEMORY, 1.0)
        .build_arc()
        .map_err(|e| LakeError::Query(Box::new(e)))?;
    Ok(SessionStateBuilder::new()
        .with_default_features()
        .with_runtime_env(runtime)
        .build())
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
    for name in tables(settings)? {
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
