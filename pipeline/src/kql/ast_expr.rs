//! Scalar expression and literal nodes.

use super::ast::{Ident, Span, TabularExpr};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal {
        value: Literal,
        span: Span,
    },
    /// A column, let-bound name, parameter, or table name in scalar position.
    Name(Ident),
    /// `*` (as a function argument, `where * has "x"`, ...).
    Star(Span),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
        span: Span,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
        span: Span,
    },
    /// `expr [!]between (low .. high)`
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
        span: Span,
    },
    /// `expr in (a, b)`, `in~`, `!in`, `!in~`, `has_any (...)`, `has_all (...)`.
    /// Each item is a scalar, an `Expr::Tabular` subquery, or a name that may
    /// denote a let-bound dynamic array or table (resolve by symbol table).
    InList {
        expr: Box<Expr>,
        op: ListOp,
        items: Vec<Expr>,
        span: Span,
    },
    /// `target.name` (also `$left.A`, `x.['a b']`).
    Member {
        target: Box<Expr>,
        name: Ident,
        span: Span,
    },
    /// `target[index]` (string or integer index).
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
        span: Span,
    },
    Call(FunctionCall),
    /// `name = value` as a function argument.
    NamedArg {
        name: Ident,
        value: Box<Expr>,
        span: Span,
    },
    /// `typeof(...)`; `text` is the raw content between the parentheses.
    TypeOf {
        text: String,
        span: Span,
    },
    /// A tabular expression in scalar position: `(T | where ...)`,
    /// `toscalar(T | ...)`'s argument, `in ((T | project x))`.
    Tabular(Box<TabularExpr>),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Literal { span, .. }
            | Expr::Star(span)
            | Expr::Unary { span, .. }
            | Expr::Binary { span, .. }
            | Expr::Between { span, .. }
            | Expr::InList { span, .. }
            | Expr::Member { span, .. }
            | Expr::Index { span, .. }
            | Expr::NamedArg { span, .. }
            | Expr::TypeOf { span, .. } => *span,
            Expr::Name(id) => id.span,
            Expr::Call(c) => c.span,
            Expr::Tabular(t) => t.span,
        }
    }
}

/// `name(args)`, or `target.name(args)` for dotted calls
/// (`cluster("x").database("y")`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCall {
    pub target: Option<Box<Expr>>,
    pub name: Ident,
    pub args: Vec<Expr>,
    pub span: Span,
}

impl FunctionCall {
    /// A call of `name` with no arguments (a user function named without parentheses).
    pub fn bare(name: &Ident) -> FunctionCall {
        FunctionCall {
            target: None,
            name: name.clone(),
            args: Vec::new(),
            span: name.span,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOp {
    In,
    NotIn,
    /// `in~`
    InCi,
    /// `!in~`
    NotInCi,
    HasAny,
    HasAll,
}

impl ListOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ListOp::In => "in",
            ListOp::NotIn => "!in",
            ListOp::InCi => "in~",
            ListOp::NotInCi => "!in~",
            ListOp::HasAny => "has_any",
            ListOp::HasAll => "has_all",
        }
    }
}

macro_rules! binary_ops {
    ($($variant:ident => $text:literal),* $(,)?) => {
        /// Binary operators. Precedence (low → high, per Kql.g4):
        /// `or` < `and` < equality (`==` `!=` `<>`, in-lists, between)
        /// < relational (`<` `<=` `>` `>=`) < `+ -` < `* / %`
        /// < string operators (`=~` `!~` `has` `contains` ... `matches regex`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum BinaryOp { $($variant),* }

        impl BinaryOp {
            /// The operator as written in KQL (canonical spelling).
            pub fn as_str(self) -> &'static str {
                match self { $(BinaryOp::$variant => $text),* }
            }
        }
    };
}

binary_ops! {
    Or => "or", And => "and",
    Eq => "==", NotEq => "!=", Lt => "<", Le => "<=", Gt => ">", Ge => ">=",
    Add => "+", Sub => "-", Mul => "*", Div => "/", Mod => "%",
    EqCi => "=~", NotEqCi => "!~",
    Has => "has", NotHas => "!has", HasCs => "has_cs", NotHasCs => "!has_cs",
    HasPrefix => "hasprefix", NotHasPrefix => "!hasprefix",
    HasPrefixCs => "hasprefix_cs", NotHasPrefixCs => "!hasprefix_cs",
    HasSuffix => "hassuffix", NotHasSuffix => "!hassuffix",
    HasSuffixCs => "hassuffix_cs", NotHasSuffixCs => "!hassuffix_cs",
    Contains => "contains", NotContains => "!contains",
    ContainsCs => "contains_cs", NotContainsCs => "!contains_cs",
    StartsWith => "startswith", NotStartsWith => "!startswith",
    StartsWithCs => "startswith_cs", NotStartsWithCs => "!startswith_cs",
    EndsWith => "endswith", NotEndsWith => "!endswith",
    EndsWithCs => "endswith_cs", NotEndsWithCs => "!endswith_cs",
    MatchesRegex => "matches regex",
    Like => "like", NotLike => "notlike", LikeCs => "likecs", NotLikeCs => "notlikecs",
}

impl BinaryOp {
    /// Maps a string-operator word (as lexed, e.g. `!has_cs`) to its operator.
    /// Legacy spellings (`notcontains`, `containscs`, `notcontainscs`) are accepted.
    pub fn string_op(word: &str) -> Option<BinaryOp> {
        use BinaryOp::*;
        Some(match word {
            "has" => Has,
            "!has" => NotHas,
            "has_cs" => HasCs,
            "!has_cs" => NotHasCs,
            "hasprefix" => HasPrefix,
            "!hasprefix" => NotHasPrefix,
            "hasprefix_cs" => HasPrefixCs,
            "!hasprefix_cs" => NotHasPrefixCs,
            "hassuffix" => HasSuffix,
            "!hassuffix" => NotHasSuffix,
            "hassuffix_cs" => HasSuffixCs,
            "!hassuffix_cs" => NotHasSuffixCs,
            "contains" => Contains,
            "!contains" | "notcontains" => NotContains,
            "contains_cs" | "containscs" => ContainsCs,
            "!contains_cs" | "notcontainscs" => NotContainsCs,
            "startswith" => StartsWith,
            "!startswith" => NotStartsWith,
            "startswith_cs" => StartsWithCs,
            "!startswith_cs" => NotStartsWithCs,
            "endswith" => EndsWith,
            "!endswith" => NotEndsWith,
            "endswith_cs" => EndsWithCs,
            "!endswith_cs" => NotEndsWithCs,
            "like" => Like,
            "notlike" => NotLike,
            "likecs" => LikeCs,
            "notlikecs" => NotLikeCs,
            _ => return None,
        })
    }
}

/// Literal values. `None` payloads are typed nulls (`int(null)`, `datetime(null)`).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Bool(Option<bool>),
    /// `int(...)` literal (32-bit in KQL).
    Int(Option<i64>),
    /// Plain integer literals and `long(...)`.
    Long(Option<i64>),
    /// Real literals, `real(...)`/`double(...)` incl. `nan`, `+inf`, `-inf`.
    Real(Option<f64>),
    /// `decimal(...)`: raw text of the value.
    Decimal(Option<String>),
    String(String),
    /// Duration in nanoseconds (`5m`, `1.5h`, `timespan(1.02:03:04)`).
    Timespan(Option<i64>),
    /// `datetime(...)`: raw trimmed text between the parentheses.
    DateTime(Option<String>),
    /// `guid(...)`: raw trimmed text.
    Guid(Option<String>),
    Dynamic(Box<DynamicValue>),
}

/// The content of a `dynamic(...)` literal.
#[derive(Debug, Clone, PartialEq)]
pub enum DynamicValue {
    Null,
    /// A scalar literal (bool, long, real, string, timespan, datetime, ...).
    Scalar(Literal),
    Array(Vec<DynamicValue>),
    /// Key/value pairs in source order.
    Object(Vec<(String, DynamicValue)>),
}
