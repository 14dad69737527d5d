//! `AND` / `OR` whose right side is evaluated only on the rows its left side leaves open.
//!
//! DataFusion evaluates `l AND r` by evaluating `r` over the whole batch unless `l` is true on at most a
//! fifth of the rows *and has no NULL* — and then it filters every column of the batch for `r`, not
//! only the ones `r` reads. The hunts' filters are chains like `channel test AND event-id test AND text
//! tests over command lines`, where the left side is often NULL (an event kind without the column) or
//! true on a little more than a fifth of the rows: the costly text tests then ran over every row.
//! [`selective`] rewrites every `AND` / `OR` of a filter into a [`Selective`] that
//! - evaluates the right side only on the rows whose result the left side leaves open (`AND`: left true
//!   or NULL; `OR`: left false or NULL), with only the columns the right side reads, when that is at
//!   most [`SELECT_AT_MOST`] of the rows and the right side calls a function (a plain comparison costs
//!   less than the copy);
//! - combines the two sides with SQL's three-valued logic (`and_kleene` / `or_kleene`), so the answer
//!   is the one DataFusion's `BinaryExpr` gives, NULLs included.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::BooleanBufferBuilder;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::boolean::{and_kleene, or_kleene};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{BinaryExpr, CaseExpr, Column, LikeExpr};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};

/// The largest share of a batch's rows the right side is evaluated on alone (filtered out of the
/// batch); above it, the right side runs over the whole batch.
pub const SELECT_AT_MOST: f64 = 0.5;

/// `expr` with every `AND` / `OR` evaluated selectively (see the module's documentation).
pub fn selective(expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
    expr.transform_up(|e| {
        let Some(binary) = e.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(e));
        };
        let and = match binary.op() {
            Operator::And => true,
            Operator::Or => false,
            _ => return Ok(Transformed::no(e)),
        };
        Ok(Transformed::yes(Arc::new(Selective::new(
            and,
            Arc::clone(binary.left()),
            Arc::clone(binary.right()),
        )?) as Arc<dyn PhysicalExpr>))
    })
    .data()
}

/// `left AND right` (`and`) or `left OR right`, the right side evaluated on the open rows only.
#[derive(Debug)]
pub struct Selective {
    and: bool,
    left: Arc<dyn PhysicalExpr>,
    right: Arc<dyn PhysicalExpr>,
    /// The input columns `right` reads, ascending.
    right_columns: Vec<usize>,
    /// `right` over the batch of `right_columns` only.
    right_alone: Arc<dyn PhysicalExpr>,
    /// Whether `right` calls a function (worth evaluating on fewer rows at the price of a copy).
    costly: bool,
}

impl Selective {
    fn new(and: bool, left: Arc<dyn PhysicalExpr>, right: Arc<dyn PhysicalExpr>) -> Result<Self> {
        let mut right_columns: Vec<usize> =
            collect_columns(&right).iter().map(Column::index).collect();
        let costly = right.exists(|e| {
            Ok(e.is::<ScalarFunctionExpr>()
                || e.is::<CaseExpr>()
                || e.is::<LikeExpr>()
                || e.downcast_ref::<BinaryExpr>().is_some_and(|b| {
                    matches!(
                        b.op(),
                        Operator::RegexMatch
                            | Operator::RegexIMatch
                            | Operator::RegexNotMatch
                            | Operator::RegexNotIMatch
                    )
                }))
        })?;
        right_columns.sort_unstable();
        right_columns.dedup();
        let right_alone = Arc::clone(&right)
            .transform_up(|e| match e.downcast_ref::<Column>() {
                Some(c) => {
                    let at = right_columns
                        .binary_search(&c.index())
                        .expect("collected above");
                    Ok(Transformed::yes(
                        Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>
                    ))
                }
                None => Ok(Transformed::no(e)),
            })
            .data()?;
        Ok(Selective {
            and,
            left,
            right,
            right_columns,
            right_alone,
            costly,
        })
    }

    fn keyword(&self) -> &'static str {
        if self.and { "AND" } else { "OR" }
    }

    /// The right side over the rows of `batch` that `open` selects, as a boolean array as long as the
    /// batch (the other rows false and valid: the left side decides them).
    fn right_on(
        &self,
        batch: &RecordBatch,
        open: &BooleanBuffer,
        count: usize,
    ) -> Result<BooleanArray> {
        let narrow = batch.project(&self.right_columns)?;
        let rows = filter_record_batch(&narrow, &BooleanArray::new(open.clone(), None))?;
        let answers = boolean(self.right_alone.evaluate(&rows)?.into_array(count)?)?;
        let n = batch.num_rows();
        Ok(BooleanArray::new(
            scatter(answers.values(), open, n, false),
            answers
                .nulls()
                .map(|valid| NullBuffer::new(scatter(valid.inner(), open, n, true))),
        ))
    }
}

/// `bits` (one per set bit of `open`, in order) placed at `open`'s set bits of `n` bits; `fill` elsewhere.
///
/// The open rows of a hunt's filter are mostly single rows between others (event kinds interleave),
/// so the bits are placed one by one, not as ranges.
fn scatter(bits: &BooleanBuffer, open: &BooleanBuffer, n: usize, fill: bool) -> BooleanBuffer {
    let mut out = BooleanBufferBuilder::new(n);
    out.append_n(n, fill);
    for (k, i) in open.set_indices().enumerate() {
        out.set_bit(i, bits.value(k));
    }
    out.finish()
}

fn boolean(array: ArrayRef) -> Result<BooleanArray> {
    match array.data_type() {
        DataType::Boolean => Ok(array.as_boolean().clone()),
        other => Err(DataFusionError::Internal(format!(
            "AND / OR over a {other} value"
        ))),
    }
}

impl PhysicalExpr for Selective {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        Ok(self.left.nullable(input_schema)? || self.right.nullable(input_schema)?)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let n = batch.num_rows();
        let left = boolean(self.left.evaluate(batch)?.into_array(n)?)?;
        // The rows the left side does not decide: AND, true or NULL; OR, false or NULL.
        let decided_by_value = if self.and {
            !left.values()
        } else {
            left.values().clone()
        };
        let open = match left.nulls() {
            Some(valid) => !&(&decided_by_value & valid.inner()),
            None => !&decided_by_value,
        };
        let count = open.count_set_bits();
        if count == 0 {
            return Ok(ColumnarValue::Array(Arc::new(left)));
        }
        let right = if count < n
            && self.costly
            && !self.right_columns.is_empty()
            && count as f64 <= SELECT_AT_MOST * n as f64
        {
            self.right_on(batch, &open, count)?
        } else {
            boolean(self.right.evaluate(batch)?.into_array(n)?)?
        };
        let combined = if self.and {
            and_kleene(&left, &right)?
        } else {
            or_kleene(&left, &right)?
        };
        Ok(ColumnarValue::Array(Arc::new(combined)))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.left, &self.right]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let [left, right]: [Arc<dyn PhysicalExpr>; 2] = children
            .try_into()
            .map_err(|_| DataFusionError::Internal("AND / OR takes two children".into()))?;
        Ok(Arc::new(Selective::new(self.and, left, right)?))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        self.left.fmt_sql(f)?;
        write!(f, " {} ", self.keyword())?;
        self.right.fmt_sql(f)?;
        write!(f, ")")
    }
}

impl fmt::Display for Selective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} {} {})", self.left, self.keyword(), self.right)
    }
}

impl PartialEq for Selective {
    fn eq(&self, other: &Self) -> bool {
        self.and == other.and
            && self.left.as_ref() == other.left.as_ref()
            && self.right.as_ref() == other.right.as_ref()
    }
}

impl Eq for Selective {}

impl Hash for Selective {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.and.hash(state);
        self.left.hash(state);
        self.right.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::DFSchema;
    use datafusion::logical_expr::{Expr, col, lit};
    use datafusion::prelude::SessionContext;

    use super::*;

    /// Three columns with NULLs: `k` (Int64), `s` (text), `t` (text), `rows` long, from a small LCG so
    /// every mix of TRUE / FALSE / NULL on both sides occurs.
    fn batch(rows: usize, seed: u64) -> RecordBatch {
        let mut x = seed;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as usize
        };
        let words = ["a", "ab", "b", "cab", "", "x"];
        let k: Int64Array = (0..rows)
            .map(|_| (next() % 7 != 0).then(|| (next() % 10) as i64))
            .collect();
        let s: StringArray = (0..rows)
            .map(|_| (next() % 5 != 0).then(|| words[next() % words.len()]))
            .collect();
        let t: StringArray = (0..rows)
            .map(|_| (next() % 4 != 0).then(|| words[next() % words.len()]))
            .collect();
        let schema = Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("t", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(k), Arc::new(s), Arc::new(t)],
        )
        .unwrap()
    }

    fn physical(expr: Expr, batch: &RecordBatch) -> Arc<dyn PhysicalExpr> {
        let schema = DFSchema::try_from(batch.schema().as_ref().clone()).unwrap();
        SessionContext::new()
            .state()
            .create_physical_expr(expr, &schema)
            .unwrap()
    }

    fn answers(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> BooleanArray {
        boolean(
            expr.evaluate(batch)
                .unwrap()
                .into_array(batch.num_rows())
                .unwrap(),
        )
        .unwrap()
    }

    /// Filters with a left side true on few rows, on most rows, and NULL on many; function calls
    /// (selected evaluation) and plain comparisons (whole-batch evaluation) on the right; nested both
    /// ways. Each answers row by row as DataFusion's own AND / OR does.
    #[test]
    fn answers_as_the_plain_and_or_does_nulls_included() {
        let starts = || datafusion::functions::expr_fn::starts_with(col("t"), lit("a"));
        let filters = vec![
            col("k").eq(lit(3)).and(starts()),
            col("k").gt(lit(1)).and(starts()),
            col("k").eq(lit(3)).or(starts()),
            col("k").gt(lit(1)).or(starts()),
            col("s").eq(lit("ab")).and(col("k").eq(lit(2))),
            col("s").eq(lit("ab")).and(
                col("k")
                    .eq(lit(2))
                    .or(starts().and(col("s").not_eq(lit("x")))),
            ),
            col("k")
                .eq(lit(0))
                .or(col("k").eq(lit(9)))
                .and(datafusion::functions::expr_fn::ends_with(
                    col("s"),
                    lit("b"),
                ))
                .or(col("t").is_null().and(std::ops::Not::not(starts()))),
            col("k").eq(lit(5)).and(lit(true)),
            lit(false).or(col("k").eq(lit(4)).and(starts())),
        ];
        for seed in [1, 2, 3] {
            for rows in [0, 1, 7, 64, 1000] {
                let batch = batch(rows, seed);
                for filter in &filters {
                    let plain = physical(filter.clone(), &batch);
                    let ours = selective(Arc::clone(&plain)).unwrap();
                    assert_eq!(
                        answers(&ours, &batch),
                        answers(&plain, &batch),
                        "{filter} over {rows} rows (seed {seed})"
                    );
                }
            }
        }
    }

    /// A selected evaluation copies only the columns the right side reads, and tells which it is.
    #[test]
    fn the_right_side_reads_only_its_columns() {
        let batch = batch(10, 1);
        let filter = col("k")
            .eq(lit(3i64))
            .and(datafusion::functions::expr_fn::starts_with(
                col("t"),
                lit("a"),
            ));
        let ours = selective(physical(filter, &batch)).unwrap();
        let node = ours.downcast_ref::<Selective>().unwrap();
        assert_eq!(node.right_columns, vec![2]);
        assert!(node.costly);
        assert_eq!(ours.to_string(), "(k@0 = 3 AND starts_with(t@2, a))");
        let plain = col("k").eq(lit(3)).and(col("s").eq(lit("a")));
        let ours = selective(physical(plain, &batch)).unwrap();
        assert!(!ours.downcast_ref::<Selective>().unwrap().costly);
    }
}
