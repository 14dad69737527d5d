//! The SQL a KQL expression becomes, with its KQL type ([`Sql`], [`Ty`]), and the literal forms the
//! translation writes (strings, typed NULLs, intervals, datetimes).

/// A KQL type, as far as translation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Long,
    Real,
    Bool,
    Time,
    Span,
    /// A DataFusion list (`split`, `make_set`, `dynamic([...])` of scalars).
    List,
    /// A dynamic value as text: JSON, or a string that is not JSON (see `query::udf_json`).
    Dyn,
    Unknown,
}

/// A SQL expression and its type.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub ty: Ty,
    /// A literal's value, for folding (`=~ "X"` → `= 'x'`).
    pub literal: Option<String>,
    /// A dynamic value read from a document: the document's SQL and the SQL of the path's steps, so
    /// that a further access extends the path and a conversion reads the value with one parse.
    pub path: Option<(String, Vec<String>)>,
    /// A boolean's form for a WHERE clause only, where NULL is false: without the `coalesce` wrappers
    /// that keep `text` two-valued. DataFusion rewrites `coalesce(p, false)` to `p IS NOT NULL AND p`
    /// and `coalesce(x, '')` to a CASE, each evaluating its operand twice, so the wrapped form costs
    /// up to four evaluations of a view's column expression per row (see [`Sql::where_sql`]).
    pub pred: Option<String>,
}

impl Sql {
    pub fn new(text: impl Into<String>, ty: Ty) -> Sql {
        Sql {
            text: text.into(),
            ty,
            literal: None,
            path: None,
            pred: None,
        }
    }
    /// A boolean with a WHERE-only form.
    pub(super) fn predicate(text: String, pred: Option<String>) -> Sql {
        let mut s = Sql::new(text, Ty::Bool);
        s.pred = pred;
        s
    }
    pub(super) fn string_literal(s: &str) -> Sql {
        Sql {
            text: quote(s),
            ty: Ty::Str,
            literal: Some(s.to_string()),
            path: None,
            pred: None,
        }
    }
    /// As a string operand: NULL reads as "".
    pub fn s(&self) -> String {
        if self.ty == Ty::Dyn {
            self.dyn_as(Ty::Str).s()
        } else if self.literal.is_some() {
            self.text.clone()
        } else if self.ty == Ty::Str || self.ty == Ty::Unknown {
            format!("coalesce({}, '')", self.text)
        } else {
            format!("CAST({} AS VARCHAR)", self.text)
        }
    }
    /// Lower-cased string operand (literals folded here).
    pub(super) fn lower(&self) -> String {
        match &self.literal {
            Some(l) => quote(&l.to_lowercase()),
            None => format!("lower({})", self.s()),
        }
    }
    /// The value of an integer literal, as translated (`5`, `(-1)`).
    pub fn int_value(&self) -> Option<i64> {
        if self.ty != Ty::Long {
            return None;
        }
        self.text
            .trim_start_matches('(')
            .trim_end_matches(')')
            .parse()
            .ok()
    }
    /// As a WHERE predicate: NULL is false.
    pub fn bool_sql(&self) -> String {
        format!("coalesce({}, false)", self.text)
    }
    /// As the whole condition of a WHERE clause. There NULL and false both drop the row, and `AND`/`OR`
    /// keep that so (NULL OR x is x when x is true, NULL otherwise; NULL AND x is never true): so the
    /// `coalesce` that makes a boolean two-valued for `not` and for values is not needed at the top nor
    /// through `and`/`or`, and a positive string test against a non-empty literal needs no
    /// `coalesce(x, '')` either (a NULL string fails it as "" does). Only `not` needs two values, and
    /// every `not` this translation writes reads the two-valued `text` of its operand.
    pub fn where_sql(&self) -> String {
        self.pred.clone().unwrap_or_else(|| self.text.clone())
    }
    /// A plain (non-dynamic) string column or expression, as it is — for a WHERE-only test against a
    /// non-empty literal.
    pub(super) fn raw_str(&self) -> Option<&str> {
        (self.literal.is_none() && matches!(self.ty, Ty::Str | Ty::Unknown) && self.path.is_none())
            .then_some(self.text.as_str())
    }
    /// A non-empty string literal's text (quoted) and its lower-cased form.
    pub(super) fn nonempty_literal(&self) -> Option<(String, String)> {
        self.literal
            .as_ref()
            .filter(|l| !l.is_empty() && self.ty == Ty::Str)
            .map(|l| (quote(l), quote(&l.to_lowercase())))
    }
}

/// A KQL `datetime(…)` literal in the ISO 8601 forms KQL documents (date; date and time to the minute,
/// second or fraction; `T` or a space between; optional `Z` or offset), as RFC 3339 in UTC; `None` for
/// anything else.
pub(crate) fn iso_datetime(text: &str) -> Option<String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)) {
        return Some(
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        );
    }
    let naive = text.trim_end_matches('Z').replacen(' ', "T", 1);
    let parsed = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&naive, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(&naive, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    Some(
        parsed
            .and_utc()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
    )
}

/// A SQL string literal.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A NULL of a type (union columns missing on one side).
pub(crate) fn typed_null(t: Ty) -> &'static str {
    match t {
        Ty::Str => "CAST(NULL AS VARCHAR)",
        Ty::Long => "CAST(NULL AS BIGINT)",
        Ty::Real => "CAST(NULL AS DOUBLE)",
        Ty::Bool => "CAST(NULL AS BOOLEAN)",
        Ty::Time => "arrow_cast(NULL, 'Timestamp(Nanosecond, Some(\"UTC\"))')",
        _ => "NULL",
    }
}

/// An interval literal for `ns` nanoseconds.
pub(crate) fn interval(ns: i64) -> String {
    if ns % 1_000_000_000 == 0 {
        format!("INTERVAL '{} seconds'", ns / 1_000_000_000)
    } else if ns % 1_000_000 == 0 {
        format!("INTERVAL '{} milliseconds'", ns / 1_000_000)
    } else {
        format!("INTERVAL '{ns} nanoseconds'")
    }
}
