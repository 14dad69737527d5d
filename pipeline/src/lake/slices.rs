//! A retro-hunt reads a date of the events table a slice at a time, so that the hunts start on the
//! first slice while the next is scanned, and what is held in memory is about two slices rather than
//! the whole date.
//!
//! A slice is files, or row groups of a file larger than a slice (a date compacted by `lake optimize`
//! is one file): such a file's row groups are read each as a file of its own, their spans of event time
//! from the file's footer. The rows must reach the hunts in event-time order, and each slice's rows are
//! put in order on their own (`super::order`). Files (and row groups) are taken by their earliest event
//! time (the Delta log's statistics, the footer's), so every row of a later slice is at or after the
//! next slice's earliest time: a slice's ordered rows before that time are final, and the rest are
//! carried into the next slice's ordering. Files the live sink wrote (in arrival order, flushed by size
//! or age) cover successive spans of event time, so little is carried; files whose spans overlap carry
//! more, up to the whole date when they all overlap, which is what the date read whole would hold. A
//! date with a file without time statistics is read whole.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use delta_kernel::expressions::Scalar;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::LogicalFileView;
use deltalake_core::logstore::object_store::{ObjectStore, ObjectStoreExt, path::Path};
use deltalake_core::parquet::file::FOOTER_SIZE;
use deltalake_core::parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};
use deltalake_core::parquet::file::statistics::Statistics;

use super::LakeError;
use super::read::{Range, int64};
use super::table::{DATE, EVENTS, TIME_NS};

/// One file of a date, or one row group of it, with its rows and its span of event time (`_time_ns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DataFile {
    pub part: Part,
    pub rows: usize,
    pub first: i64,
    pub last: i64,
}

/// A file read whole, or one of its row groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    /// Relative to the table.
    pub path: String,
    /// `(index, row groups in the file)`; `None`: the whole file.
    pub row_group: Option<(usize, usize)>,
}

/// Files (or row groups) read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slice {
    /// The parts; `None`: every file of the date.
    pub parts: Option<Vec<Part>>,
    /// The earliest event time in these parts; `None` when not known.
    pub first: Option<i64>,
}

/// The files of `date` in the events table, `None` for a file whose time statistics are missing. A file
/// of more than `split_above` rows comes as its row groups, when its footer gives each one's span.
pub(super) async fn date_files(
    events: &DeltaTable,
    date: &str,
    split_above: usize,
) -> Result<Vec<Option<DataFile>>, LakeError> {
    let snapshot = events.snapshot().map_err(|e| LakeError::delta(EVENTS, e))?;
    let mut files = Vec::new();
    let mut large = Vec::new();
    for file in snapshot.log_data().iter().filter(|file| {
        file.partition_values_map()
            .get(DATE)
            .is_some_and(|d| d.as_deref() == Some(date))
    }) {
        match logged_file(&file) {
            Some(f) if f.rows > split_above => {
                large.push((f, file.object_store_path(), u64::try_from(file.size()).ok()))
            }
            f => files.push(f),
        }
    }
    if large.is_empty() {
        return Ok(files);
    }
    let store = events.log_store().object_store(None);
    let footers = futures::future::try_join_all(large.iter().map(|(f, location, size)| {
        footer(Arc::clone(&store), location.clone(), *size, &f.part.path)
    }))
    .await?;
    for ((whole, _, _), footer) in large.into_iter().zip(footers) {
        match row_groups(&whole.part.path, &footer) {
            Some(groups) => files.extend(groups.into_iter().map(Some)),
            None => files.push(Some(whole)),
        }
    }
    Ok(files)
}

/// A file as the Delta log gives it: its rows and span of event time, `None` without them.
fn logged_file(file: &LogicalFileView) -> Option<DataFile> {
    Some(DataFile {
        part: Part {
            path: file.path().into_owned(),
            row_group: None,
        },
        rows: file.num_records()?,
        first: time_ns(file.min_values())?,
        last: time_ns(file.max_values())?,
    })
}

/// `_time_ns` among a file's minimum or maximum values.
fn time_ns(values: Option<Scalar>) -> Option<i64> {
    match values {
        Some(Scalar::Struct(data)) => data
            .fields()
            .iter()
            .zip(data.values())
            .find(|(f, _)| f.name() == TIME_NS)
            .and_then(|(_, v)| match v {
                Scalar::Long(t) => Some(*t),
                _ => None,
            }),
        _ => None,
    }
}

/// A data file's footer: its last 64 KiB read, and the rest of the metadata when it is larger.
async fn footer(
    store: Arc<dyn ObjectStore>,
    location: Path,
    size: Option<u64>,
    path: &str,
) -> Result<ParquetMetaData, LakeError> {
    let failed = |reason: String| LakeError::Invalid {
        table: EVENTS.to_string(),
        reason: format!("reading the footer of {path}: {reason}"),
    };
    let size = match size.filter(|s| *s > 0) {
        Some(size) => size,
        None => {
            store
                .head(&location)
                .await
                .map_err(|e| failed(e.to_string()))?
                .size
        }
    };
    let tail_len = size.min(64 * 1024);
    let tail = store
        .get_range(&location, size - tail_len..size)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let last: &[u8; FOOTER_SIZE] = tail
        .get(tail.len().saturating_sub(FOOTER_SIZE)..)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| failed("shorter than a footer".into()))?;
    let length = FooterTail::try_new(last)
        .map_err(|e| failed(e.to_string()))?
        .metadata_length() as u64;
    let end = size - FOOTER_SIZE as u64;
    let start = end
        .checked_sub(length)
        .ok_or_else(|| failed("metadata longer than the file".into()))?;
    let metadata = if start >= size - tail_len {
        let offset = (start - (size - tail_len)) as usize;
        tail.slice(offset..offset + length as usize)
    } else {
        store
            .get_range(&location, start..end)
            .await
            .map_err(|e| failed(e.to_string()))?
    };
    ParquetMetaDataReader::decode_metadata(&metadata).map_err(|e| failed(e.to_string()))
}

/// A file's row groups with their spans of event time; `None` when a row group's are missing.
fn row_groups(path: &str, footer: &ParquetMetaData) -> Option<Vec<DataFile>> {
    let column = footer
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == TIME_NS)?;
    let count = footer.num_row_groups();
    footer
        .row_groups()
        .iter()
        .enumerate()
        .map(|(i, group)| match group.column(column).statistics()? {
            Statistics::Int64(times) => Some(DataFile {
                part: Part {
                    path: path.to_string(),
                    row_group: Some((i, count)),
                },
                rows: usize::try_from(group.num_rows()).ok()?,
                first: *times.min_opt()?,
                last: *times.max_opt()?,
            }),
            _ => None,
        })
        .collect()
}

/// The slices of a date's `files` within `range`: files by earliest event time, each slice gathering
/// files until it holds `target` rows. One slice of every file when a file's statistics are missing.
pub(super) fn slices(files: Vec<Option<DataFile>>, range: &Range, target: usize) -> Vec<Slice> {
    let Some(mut files) = files.into_iter().collect::<Option<Vec<DataFile>>>() else {
        return vec![Slice {
            parts: None,
            first: None,
        }];
    };
    files.retain(|f| range.from.is_none_or(|from| f.last >= from));
    files.retain(|f| range.to.is_none_or(|to| f.first < to));
    files.sort_by(|a, b| {
        (a.first, a.last)
            .cmp(&(b.first, b.last))
            .then_with(|| a.part.path.cmp(&b.part.path))
            .then_with(|| a.part.row_group.cmp(&b.part.row_group))
    });
    let mut slices: Vec<Slice> = Vec::new();
    let mut rows = 0;
    for file in files {
        match slices.last_mut() {
            Some(Slice {
                parts: Some(parts), ..
            }) if rows < target => parts.push(file.part),
            _ => {
                rows = 0;
                slices.push(Slice {
                    parts: Some(vec![file.part]),
                    first: Some(file.first),
                });
            }
        }
        rows += file.rows;
    }
    slices
}

/// `batches` (one slice's rows in event-time order) cut at event time `next`, the next slice's first:
/// the rows before it, final, and the rows at or after it, to be ordered with the next slice's.
pub(super) fn cut(
    batches: Vec<RecordBatch>,
    next: Option<i64>,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), LakeError> {
    let Some(next) = next else {
        return Ok((batches, Vec::new()));
    };
    let mut before = Vec::new();
    let mut after = Vec::new();
    for batch in batches {
        if !after.is_empty() {
            after.push(batch);
            continue;
        }
        let times = int64(&batch, TIME_NS)?;
        // In order: the first row at or after `next` (a NULL time sorts last).
        let at = times
            .iter()
            .position(|t| t.is_none_or(|t| t.cmp(&next) != Ordering::Less))
            .unwrap_or(batch.num_rows());
        if at > 0 {
            before.push(batch.slice(0, at));
        }
        if at < batch.num_rows() {
            after.push(batch.slice(at, batch.num_rows() - at));
        }
    }
    Ok((before, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use std::sync::Arc;

    fn file(path: &str, rows: usize, first: i64, last: i64) -> Option<DataFile> {
        Some(DataFile {
            part: whole(path),
            rows,
            first,
            last,
        })
    }

    fn whole(path: &str) -> Part {
        Part {
            path: path.to_string(),
            row_group: None,
        }
    }

    fn all() -> Range {
        Range {
            from: None,
            to: None,
        }
    }

    #[test]
    fn files_are_taken_by_first_time_and_gathered_up_to_the_target() {
        let files = vec![
            file("c", 100, 300, 390),
            file("a", 100, 100, 190),
            file("b", 50, 200, 290),
            file("d", 10, 400, 490),
        ];
        let got = slices(files, &all(), 150);
        assert_eq!(
            got,
            vec![
                Slice {
                    parts: Some(vec![whole("a"), whole("b")]),
                    first: Some(100),
                },
                Slice {
                    parts: Some(vec![whole("c"), whole("d")]),
                    first: Some(300),
                },
            ]
        );
    }

    #[test]
    fn row_groups_are_taken_by_first_time_among_the_files() {
        let group = |i: usize, rows: usize, first: i64, last: i64| {
            Some(DataFile {
                part: Part {
                    path: "big".into(),
                    row_group: Some((i, 3)),
                },
                rows,
                first,
                last,
            })
        };
        let files = vec![
            group(0, 100, 100, 290),
            group(2, 100, 300, 490),
            group(1, 100, 200, 390),
            file("small", 10, 250, 260),
        ];
        let parts = |slice: &Slice| slice.parts.clone().unwrap();
        let got = slices(files, &all(), 100);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(parts(&got[0]), [group(0, 0, 0, 0).unwrap().part]);
        assert_eq!(parts(&got[1]), [group(1, 0, 0, 0).unwrap().part]);
        assert_eq!(
            parts(&got[2]),
            [whole("small"), group(2, 0, 0, 0).unwrap().part]
        );
        assert_eq!(got[2].first, Some(250));
    }

    #[test]
    fn a_file_without_statistics_makes_the_date_one_slice() {
        let files = vec![file("a", 100, 100, 190), None];
        assert_eq!(
            slices(files, &all(), 10),
            vec![Slice {
                parts: None,
                first: None,
            }]
        );
    }

    #[test]
    fn files_outside_the_range_are_left_out() {
        let files = vec![
            file("a", 100, 100, 190),
            file("b", 100, 200, 290),
            file("c", 100, 300, 390),
        ];
        let range = Range {
            from: Some(191),
            to: Some(300),
        };
        assert_eq!(
            slices(files, &range, 10),
            vec![Slice {
                parts: Some(vec![whole("b")]),
                first: Some(200),
            }]
        );
    }

    #[test]
    fn rows_from_the_next_slices_first_time_on_are_carried() {
        let batch = |times: Vec<Option<i64>>| {
            RecordBatch::try_from_iter([(TIME_NS, Arc::new(Int64Array::from(times)) as ArrayRef)])
                .unwrap()
        };
        let times = |batches: &[RecordBatch]| -> Vec<Option<i64>> {
            batches
                .iter()
                .flat_map(|b| int64(b, TIME_NS).unwrap().iter().collect::<Vec<_>>())
                .collect()
        };
        let batches = vec![
            batch(vec![Some(1), Some(2)]),
            batch(vec![Some(3), Some(5), Some(5)]),
            batch(vec![Some(6), None]),
        ];
        let (before, after) = cut(batches.clone(), Some(5)).unwrap();
        assert_eq!(times(&before), [Some(1), Some(2), Some(3)]);
        assert_eq!(times(&after), [Some(5), Some(5), Some(6), None]);
        let (before, after) = cut(batches.clone(), Some(0)).unwrap();
        assert!(before.is_empty());
        assert_eq!(after.len(), 3);
        let (before, after) = cut(batches, None).unwrap();
        assert_eq!(times(&before).len(), 7);
        assert!(after.is_empty());
    }
}
