//! Kusto Query Language (KQL) front end: lexer, parser, syntax tree and
//! positioned errors.
//!
//! ```text
//! let threshold = 5;
//! DeviceProcessEvents
//! | where Timestamp > ago(1d) and FileName =~ "powershell.exe"
//! | summarize Count = count() by DeviceName, bin(Timestamp, 5m)
//! | where Count > threshold
//! ```
//!
//! [`parse`] turns such a text into a [`Query`]: a list of [`Statement`]s
//! (`let`, `set`, and the final tabular expression). A tabular expression is a
//! [`Source`] followed by [`Operator`]s; scalar expressions are [`Expr`] trees
//! built with the precedence of the official grammar (Kql.g4):
//! `or` < `and` < equality / `in` / `between` < relational < `+ -` < `* / %`
//! < string operators (`has`, `contains`, `=~`, ...) < unary sign < postfix.
//!
//! Every node carries a [`Span`] of byte offsets; [`line_col`] converts an
//! offset into a 1-based line and column for diagnostics. Errors are
//! [`ParseError`]s displayed as `line L:C: expected X, found Y`.
//!
//! [`parse`] follows the grammar strictly; [`parse_document`] additionally
//! accepts editor documents holding several queries separated by blank lines.
//!
//! [`translate`] turns a query into one SQL SELECT over the Defender / Sentinel tables of [`tables`]
//! (views over `events`); [`hunt_file`] turns a `.kql` hunt file (a `//` YAML header, then the query)
//! into the SQL hunt it stands for, which the rest of the pipeline runs like any other.
//!
//! Control commands (`.show tables`, ...) are refused: they are not part of
//! the query language. Parsing never panics; nesting is capped at
//! [`MAX_DEPTH`] grammar levels and [`STACK_BUDGET`] bytes of stack, so deep
//! input yields an error instead of a stack overflow.

pub mod ast;
mod ast_expr;
mod ast_ops;
pub mod error;
pub mod hunt_file;
pub mod lexer;
mod parser;
mod parser_clauses;
mod parser_expr;
mod parser_ops;
mod parser_sources;
pub mod tables;
pub mod translate;

pub use ast::*;
pub use error::{ParseError, line_col};
pub use parser::{MAX_DEPTH, STACK_BUDGET, parse, parse_document};
pub use translate::{Options, Refusal, TranslateError, Translation, translate, translate_document};

/// The SQL function for `has` (whole-term, case-insensitive match); `query::udf` implements it.
pub const KQL_HAS: &str = "kql_has";
/// `has_any` of literal needles: some needle is a whole term (case-insensitive), in one pass.
pub const KQL_HAS_ANY: &str = "kql_has_any";
/// The SQL function for `has_cs` (whole-term, case-sensitive match).
pub const KQL_HAS_CS: &str = "kql_has_cs";
/// `hasprefix` / `hasprefix_cs`: some term starts with the needle.
pub const KQL_HASPREFIX: &str = "kql_hasprefix";
pub const KQL_HASPREFIX_CS: &str = "kql_hasprefix_cs";
/// `hassuffix` / `hassuffix_cs`: some term ends with the needle.
pub const KQL_HASSUFFIX: &str = "kql_hassuffix";
pub const KQL_HASSUFFIX_CS: &str = "kql_hassuffix_cs";
/// Dynamic values (JSON text; `query::udf_json`): the sub-value at a path, as JSON / as KQL's `tostring`.
pub const KQL_JSON_GET: &str = "kql_json_get";
pub const KQL_JSON_STR: &str = "kql_json_str";
/// `array_length` and `bag_keys` of a dynamic value.
pub const KQL_JSON_ARRAY_LENGTH: &str = "kql_json_array_length";
pub const KQL_JSON_BAG_KEYS: &str = "kql_json_bag_keys";
/// The items `mv-expand` makes of a dynamic value, as a list.
pub const KQL_MV_ITEMS: &str = "kql_mv_items";
/// `base64_decode_tostring`.
pub const KQL_BASE64_DECODE_TOSTRING: &str = "kql_base64_decode_tostring";

#[cfg(test)]
#[path = "corpus_tests.rs"]
mod corpus_tests;
