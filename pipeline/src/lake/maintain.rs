//! Lake maintenance (`ghosthunt lake optimize | vacuum`), through delta-rs' own operations.

use std::time::Duration;

use deltalake_core::DeltaTable;

use super::table::{self, ALERTS, DATE, EVENTS};
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

/// Compacts each table's small files (per date partition) into files of about `target_bytes`.
pub async fn optimize(
    settings: &LakeSettings,
    target_bytes: u64,
) -> Result<Vec<Compacted>, LakeError> {
    let mut report = Vec::new();
    for name in [EVENTS, ALERTS] {
        let table = open(settings, name).await?;
        let schema = table
            .snapshot()
            .map_err(|e| LakeError::delta(name, e))?
            .snapshot()
            .arrow_schema();
        let properties =
            super::layout::writer_properties(&super::layout::timestamp_columns(&schema));
        let (_, metrics) = table
            .optimize()
            .with_target_size(
                std::num::NonZeroU64::new(target_bytes.max(1)).expect("at least one byte"),
            )
            .with_writer_properties(properties)
            .await
            .map_err(|e| LakeError::delta(name, e))?;
        report.push(Compacted {
            table: name,
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
        });
    }
    Ok(report)
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
