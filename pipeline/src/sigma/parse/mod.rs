//! Sigma rule documents (YAML) → [`SigmaRule`] with its detection compiled to an
//! [`Expr`](crate::sigma::ir::Expr).
//!
//! What is accepted follows the Sigma rules specification v2.1 and its modifiers appendix, with pySigma as
//! the reference where the text is vague; whatever cannot be compiled faithfully is refused with a precise
//! [`Refusal`] rather than approximated. Decisions where the specification leaves room:
//!
//! - **Keywords** (list items or values without a field) are `contains` patterns over every value of the
//!   raw event (see `sigma::keywords`) unless `startswith`/`endswith` says otherwise; they take string
//!   modifiers only.
//! - **`neq`** means "the field is present and equals none of the values": `And[Exists(true), Not(Or(values))]`
//!   (with `all`: `Not(And(values))`). A missing field therefore does not satisfy `neq`.
//! - **`utf16le`/`utf16be`/`utf16`/`wide`** produce bytes, which only `base64`/`base64offset` can turn back
//!   into matchable text; a value left as UTF-16 bytes is refused, since ghosthunt's events are decoded text.
//! - **`base64`/`base64offset`** results are matched case-sensitively: base64 text differing in case encodes
//!   different bytes.
//! - **`windash`** is pySigma's: every `-` or `/` that starts a word (regex `\B[-/]\b`, evaluated per literal
//!   part) is replaced by each of `-` `/` `–` `—` `―`, all combinations OR-ed.
//! - **Numbers and booleans** are matched as their text (`4688`, `true`); integers are written in decimal, so an
//!   unquoted `0x10` is `16` (as in pySigma); quote such values.
//! - **`null` in a value list** is accepted (an OR with `Test::Null`), although the specification discourages it.
//! - **Sigma 1 collections** (`action: global` / `reset` / `repeat`) are expanded as legacy sigmac did (deep
//!   merge of the global document into each following one, `repeat` = previous rule updated); the `global`
//!   and `reset` documents themselves yield no entry.
//! - A rule needs `title`, `id`, `logsource` and `detection` (ghosthunt identifies rules and alerts by `id`).
//!
//! This module reads the files (multi-document YAML, Sigma 1 collections) and hands each rule document to
//! its parts, split by role: `metadata` (the rule's keys, ATT&CK tags), `detection` (search identifiers,
//! maps and lists, values and escapes, the compiled [`Expr`](crate::sigma::ir::Expr)), `modifiers` (the
//! modifier chain), `encodings` (`windash`, `expand`, UTF-16, base64) and `yaml` (YAML values in document
//! order).

mod detection;
mod encodings;
mod metadata;
mod modifiers;
mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use crate::sigma::error::{RefusalKind, RuleError};
use crate::sigma::ir::SigmaRule;
use metadata::parse_rule;
use yaml::{Yaml, deep_merge};

pub use detection::simplify;
pub use encodings::base64_offsets;
pub use metadata::attack_from_tags;

/// Largest number of alternatives one value may expand into (`windash`, `expand`).
pub const MAX_EXPANSION: usize = 4096;

/// Parser settings.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions<'a> {
    /// Values of `%name%` placeholders for the `expand` modifier. Each value is a Sigma string (wildcards
    /// and escapes apply). A rule using a placeholder missing here is refused.
    pub placeholders: &'a HashMap<String, Vec<String>>,
}

static NO_PLACEHOLDERS: LazyLock<HashMap<String, Vec<String>>> = LazyLock::new(HashMap::new);

impl Default for ParseOptions<'static> {
    fn default() -> Self {
        ParseOptions {
            placeholders: &NO_PLACEHOLDERS,
        }
    }
}

/// One YAML document of a rule file.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "rules dominate; boxing would only add an indirection"
)]
pub enum Document {
    Rule(SigmaRule),
    /// A correlation rule (has a `correlation` key): the whole document, for the correlation parser.
    Correlation(serde_json::Value),
    /// A Sigma filter (has a `filter` key): the whole document.
    Filter(serde_json::Value),
}

/// A document that cannot be compiled, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Refusal {
    pub title: Option<String>,
    pub id: Option<String>,
    pub reason: RuleError,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.title, &self.id) {
            (Some(t), Some(i)) => write!(f, "rule {t:?} ({i}): {}", self.reason),
            (Some(t), None) => write!(f, "rule {t:?}: {}", self.reason),
            (None, Some(i)) => write!(f, "rule {i}: {}", self.reason),
            (None, None) => write!(f, "document: {}", self.reason),
        }
    }
}

/// All documents of one file (multi-document YAML, `---`); each document parsed or refused on its own.
/// The outer error is a YAML syntax error (with its line), which spoils the whole file.
pub fn parse_file(
    text: &str,
    opts: &ParseOptions,
) -> Result<Vec<Result<Document, Refusal>>, RuleError> {
    let mut yopts = serde_saphyr::Options::default();
    // YAML 1.2 core booleans only (`no`/`on` stay strings), and keep spellings such as `0755` or `1_000`
    // as the author wrote them instead of reading them as numbers.
    yopts.strict_booleans = true;
    yopts.leading_zero_numbers_as_strings = true;
    yopts.underscored_numbers_as_strings = true;
    let docs: Vec<Yaml> = serde_saphyr::from_multiple_with_options(text, yopts).map_err(|e| {
        let msg = e.to_string();
        match e.location() {
            Some(loc) if !msg.contains("line") => {
                RefusalKind::Yaml.error(format!("YAML error at line {}: {msg}", loc.line()))
            }
            _ => RefusalKind::Yaml.error(format!("YAML error: {msg}")),
        }
    })?;

    let mut out = Vec::new();
    let mut global: Option<Yaml> = None;
    let mut previous: Option<Yaml> = None;
    for doc in docs {
        if !matches!(doc, Yaml::Map(_)) {
            if matches!(doc, Yaml::Null) {
                continue;
            }
            out.push(Err(Refusal {
                title: None,
                id: None,
                reason: RefusalKind::Metadata.error("document is not a mapping"),
            }));
            continue;
        }
        let action = doc.get("action").cloned();
        let doc = doc.without("action");
        let merged = match action {
            None => match &global {
                Some(g) => deep_merge(g.clone(), doc),
                None => doc,
            },
            Some(Yaml::Str(a)) if a == "global" => {
                global = Some(doc);
                continue;
            }
            Some(Yaml::Str(a)) if a == "reset" => {
                global = None;
                continue;
            }
            Some(Yaml::Str(a)) if a == "repeat" => match &previous {
                Some(p) => deep_merge(p.clone(), doc),
                None => {
                    out.push(Err(refusal_for(
                        &doc,
                        RefusalKind::Metadata
                            .error("`action: repeat` without a preceding rule document"),
                    )));
                    continue;
                }
            },
            Some(other) => {
                out.push(Err(refusal_for(
                    &doc,
                    RefusalKind::Metadata.error(format!(
                        "unknown collection action `{}`",
                        other.text_or_kind()
                    )),
                )));
                continue;
            }
        };
        previous = Some(merged.clone());
        out.push(parse_document(&merged, opts));
    }
    Ok(out)
}

/// One document already read as YAML.
fn parse_document(doc: &Yaml, opts: &ParseOptions) -> Result<Document, Refusal> {
    if doc.get("correlation").is_some() {
        return Ok(Document::Correlation(doc.to_json()));
    }
    if doc.get("filter").is_some() {
        return Ok(Document::Filter(doc.to_json()));
    }
    parse_rule(doc, opts)
        .map(Document::Rule)
        .map_err(|reason| refusal_for(doc, reason))
}

fn refusal_for(doc: &Yaml, reason: RuleError) -> Refusal {
    Refusal {
        title: doc.get("title").and_then(Yaml::scalar_text),
        id: doc.get("id").and_then(Yaml::scalar_text),
        reason,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod modifier_tests;

#[cfg(test)]
mod corpus_tests;
