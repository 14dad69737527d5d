//! Text arrays read in place — the decoder's `Utf8`, the lake's `Utf8View` — for the functions hunts
//! call: no copy of the column per call, no allocation per row, and for a view array read from
//! dictionary pages, one answer per distinct value.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericStringArray, OffsetSizeTrait, StringViewArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;

/// Maps every value of a text array (`Utf8`, `LargeUtf8` or `Utf8View`, read in place; anything else
/// cast to `Utf8` first) through `f`.
pub(crate) fn map_texts<O, T: FromIterator<O>>(
    array: &ArrayRef,
    mut f: impl FnMut(Option<&str>) -> O,
) -> Result<T> {
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().map(&mut f).collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().map(&mut f).collect(),
        DataType::Utf8View => array.as_string_view().iter().map(&mut f).collect(),
        _ => cast(array, &DataType::Utf8)?
            .as_string::<i32>()
            .iter()
            .map(&mut f)
            .collect(),
    })
}

/// Tests every value of a text array (read in place, as [`map_texts`]) into a boolean array built bit
/// by bit. A NULL value gives NULL, or `on_null` when that is given.
pub(crate) fn test_texts(
    array: &ArrayRef,
    on_null: Option<bool>,
    test: impl Fn(&str) -> bool,
) -> Result<BooleanArray> {
    test_values(array, on_null, false, |v, _| test(v))
}

/// [`test_texts`] with `test(value, ascii)`, where `ascii` says the value is ASCII when that was found
/// for the whole array at once (one pass over its bytes; `false` means unknown).
pub(crate) fn test_texts_ascii(
    array: &ArrayRef,
    on_null: Option<bool>,
    test: impl Fn(&str, bool) -> bool,
) -> Result<BooleanArray> {
    test_values(array, on_null, true, test)
}

/// Whether every value of `a` is ASCII: its data buffers, and the bytes of its views that hold text
/// (all 12 after the length of a short value, zero-padded; the 4-byte prefix of a long one). One
/// branch-free pass over the views.
fn views_ascii(a: &StringViewArray) -> bool {
    const SHORT: u128 = 0x8080_8080_8080_8080_8080_8080_0000_0000;
    const PREFIX: u128 = 0x8080_8080_0000_0000;
    let high = a.views().iter().fold(0u128, |high, v| {
        high | (v & if *v as u32 <= 12 { SHORT } else { PREFIX })
    });
    high == 0 && a.data_buffers().iter().all(|b| b.as_slice().is_ascii())
}

fn test_values(
    array: &ArrayRef,
    on_null: Option<bool>,
    want_ascii: bool,
    test: impl Fn(&str, bool) -> bool,
) -> Result<BooleanArray> {
    let bits = |len: usize, nulls: Option<&NullBuffer>, value: &dyn Fn(usize) -> bool| {
        let values = BooleanBuffer::collect_bool(len, |i| match nulls {
            Some(n) if n.is_null(i) => on_null.unwrap_or(false),
            _ => value(i),
        });
        BooleanArray::new(values, nulls.filter(|_| on_null.is_none()).cloned())
    };
    fn ascii_offsets<O: OffsetSizeTrait>(a: &GenericStringArray<O>) -> bool {
        let offsets = a.value_offsets();
        let (start, end) = (offsets[0].as_usize(), offsets[a.len()].as_usize());
        a.value_data()[start..end].is_ascii()
    }
    Ok(match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            let ascii = want_ascii && ascii_offsets(a);
            bits(a.len(), a.nulls(), &|i| test(a.value(i), ascii))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            let ascii = want_ascii && ascii_offsets(a);
            bits(a.len(), a.nulls(), &|i| test(a.value(i), ascii))
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            let ascii = want_ascii && views_ascii(a);
            let views = a.views();
            let memo = ViewMemo::default();
            bits(a.len(), a.nulls(), &|i| {
                memo.get_or(views[i], || test(a.value(i), ascii))
            })
        }
        _ => {
            return test_values(&cast(array, &DataType::Utf8)?, on_null, want_ascii, test);
        }
    })
}

/// A test's answers by view, for one `Utf8View` array. A view is the value's length and, for up to 12
/// bytes, the value itself, or else its first bytes and where it lies (buffer and offset): two rows with
/// the same view hold the same text. The Parquet reader gives every row of a dictionary-encoded page
/// the view of its dictionary entry, so in a retro-hunt a column of few distinct values (a channel, an
/// image path) is tested once per value and batch rather than once per row. Direct-mapped: a view
/// evicts another of its slot, and a column of distinct values costs a hash and a compare per row.
struct ViewMemo {
    /// (view, answer + 1); 0: empty.
    slots: [std::cell::Cell<(u128, u8)>; ViewMemo::SLOTS],
}

impl Default for ViewMemo {
    fn default() -> Self {
        ViewMemo {
            slots: std::array::from_fn(|_| std::cell::Cell::new((0, 0))),
        }
    }
}

impl ViewMemo {
    const SLOTS: usize = 256;

    fn get_or(&self, view: u128, test: impl FnOnce() -> bool) -> bool {
        let folded = (view as u64) ^ ((view >> 64) as u64);
        let slot = &self.slots[(folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize];
        let (seen, answer) = slot.get();
        if answer != 0 && seen == view {
            return answer == 2;
        }
        let answer = test();
        slot.set((view, u8::from(answer) + 1));
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use std::sync::Arc;

    /// Whether `test_texts` found every value ASCII, and what it answers for each row.
    fn tested(array: &ArrayRef, on_null: Option<bool>) -> (bool, Vec<Option<bool>>) {
        let all = std::cell::Cell::new(true);
        let result = test_texts_ascii(array, on_null, |v, ascii| {
            all.set(all.get() && ascii);
            v.len() > 3
        })
        .unwrap();
        (all.get(), result.iter().collect())
    }

    #[test]
    fn texts_are_tested_with_ascii_known_for_the_whole_array_only_when_it_is() {
        let values = vec![Some("épée"), Some("abcd"), None, Some("ab"), Some("ü")];
        for array in [
            Arc::new(StringArray::from(values.clone())) as ArrayRef,
            Arc::new(StringViewArray::from(values)),
        ] {
            // The short non-ASCII value sits in the view itself, the long one in a data buffer.
            assert_eq!(
                tested(&array, None),
                (
                    false,
                    vec![Some(true), Some(true), None, Some(false), Some(false)]
                )
            );
            // A slice of ASCII values of the same array.
            assert_eq!(
                tested(&array.slice(1, 3), None),
                (true, vec![Some(true), None, Some(false)])
            );
            assert_eq!(
                tested(&array.slice(1, 3), Some(true)).1,
                [Some(true), Some(true), Some(false)]
            );
        }
        let long: ArrayRef = Arc::new(StringViewArray::from(vec!["a value longer than twelve"]));
        assert_eq!(tested(&long, None), (true, vec![Some(true)]));
        let long: ArrayRef = Arc::new(StringViewArray::from(vec!["a value longer than twelvé"]));
        assert!(!tested(&long, None).0);
    }

    /// A view array as the Parquet reader decodes a dictionary page: every row of one value has the
    /// view of its dictionary entry (`values`' texts, one buffer), rows given as indexes into `values`.
    fn dictionary_read(values: &[&str], rows: &[Option<usize>]) -> ArrayRef {
        let mut builder = datafusion::arrow::array::StringViewBuilder::new();
        let block = builder.append_block(datafusion::arrow::buffer::Buffer::from(
            values.concat().into_bytes(),
        ));
        let starts: Vec<u32> = values
            .iter()
            .scan(0u32, |at, v| {
                let start = *at;
                *at += v.len() as u32;
                Some(start)
            })
            .collect();
        for row in rows {
            match row {
                Some(k) => builder
                    .try_append_view(block, starts[*k], values[*k].len() as u32)
                    .unwrap(),
                None => builder.append_null(),
            }
        }
        Arc::new(builder.finish())
    }

    #[test]
    fn a_dictionary_read_column_is_tested_once_per_value() {
        let values = [
            "C:\\Windows\\System32\\cmd.exe",
            "C:\\Windows\\explorer.exe",
            "cmd.exe",
        ];
        let rows: Vec<Option<usize>> = (0..3000)
            .map(|i| (i % 7 != 0).then_some(i * 31 % 3))
            .collect();
        let array = dictionary_read(&values, &rows);
        let calls = std::cell::Cell::new(0);
        let result = test_texts(&array, None, |v| {
            calls.set(calls.get() + 1);
            v.ends_with("cmd.exe")
        })
        .unwrap();
        let expected: Vec<Option<bool>> = rows
            .iter()
            .map(|r| r.map(|k| values[k].ends_with("cmd.exe")))
            .collect();
        assert_eq!(result.iter().collect::<Vec<_>>(), expected);
        assert_eq!(calls.get(), values.len());
    }

    #[test]
    fn view_answers_stay_right_with_more_values_than_remembered() {
        // 1,000 long values (slots are evicted) and short ones (the view is the text), in two orders.
        let texts: Vec<String> = (0..1000)
            .map(|i| format!("a value longer than twelve bytes {i}"))
            .chain((0..50).map(|i| format!("v{i}")))
            .collect();
        let values: Vec<&str> = texts.iter().map(String::as_str).collect();
        let rows: Vec<Option<usize>> = (0..values.len())
            .chain((0..values.len()).rev())
            .map(|i| Some(i * 7919 % values.len()))
            .collect();
        let array = dictionary_read(&values, &rows);
        let test = |v: &str| v.ends_with('7') || v.ends_with('3');
        let result = test_texts(&array, None, test).unwrap();
        let expected: Vec<Option<bool>> = rows.iter().map(|r| r.map(|k| test(values[k]))).collect();
        assert_eq!(result.iter().collect::<Vec<_>>(), expected);
        // The same texts at other places of the buffer: other views, the same answers.
        let plain: ArrayRef = Arc::new(StringViewArray::from(
            rows.iter()
                .map(|r| r.map(|k| values[k]))
                .collect::<Vec<_>>(),
        ));
        let again = test_texts(&plain, None, test).unwrap();
        assert_eq!(again.iter().collect::<Vec<_>>(), expected);
    }
}
