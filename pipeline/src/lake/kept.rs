//! The rows a retro-hunt's scan keeps, gathered into batches of the types the hunts read, copying each
//! kept value once.
//!
//! The table's text comes out of Parquet as views into the decoded pages, and the hunts read plain
//! strings. Filtering with DataFusion's `FilterExec` copied the kept rows once into its coalesced
//! batches and the cast to strings copied them again: together about a quarter of the scan's CPU
//! (`benches/README.md`). Here the kept values go from the views straight into the strings, into
//! batches of about `batch_size` rows.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, StringArray,
    StringViewArray, new_null_array,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, OffsetBuffer};
use datafusion::arrow::compute::{
    FilterBuilder, FilterPredicate, cast, concat, prep_null_mask_filter,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// `schema` with the types `wanted` gives for the columns it names.
pub(super) fn with_types(schema: &Schema, wanted: Option<&Schema>) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(
            |f| match wanted.and_then(|w| w.field_with_name(f.name()).ok()) {
                Some(w) => f.as_ref().clone().with_data_type(w.data_type().clone()),
                None => f.as_ref().clone(),
            },
        )
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The rows of `input` that `predicate` keeps (all of them without one; NULL does not keep a row), as
/// batches of `output` (the input's columns, some of other types, then one boolean column per `answers`)
/// of at least `batch_size` rows but the last. The `answers` predicates are answered for the kept rows
/// while their text is still the scan's views (each distinct value of a dictionary-encoded page tested
/// once: `query::texts`), NULL as false. `scanned` counts the rows read, kept or not.
pub(super) fn kept(
    input: SendableRecordBatchStream,
    predicate: Option<Arc<dyn PhysicalExpr>>,
    answers: Vec<Arc<dyn PhysicalExpr>>,
    output: SchemaRef,
    batch_size: usize,
    scanned: Arc<AtomicU64>,
) -> SendableRecordBatchStream {
    let schema = Arc::clone(&output);
    // The columns the answers read.
    let read: Arc<HashSet<usize>> = Arc::new(
        answers
            .iter()
            .flat_map(collect_columns)
            .map(|c| c.index())
            .collect(),
    );
    let answers = Arc::new(answers);
    let stream = futures::stream::try_unfold(
        (input, Some(Pending::default())),
        move |(mut input, pending)| {
            let (predicate, answers, read, output, scanned) = (
                predicate.clone(),
                Arc::clone(&answers),
                Arc::clone(&read),
                Arc::clone(&output),
                Arc::clone(&scanned),
            );
            async move {
                let Some(mut pending) = pending else {
                    return Ok(None);
                };
                while let Some(batch) = input.next().await {
                    let batch = batch?;
                    scanned.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    let mask = match &predicate {
                        Some(p) => mask(p.evaluate(&batch)?.into_array(batch.num_rows())?)?,
                        None => BooleanArray::new(BooleanBuffer::new_set(batch.num_rows()), None),
                    };
                    let rows = mask.true_count();
                    if rows > 0 {
                        let piece = Piece::new(batch, &mask);
                        let answered = match answers.is_empty() {
                            true => Vec::new(),
                            false => {
                                let kept = kept_for_answers(&piece, rows, &read)?;
                                answers
                                    .iter()
                                    .map(|a| self::mask(a.evaluate(&kept)?.into_array(rows)?))
                                    .collect::<Result<Vec<_>>>()?
                            }
                        };
                        pending.rows += rows;
                        pending.pieces.push(piece);
                        pending.answers.push(answered);
                    }
                    if pending.rows >= batch_size {
                        let out = gather(&pending, &output)?;
                        return Ok(Some((out, (input, Some(Pending::default())))));
                    }
                }
                if pending.rows == 0 {
                    return Ok(None);
                }
                let out = gather(&pending, &output)?;
                Ok(Some((out, (input, None))))
            }
        },
    );
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// The kept rows of `piece` to answer the hunts' filters on: the columns they `read` filtered, the
/// others NULL (a copy of every column's kept rows was a twelfth of a retro-hunt's CPU).
fn kept_for_answers(piece: &Piece, rows: usize, read: &HashSet<usize>) -> Result<RecordBatch> {
    let schema = piece.batch.schema();
    let columns = piece
        .batch
        .columns()
        .iter()
        .enumerate()
        .map(
            |(i, c)| match read.contains(&i) || !schema.field(i).is_nullable() {
                true => piece.keep.filter(c),
                false => Ok(new_null_array(c.data_type(), rows)),
            },
        )
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema, columns, &options,
    )?)
}

/// A batch read and which of its rows are kept.
struct Piece {
    batch: RecordBatch,
    /// The kept rows as a filter, prepared once for every column it copies.
    keep: FilterPredicate,
    /// The kept rows' indices, in order.
    indices: Vec<u32>,
}

impl Piece {
    fn new(batch: RecordBatch, mask: &BooleanArray) -> Self {
        let indices = mask.values().set_indices().map(|i| i as u32).collect();
        let keep = FilterBuilder::new(mask).optimize().build();
        Piece {
            batch,
            keep,
            indices,
        }
    }
}

/// Batches read and which of their rows are kept, not gathered yet.
#[derive(Default)]
struct Pending {
    pieces: Vec<Piece>,
    /// Per piece, the answers for its kept rows.
    answers: Vec<Vec<BooleanArray>>,
    rows: usize,
}

/// A predicate's answer as the rows to keep: true, not NULL.
fn mask(answer: ArrayRef) -> Result<BooleanArray> {
    let answer = answer.as_boolean_opt().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "the scan filter gave {}, not booleans",
            answer.data_type()
        ))
    })?;
    Ok(match answer.null_count() {
        0 => answer.clone(),
        _ => prep_null_mask_filter(answer),
    })
}

/// The kept rows of the pending pieces as one batch of `output`: their columns, then the answers.
fn gather(pending: &Pending, output: &SchemaRef) -> Result<RecordBatch> {
    let (pieces, rows) = (&pending.pieces, pending.rows);
    let width = pieces[0].batch.num_columns();
    let mut columns = output
        .fields()
        .iter()
        .take(width)
        .enumerate()
        .map(|(c, field)| column(pieces, c, rows, field.data_type()))
        .collect::<Result<Vec<_>>>()?;
    for a in 0..output.fields().len() - width {
        let answers: Vec<&dyn Array> = pending
            .answers
            .iter()
            .map(|p| &p[a] as &dyn Array)
            .collect();
        columns.push(match answers.as_slice() {
            [only] => Arc::new((*only).as_boolean().clone()) as ArrayRef,
            _ => concat(&answers)?,
        });
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(output),
        columns,
        &options,
    )?)
}

/// Column `c`'s kept values as `to`.
fn column(pieces: &[Piece], c: usize, rows: usize, to: &DataType) -> Result<ArrayRef> {
    let from = pieces[0].batch.column(c).data_type();
    if *from == DataType::Utf8View && *to == DataType::Utf8 {
        let views: Vec<(&StringViewArray, &[u32])> = pieces
            .iter()
            .map(|p| (p.batch.column(c).as_string_view(), p.indices.as_slice()))
            .collect();
        return strings(&views, rows);
    }
    let kept = pieces
        .iter()
        .map(|p| p.keep.filter(p.batch.column(c)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let one = match kept.as_slice() {
        [only] => Arc::clone(only),
        _ => concat(&kept.iter().map(|a| a.as_ref()).collect::<Vec<_>>())?,
    };
    Ok(match one.data_type() == to {
        true => one,
        false => cast(&one, to)?,
    })
}

/// The values of text views at the given rows of each array, as one array of plain strings: each kept
/// value copied once, into a buffer allocated once (its size summed from the views' lengths, their low 32
/// bits). A NULL row's view is not read: Parquet's reader leaves another row's view there. Arrays whose
/// every row is NULL (the columns of other kinds of events) only add NULLs.
fn strings(pieces: &[(&StringViewArray, &[u32])], rows: usize) -> Result<ArrayRef> {
    let empty = |values: &StringViewArray| values.null_count() == values.len();
    let mut bytes = 0usize;
    for (values, kept) in pieces {
        if empty(values) {
            continue;
        }
        let views = values.views();
        bytes += match values.nulls() {
            None => kept
                .iter()
                .map(|&i| views[i as usize] as u32 as usize)
                .sum::<usize>(),
            Some(nulls) => kept
                .iter()
                .filter(|&&i| nulls.is_valid(i as usize))
                .map(|&i| views[i as usize] as u32 as usize)
                .sum::<usize>(),
        };
    }
    if i32::try_from(bytes).is_err() {
        return Err(DataFusionError::Execution(format!(
            "{bytes} bytes of text in one batch of {rows} rows: more than a string array holds"
        )));
    }
    let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
    offsets.push(0);
    let mut data: Vec<u8> = Vec::with_capacity(bytes);
    let mut valid = NullBufferBuilder::new(rows);
    for (values, kept) in pieces {
        if empty(values) {
            offsets.extend(std::iter::repeat_n(data.len() as i32, kept.len()));
            valid.append_n_nulls(kept.len());
            continue;
        }
        let nulls = values.nulls();
        for &i in kept.iter() {
            let i = i as usize;
            if nulls.is_some_and(|n| n.is_null(i)) {
                valid.append_null();
            } else {
                data.extend_from_slice(values.value(i).as_bytes());
                valid.append_non_null();
            }
            offsets.push(data.len() as i32);
        }
    }
    let offsets = OffsetBuffer::new(offsets.into());
    // SAFETY: `data` is the concatenation of `&str`s and the offsets are their boundaries, so every slice
    // is valid UTF-8 (`OffsetBuffer::new` has checked the offsets are monotonic).
    Ok(Arc::new(unsafe {
        StringArray::new_unchecked(offsets, Buffer::from_vec(data), valid.finish())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ByteView, Int64Array, StringArray, StringViewArray};
    use datafusion::physical_expr::expressions::{BinaryExpr, col, lit};
    use datafusion::physical_plan::common::collect;

    fn batch(texts: Vec<Option<&str>>, ids: Vec<Option<i64>>) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("text", Arc::new(StringViewArray::from(texts)) as ArrayRef),
            ("id", Arc::new(Int64Array::from(ids))),
        ])
        .unwrap()
    }

    /// Text views become plain strings: short values (in the view), long ones (in a data buffer, of
    /// several buffers), NULLs whose view is another row's, as Parquet's reader leaves them, and a batch
    /// whose every row is NULL between two that are not.
    #[test]
    fn text_views_are_copied_into_strings_nulls_with_stale_views_included() {
        let long = "a value longer than twelve bytes";
        let other = "another long value, in the second buffer";
        let built = StringViewArray::from(vec![Some("short"), Some(long), Some("")]);
        let second = StringViewArray::from(vec![Some(other)]);
        // Row 3 is NULL with the view of row 1 (long, buffer 0); row 4 holds `other` from buffer 1.
        let mut views = built.views().to_vec();
        views.push(views[1]);
        let mut moved = ByteView::from(second.views()[0]);
        moved.buffer_index = 1;
        views.push(moved.as_u128());
        let buffers = vec![
            built.data_buffers()[0].clone(),
            second.data_buffers()[0].clone(),
        ];
        let nulls =
            datafusion::arrow::buffer::NullBuffer::from(vec![true, true, true, false, true]);
        let array = StringViewArray::try_new(views.into(), buffers, Some(nulls)).unwrap();
        let one = RecordBatch::try_from_iter([("text", Arc::new(array) as ArrayRef)]).unwrap();
        let two = RecordBatch::try_from_iter([(
            "text",
            Arc::new(StringViewArray::from(vec![None, Some("twelve bytes")])) as ArrayRef,
        )])
        .unwrap();
        let empty = RecordBatch::try_from_iter([(
            "text",
            Arc::new(StringViewArray::from(vec![None::<&str>, None, None])) as ArrayRef,
        )])
        .unwrap();
        let pieces = vec![
            Piece::new(
                one,
                &BooleanArray::from(vec![true, true, false, true, true]),
            ),
            Piece::new(empty, &BooleanArray::from(vec![true, false, true])),
            Piece::new(two, &BooleanArray::from(vec![true, true])),
        ];
        let strings = column(&pieces, 0, 8, &DataType::Utf8).unwrap();
        let expected = StringArray::from(vec![
            Some("short"),
            Some(long),
            None,
            Some(other),
            None,
            None,
            None,
            Some("twelve bytes"),
        ]);
        assert_eq!(strings.as_string::<i32>(), &expected);
        strings.to_data().validate_full().unwrap();
    }

    /// The kept rows, gathered across batches, equal DataFusion's filter and then cast.
    #[tokio::test]
    async fn kept_rows_are_the_filtered_rows_cast_and_gathered() {
        let long = "a text longer than twelve bytes, kept out of line";
        let batches = vec![
            batch(
                vec![Some("x"), None, Some(long)],
                vec![Some(1), Some(2), None],
            ),
            batch(vec![Some("y"), Some(long)], vec![Some(5), Some(6)]),
            batch(vec![], vec![]),
            batch(
                vec![None, Some("z"), Some("w")],
                vec![Some(7), Some(8), Some(9)],
            ),
        ];
        let schema = batches[0].schema();
        let wanted = Schema::new(vec![Field::new("text", DataType::Utf8, true)]);
        let output = with_types(&schema, Some(&wanted));
        assert_eq!(output.field(0).data_type(), &DataType::Utf8);
        assert_eq!(output.field(1).data_type(), &DataType::Int64);
        // id <> 2 and id <> 8: NULL ids are dropped, as a filter drops them.
        let predicate: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(
                col("id", &schema).unwrap(),
                datafusion::logical_expr::Operator::NotEq,
                lit(2i64),
            )),
            datafusion::logical_expr::Operator::And,
            Arc::new(BinaryExpr::new(
                col("id", &schema).unwrap(),
                datafusion::logical_expr::Operator::NotEq,
                lit(8i64),
            )),
        ));
        // A hunt's filter answered for the kept rows: text = 'w' OR id = 5 (NULL OR false is false).
        let answer: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(
                col("text", &schema).unwrap(),
                datafusion::logical_expr::Operator::Eq,
                lit(datafusion::scalar::ScalarValue::Utf8View(Some("w".into()))),
            )),
            datafusion::logical_expr::Operator::Or,
            Arc::new(BinaryExpr::new(
                col("id", &schema).unwrap(),
                datafusion::logical_expr::Operator::Eq,
                lit(5i64),
            )),
        ));
        let mut fields: Vec<Field> = output.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("answer", DataType::Boolean, false));
        let answered = Arc::new(Schema::new(fields));
        for batch_size in [1, 2, 4, 100] {
            let input = Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&schema),
                futures::stream::iter(batches.clone().into_iter().map(Ok)),
            ));
            let out = collect(kept(
                input,
                Some(Arc::clone(&predicate)),
                vec![Arc::clone(&answer)],
                Arc::clone(&answered),
                batch_size,
                Arc::default(),
            ))
            .await
            .unwrap();
            // Every batch but the last has at least batch_size rows.
            for b in &out[..out.len() - 1] {
                assert!(b.num_rows() >= batch_size, "{batch_size}");
            }
            let all = datafusion::arrow::compute::concat_batches(&answered, &out).unwrap();
            assert_eq!(
                all.column(2).as_boolean(),
                &BooleanArray::from(vec![false, true, false, false, true]),
                "{batch_size}"
            );
            let texts = all.column(0).as_string::<i32>();
            let expected =
                StringArray::from(vec![Some("x"), Some("y"), Some(long), None, Some("w")]);
            assert_eq!(texts, &expected, "{batch_size}");
            let ids = all
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            assert_eq!(ids, &Int64Array::from(vec![1, 5, 6, 7, 9]));
        }
        // Without a predicate every row comes; with nothing kept, no batch.
        let all = |predicate| {
            let input = Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&schema),
                futures::stream::iter(batches.clone().into_iter().map(Ok)),
            ));
            let scanned = Arc::new(AtomicU64::new(0));
            let out = collect(kept(
                input,
                predicate,
                Vec::new(),
                Arc::clone(&output),
                3,
                Arc::clone(&scanned),
            ));
            async move { (out.await.unwrap(), scanned.load(Ordering::Relaxed)) }
        };
        let (out, scanned) = all(None).await;
        let rows: usize = out.iter().map(|b| b.num_rows()).sum();
        assert_eq!((rows, scanned), (8, 8));
        let none: Arc<dyn PhysicalExpr> = lit(false);
        let (out, scanned) = all(Some(none)).await;
        assert!(out.is_empty());
        assert_eq!(scanned, 8, "rows read count, kept or not");
    }
}
