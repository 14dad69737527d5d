//! A retro-hunt reads a date of the events table a slice of files at a time, so that the hunts start on
//! the first slice while the next is scanned, and what is held in memory is about two slices rather
//! than the whole date.
//!
//! The rows must reach the hunts in event-time order, and each slice's rows are put in order on their
//! own (`super::order`). Files are taken by their earliest event time (the Delta log's statistics), so
//! every row of a later slice is at or after the next slice's earliest time: a slice's ordered rows
//! before that time are final, and the rest are carried into the next slice's ordering. Files the live
//! sink wrote (in arrival order, flushed by size or age) cover successive spans of event time, so
//! little is carried; files whose spans overlap carry more, up to the whole date when they all overlap,
//! which is what the date read whole would hold. A date with a file without time statistics is read
//! whole.

use std::cmp::Ordering;

use datafusion::arrow::array::RecordBatch;
use delta_kernel::expressions::Scalar;
use deltalake_core::DeltaTable;

use super::LakeError;
use super::read::{Range, int64};
use super::table::{DATE, EVENTS, TIME_NS};

/// One file of a date, with its rows and its span of event time (`_time_ns`) from the Delta log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DataFile {
    pub path: String,
    pub rows: usize,
    pub first: i64,
    pub last: i64,
}

/// Files read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slice {
    /// The files (paths relative to the table); `None`: every file of the date.
    pub paths: Option<Vec<String>>,
    /// The earliest event time in these files; `None` when not known.
    pub first: Option<i64>,
}

/// The files of `date` in the events table, `None` for a file whose time statistics are missing.
pub(super) fn date_files(
    events: &DeltaTable,
    date: &str,
) -> Result<Vec<Option<DataFile>>, LakeError> {
    let snapshot = events.snapshot().map_err(|e| LakeError::delta(EVENTS, e))?;
    Ok(snapshot
        .log_data()
        .iter()
        .filter(|file| {
            file.partition_values_map()
                .get(DATE)
                .is_some_and(|d| d.as_deref() == Some(date))
        })
        .map(|file| {
            let time = |values: Option<Scalar>| match values {
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
            };
            Some(DataFile {
                path: file.path().into_owned(),
                rows: file.num_records()?,
                first: time(file.min_values())?,
                last: time(file.max_values())?,
            })
        })
        .collect())
}

/// The slices of a date's `files` within `range`: files by earliest event time, each slice gathering
/// files until it holds `target` rows. One slice of every file when a file's statistics are missing.
pub(super) fn slices(files: Vec<Option<DataFile>>, range: &Range, target: usize) -> Vec<Slice> {
    let Some(mut files) = files.into_iter().collect::<Option<Vec<DataFile>>>() else {
        return vec![Slice {
            paths: None,
            first: None,
        }];
    };
    files.retain(|f| range.from.is_none_or(|from| f.last >= from));
    files.retain(|f| range.to.is_none_or(|to| f.first < to));
    files.sort_by(|a, b| {
        (a.first, a.last)
            .cmp(&(b.first, b.last))
            .then_with(|| a.path.cmp(&b.path))
    });
    let mut slices: Vec<Slice> = Vec::new();
    let mut rows = 0;
    for file in files {
        match slices.last_mut() {
            Some(Slice {
                paths: Some(paths), ..
            }) if rows < target => paths.push(file.path),
            _ => {
                rows = 0;
                slices.push(Slice {
                    paths: Some(vec![file.path]),
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
            path: path.to_string(),
            rows,
            first,
            last,
        })
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
                    paths: Some(vec!["a".into(), "b".into()]),
                    first: Some(100),
                },
                Slice {
                    paths: Some(vec!["c".into(), "d".into()]),
                    first: Some(300),
                },
            ]
        );
    }

    #[test]
    fn a_file_without_statistics_makes_the_date_one_slice() {
        let files = vec![file("a", 100, 100, 190), None];
        assert_eq!(
            slices(files, &all(), 10),
            vec![Slice {
                paths: None,
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
                paths: Some(vec!["b".into()]),
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
