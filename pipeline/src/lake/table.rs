//! The two tables' layout: where they are, their schemas, and decoded batches / alerts as their rows.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, TimestampNanosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::{StructField, StructType};
use deltalake_core::protocol::SaveMode;
use deltalake_core::{DeltaTable, DeltaTableBuilder};
use url::Url;

use super::{LakeError, LakeSettings};
use crate::alert::Alert;
use crate::decode::EventSchema;
use crate::decode::schema::UTC;
use crate::source::RawRecord;

pub const EVENTS: &str = "events";
pub const ALERTS: &str = "alerts";
/// The partition column of both tables.
pub const DATE: &str = "event_date";
/// The exact event time, ns since the epoch (Delta timestamps are microseconds).
pub const TIME_NS: &str = "_time_ns";
pub const INPUT: &str = "_input";
pub const OFFSET: &str = "_offset";
pub const RAW: &str = "_raw";

/// What is wrong with the lake's settings that can be told without touching the lake: a URL scheme
/// not served, a local path that is a file, a `lake.storage` key S3 does not have (`ghosthunt validate`
/// says it before a run would). Writing to the lake is checked when a run opens it.
pub fn check_settings(settings: &LakeSettings) -> Result<(), String> {
    let path = settings.path.trim();
    let local = match path.split_once("://") {
        Some(("file", rest)) => rest,
        Some((scheme, _)) if super::storage::SCHEMES.contains(&scheme) => {
            for (key, _) in &settings.storage {
                super::storage::s3_key(key)?;
            }
            return Ok(());
        }
        Some((scheme, _)) => return Err(unserved(scheme)),
        None => path,
    };
    // The nearest part of the path that exists must be a directory (the rest is created).
    let mut at = Some(std::path::Path::new(local));
    while let Some(p) = at {
        if p.exists() {
            return match p.is_dir() {
                true => Ok(()),
                false => Err(format!(
                    "lake.path `{path}`: `{}` is a file, not a directory",
                    p.display()
                )),
            };
        }
        at = p.parent().filter(|p| !p.as_os_str().is_empty());
    }
    Ok(())
}

fn unserved(scheme: &str) -> String {
    format!(
        "lake.path: `{scheme}://` is not a lake ghosthunt writes (a local directory, file://, s3:// or \
         s3a:// with the AWS settings, or an S3-compatible server's endpoint in lake.storage)"
    )
}

/// The URL of table `name` under the lake path (a directory, created if missing, or a URL).
pub fn table_url(lake_path: &str, name: &str) -> Result<Url, LakeError> {
    let invalid = |reason: String| LakeError::Invalid {
        table: format!("{lake_path}/{name}"),
        reason,
    };
    let path = lake_path.trim();
    let base = if path.contains("://") {
        let mut url = Url::parse(path).map_err(|e| invalid(format!("not a URL: {e}")))?;
        if url.scheme() != "file" && !super::storage::SCHEMES.contains(&url.scheme()) {
            return Err(invalid(unserved(url.scheme())));
        }
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        url
    } else {
        std::fs::create_dir_all(path).map_err(|e| invalid(format!("cannot create: {e}")))?;
        let dir = std::fs::canonicalize(path).map_err(|e| invalid(e.to_string()))?;
        Url::from_directory_path(&dir).map_err(|()| invalid("not an absolute path".to_string()))?
    };
    if base.scheme() == "file" {
        let dir = base
            .to_file_path()
            .map_err(|()| invalid("not a local path".to_string()))?
            .join(name);
        std::fs::create_dir_all(&dir).map_err(|e| invalid(format!("cannot create: {e}")))?;
    }
    base.join(&format!("{name}/"))
        .map_err(|e| invalid(e.to_string()))
}

/// Whether a local lake holds table `name` (a Delta log), checked without creating anything: a table is
/// read (queried, hunted over, compacted) only where one was written. Object storage is not checked
/// here; delta-rs says so when it loads.
pub fn existing(settings: &LakeSettings, name: &str) -> Result<(), LakeError> {
    let path = settings.path.trim();
    if path.contains("://") && !path.starts_with("file://") {
        return Ok(());
    }
    let dir = std::path::Path::new(path.strip_prefix("file://").unwrap_or(path)).join(name);
    match dir.join("_delta_log").is_dir() {
        true => Ok(()),
        false => Err(LakeError::NoTable {
            table: name.to_string(),
            path: dir.display().to_string(),
        }),
    }
}

/// Table `name` of the lake, not loaded yet: its URL and the lake's storage options (object storage).
pub fn builder(settings: &LakeSettings, name: &str) -> Result<(Url, DeltaTableBuilder), LakeError> {
    let url = table_url(&settings.path, name)?;
    super::storage::register();
    let builder = DeltaTableBuilder::from_url(url.clone())
        .map_err(|e| LakeError::delta(url.as_str(), e))?
        .with_storage_options(settings.storage.iter().cloned().collect());
    Ok((url, builder))
}

/// Table `name` of the lake, created with `schema` partitioned by [`DATE`] if it does not exist yet. An
/// existing table must have the same columns.
pub async fn open_or_create(
    settings: &LakeSettings,
    name: &str,
    schema: &SchemaRef,
) -> Result<DeltaTable, LakeError> {
    let (url, builder) = builder(settings, name)?;
    let delta = |e| LakeError::delta(url.as_str(), e);
    let mut table = builder.build().map_err(delta)?;
    let wanted: StructType = schema
        .as_ref()
        .try_into_kernel()
        .map_err(|e| LakeError::Invalid {
            table: url.to_string(),
            reason: format!("schema: {e}"),
        })?;
    // Asked first: loading a table that does not exist yet makes the Delta kernel log an error.
    let exists = table.verify_deltatable_existence().await.map_err(delta)?;
    let loaded = match exists {
        true => table.load().await,
        false => Err(deltalake_core::DeltaTableError::NotATable(url.to_string())),
    };
    match loaded {
        Ok(()) => {
            let existing = table.snapshot().map_err(delta)?.schema();
            let names = |s: &StructType| s.fields().map(|f| f.name().clone()).collect::<Vec<_>>();
            if names(&existing) != names(&wanted) {
                return Err(LakeError::Invalid {
                    table: url.to_string(),
                    reason: format!(
                        "the table's columns differ from this schema's (a lake belongs to one event schema): table has {}, expected {}",
                        names(&existing).join(","),
                        names(&wanted).join(",")
                    ),
                });
            }
            Ok(table)
        }
        Err(deltalake_core::DeltaTableError::NotATable(_)) => {
            let columns: Vec<StructField> = wanted.fields().cloned().collect();
            // File statistics (data skipping) for the exact time and the first columns, as Delta's
            // default keeps them for the first 32: a time range skips files within a date too.
            let stats: Vec<&str> = std::iter::once(TIME_NS)
                .chain(
                    columns
                        .iter()
                        .map(|c| c.name().as_str())
                        .filter(|n| *n != TIME_NS && *n != DATE)
                        .take(31),
                )
                .collect();
            table
                .create()
                .with_table_name(name)
                .with_columns(columns.clone())
                .with_partition_columns([DATE])
                .with_configuration_property(
                    deltalake_core::TableProperty::DataSkippingStatsColumns,
                    Some(stats.join(",")),
                )
                .with_save_mode(SaveMode::Ignore)
                .await
                .map_err(delta)
        }
        Err(e) => Err(delta(e)),
    }
}

/// Fails unless the table's storage takes writes: an empty object put at the table's root and deleted,
/// so that a lake a live run cannot write to (a read-only mount, another user's directory, credentials
/// that only read) is an error at start rather than at the first flush, minutes of events later.
pub async fn check_writable(table: &DeltaTable) -> Result<(), LakeError> {
    use deltalake_core::logstore::object_store::{ObjectStoreExt as _, PutPayload};
    let store = table.object_store();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let probe = deltalake_core::Path::from(format!(
        ".ghosthunt-write-check-{}-{nanos}",
        std::process::id()
    ));
    store
        .put(&probe, PutPayload::new())
        .await
        .map_err(|e| LakeError::Invalid {
            table: table.table_url().to_string(),
            reason: format!(
                "it cannot be written to, and a live run with lake.path set writes to it: {e}"
            ),
        })?;
    if let Err(e) = store.delete(&probe).await {
        tracing::warn!(table = %table.table_url(), object = %probe, error = %e, "The lake's write check left an empty object behind; it can be deleted.");
    }
    Ok(())
}

fn delta_type(ty: &DataType) -> DataType {
    match ty {
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        other => other.clone(),
    }
}

/// The events table's Arrow schema for an event schema.
pub fn events_schema(schema: &EventSchema) -> SchemaRef {
    let mut fields: Vec<Field> = schema
        .columns
        .iter()
        .filter(|c| c.name != crate::decode::schema::VALUES_COLUMN)
        .map(|c| Field::new(&c.name, delta_type(&c.ty.data_type()), true))
        .collect();
    fields.push(Field::new(TIME_NS, DataType::Int64, true));
    fields.push(Field::new(INPUT, DataType::Utf8, false));
    fields.push(Field::new(OFFSET, DataType::Int64, false));
    fields.push(Field::new(RAW, DataType::Utf8, false));
    fields.push(Field::new(DATE, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// The alerts table's Arrow schema.
pub fn alerts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            false,
        ),
        Field::new(TIME_NS, DataType::Int64, false),
        Field::new("hunt_id", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("json", DataType::Utf8, false),
        Field::new(DATE, DataType::Utf8, false),
    ]))
}

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// `YYYY-MM-DD` (UTC) of a time in ns since the epoch.
pub fn date_of(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .format("%Y-%m-%d")
        .to_string()
}

/// How many files of `table` each date partition holds, from the table's log (no file is read).
pub(super) fn files_per_date(
    table: &DeltaTable,
    name: &str,
) -> Result<std::collections::BTreeMap<String, usize>, LakeError> {
    let snapshot = table.snapshot().map_err(|e| LakeError::delta(name, e))?;
    let mut files = std::collections::BTreeMap::new();
    for file in snapshot.log_data().iter() {
        if let Some(date) = file.partition_values_map().remove(DATE).flatten() {
            *files.entry(date).or_default() += 1;
        }
    }
    Ok(files)
}

/// The rows of `batch` (decoded with `schema`) as events-table rows; `records` are the rows' records.
pub fn events_rows(
    lake: &SchemaRef,
    time_column: &str,
    batch: &RecordBatch,
    records: &[&RawRecord],
) -> Result<RecordBatch, LakeError> {
    let n = batch.num_rows();
    let times = batch
        .column_by_name(time_column)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| LakeError::Invalid {
            table: EVENTS.to_string(),
            reason: format!("decoded batches lack the time column {time_column}"),
        })?;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(lake.fields().len());
    for field in lake.fields().iter().take(lake.fields().len() - 5) {
        let column = batch
            .column_by_name(field.name())
            .ok_or_else(|| LakeError::Invalid {
                table: EVENTS.to_string(),
                reason: format!("decoded batches lack column {}", field.name()),
            })?;
        columns.push(if column.data_type() == field.data_type() {
            Arc::clone(column)
        } else {
            cast(column, field.data_type())?
        });
    }
    columns.push(Arc::new(Int64Array::from(times.values().to_vec())) as ArrayRef);
    let nulls = times.nulls().cloned();
    if nulls.is_some() {
        let last = columns.len() - 1;
        columns[last] = Arc::new(Int64Array::new(times.values().clone(), nulls));
    }
    let mut inputs = StringBuilder::with_capacity(n, n * 16);
    let mut raws = StringBuilder::with_capacity(n, records.iter().map(|r| r.bytes.len()).sum());
    let mut dates = StringBuilder::with_capacity(n, n * 10);
    // Rows of a batch mostly share a date: its text is made once per run of one day.
    let mut day: Option<(i64, String)> = None;
    for (i, record) in records.iter().enumerate() {
        inputs.append_value(&record.input.name);
        match std::str::from_utf8(&record.bytes) {
            Ok(text) => raws.append_value(text),
            Err(_) => raws.append_value(String::from_utf8_lossy(&record.bytes)),
        }
        if times.is_null(i) {
            dates.append_null();
            continue;
        }
        let t = times.value(i);
        let d = t.div_euclid(NANOS_PER_DAY);
        match &day {
            Some((cached, text)) if *cached == d => dates.append_value(text),
            _ => {
                let text = date_of(t);
                dates.append_value(&text);
                day = Some((d, text));
            }
        }
    }
    columns.push(Arc::new(inputs.finish()));
    columns.push(Arc::new(Int64Array::from_iter_values(
        records.iter().map(|r| r.offset as i64),
    )));
    columns.push(Arc::new(raws.finish()));
    columns.push(Arc::new(dates.finish()));
    Ok(RecordBatch::try_new(Arc::clone(lake), columns)?)
}

/// Alerts as alerts-table rows.
pub fn alerts_rows(alerts: &[Alert]) -> Result<RecordBatch, LakeError> {
    let schema = alerts_schema();
    let times: Vec<i64> = alerts.iter().map(|a| a.event_time).collect();
    let micros = times.iter().map(|t| t.div_euclid(1000));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(alerts.iter().map(|a| &a.id))),
        Arc::new(
            datafusion::arrow::array::TimestampMicrosecondArray::from_iter_values(micros)
                .with_timezone(UTC),
        ),
        Arc::new(Int64Array::from(times.clone())),
        Arc::new(StringArray::from_iter_values(
            alerts.iter().map(|a| &a.hunt.id),
        )),
        Arc::new(StringArray::from_iter_values(
            alerts.iter().map(|a| &a.hunt.title),
        )),
        Arc::new(StringArray::from_iter_values(
            alerts.iter().map(|a| a.hunt.severity.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            alerts.iter().map(|a| &a.json),
        )),
        Arc::new(StringArray::from_iter_values(
            times.iter().map(|t| date_of(*t)),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(date_of(0), "1970-01-01");
        // 2026-11-01T23:59:59.999999999Z and one ns later.
        let t = 1_793_577_599_999_999_999;
        assert_eq!(date_of(t), "2026-11-01");
        assert_eq!(date_of(t + 1), "2026-11-02");
    }

    #[test]
    fn events_schema_keeps_the_columns_and_adds_the_record() {
        let schema = EventSchema::windows().with_values_column();
        let lake = events_schema(&schema);
        assert_eq!(lake.fields().len(), schema.columns.len() - 1 + 5);
        assert!(
            lake.field_with_name(crate::decode::schema::VALUES_COLUMN)
                .is_err()
        );
        assert_eq!(
            lake.field_with_name("event_time").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
        );
        for name in [TIME_NS, INPUT, OFFSET, RAW, DATE] {
            assert!(lake.field_with_name(name).is_ok(), "{name}");
        }
    }
}
