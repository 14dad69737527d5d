//! The lake: events and alerts as Delta Lake tables, `<lake.path>/events` and `<lake.path>/alerts`,
//! readable by any Delta reader (Spark, Trino, DuckDB, Polars, the `deltalake` Python package).
//!
//! - [`sink`]: the live pipeline's writer. It takes the batches the hunts were given (no second decode),
//!   buffers them per event date and commits files by size or time. A commit records, as Delta application
//!   transactions (`txn` actions), the highest source offset it holds per Kafka partition or file, and the
//!   source is acknowledged only after that commit: after a crash the rows a commit already holds are
//!   skipped, so each source record lands in the events table once (the kafka-delta-ingest scheme).
//! - [`read`]: history back out, for retro-hunts (`ghosthunt hunt --from --to`) and ad-hoc queries
//!   (`ghosthunt query`), with the time range pruning date partitions and the hunts' columns projected.
//! - [`maintain`]: `ghosthunt lake optimize | vacuum` through delta-rs' own operations.
//!
//! The events table has the schema's columns (timestamps as Delta timestamps, microseconds), plus
//! `_time_ns` (the exact event time: hunts' rows, and so alert ids, may carry it), `_input` and `_offset`
//! (where the record came from: the record key), `_raw` (the record as received) and `event_date`
//! (`YYYY-MM-DD` of the event time, UTC: the partition).

mod kept;
pub mod layout;
pub mod maintain;
mod order;
pub mod read;
pub mod scan;
pub mod sink;
mod slices;
pub mod storage;
pub mod table;

pub use sink::LakeSink;

pub use crate::settings::{LakeSettings, TimeRange};

/// Something the lake could not do. The pipeline stops on it rather than acknowledge rows not committed.
/// (Boxed sources: the error travels in every source's and the app's error type.)
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<deltalake_core::DeltaTableError>,
    },
    #[error("lake table {table}: {reason}")]
    Invalid { table: String, reason: String },
    /// A table read (a query, a retro-hunt, maintenance) that is not there.
    #[error(
        "lake table {table}: there is none at {path} (nothing has been written to this lake yet, or lake.path is not the lake's directory)"
    )]
    NoTable { table: String, path: String },
    #[error("lake query: {0}")]
    Query(Box<datafusion::error::DataFusionError>),
    #[error("lake: {0}")]
    Arrow(Box<datafusion::arrow::error::ArrowError>),
}

impl LakeError {
    pub(crate) fn delta(table: &str, source: deltalake_core::DeltaTableError) -> LakeError {
        LakeError::Delta {
            table: table.to_string(),
            source: Box::new(source),
        }
    }
}

impl From<datafusion::error::DataFusionError> for LakeError {
    fn from(e: datafusion::error::DataFusionError) -> LakeError {
        LakeError::Query(Box::new(e))
    }
}

impl From<datafusion::arrow::error::ArrowError> for LakeError {
    fn from(e: datafusion::arrow::error::ArrowError) -> LakeError {
        LakeError::Arrow(Box::new(e))
    }
}
