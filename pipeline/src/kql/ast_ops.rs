//! Tabular operator nodes (everything after a `|`).

use super::ast::{
    ColumnDecl, Expr, Ident, NamePattern, NamedExpr, OpParam, SortKey, SortOrder, Span, TabularExpr,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    /// `where` / `filter`
    Where {
        params: Vec<OpParam>,
        predicate: Expr,
        span: Span,
    },
    Project {
        columns: Vec<NamedExpr>,
        span: Span,
    },
    ProjectAway {
        columns: Vec<NamePattern>,
        span: Span,
    },
    ProjectKeep {
        columns: Vec<NamePattern>,
        span: Span,
    },
    /// `project-rename New = Old, ...`
    ProjectRename {
        renames: Vec<Rename>,
        span: Span,
    },
    ProjectReorder {
        columns: Vec<ReorderColumn>,
        span: Span,
    },
    Extend {
        columns: Vec<NamedExpr>,
        span: Span,
    },
    Summarize(SummarizeOp),
    /// `distinct *` has `star = true` and no columns.
    Distinct {
        params: Vec<OpParam>,
        columns: Vec<Expr>,
        star: bool,
        span: Span,
    },
    Top {
        params: Vec<OpParam>,
        count: Expr,
        by: Box<SortKey>,
        span: Span,
    },
    /// `sort by` / `order by`
    Sort {
        params: Vec<OpParam>,
        keys: Vec<SortKey>,
        span: Span,
    },
    /// `take` / `limit`
    Take {
        params: Vec<OpParam>,
        count: Expr,
        span: Span,
    },
    /// `count [as Name]`
    Count {
        as_name: Option<Ident>,
        span: Span,
    },
    Union(UnionOp),
    Join(Box<JoinOp>),
    Lookup(Box<JoinOp>),
    MvExpand(MvExpandOp),
    /// `parse` and `parse-where` (`is_where = true`).
    Parse(Box<ParseOp>),
    MakeSeries(Box<MakeSeriesOp>),
    Render(RenderOp),
    /// `invoke f(args)`
    Invoke {
        call: Expr,
        span: Span,
    },
    /// `as [params] Name`
    As {
        params: Vec<OpParam>,
        name: Ident,
        span: Span,
    },
    Serialize {
        params: Vec<OpParam>,
        columns: Vec<NamedExpr>,
        span: Span,
    },
    Evaluate(Box<EvaluateOp>),
    /// `sample N`
    Sample {
        params: Vec<OpParam>,
        count: Expr,
        span: Span,
    },
    /// `sample-distinct N of Col`
    SampleDistinct {
        params: Vec<OpParam>,
        count: Expr,
        column: Box<Expr>,
        span: Span,
    },
    GetSchema {
        span: Span,
    },
    /// Any other operator (`mv-apply`, `fork`, `facet`, `partition`, `scan`,
    /// `top-nested`, `top-hitters`, `reduce`, `parse-kv`, `find`, `search`, ...):
    /// its syntax was consumed but not modelled.
    Other(OtherOp),
}

impl Operator {
    pub fn span(&self) -> Span {
        match self {
            Operator::Where { span, .. }
            | Operator::Project { span, .. }
            | Operator::ProjectAway { span, .. }
            | Operator::ProjectKeep { span, .. }
            | Operator::ProjectRename { span, .. }
            | Operator::ProjectReorder { span, .. }
            | Operator::Extend { span, .. }
            | Operator::Distinct { span, .. }
            | Operator::Top { span, .. }
            | Operator::Sort { span, .. }
            | Operator::Take { span, .. }
            | Operator::Count { span, .. }
            | Operator::Invoke { span, .. }
            | Operator::As { span, .. }
            | Operator::Serialize { span, .. }
            | Operator::Sample { span, .. }
            | Operator::SampleDistinct { span, .. }
            | Operator::GetSchema { span } => *span,
            Operator::Summarize(o) => o.span,
            Operator::Union(o) => o.span,
            Operator::Join(o) | Operator::Lookup(o) => o.span,
            Operator::MvExpand(o) => o.span,
            Operator::Parse(o) => o.span,
            Operator::MakeSeries(o) => o.span,
            Operator::Render(o) => o.span,
            Operator::Evaluate(o) => o.span,
            Operator::Other(o) => o.span,
        }
    }

    /// The canonical operator name, e.g. `"where"`, `"project-away"`.
    pub fn name(&self) -> &str {
        match self {
            Operator::Where { .. } => "where",
            Operator::Project { .. } => "project",
            Operator::ProjectAway { .. } => "project-away",
            Operator::ProjectKeep { .. } => "project-keep",
            Operator::ProjectRename { .. } => "project-rename",
            Operator::ProjectReorder { .. } => "project-reorder",
            Operator::Extend { .. } => "extend",
            Operator::Summarize(_) => "summarize",
            Operator::Distinct { .. } => "distinct",
            Operator::Top { .. } => "top",
            Operator::Sort { .. } => "sort",
            Operator::Take { .. } => "take",
            Operator::Count { .. } => "count",
            Operator::Union(_) => "union",
            Operator::Join(_) => "join",
            Operator::Lookup(_) => "lookup",
            Operator::MvExpand(_) => "mv-expand",
            Operator::Parse(p) if p.is_where => "parse-where",
            Operator::Parse(_) => "parse",
            Operator::MakeSeries(_) => "make-series",
            Operator::Render(_) => "render",
            Operator::Invoke { .. } => "invoke",
            Operator::As { .. } => "as",
            Operator::Serialize { .. } => "serialize",
            Operator::Evaluate(_) => "evaluate",
            Operator::Sample { .. } => "sample",
            Operator::SampleDistinct { .. } => "sample-distinct",
            Operator::GetSchema { .. } => "getschema",
            Operator::Other(o) => &o.name,
        }
    }
}

/// An operator recognised by name whose syntax was skipped (balanced
/// brackets, up to the next top-level `|`, `;` or closing bracket).
#[derive(Debug, Clone, PartialEq)]
pub struct OtherOp {
    /// Canonical name, e.g. `mv-apply`, `top-nested`.
    pub name: String,
    /// Span of the operator keyword.
    pub name_span: Span,
    /// Span of the whole operator text.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rename {
    pub new_name: Ident,
    pub old_name: Ident,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReorderColumn {
    pub column: NamePattern,
    /// `asc`/`desc` (also `granny-asc`/`granny-desc`, recorded as Asc/Desc).
    pub order: Option<SortOrder>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SummarizeOp {
    /// `hint.strategy=shuffle` etc.
    pub params: Vec<OpParam>,
    pub aggregates: Vec<NamedExpr>,
    pub by: Vec<NamedExpr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnionOp {
    /// `kind=outer`, `withsource=Col`, `isfuzzy=true`, hints.
    pub params: Vec<OpParam>,
    pub tables: Vec<UnionTable>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UnionTable {
    Tabular(TabularExpr),
    /// A wildcarded table name such as `Device*Events`.
    Wildcard(NamePattern),
}

/// `join`/`lookup [params] Right on conds` (or `join ... where pred`).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinOp {
    /// `kind=...`, `hint.*=...`.
    pub params: Vec<OpParam>,
    /// `kind=` value as written, if given.
    pub kind: Option<String>,
    pub right: TabularExpr,
    /// `on` conditions: names (`A`) or `$left.A == $right.B` comparisons.
    pub on: Vec<Expr>,
    /// `join ... where predicate` form.
    pub where_clause: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MvExpandOp {
    /// `bagexpansion=`, `with_itemindex=`, `kind=`.
    pub params: Vec<OpParam>,
    pub columns: Vec<MvExpandColumn>,
    pub limit: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MvExpandColumn {
    pub column: NamedExpr,
    /// Type name from `to typeof(T)`.
    pub to_type: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParseOp {
    pub is_where: bool,
    /// `kind=regex|simple|relaxed`, `flags=...`.
    pub params: Vec<OpParam>,
    pub source: Expr,
    pub pattern: Vec<ParsePatternPart>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParsePatternPart {
    Star(Span),
    Text {
        value: String,
        span: Span,
    },
    Column {
        name: Ident,
        ty: Option<Ident>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MakeSeriesOp {
    pub params: Vec<OpParam>,
    pub aggregates: Vec<MakeSeriesAgg>,
    pub on: NamedExpr,
    pub range: MakeSeriesRange,
    pub by: Vec<NamedExpr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MakeSeriesAgg {
    pub agg: NamedExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MakeSeriesRange {
    /// `in range(from, to, step)`
    InRange { from: Expr, to: Expr, step: Expr },
    /// `[from A] [to B] step C`
    FromToStep {
        from: Option<Expr>,
        to: Option<Expr>,
        step: Expr,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenderOp {
    pub chart: Ident,
    /// `with (title="x", ycolumns=a, b)` and legacy `kind=stacked title="x"`.
    pub properties: Vec<OpParam>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateOp {
    pub params: Vec<OpParam>,
    /// The plugin call (normally `Expr::Call`).
    pub plugin: Expr,
    /// Optional `: (schema)` clause.
    pub schema: Option<Vec<ColumnDecl>>,
    pub span: Span,
}
