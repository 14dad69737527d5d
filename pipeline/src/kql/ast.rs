//! Syntax tree for KQL queries.
//!
//! Every node a translator may report on carries a [`Span`] (byte range into
//! the query text); turn it into a position with [`super::error::line_col`].

/// A byte range `[start, end)` into the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// Smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// An identifier (plain, keyword used as a name, or `['bracketed']`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole query: statements separated by `;`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub statements: Vec<Statement>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Let(LetStatement),
    /// `set name [= value]` (query option).
    Set {
        name: Ident,
        value: Option<Expr>,
        span: Span,
    },
    /// A tabular expression statement (the query result).
    Query(TabularExpr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LetStatement {
    pub name: Ident,
    pub value: LetValue,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LetValue {
    /// A scalar expression, **or** a bare name / function call whose kind
    /// (table or scalar) only the symbol table can tell, e.g. `let x = T;`.
    Expr(Expr),
    /// A syntactically tabular expression (has a pipe, a tabular source
    /// keyword, `materialize(...)`, ...).
    Tabular(TabularExpr),
    /// `(a:string, T:(*)) { ...; result }` or `view (...) { ... }`.
    Function(FunctionDef),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    pub params: Vec<Param>,
    /// `let` statements inside the body, in order.
    pub body: Vec<LetStatement>,
    /// The final expression of the body (may be `Expr::Tabular`).
    pub result: Expr,
    pub is_view: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: ParamType,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParamType {
    /// A scalar type name such as `string`, `long`, `dynamic`.
    Scalar(Ident),
    /// A tabular parameter: `(*)` is `None`, `(a:string, ...)` is `Some`.
    Tabular(Option<Vec<ColumnDecl>>),
}

/// `name : type` in a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDecl {
    pub name: Ident,
    pub ty: Ident,
    pub span: Span,
}

/// `source | op | op ...`
#[derive(Debug, Clone, PartialEq)]
pub struct TabularExpr {
    pub source: Source,
    pub operators: Vec<Operator>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A table name or a let-bound tabular name.
    Name(Ident),
    /// A function call used as a table: `f(1)`, `table("T")`, ...
    Call(FunctionCall),
    /// A dotted/indexed path such as `cluster("c").database("d").T`.
    Path(Expr),
    /// `( tabular )`
    Paren(Box<TabularExpr>),
    /// `materialize( tabular )`
    Materialize {
        inner: Box<TabularExpr>,
        span: Span,
    },
    Datatable(Datatable),
    ExternalData(ExternalData),
    /// `range Name from A to B step C`
    Range(Box<RangeSource>),
    /// `print [Name =] expr, ...`
    Print {
        columns: Vec<NamedExpr>,
        span: Span,
    },
    Union(UnionOp),
    Evaluate(Box<EvaluateOp>),
    /// `find ...` / `search ...` used as a source; syntax consumed, not modelled.
    Other(OtherOp),
}

/// `range column from A to B step C`
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSource {
    pub column: Ident,
    pub from: Expr,
    pub to: Expr,
    pub step: Expr,
    pub span: Span,
}

impl Source {
    pub fn span(&self) -> Span {
        match self {
            Source::Name(id) => id.span,
            Source::Call(c) => c.span,
            Source::Path(e) => e.span(),
            Source::Paren(t) => t.span,
            Source::Materialize { span, .. } | Source::Print { span, .. } => *span,
            Source::Datatable(d) => d.span,
            Source::ExternalData(d) => d.span,
            Source::Range(r) => r.span,
            Source::Union(u) => u.span,
            Source::Evaluate(e) => e.span,
            Source::Other(o) => o.span,
        }
    }
}

/// `datatable (schema) [ values ]`
#[derive(Debug, Clone, PartialEq)]
pub struct Datatable {
    pub params: Vec<OpParam>,
    pub schema: Vec<ColumnDecl>,
    /// Row-major values; `values.len()` is a multiple of `schema.len()` in valid queries.
    pub values: Vec<Expr>,
    pub span: Span,
}

/// `externaldata (schema) [ urls ] [with (props)]`
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalData {
    pub schema: Vec<ColumnDecl>,
    pub uris: Vec<Expr>,
    pub properties: Vec<OpParam>,
    pub span: Span,
}

/// `name = value` operator parameters (`kind=inner`, `hint.strategy=shuffle`,
/// `withsource=T`, `with (format="csv")` properties, render properties...).
#[derive(Debug, Clone, PartialEq)]
pub struct OpParam {
    /// Full name including dots, e.g. `hint.strategy`.
    pub name: String,
    /// Literal / name value; render name lists become several values.
    pub values: Vec<Expr>,
    pub span: Span,
}

impl OpParam {
    /// The first value as a bare name or string (e.g. `inner` in `kind=inner`).
    pub fn value_text(&self) -> Option<&str> {
        match self.values.first()? {
            Expr::Name(id) => Some(&id.name),
            Expr::Literal {
                value: Literal::String(s),
                ..
            } => Some(s),
            _ => None,
        }
    }
}

/// Finds the parameter called `name` (case-sensitive).
pub fn find_param<'a>(params: &'a [OpParam], name: &str) -> Option<&'a OpParam> {
    params.iter().find(|p| p.name == name)
}

/// An optionally named expression: `expr`, `Name = expr`, `(A, B) = expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedExpr {
    /// Empty when unnamed; several names for `(A, B) = arg_max(...)`.
    pub names: Vec<Ident>,
    pub expr: Expr,
    pub span: Span,
}

impl NamedExpr {
    /// The single name, if exactly one was given.
    pub fn name(&self) -> Option<&Ident> {
        match self.names.as_slice() {
            [n] => Some(n),
            _ => None,
        }
    }
}

/// Column name, possibly with `*` wildcards (`project-away Init*`).
#[derive(Debug, Clone, PartialEq)]
pub struct NamePattern {
    pub text: String,
    pub span: Span,
}

impl NamePattern {
    pub fn has_wildcard(&self) -> bool {
        self.text.contains('*')
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullsOrder {
    First,
    Last,
}

/// `expr [asc|desc] [nulls first|last]`
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    /// `None` = not written (KQL default for sort/top is `desc`).
    pub order: Option<SortOrder>,
    pub nulls: Option<NullsOrder>,
    pub span: Span,
}

pub use super::ast_expr::*;
pub use super::ast_ops::*;
