//! How the lake's rows are laid out in files: split by event date (the tables' partition column), and
//! the Parquet properties of every file ghosthunt writes (the live writer's and `lake optimize`'s).

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::{Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Schema};
use delta_kernel::expressions::Scalar;
use deltalake_core::kernel::scalars::ScalarExt;
use deltalake_core::parquet::basic::{Compression, Encoding, ZstdLevel};
use deltalake_core::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake_core::parquet::schema::types::ColumnPath;
use indexmap::IndexMap;

use super::LakeError;
use super::table::{DATE, OFFSET, RAW, TIME_NS};

/// zstd Parquet; row groups of up to `row_group_rows` rows (`lake.row_group_rows`). The records and the alerts' JSON (unique, long) get
/// neither a dictionary nor statistics: both would cost time and hold nothing a reader can use. The
/// offsets and the exact times, unique or nearly so and rising, are stored as deltas, and so are the
/// table's `timestamps` (its timestamp columns): a dictionary of 8-byte values this nearly unique is
/// hashed value by value and ends up as large as the values (128 Ki of them fit its 1 MiB page).
pub fn writer_properties(timestamps: &[&str], row_group_rows: usize) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows.max(1)));
    for column in [RAW, "json"] {
        let path = ColumnPath::from(column);
        builder = builder
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    for column in [OFFSET, TIME_NS].iter().chain(timestamps) {
        let path = ColumnPath::from(*column);
        builder = builder
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
    }
    builder.build()
}

/// A part's partition value, as delta-rs takes it: the date column's name and value.
pub type PartitionValues = IndexMap<String, Scalar>;

/// The timestamp columns of `schema` (for [`writer_properties`]).
pub fn timestamp_columns(schema: &Schema) -> Vec<&str> {
    schema
        .fields()
        .iter()
        .filter(|f| matches!(f.data_type(), DataType::Timestamp(..)))
        .map(|f| f.name().as_str())
        .collect()
}

/// `rows` split by event date, each part with its partition value. Rows of a batch mostly share a date,
/// and where each date's rows are contiguous the parts are slices of `rows` — no copy, where delta-rs'
/// own split (`RecordBatchWriter::write`) copies every column of every batch; dates interleaved are
/// gathered per date.
pub fn by_date(
    table: &str,
    rows: RecordBatch,
) -> Result<Vec<(RecordBatch, PartitionValues)>, LakeError> {
    let Some(dates) = rows.column_by_name(DATE) else {
        return Err(LakeError::Invalid {
            table: table.to_string(),
            reason: format!("rows lack the partition column {DATE}"),
        });
    };
    let dates = dates
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| LakeError::Invalid {
            table: table.to_string(),
            reason: format!("{DATE} is not a string column"),
        })?;
    let date = |i: usize| dates.is_valid(i).then(|| dates.value(i));
    let value = |i: usize| {
        Scalar::from_array(dates, i)
            .map(|v| IndexMap::from([(DATE.to_string(), v)]))
            .ok_or_else(|| LakeError::Invalid {
                table: table.to_string(),
                reason: format!("{DATE} value {i} is not a partition value"),
            })
    };
    // Runs of one date: (first row, rows).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for i in 0..rows.num_rows() {
        match runs.last_mut() {
            Some((start, len)) if date(*start) == date(i) => *len += 1,
            _ => runs.push((i, 1)),
        }
    }
    let mut dates_seen = HashSet::new();
    if runs
        .iter()
        .all(|&(start, _)| dates_seen.insert(date(start)))
    {
        return runs
            .into_iter()
            .map(|(start, len)| Ok((rows.slice(start, len), value(start)?)))
            .collect();
    }
    // Some date comes back after another: one gather per date, in the order dates first appear.
    let mut groups: Vec<(usize, Vec<u32>)> = Vec::new();
    let mut group_of: HashMap<Option<&str>, usize> = HashMap::new();
    for i in 0..rows.num_rows() {
        let k = *group_of.entry(date(i)).or_insert_with(|| {
            groups.push((i, Vec::new()));
            groups.len() - 1
        });
        groups[k].1.push(i as u32);
    }
    groups
        .into_iter()
        .map(|(first, indices)| {
            let rows = take_record_batch(&rows, &UInt32Array::from(indices))?;
            Ok((rows, value(first)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::lake::table::{ALERTS, EVENTS};

    fn rows(dates: &[Option<&str>]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new(DATE, DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..dates.len() as i64)),
                Arc::new(StringArray::from(dates.to_vec())),
            ],
        )
        .unwrap()
    }

    /// Each part: its partition value (`None`: null) and the `n` of its rows.
    fn parts(rows: RecordBatch) -> Vec<(Option<String>, Vec<i64>)> {
        by_date(EVENTS, rows)
            .unwrap()
            .into_iter()
            .map(|(part, value)| {
                let n = part
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                let value = match &value[DATE] {
                    Scalar::String(s) => Some(s.clone()),
                    Scalar::Null(_) => None,
                    other => panic!("not a date: {other:?}"),
                };
                (value, n.values().to_vec())
            })
            .collect()
    }

    #[test]
    fn times_and_offsets_are_deltas_without_a_dictionary_and_the_rest_keeps_one() {
        use datafusion::arrow::datatypes::{Field, TimeUnit};
        let schema = Schema::new(vec![
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("image", DataType::Utf8, true),
            Field::new(
                "logged",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
        ]);
        let timestamps = timestamp_columns(&schema);
        assert_eq!(timestamps, ["event_time", "logged"]);
        let properties = writer_properties(&timestamps, 1000);
        for column in ["event_time", "logged", OFFSET, TIME_NS] {
            let path = ColumnPath::from(column);
            assert!(!properties.dictionary_enabled(&path), "{column}");
            assert_eq!(
                properties.encoding(&path),
                Some(Encoding::DELTA_BINARY_PACKED),
                "{column}"
            );
        }
        let image = ColumnPath::from("image");
        assert!(properties.dictionary_enabled(&image));
        assert_eq!(properties.encoding(&image), None);
        assert!(!properties.dictionary_enabled(&ColumnPath::from(RAW)));
    }

    #[test]
    fn contiguous_dates_are_slices_of_the_rows_not_copies() {
        let batch = rows(&[Some("2026-12-04"), Some("2026-12-04"), Some("2026-12-05")]);
        let split = by_date(EVENTS, batch.clone()).unwrap();
        assert_eq!(split.len(), 2);
        let (second, _) = &split[1];
        assert_eq!(second.num_rows(), 1);
        // A slice shares the rows' buffers: same values pointer, one row further on.
        let values = |b: &RecordBatch| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .as_ptr()
        };
        assert_eq!(values(second), unsafe { values(&batch).add(2) });
        assert_eq!(
            parts(batch),
            [
                (Some("2026-12-04".to_string()), vec![0, 1]),
                (Some("2026-12-05".to_string()), vec![2]),
            ]
        );
    }

    #[test]
    fn interleaved_dates_are_gathered_per_date_in_order_of_first_appearance() {
        let batch = rows(&[
            Some("2026-12-05"),
            None,
            Some("2026-12-04"),
            Some("2026-12-05"),
            None,
        ]);
        assert_eq!(
            parts(batch),
            [
                (Some("2026-12-05".to_string()), vec![0, 3]),
                (None, vec![1, 4]),
                (Some("2026-12-04".to_string()), vec![2]),
            ]
        );
    }

    #[test]
    fn rows_without_a_date_column_are_refused() {
        let schema = Schema::new(vec![Field::new("n", DataType::Int64, false)]);
        let batch =
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(Int64Array::from(vec![1]))])
                .unwrap();
        let err = by_date(ALERTS, batch).unwrap_err().to_string();
        assert!(err.contains("event_date"), "{err}");
    }
}
