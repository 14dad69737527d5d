//! Column builders that cost nothing for a column no record of the batch fills.
//!
//! A schema may have hundreds of columns of which one event fills a dozen, so a builder records only the rows
//! it has a value for (with the values, packed). Finishing a batch scatters them into an Arrow array with a
//! validity bitmap; a column nobody filled becomes `new_null_array` at once. Appending is one push per value,
//! never one per (row × column).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray,
    new_null_array,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::ArrowNativeType;

use super::json::Cell;
use super::schema::{self, ColumnType};

enum Values {
    Str { data: Vec<u8>, ends: Vec<usize> },
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Time(Vec<i64>),
}

/// The values of one column for one batch, sparse until [`ColumnBuilder::finish`].
pub struct ColumnBuilder {
    ty: ColumnType,
    /// Rows that have a value, increasing.
    rows: Vec<u32>,
    values: Values,
}

impl ColumnBuilder {
    #[cfg(test)]
    pub fn new(ty: ColumnType) -> ColumnBuilder {
        ColumnBuilder::with_capacity(ty, Size::default())
    }

    /// A builder with room for `size` (nothing is allocated for an empty size).
    pub fn with_capacity(ty: ColumnType, size: Size) -> ColumnBuilder {
        let values = match ty {
            ColumnType::String => Values::Str {
                data: Vec::with_capacity(size.bytes),
                ends: Vec::with_capacity(size.rows),
            },
            ColumnType::Int => Values::Int(Vec::with_capacity(size.rows)),
            ColumnType::Float => Values::Float(Vec::with_capacity(size.rows)),
            ColumnType::Bool => Values::Bool(Vec::with_capacity(size.rows)),
            ColumnType::Timestamp => Values::Time(Vec::with_capacity(size.rows)),
        };
        ColumnBuilder {
            ty,
            rows: Vec::with_capacity(size.rows),
            values,
        }
    }

    /// What the builder holds: its rows, and for a string column the bytes of their text.
    pub fn size(&self) -> Size {
        Size {
            rows: self.rows.len(),
            bytes: match &self.values {
                Values::Str { data, .. } => data.len(),
                _ => 0,
            },
        }
    }

    /// Sets `row` (greater than every row set before) to `cell`; a NULL cell sets nothing.
    pub fn append(&mut self, row: u32, cell: &Cell<'_>) {
        debug_assert!(self.rows.last().is_none_or(|&r| r < row));
        let pushed = match (&mut self.values, cell) {
            (Values::Str { data, ends }, Cell::Str(s)) => {
                data.extend_from_slice(s.as_bytes());
                ends.push(data.len());
                true
            }
            (Values::Int(v), Cell::Int(i)) => {
                v.push(*i);
                true
            }
            (Values::Float(v), Cell::Float(f)) => {
                v.push(*f);
                true
            }
            (Values::Bool(v), Cell::Bool(b)) => {
                v.push(*b);
                true
            }
            (Values::Time(v), Cell::Time(t)) => {
                v.push(*t);
                true
            }
            // Coercion gives a cell of the column's type or NULL.
            _ => false,
        };
        if pushed {
            self.rows.push(row);
        }
    }

    /// Takes back the value of `row`, if it was the last one set (a record refused after its cells went in).
    pub fn rollback(&mut self, row: u32) {
        if self.rows.last() != Some(&row) {
            return;
        }
        self.rows.pop();
        match &mut self.values {
            Values::Str { data, ends } => {
                ends.pop();
                data.truncate(ends.last().copied().unwrap_or(0));
            }
            Values::Int(v) | Values::Time(v) => {
                v.pop();
            }
            Values::Float(v) => {
                v.pop();
            }
            Values::Bool(v) => {
                v.pop();
            }
        }
    }

    /// Appends the values of `next`, a builder of the rows that follow this one's `rows` rows (its row 0
    /// becomes row `rows` here): a batch decoded in parts is joined before it is finished.
    pub fn extend(&mut self, next: ColumnBuilder, rows: u32) {
        self.rows.extend(next.rows.iter().map(|r| r + rows));
        match (&mut self.values, next.values) {
            (Values::Str { data, ends }, Values::Str { data: d, ends: e }) => {
                let base = data.len();
                data.extend_from_slice(&d);
                ends.extend(e.iter().map(|end| end + base));
            }
            (Values::Int(v), Values::Int(n)) | (Values::Time(v), Values::Time(n)) => v.extend(n),
            (Values::Float(v), Values::Float(n)) => v.extend(n),
            (Values::Bool(v), Values::Bool(n)) => v.extend(n),
            _ => unreachable!("builders of one column have one type"),
        }
    }

    /// The Arrow array of a batch of `len` rows.
    pub fn finish(self, len: usize) -> ArrayRef {
        if self.rows.is_empty() {
            return new_null_array(&self.ty.data_type(), len);
        }
        let dense = self.rows.len() == len;
        let nulls = (!dense).then(|| {
            let mut valid = vec![false; len];
            for &r in &self.rows {
                valid[r as usize] = true;
            }
            NullBuffer::new(BooleanBuffer::from(valid))
        });
        let rows = &self.rows;
        match self.values {
            Values::Str { data, ends } => {
                let mut offsets = Vec::with_capacity(len + 1);
                offsets.push(0i32);
                let offset = |end: usize| {
                    i32::try_from(end).expect("a string column holds less than 2 GiB per batch")
                };
                if dense {
                    offsets.extend(ends.iter().map(|&e| offset(e)));
                } else {
                    let mut next = rows.iter().zip(&ends).peekable();
                    let mut last = 0;
                    for row in 0..len as u32 {
                        if let Some((_, &end)) = next.next_if(|(r, _)| **r == row) {
                            last = offset(end);
                        }
                        offsets.push(last);
                    }
                }
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                let data = trimmed(data);
                // SAFETY: `data` is the concatenation of `&str`s and the offsets are their boundaries, so every
                // slice is valid UTF-8 (`OffsetBuffer::new` has checked the offsets are monotonic).
                Arc::new(unsafe {
                    StringArray::new_unchecked(offsets, Buffer::from_vec(data), nulls)
                })
            }
            Values::Int(v) => Arc::new(Int64Array::new(scatter(rows, v, len), nulls)),
            Values::Float(v) => Arc::new(Float64Array::new(scatter(rows, v, len), nulls)),
            Values::Time(v) => Arc::new(
                TimestampNanosecondArray::new(scatter(rows, v, len), nulls)
                    .with_timezone(schema::UTC),
            ),
            Values::Bool(v) => {
                let values = if dense {
                    BooleanBuffer::from(v)
                } else {
                    let mut all = vec![false; len];
                    for (&r, b) in rows.iter().zip(v) {
                        all[r as usize] = b;
                    }
                    BooleanBuffer::from(all)
                };
                Arc::new(BooleanArray::new(values, nulls))
            }
        }
    }
}

/// Rows, and bytes of text, of a column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    pub rows: usize,
    pub bytes: usize,
}

/// What each column held per byte of records in the batches decoded so far, so that the next batch's
/// builders take the room they will need at once: a builder left to grow doubles its buffers, and each
/// doubling copies what the column held (for the values column, as many bytes as the records). The
/// figures are a guide, not a bound: a builder that needs more still grows. Shared by the threads that
/// decode at once; a race only mixes two batches' figures.
pub struct SizeHints {
    /// Per column: rows and bytes per MiB of records, in 16ths ([`SizeHints::PER`]), packed high/low.
    per_mib: Vec<AtomicU64>,
}

impl SizeHints {
    /// Figures are rows or bytes per MiB of records, in 16ths: a figure `f` gives `f × bytes / PER`
    /// for `bytes` bytes of records.
    const PER: u128 = 16 << 20;

    pub fn new(columns: usize) -> SizeHints {
        SizeHints {
            per_mib: (0..columns).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The room to take for column `c` in a part of `records` records of `record_bytes` bytes: what
    /// the last batch held at that rate, and an eighth more for a batch that holds a little more. Never
    /// more rows than records, nor more text than the records' bytes (a column's strings are parts of
    /// them), whatever batch set the rate.
    pub fn room(&self, c: usize, records: usize, record_bytes: usize) -> Size {
        let packed = self.per_mib[c].load(Ordering::Relaxed);
        let at = |per_mib: u64| {
            let n = (u128::from(per_mib) * record_bytes as u128 / Self::PER) as usize;
            if n == 0 { 0 } else { n + n / 8 + 16 }
        };
        Size {
            rows: at(packed >> 32).min(records),
            bytes: at(packed & u64::from(u32::MAX)).min(record_bytes),
        }
    }

    /// Notes what a batch of `record_bytes` bytes of records held, column by column.
    pub fn note(&self, record_bytes: usize, sizes: impl Iterator<Item = Size>) {
        if record_bytes == 0 {
            return;
        }
        let rate = |n: usize| {
            let per_mib = n as u128 * Self::PER / record_bytes as u128;
            per_mib.min(u128::from(u32::MAX)) as u64
        };
        for (hint, size) in self.per_mib.iter().zip(sizes) {
            hint.store(
                (rate(size.rows) << 32) | rate(size.bytes),
                Ordering::Relaxed,
            );
        }
    }
}

/// `values` without room it will not use, when that room is more than a quarter of what it holds: a
/// finished array keeps its buffer's whole allocation for as long as the batch lives, and a builder's
/// room came from what earlier batches needed.
fn trimmed<T>(mut values: Vec<T>) -> Vec<T> {
    if values.capacity() - values.len() > values.len() / 4 + 64 {
        values.shrink_to_fit();
    }
    values
}

fn scatter<T: ArrowNativeType>(rows: &[u32], values: Vec<T>, len: usize) -> ScalarBuffer<T> {
    if rows.len() == len {
        return ScalarBuffer::from(trimmed(values));
    }
    let mut all = vec![T::default(); len];
    for (&r, v) in rows.iter().zip(values) {
        all[r as usize] = v;
    }
    ScalarBuffer::from(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};

    #[test]
    fn builders_of_consecutive_rows_joined_finish_as_one() {
        let cells = |rows: &[(u32, &str)]| {
            let mut b = ColumnBuilder::new(ColumnType::String);
            for (r, v) in rows {
                b.append(*r, &Cell::Str((*v).into()));
            }
            b
        };
        let whole = cells(&[(0, "a"), (2, "bc"), (4, "d"), (5, "ef")]).finish(7);
        let mut first = cells(&[(0, "a"), (2, "bc")]);
        first.extend(cells(&[(0, "d"), (1, "ef")]), 4);
        assert_eq!(first.finish(7).as_ref(), whole.as_ref());
        let ints = |rows: &[(u32, i64)]| {
            let mut b = ColumnBuilder::new(ColumnType::Int);
            for (r, v) in rows {
                b.append(*r, &Cell::Int(*v));
            }
            b
        };
        let mut first = ints(&[(1, 7)]);
        first.extend(ints(&[]), 3);
        first.extend(ints(&[(0, 9)]), 3);
        assert_eq!(
            first.finish(4).as_ref(),
            ints(&[(1, 7), (3, 9)]).finish(4).as_ref()
        );
    }

    #[test]
    fn room_follows_what_the_last_batch_held_per_byte_of_records() {
        let hints = SizeHints::new(3);
        assert_eq!(
            hints.room(0, 1_000, 1 << 20),
            Size::default(),
            "nothing noted yet"
        );
        let held = [
            Size {
                rows: 1000,
                bytes: 50_000,
            },
            Size::default(),
            Size { rows: 10, bytes: 0 },
        ];
        hints.note(1 << 20, held.into_iter());
        // Twice the records: twice the room, and an eighth more.
        let room = hints.room(0, 2_000, 2 << 20);
        assert_eq!(room.rows, 2_000, "never more rows than records");
        let room = hints.room(0, 10_000, 2 << 20);
        assert!((2_250..=2_270).contains(&room.rows), "{room:?}");
        assert!((112_500..=112_520).contains(&room.bytes), "{room:?}");
        assert_eq!(
            hints.room(1, 10_000, 2 << 20),
            Size::default(),
            "an unused column"
        );
        assert_eq!(hints.room(2, 10_000, 2 << 20).bytes, 0);
        assert_eq!(hints.room(0, 0, 0), Size::default(), "no records");
        // A few large records after many small ones: no more room than the records could fill.
        hints.note(
            1 << 10,
            [
                Size {
                    rows: 10,
                    bytes: 1 << 10,
                },
                Size::default(),
                Size::default(),
            ]
            .into_iter(),
        );
        assert_eq!(
            hints.room(0, 2, 8 << 20),
            Size {
                rows: 2,
                bytes: 8 << 20
            }
        );

        // A builder given too little room still takes every value.
        let values = [(0, "abc"), (2, "defgh"), (3, "i")];
        let mut small =
            ColumnBuilder::with_capacity(ColumnType::String, Size { rows: 1, bytes: 2 });
        let mut plain = ColumnBuilder::new(ColumnType::String);
        for (r, v) in values {
            small.append(r, &Cell::Str(v.into()));
            plain.append(r, &Cell::Str(v.into()));
        }
        assert_eq!(small.size(), Size { rows: 3, bytes: 9 });
        assert_eq!(small.finish(5).as_ref(), plain.finish(5).as_ref());

        // Room a batch did not use is not kept with its array.
        let mut roomy = ColumnBuilder::with_capacity(
            ColumnType::String,
            Size {
                rows: 100_000,
                bytes: 1 << 20,
            },
        );
        roomy.append(0, &Cell::Str("abc".into()));
        let mut times = ColumnBuilder::with_capacity(
            ColumnType::Int,
            Size {
                rows: 100_000,
                bytes: 0,
            },
        );
        times.append(0, &Cell::Int(7));
        for array in [roomy.finish(1), times.finish(1)] {
            assert!(array.get_array_memory_size() < 4 << 10, "{array:?}");
        }
    }

    #[test]
    fn sparse_values_land_on_their_rows_and_the_rest_is_null() {
        let mut s = ColumnBuilder::new(ColumnType::String);
        s.append(1, &Cell::Str("a".into()));
        s.append(3, &Cell::Str("bc".into()));
        s.append(4, &Cell::Str("x".into()));
        s.rollback(4);
        let array = s.finish(5);
        let strings = array.as_string::<i32>();
        assert_eq!(strings.null_count(), 3);
        assert_eq!((strings.value(1), strings.value(3)), ("a", "bc"));
        assert!(strings.is_null(0) && strings.is_null(4));

        let mut i = ColumnBuilder::new(ColumnType::Int);
        i.append(0, &Cell::Int(7));
        i.append(1, &Cell::Null);
        let ints = i.finish(2);
        assert_eq!(
            ints.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(0),
            7
        );
        assert!(ints.is_null(1));

        let empty = ColumnBuilder::new(ColumnType::Bool).finish(3);
        assert_eq!(empty.null_count(), 3);
    }
}
