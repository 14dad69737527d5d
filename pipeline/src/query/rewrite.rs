//! Case-insensitive comparisons without `lower()`: an analyzer rule that puts the `lower_*` functions
//! ([`super::udf_match::lower_test`]) in place of the patterns hunts write to compare without case —
//!
//! | written (after DataFusion's own simplification)   | run as                          |
//! |----------------------------------------------------|---------------------------------|
//! | `lower(x) = 'c'`, `lower(x) <> 'c'`                | `lower_eq(x, 'c')`, `NOT …`     |
//! | `lower(x) IN ('a', 'b')`, `NOT IN`                 | `lower_eq(x, 'a', 'b')`, `NOT …`|
//! | `starts_with(lower(x), 'c')`, `ends_with(…)`       | `lower_starts_with`, `…ends_with`|
//! | `strpos(lower(x), 'c') > 0`, `contains(lower(x), 'c')` | `lower_contains(x, 'c')`    |
//! | `lower(x) LIKE 'c'`, `'c%'`, `'%c'`, `'%c%'`       | `lower_eq`, `…starts_with`, `…ends_with`, `…contains` |
//! | `x ILIKE` the same shapes, `c` ASCII               | the same, with `c` lower-cased  |
//! | `x ~ 'p'`, `x ~* 'p'`, `!~`, `!~*` (and `regexp_like`, which DataFusion turns into them) | `regex_is_match(x, 'p', '' or 'i')`, `NOT …` |
//!
//! — KQL's `=~`, `in~`, `contains`, `startswith`, `endswith` translate to the left column, and SQL hunts
//! and the KQL tables write them by hand. `lower(x)` makes a lower-cased copy of the column for every
//! comparison (a hunt set compares `lower(channel)` a dozen times per batch); the functions compare in
//! place. Only constants that are already lower case are rewritten (`lower(x) = 'A'` is left as
//! written), so the answers are `lower`'s own, NULLs included. `ILIKE` compares by Unicode case folding
//! rather than `lower`: the two agree on ASCII text and on all but a few characters whose lower case
//! is ASCII plus a mark (`İ` is `i̇` in lower case, and folds to no ASCII letter), where the rewritten
//! form also matches — the answer a hunt for `ilike '%invoke%'` wants. Regular expressions keep their
//! answers exactly (the same `regex` crate); they are compiled once instead of once per batch.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::expr::{InList, Like, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;

use super::udf_match::{LowerTest, cached_regex, lower_test, regex_is_match};

/// The rule (registered in every hunt and lake session by [`super::plan::register_functions`]).
#[derive(Debug)]
pub struct CaseInsensitiveCompare {
    eq: Arc<ScalarUDF>,
    starts_with: Arc<ScalarUDF>,
    ends_with: Arc<ScalarUDF>,
    contains: Arc<ScalarUDF>,
    regex: Arc<ScalarUDF>,
}

impl Default for CaseInsensitiveCompare {
    fn default() -> Self {
        CaseInsensitiveCompare {
            eq: Arc::new(lower_test(LowerTest::Eq)),
            starts_with: Arc::new(lower_test(LowerTest::StartsWith)),
            ends_with: Arc::new(lower_test(LowerTest::EndsWith)),
            contains: Arc::new(lower_test(LowerTest::Contains)),
            regex: Arc::new(regex_is_match()),
        }
    }
}

// An analyzer rule (after type coercion, before the optimizer): the optimizer then sees one form of
// each comparison everywhere, so filters pushed through views and joins still deduplicate.
impl AnalyzerRule for CaseInsensitiveCompare {
    fn name(&self) -> &str {
        "ghosthunt_case_insensitive_compare"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            // A projection's column keeps its name (`lower(x) = 'a'` stays the column's name).
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let name = names.save(&expr);
                let rewritten = expr.transform_up(|e| self.rewrite_expr(e))?;
                Ok(if rewritten.transformed {
                    Transformed::yes(name.restore(rewritten.data))
                } else {
                    rewritten
                })
            })
        })
        .data()
    }
}

/// `e` without the casts type coercion wraps around a literal.
fn uncast(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(c) => uncast(&c.expr),
        Expr::TryCast(c) => uncast(&c.expr),
        e => e,
    }
}

/// A non-NULL string constant (possibly cast by type coercion).
fn text_constant(e: &Expr) -> Option<&str> {
    match uncast(e) {
        Expr::Literal(value, _) => value.try_as_str().flatten(),
        _ => None,
    }
}

/// `x` when `e` is `lower(x)`.
fn lower_of(e: &Expr) -> Option<&Expr> {
    match e {
        Expr::ScalarFunction(ScalarFunction { func, args })
            if func.name() == "lower" && args.len() == 1 =>
        {
            Some(&args[0])
        }
        _ => None,
    }
}

/// A non-NULL string constant that `lower` leaves as it is.
fn lower_constant(e: &Expr) -> Option<&str> {
    text_constant(e).filter(|s| s.to_lowercase() == *s)
}

/// The literal text of a LIKE pattern without wildcards inside (`\` escapes the next character), and
/// whether it had a leading and a trailing `%`. None for anything else (`_`, inner `%`).
fn like_shape(pattern: &str) -> Option<(String, bool, bool)> {
    let (leading, rest) = match pattern.strip_prefix('%') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let mut text = String::with_capacity(rest.len());
    let mut trailing = false;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if trailing {
            // Something after the trailing `%`: a wildcard inside.
            return None;
        }
        match c {
            '\\' => text.push(chars.next()?),
            '%' => trailing = true,
            '_' => return None,
            c => text.push(c),
        }
    }
    Some((text, leading, trailing))
}

/// The test a LIKE shape asks for: `c`, `c%`, `%c`, `%c%`.
fn like_test(leading: bool, trailing: bool) -> LowerTest {
    match (leading, trailing) {
        (false, false) => LowerTest::Eq,
        (false, true) => LowerTest::StartsWith,
        (true, false) => LowerTest::EndsWith,
        (true, true) => LowerTest::Contains,
    }
}

impl CaseInsensitiveCompare {
    /// `regex_is_match(x, 'pattern', flags)`, when the pattern compiles (else DataFusion's own
    /// operator stays, with its own error).
    fn regex(&self, x: &Expr, pattern: &Expr, case_insensitive: bool) -> Option<Expr> {
        let pattern = text_constant(pattern)?;
        cached_regex(pattern, case_insensitive).ok()?;
        let text = |t: &str| Expr::Literal(ScalarValue::Utf8(Some(t.to_string())), None);
        Some(Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::clone(&self.regex),
            vec![
                x.clone(),
                text(pattern),
                text(if case_insensitive { "i" } else { "" }),
            ],
        )))
    }

    fn call(&self, test: LowerTest, x: &Expr, constants: Vec<&str>) -> Expr {
        let func = match test {
            LowerTest::Eq => &self.eq,
            LowerTest::StartsWith => &self.starts_with,
            LowerTest::EndsWith => &self.ends_with,
            LowerTest::Contains => &self.contains,
        };
        let mut args = vec![x.clone()];
        args.extend(
            constants
                .into_iter()
                .map(|c| Expr::Literal(ScalarValue::Utf8(Some(c.to_string())), None)),
        );
        Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(func), args))
    }

    fn rewrite_expr(&self, e: Expr) -> Result<Transformed<Expr>> {
        let negate = |e: Expr, negated: bool| if negated { Expr::Not(Box::new(e)) } else { e };
        let replaced = match &e {
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(op, Operator::Eq | Operator::NotEq) =>
            {
                let (x, c) = match (lower_of(left), lower_of(right)) {
                    (Some(x), _) => (Some(x), lower_constant(right)),
                    (_, Some(x)) => (Some(x), lower_constant(left)),
                    _ => (None, None),
                };
                x.zip(c).map(|(x, c)| {
                    negate(self.call(LowerTest::Eq, x, vec![c]), *op == Operator::NotEq)
                })
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(
                    op,
                    Operator::RegexMatch
                        | Operator::RegexIMatch
                        | Operator::RegexNotMatch
                        | Operator::RegexNotIMatch
                ) =>
            {
                let insensitive = matches!(op, Operator::RegexIMatch | Operator::RegexNotIMatch);
                let negated = matches!(op, Operator::RegexNotMatch | Operator::RegexNotIMatch);
                self.regex(left, right, insensitive)
                    .map(|call| negate(call, negated))
            }
            // strpos(lower(x), 'c') > 0
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if *op == Operator::Gt
                    && matches!(uncast(right), Expr::Literal(v, _) if v == &ScalarValue::Int64(Some(0)) || v == &ScalarValue::Int32(Some(0))) =>
            {
                // (type coercion casts the position to the constant's type)
                match uncast(left) {
                    Expr::ScalarFunction(ScalarFunction { func, args })
                        if func.name() == "strpos" && args.len() == 2 =>
                    {
                        lower_of(&args[0])
                            .zip(lower_constant(&args[1]))
                            .map(|(x, c)| self.call(LowerTest::Contains, x, vec![c]))
                    }
                    _ => None,
                }
            }
            // regexp_like(x, 'p'[, '' or 'i'])
            Expr::ScalarFunction(ScalarFunction { func, args })
                if func.name() == "regexp_like" && matches!(args.len(), 2 | 3) =>
            {
                let flags = match args.get(2) {
                    None => Some(""),
                    Some(f) => text_constant(f),
                };
                match flags {
                    Some("") => self.regex(&args[0], &args[1], false),
                    Some("i") => self.regex(&args[0], &args[1], true),
                    _ => None,
                }
            }
            Expr::ScalarFunction(ScalarFunction { func, args }) if args.len() == 2 => {
                let test = match func.name() {
                    "starts_with" => Some(LowerTest::StartsWith),
                    "ends_with" => Some(LowerTest::EndsWith),
                    "contains" => Some(LowerTest::Contains),
                    _ => None,
                };
                test.zip(lower_of(&args[0]))
                    .zip(lower_constant(&args[1]))
                    .map(|((test, x), c)| self.call(test, x, vec![c]))
            }
            Expr::InList(InList {
                expr,
                list,
                negated,
            }) if !list.is_empty() => lower_of(expr).and_then(|x| {
                let constants: Option<Vec<&str>> = list.iter().map(lower_constant).collect();
                constants.map(|c| negate(self.call(LowerTest::Eq, x, c), *negated))
            }),
            Expr::Like(Like {
                negated,
                expr,
                pattern,
                escape_char: None,
                case_insensitive: false,
            }) => lower_of(expr).and_then(|x| {
                let (text, leading, trailing) = like_shape(text_constant(pattern)?)?;
                if text.to_lowercase() != text {
                    return None;
                }
                Some(negate(
                    self.call(like_test(leading, trailing), x, vec![&text]),
                    *negated,
                ))
            }),
            // x ILIKE 'c' (the shapes above, ASCII text)
            Expr::Like(Like {
                negated,
                expr,
                pattern,
                escape_char: None,
                case_insensitive: true,
            }) => text_constant(pattern)
                .and_then(like_shape)
                .filter(|(text, _, _)| text.is_ascii())
                .map(|(text, leading, trailing)| {
                    let text = text.to_ascii_lowercase();
                    negate(
                        self.call(like_test(leading, trailing), expr, vec![&text]),
                        *negated,
                    )
                }),
            _ => None,
        };
        Ok(match replaced {
            Some(new) => Transformed::yes(new),
            None => Transformed::no(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, StringViewArray};
    use datafusion::prelude::SessionContext;

    #[test]
    fn like_patterns_without_inner_wildcards_have_a_shape() {
        assert_eq!(like_shape("%abc%"), Some(("abc".into(), true, true)));
        assert_eq!(like_shape("abc%"), Some(("abc".into(), false, true)));
        assert_eq!(
            like_shape(r"%\\powershell.exe"),
            Some((r"\powershell.exe".into(), true, false))
        );
        assert_eq!(like_shape(r"a\%b"), Some(("a%b".into(), false, false)));
        assert_eq!(like_shape("a%b"), None);
        assert_eq!(like_shape("a_b"), None);
        assert_eq!(like_shape(r"ab\"), None);
    }

    /// Every rewritten form answers as `lower()` does, row for row (NULLs, non-ASCII values and
    /// constants, both string types), and the plan shows the rewrite took place.
    #[tokio::test]
    async fn rewritten_comparisons_answer_as_lower_does() {
        let values = vec![
            Some(r"C:\Windows\System32\WindowsPowerShell\v1.0\PowerShell.EXE"),
            Some("SECURITY"),
            Some("security "),
            None,
            Some("Straße"),
            Some("STRASSE"),
            Some("İstanbul"),
            Some("KELVIN"),
            Some("\u{212A}elvin"),
            Some(""),
            Some("a%b_c"),
        ];
        // (predicate, whether it is rewritten)
        let predicates = [
            ("lower(v) = 'security'", true),
            ("lower(v) <> 'security'", true),
            ("'straße' = lower(v)", true),
            ("lower(v) IN ('security', 'kelvin', '')", true),
            ("lower(v) NOT IN ('security', 'straße')", true),
            ("starts_with(lower(v), 'i')", true),
            ("ends_with(lower(v), '\\powershell.exe')", true),
            ("strpos(lower(v), 'elvin') > 0", true),
            ("contains(lower(v), 'ss')", true),
            ("lower(v) LIKE '%\\\\powershell.exe'", true),
            ("lower(v) LIKE 'secu%'", true),
            ("lower(v) LIKE '%trasse%'", true),
            ("lower(v) NOT LIKE '%ss%'", true),
            ("v ILIKE '%POWERSHELL.exe'", true),
            ("v NOT ILIKE 'secu%'", true),
            ("v ~ '[ST][tE]'", true),
            ("v ~* '^s.*y$'", true),
            ("v !~* 'ss'", true),
            ("v !~ 's+e'", true),
            ("regexp_like(v, 'stra(ss|ß)e', 'i')", true),
            // Left as written: a `_` wildcard, an upper-case constant.
            ("lower(v) LIKE 'a\\%b_c'", false),
            ("lower(v) = 'Security'", false),
        ];
        // Also only the ASCII values (read without a check per value) and slices (offsets not at 0).
        let ascii: Vec<_> = values
            .iter()
            .filter(|v| v.is_none_or(|v| v.is_ascii()))
            .copied()
            .collect();
        let n = values.len();
        let arrays: [ArrayRef; 6] = [
            Arc::new(StringArray::from(values.clone())),
            Arc::new(StringViewArray::from(values.clone())),
            Arc::new(StringArray::from(ascii.clone())),
            Arc::new(StringViewArray::from(ascii)),
            Arc::new(StringArray::from(values.clone()).slice(1, n - 2)),
            Arc::new(StringViewArray::from(values).slice(1, n - 2)),
        ];
        for array in arrays {
            let batch = RecordBatch::try_from_iter([("v", array)]).unwrap();
            let plain = SessionContext::new();
            let rewriting = SessionContext::new();
            rewriting.add_analyzer_rule(Arc::new(CaseInsensitiveCompare::default()));
            for ctx in [&plain, &rewriting] {
                ctx.register_batch("t", batch.clone()).unwrap();
            }
            for (p, rewrites) in predicates {
                let sql = format!("SELECT {p} AS r FROM t");
                let expected = plain.sql(&sql).await.unwrap().collect().await.unwrap();
                let frame = rewriting.sql(&sql).await.unwrap();
                let plan = frame
                    .clone()
                    .into_optimized_plan()
                    .unwrap()
                    .display_indent()
                    .to_string();
                let got = frame.collect().await.unwrap();
                let column = |b: &[RecordBatch]| -> Vec<Option<bool>> {
                    b.iter()
                        .flat_map(|b| b.column(0).as_boolean().iter().collect::<Vec<_>>())
                        .collect()
                };
                assert_eq!(column(&got), column(&expected), "{p}: {plan}");
                let rewritten = plan.contains("lower_") || plan.contains("regex_is_match");
                assert_eq!(rewritten, rewrites, "{p}: {plan}");
            }
        }
    }
}
