//! KQL's `dynamic` values: `parse_json(x).a["b"][0]`, indexes into lists (`split(x, ",")[1]`), and the
//! conversions a dynamic value goes through where a string, a number or a boolean is wanted.
//!
//! A dynamic value is text (`Ty::Dyn`): JSON, or a string that is not JSON, which is what KQL's
//! `parse_json` makes of it — so `parse_json(x)` is `x` itself, and reading it is the work of the
//! `kql_json_*` functions of `query::udf_json`. An access chain becomes one call,
//! `kql_json_get(doc, 'a', 'b', 0)`; a comparison reads the value as KQL's `tostring` shows it
//! (`kql_json_str`), cast to a number or a boolean when the other side is one. A missing slot or index
//! is null, as in KQL. Lists (DataFusion arrays) are indexed from 0, negative indexes from the end, and
//! an index out of range is null. `mv-expand` unnests the items of an array or bag into rows.

use serde_json::Value;

use super::{Rel, Sql, Translator, Ty, q};
use crate::kql::ast::*;
use crate::kql::{
    KQL_JSON_ARRAY_LENGTH, KQL_JSON_BAG_KEYS, KQL_JSON_GET, KQL_JSON_STR, KQL_MV_ITEMS, Refusal,
};

/// Whether a `dynamic(...)` item is an array or a bag (it then needs JSON, not a list).
pub(crate) fn is_container(d: &DynamicValue) -> bool {
    matches!(d, DynamicValue::Array(_) | DynamicValue::Object(_))
}

impl Sql {
    /// The dynamic value at `steps` of the document `doc` (both SQL).
    pub fn dynamic(doc: String, steps: Vec<String>) -> Sql {
        let text = if steps.is_empty() {
            doc.clone()
        } else {
            format!("{KQL_JSON_GET}({doc}, {})", steps.join(", "))
        };
        let mut s = Sql::new(text, Ty::Dyn);
        s.path = Some((doc, steps));
        s
    }

    /// The document and path of a dynamic value (a column of dynamic values is its own document).
    fn doc_and_steps(&self) -> (String, Vec<String>) {
        self.path
            .clone()
            .unwrap_or_else(|| (self.text.clone(), Vec::new()))
    }

    /// A dynamic value converted for a use that wants `ty`: as KQL's `tostring` shows it for strings, cast
    /// to a number, a boolean or a datetime; other values are returned as they are.
    pub fn dyn_as(&self, ty: Ty) -> Sql {
        if self.ty != Ty::Dyn || ty == Ty::Dyn {
            return self.clone();
        }
        let (doc, steps) = self.doc_and_steps();
        let args = std::iter::once(doc).chain(steps).collect::<Vec<_>>();
        let text = format!("{KQL_JSON_STR}({})", args.join(", "));
        match ty {
            Ty::Long | Ty::Real => Sql::new(format!("TRY_CAST({text} AS DOUBLE)"), Ty::Real),
            Ty::Bool => Sql::new(format!("TRY_CAST({text} AS BOOLEAN)"), Ty::Bool),
            Ty::Time => Sql::new(
                format!(
                    "arrow_cast(TRY_CAST({text} AS TIMESTAMP), 'Timestamp(Nanosecond, Some(\"UTC\"))')"
                ),
                Ty::Time,
            ),
            _ => Sql::new(text, Ty::Str),
        }
    }

    /// Two operands of a comparison or arithmetic: a dynamic one takes the type of the other; two
    /// dynamic values compare as strings.
    pub fn unify_dynamic(a: Sql, b: Sql) -> (Sql, Sql) {
        match (a.ty, b.ty) {
            (Ty::Dyn, Ty::Dyn) => (a.dyn_as(Ty::Str), b.dyn_as(Ty::Str)),
            (Ty::Dyn, t) => (a.dyn_as(t), b),
            (t, Ty::Dyn) => {
                let b = b.dyn_as(t);
                (a, b)
            }
            _ => (a, b),
        }
    }
}

/// The arguments of a function that takes no dynamic values as such: a dynamic argument is read as KQL's
/// `tostring` shows it, as a number by the numeric conversions, and by `iff`/`case`/`coalesce` as the type of
/// their other values (conditions as booleans).
pub(super) fn dynamic_args(name: &str, mut args: Vec<Sql>) -> Vec<Sql> {
    if !args.iter().any(|a| a.ty == Ty::Dyn) {
        return args;
    }
    let n = args.len();
    let is_value = |i: usize| match name {
        "iff" | "iif" | "case" => i % 2 == 1 || i + 1 == n,
        _ => true,
    };
    match name {
        "iff" | "iif" | "case" | "coalesce" => {
            let target = args
                .iter()
                .enumerate()
                .find(|(i, a)| is_value(*i) && a.ty != Ty::Dyn && a.ty != Ty::Unknown)
                .map(|(_, a)| a.ty);
            for (i, a) in args.iter_mut().enumerate() {
                *a = match (is_value(i), target) {
                    (true, Some(t)) => a.dyn_as(t),
                    (true, None) => a.clone(),
                    (false, _) => a.dyn_as(Ty::Bool),
                };
            }
            args
        }
        "toint" | "tolong" | "toreal" | "todouble" => {
            args.into_iter().map(|a| a.dyn_as(Ty::Real)).collect()
        }
        _ => args.into_iter().map(|a| a.dyn_as(Ty::Str)).collect(),
    }
}

/// The arguments of an aggregate: a dynamic predicate is read as a boolean, a dynamic value summed or
/// averaged as a number, any other as KQL's `tostring` shows it.
pub(super) fn dynamic_aggregate_args(name: &str, args: Vec<Sql>) -> Vec<Sql> {
    let predicate = match name {
        "countif" => Some(0),
        "dcountif" | "make_set_if" | "make_list_if" | "sumif" | "minif" | "maxif" | "avgif" => {
            Some(1)
        }
        _ => None,
    };
    let numeric = matches!(
        name,
        "sum" | "avg" | "stdev" | "variance" | "sumif" | "avgif"
    );
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.dyn_as(if Some(i) == predicate {
                Ty::Bool
            } else if numeric {
                Ty::Real
            } else {
                Ty::Str
            })
        })
        .collect()
}

impl Translator<'_> {
    /// `target.name`, `target["name"]`, `target[i]`: `step` is the key (a string) or the index.
    pub(super) fn access(
        &mut self,
        target: &Expr,
        step: Sql,
        span: Span,
        rel: &Rel,
    ) -> Result<Sql, Refusal> {
        let t = self.expr(target, rel)?;
        match t.ty {
            Ty::Dyn => {
                let step = match step.ty {
                    Ty::Str => step.s(),
                    Ty::Long => step.text,
                    Ty::Dyn => step.dyn_as(Ty::Str).text,
                    _ => {
                        return Err(self.refuse(
                            span,
                            "dynamic access",
                            "a dynamic value is indexed by a string (bag) or an integer (array)",
                        ));
                    }
                };
                let (doc, mut steps) = t.doc_and_steps();
                steps.push(step);
                Ok(Sql::dynamic(doc, steps))
            }
            Ty::List if step.ty == Ty::Long || step.ty == Ty::Dyn => {
                let index = step.dyn_as(Ty::Long);
                // DataFusion counts from 1 and from the end with negative indexes; 0 is nothing.
                let at = match index.int_value() {
                    Some(i) if i >= 0 => (i + 1).to_string(),
                    Some(i) => i.to_string(),
                    None => {
                        let i = format!("CAST({} AS BIGINT)", index.text);
                        format!("(CASE WHEN {i} >= 0 THEN {i} + 1 ELSE {i} END)")
                    }
                };
                Ok(Sql::new(
                    format!("array_element({}, {at})", t.text),
                    Ty::Unknown,
                ))
            }
            Ty::List => Err(self.refuse(
                span,
                "dynamic access",
                "an array is indexed by an integer; a bag slot needs a dynamic bag (parse_json)",
            )),
            _ => Err(self.refuse(
                span,
                "dynamic access",
                "property and index access needs a dynamic value: parse_json(…) or todynamic(…) \
                 of a string, a dynamic column, or an array",
            )),
        }
    }

    /// The JSON of a `dynamic(...)` literal holding bags or nested arrays.
    pub(super) fn dynamic_json(&self, d: &DynamicValue, span: Span) -> Result<Value, Refusal> {
        Ok(match d {
            DynamicValue::Null => Value::Null,
            DynamicValue::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.dynamic_json(i, span))
                    .collect::<Result<_, _>>()?,
            ),
            DynamicValue::Object(slots) => Value::Object(
                slots
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.dynamic_json(v, span)?)))
                    .collect::<Result<_, Refusal>>()?,
            ),
            DynamicValue::Scalar(l) => match l {
                Literal::Bool(b) => b.map_or(Value::Null, Value::Bool),
                Literal::Int(n) | Literal::Long(n) => n.map_or(Value::Null, Value::from),
                Literal::Real(Some(x)) if x.is_finite() => Value::from(*x),
                Literal::Real(None) => Value::Null,
                Literal::String(s) => Value::String(s.clone()),
                _ => {
                    return Err(self.refuse(
                        span,
                        "dynamic object",
                        "inside a dynamic bag or nested array only strings, numbers, booleans and \
                         null are supported",
                    ));
                }
            },
        })
    }

    /// The functions that take or make dynamic values as such; `None` for the others.
    pub(super) fn call_dynamic(
        &mut self,
        c: &FunctionCall,
        args: &[Sql],
    ) -> Result<Option<Sql>, Refusal> {
        let name = c.name.name.as_str();
        let dynamic = matches!(args, [a] if a.ty == Ty::Dyn);
        let one = || match args {
            [a] => Ok(a.clone()),
            _ => Err(self.refuse(
                c.span,
                &format!("function {name}"),
                &format!("`{name}` takes 1 argument"),
            )),
        };
        Ok(Some(match name {
            "parse_json" | "todynamic" | "parsejson" | "toobject" => self.parse_json(one()?),
            "bag_keys" if dynamic => {
                Sql::dynamic(format!("{KQL_JSON_BAG_KEYS}({})", one()?.text), Vec::new())
            }
            "bag_keys" => {
                return Err(self.refuse(
                    c.span,
                    "function bag_keys",
                    "bag_keys takes a dynamic bag (parse_json(…))",
                ));
            }
            "array_length" if dynamic => Sql::new(
                format!("{KQL_JSON_ARRAY_LENGTH}({})", one()?.text),
                Ty::Long,
            ),
            // A dynamic value is null when missing (a string never is).
            "isnull" if dynamic => Sql::new(format!("({} IS NULL)", one()?.text), Ty::Bool),
            "isnotnull" if dynamic => Sql::new(format!("({} IS NOT NULL)", one()?.text), Ty::Bool),
            _ => return Ok(None),
        }))
    }

    /// `parse_json(x)` / `todynamic(x)`: a string is read as JSON (a string that is not JSON stays a
    /// string); a dynamic value or a list is used as it is.
    pub(super) fn parse_json(&self, arg: Sql) -> Sql {
        match arg.ty {
            Ty::Dyn | Ty::List => arg,
            Ty::Str | Ty::Unknown => Sql::dynamic(arg.text, Vec::new()),
            _ => {
                // A number or a boolean: its text is its JSON.
                Sql::dynamic(format!("CAST({} AS VARCHAR)", arg.text), Vec::new())
            }
        }
    }
}

impl Translator<'_> {
    /// `mv-expand [kind=bag|array] [with_itemindex=I] [Name =] X [to typeof(T)], … [limit N]`: one row per
    /// element of the arrays (several expand side by side, the shorter padded with nulls), or per slot
    /// of a bag; an empty array or bag gives no row, a null value one row with null. The other columns
    /// are repeated. `to typeof(T)` only casts: an element of another type becomes null, as documented.
    pub(in super::super) fn mv_expand(&mut self, m: &MvExpandOp, rel: Rel) -> Result<Rel, Refusal> {
        let refuse = |t: &Self, span: Span, why: &str| t.refuse(span, "operator mv-expand", why);
        let mut pairs = false;
        let mut index = None;
        for p in &m.params {
            match (p.name.as_str(), p.value_text()) {
                ("kind" | "bagexpansion", Some("bag")) => pairs = false,
                ("kind" | "bagexpansion", Some("array")) => pairs = true,
                ("with_itemindex", Some(name)) => index = Some(name.to_string()),
                _ => {
                    return Err(refuse(
                        self,
                        p.span,
                        &format!("parameter `{}` takes bag, array or a column name", p.name),
                    ));
                }
            }
        }
        let limit = match &m.limit {
            Some(e) => Some(
                self.expr(e, &rel)?
                    .int_value()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| refuse(self, e.span(), "the row limit must be a number"))?,
            ),
            None => None,
        };
        // (name, list SQL, element type, `to typeof`)
        let mut expanded = Vec::new();
        for c in &m.columns {
            let name = self.output_name(&c.column, &rel)?;
            let value = self.expr(&c.column.expr, &rel)?;
            let (mut list, ty) = match value.ty {
                Ty::Dyn => (
                    format!(
                        "{KQL_MV_ITEMS}({}, '{}')",
                        value.text,
                        if pairs { "array" } else { "bag" }
                    ),
                    Ty::Dyn,
                ),
                Ty::List => (value.text, Ty::Unknown),
                _ => {
                    return Err(refuse(
                        self,
                        c.span,
                        "mv-expand takes a dynamic array or bag (parse_json, split, make_set, …)",
                    ));
                }
            };
            if let Some(n) = limit {
                list = format!("array_slice({list}, 1, {n})");
            }
            let to = c.to_type.as_deref().map(str::to_lowercase);
            expanded.push((name, list, ty, to, c.span));
        }
        // Inner select: the repeated columns and the unnested lists; outer: the casts and the names.
        let mut inner: Vec<String> = rel
            .cols
            .iter()
            .filter(|(n, _)| !expanded.iter().any(|e| &e.0 == n))
            .map(|(n, _)| q(n))
            .collect();
        for (i, (_, list, ..)) in expanded.iter().enumerate() {
            inner.push(format!("unnest({list}) AS \"__mv{i}\""));
        }
        if index.is_some() {
            let lengths: Vec<String> = expanded
                .iter()
                .map(|(_, list, ..)| format!("cardinality({list})"))
                .collect();
            let longest = match lengths.as_slice() {
                [one] => one.clone(),
                many => format!("greatest({})", many.join(", ")),
            };
            inner.push(format!("unnest(range(0, {longest})) AS \"__mvindex\""));
        }
        let inner_select = Self::select_list(&rel, inner);
        let inner_sql = self.wrap(&rel, &inner_select, "");
        let items: Vec<(String, Ty)> = expanded
            .iter()
            .enumerate()
            .map(|(i, (_, _, ty, to, span))| {
                self.typed_item(&format!("\"__mv{i}\""), *ty, to.as_deref(), *span)
            })
            .collect::<Result<_, _>>()?;
        // An expanded column keeps its place; a new one comes last.
        let mut cols: Vec<(String, Ty)> = Vec::new();
        let mut outer = Vec::new();
        let mut order: Vec<Option<usize>> = rel
            .cols
            .iter()
            .map(|(n, _)| expanded.iter().position(|e| &e.0 == n))
            .collect();
        order.extend(
            (0..expanded.len())
                .filter(|i| !rel.cols.iter().any(|(n, _)| n == &expanded[*i].0))
                .map(Some),
        );
        for (slot, which) in order.into_iter().enumerate() {
            match which {
                Some(i) => {
                    outer.push(format!("{} AS {}", items[i].0, q(&expanded[i].0)));
                    cols.push((expanded[i].0.clone(), items[i].1));
                }
                None => {
                    let (n, t) = &rel.cols[slot];
                    outer.push(q(n));
                    cols.push((n.clone(), *t));
                }
            }
        }
        if let Some(name) = index {
            outer.push(format!("\"__mvindex\" AS {}", q(&name)));
            cols.retain(|c| c.0 != name);
            cols.push((name, Ty::Long));
        }
        let inner_rel = Rel {
            sql: inner_sql,
            order: None,
            ..rel
        };
        let outer_select = Self::select_list(&inner_rel, outer);
        let sql = self.wrap(&inner_rel, &outer_select, "");
        Ok(Rel {
            sql,
            cols,
            ..inner_rel
        })
    }

    /// An expanded element as `to typeof(T)` asks: a cast that leaves an element of another type null.
    fn typed_item(
        &self,
        item: &str,
        ty: Ty,
        to: Option<&str>,
        span: Span,
    ) -> Result<(String, Ty), Refusal> {
        Ok(match (ty, to) {
            (_, None | Some("dynamic")) => (item.to_string(), ty),
            // JSON text of an element: a string starts with its quote, a number with a digit or minus.
            (Ty::Dyn, Some("string")) => (
                format!("(CASE WHEN starts_with({item}, '\"') THEN {KQL_JSON_STR}({item}) END)"),
                Ty::Str,
            ),
            (Ty::Dyn, Some("long" | "int")) => (
                format!(
                    "(CASE WHEN regexp_like({item}, '^-?[0-9]+$') THEN CAST({item} AS BIGINT) END)"
                ),
                Ty::Long,
            ),
            (Ty::Dyn, Some("real" | "double")) => (
                format!(
                    "(CASE WHEN regexp_like({item}, '^-?[0-9]') THEN CAST({item} AS DOUBLE) END)"
                ),
                Ty::Real,
            ),
            (Ty::Dyn, Some("bool" | "boolean")) => (
                format!("(CASE WHEN {item} IN ('true', 'false') THEN {item} = 'true' END)"),
                Ty::Bool,
            ),
            // The elements of a list keep their own type; `split` makes strings.
            (_, Some("string")) => (format!("CAST({item} AS VARCHAR)"), Ty::Str),
            (_, Some(other)) => {
                return Err(self.refuse(
                    span,
                    "operator mv-expand",
                    &format!(
                        "`to typeof({other})` is supported for dynamic values as string, long, int, \
                         real, double, bool or dynamic, and for lists as string"
                    ),
                ));
            }
        })
    }
}
