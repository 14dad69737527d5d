//! Binds Sigma rules to the pipeline's columns: which events a rule's `logsource` covers, and which column
//! each Sigma field reads.
//!
//! The data lives in `sigma/windows.yml` (embedded; a user may load another file with the same format). The
//! file's header documents the format and the rules by which a field becomes a column; this module enforces
//! them:
//!
//! * a rule's logsource resolves to one entry of the file, whose variants are alternatives (Sysmon 1 *or*
//!   Security 4688 for `process_creation`);
//! * each variant yields a `when` expression over columns (its channel / event id conditions, evaluated like
//!   any detection) and the rule's detection with Sigma field names replaced by column names, after that
//!   variant's renames;
//! * an event field always resolves to the same column, and two event fields never to the same automatic
//!   column (see [`Mapping::column_for`]).
//!
//! The parts: `file` reads and validates the file format into a [`Mapping`]; `bind` resolves fields to
//! columns and rules to [`BoundRule`]s.

mod bind;
mod file;

use std::collections::{BTreeMap, BTreeSet};

use crate::sigma::ir::{Expr, Logsource};

/// The placeholder in `default_paths`.
const FIELD_PLACEHOLDER: &str = "{field}";

/// A mapping file that cannot be used. Every message names the file and the offending key.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{origin}: {message}")]
    Yaml { origin: String, message: String },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// A column that the decoder must add for a rule set: a lenient string column (a value of another type is
/// rendered as a string or, if it is an object, left null), filled from the first present-and-not-null path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtraColumn {
    pub name: String,
    pub paths: Vec<String>,
}

/// Where an event field is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// A column of the built-in schema.
    Builtin(String),
    /// A column the decoder adds.
    Extra(ExtraColumn),
}

impl Column {
    pub fn name(&self) -> &str {
        match self {
            Column::Builtin(n) => n,
            Column::Extra(c) => &c.name,
        }
    }
}

/// One way an event can belong to a rule's logsource.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundVariant {
    /// The logsource condition over columns; `Expr::True` when the variant takes every event.
    pub when: Expr,
    /// The rule's detection over columns.
    pub detection: Expr,
}

/// A rule bound to columns.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundRule {
    /// The mapping entry the rule resolved to (product filled in): rules with equal `logsource` have equal
    /// `when` conditions, so the evaluator can group them and test each event against its groups only.
    pub logsource: Logsource,
    /// Alternatives: the rule matches an event when, for some variant, `when` and `detection` both hold.
    pub variants: Vec<BoundVariant>,
    /// Columns outside the built-in schema that `when` or `detection` read, sorted by name, no duplicates.
    pub columns: Vec<ExtraColumn>,
    /// The variants on which the rule reads fields they cannot supply.
    pub narrowed: Vec<Narrowing>,
}

impl BoundRule {
    /// Whether some variant's detection has a keyword (field-less) test.
    pub fn has_keywords(&self) -> bool {
        self.variants.iter().any(|v| v.detection.has_keywords())
    }
}

#[derive(Debug, Clone)]
struct Variant {
    /// (event field, accepted values), in key order.
    when: Vec<(String, Vec<String>)>,
    /// Events that satisfy all of these (same form as `when`) are not this variant's, even when `when`
    /// holds: they belong to a more specific variant of the same logsource.
    unless: Vec<(String, Vec<String>)>,
    /// Sigma field -> event field.
    rename: BTreeMap<String, String>,
    /// The Sigma fields the variant's events can carry at all (its `when` and `rename` keys included);
    /// `None`: any field. A rule's tests on other fields are unknowable on this variant (see
    /// [`crate::sigma::ir::Expr::assume_unknown`]).
    supplies: Option<BTreeSet<String>>,
}

/// How binding changed a rule on one variant of its logsource because the rule reads fields the variant
/// cannot supply (`sigma check` reports these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowing {
    /// The variant, as its `when` condition (`Channel=Security EventID=4688`).
    pub variant: String,
    /// The fields read that the variant cannot supply.
    pub fields: BTreeSet<String>,
    /// Some of them are read under `not` (a filter): the rule would fire there for want of the field.
    pub in_filter: bool,
    /// The rule cannot fire on this variant at all, so the variant was dropped.
    pub dropped: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    logsource: Logsource,
    variants: Vec<Variant>,
}

/// A loaded mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    origin: String,
    default_paths: Vec<String>,
    /// event field -> built-in column
    columns: BTreeMap<String, String>,
    /// event field -> declared extra column
    fields: BTreeMap<String, ExtraColumn>,
    entries: Vec<Entry>,
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bind_tests;

#[cfg(test)]
mod corpus_tests;
