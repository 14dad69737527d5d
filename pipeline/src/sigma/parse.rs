//! Sigma rule documents (YAML) → [`SigmaRule`] with its detection compiled to an [`Expr`].
//!
//! What is accepted follows the Sigma rules specification v2.1 and its modifiers appendix, with pySigma as
//! the reference where the text is vague; whatever cannot be compiled faithfully is refused with a precise
//! [`Refusal`] rather than approximated. Decisions where the specification leaves room:
//!
//! - **Keywords** (list items or values without a field) are `contains` patterns over the event's string
//!   values unless `startswith`/`endswith` says otherwise; they take string modifiers only.
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

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::sigma::condition;
use crate::sigma::ir::{Cmp, Expr, Level, Logsource, Pattern, Piece, Position, SigmaRule, Test};

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
    pub reason: String,
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
) -> Result<Vec<Result<Document, Refusal>>, String> {
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
                format!("YAML error at line {}: {msg}", loc.line())
            }
            _ => format!("YAML error: {msg}"),
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
                reason: "document is not a mapping".into(),
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
                        "`action: repeat` without a preceding rule document".into(),
                    )));
                    continue;
                }
            },
            Some(other) => {
                out.push(Err(refusal_for(
                    &doc,
                    format!("unknown collection action `{}`", other.text_or_kind()),
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

fn refusal_for(doc: &Yaml, reason: String) -> Refusal {
    Refusal {
        title: doc.get("title").and_then(Yaml::scalar_text),
        id: doc.get("id").and_then(Yaml::scalar_text),
        reason,
    }
}

fn parse_rule(doc: &Yaml, opts: &ParseOptions) -> Result<SigmaRule, String> {
    let title = required_text(doc, "title")?;
    let id = required_text(doc, "id")?;
    let level = match doc.get("level") {
        None | Some(Yaml::Null) => None,
        Some(v) => Some(parse_level(v)?),
    };
    let logsource = match doc.get("logsource") {
        Some(Yaml::Map(_)) => {
            let ls = doc.get("logsource").unwrap();
            Logsource {
                product: optional_text(ls, "product")?,
                category: optional_text(ls, "category")?,
                service: optional_text(ls, "service")?,
            }
        }
        None => return Err("the rule has no `logsource`".into()),
        Some(_) => return Err("`logsource` is not a mapping".into()),
    };
    let detection = match doc.get("detection") {
        Some(d) => parse_detection(d, opts)?,
        None => return Err("the rule has no `detection`".into()),
    };
    Ok(SigmaRule {
        id,
        name: optional_text(doc, "name")?,
        title,
        description: optional_text(doc, "description")?.unwrap_or_default(),
        status: optional_text(doc, "status")?,
        level,
        author: match doc.get("author") {
            Some(Yaml::Seq(items)) => Some(
                items
                    .iter()
                    .filter_map(Yaml::scalar_text)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            _ => optional_text(doc, "author")?,
        },
        tags: text_list(doc, "tags")?,
        references: text_list(doc, "references")?,
        falsepositives: text_list(doc, "falsepositives")?,
        logsource,
        fields: text_list(doc, "fields")?,
        detection,
    })
}

fn parse_level(v: &Yaml) -> Result<Level, String> {
    let t = v.scalar_text().unwrap_or_default();
    Ok(match t.to_ascii_lowercase().as_str() {
        "informational" => Level::Informational,
        "low" => Level::Low,
        "medium" => Level::Medium,
        "high" => Level::High,
        "critical" => Level::Critical,
        _ => {
            return Err(format!(
                "invalid `level` {:?} (expected informational, low, medium, high or critical)",
                v.text_or_kind()
            ));
        }
    })
}

fn required_text(doc: &Yaml, key: &str) -> Result<String, String> {
    match optional_text(doc, key)? {
        Some(t) if !t.trim().is_empty() => Ok(t),
        _ => Err(format!("the rule has no `{key}`")),
    }
}

fn optional_text(doc: &Yaml, key: &str) -> Result<Option<String>, String> {
    match doc.get(key) {
        None | Some(Yaml::Null) => Ok(None),
        Some(v) => v
            .scalar_text()
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a single value, not a {}", v.kind())),
    }
}

fn text_list(doc: &Yaml, key: &str) -> Result<Vec<String>, String> {
    match doc.get(key) {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::Seq(items)) => items
            .iter()
            .filter(|i| !matches!(i, Yaml::Null))
            .map(|i| {
                i.scalar_text().ok_or_else(|| {
                    format!("`{key}` items must be single values, not a {}", i.kind())
                })
            })
            .collect(),
        Some(v) => v
            .scalar_text()
            .map(|t| vec![t])
            .ok_or_else(|| format!("`{key}` must be a list, not a {}", v.kind())),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Detection

fn parse_detection(det: &Yaml, opts: &ParseOptions) -> Result<Expr, String> {
    let Yaml::Map(items) = det else {
        return Err(format!(
            "`detection` must be a mapping, not a {}",
            det.kind()
        ));
    };
    let mut idents: Vec<(String, Expr)> = Vec::new();
    let mut conditions: Option<Vec<String>> = None;
    for (k, v) in items {
        let name = k.scalar_text().unwrap_or_default();
        match name.as_str() {
            "condition" => {
                conditions = Some(match v {
                    Yaml::Seq(cs) => cs
                        .iter()
                        .map(|c| {
                            c.scalar_text()
                                .ok_or_else(|| "`condition` list items must be strings".to_string())
                        })
                        .collect::<Result<_, _>>()?,
                    v => vec![v.scalar_text().ok_or_else(|| {
                        format!("`condition` must be a string, not a {}", v.kind())
                    })?],
                });
            }
            // Without an aggregation (refused by the condition parser) a time frame constrains nothing.
            "timeframe" => {}
            _ => {
                if idents.iter().any(|(n, _)| *n == name) {
                    return Err(format!("search identifier `{name}` is defined twice"));
                }
                let e = parse_search(v, opts)
                    .map_err(|e| format!("search identifier `{name}`: {e}"))?;
                idents.push((name, e));
            }
        }
    }
    let conditions = conditions.ok_or("the detection has no `condition`")?;
    if conditions.is_empty() {
        return Err("the `condition` list is empty".into());
    }
    let mut alternatives = Vec::new();
    for c in &conditions {
        let parsed = condition::parse_condition(c).map_err(|e| format!("condition `{c}`: {e}"))?;
        alternatives.push(
            condition::resolve(&parsed, &idents).map_err(|e| format!("condition `{c}`: {e}"))?,
        );
    }
    Ok(simplify(Expr::Or(alternatives)))
}

/// One search identifier's definition: a map (AND of its items), a list (OR of maps and keywords), or a
/// single keyword.
fn parse_search(v: &Yaml, opts: &ParseOptions) -> Result<Expr, String> {
    match v {
        Yaml::Map(items) => {
            let mut all = Vec::with_capacity(items.len());
            for (k, val) in items {
                all.push(parse_item(&k.scalar_text().unwrap_or_default(), val, opts)?);
            }
            Ok(simplify(Expr::And(all)))
        }
        Yaml::Seq(items) => {
            if items.is_empty() {
                return Err("empty list".into());
            }
            let mut any = Vec::with_capacity(items.len());
            for item in items {
                any.push(match item {
                    Yaml::Map(_) => parse_search(item, opts)?,
                    Yaml::Seq(_) => {
                        return Err("a list nested in a list is not a valid search".into());
                    }
                    Yaml::Null => return Err("`null` is not a valid keyword".into()),
                    scalar => compile_values(None, &[], std::slice::from_ref(scalar), opts)?,
                });
            }
            Ok(simplify(Expr::Or(any)))
        }
        Yaml::Null => Err("no definition (null)".into()),
        scalar => compile_values(None, &[], std::slice::from_ref(scalar), opts),
    }
}

/// One `Field|mod1|mod2: value(s)` item of a map.
fn parse_item(key: &str, value: &Yaml, opts: &ParseOptions) -> Result<Expr, String> {
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or_default().trim();
    let mut mods = Vec::new();
    for m in parts {
        mods.push(Modifier::parse(m).map_err(|e| format!("`{key}`: {e}"))?);
    }
    let values: &[Yaml] = match value {
        Yaml::Seq(items) if items.is_empty() => return Err(format!("`{key}`: empty value list")),
        Yaml::Seq(items) => items,
        Yaml::Map(_) => return Err(format!("`{key}`: a value cannot be a mapping")),
        v => std::slice::from_ref(v),
    };
    if let Some(bad) = values
        .iter()
        .find(|v| matches!(v, Yaml::Seq(_) | Yaml::Map(_)))
    {
        return Err(format!("`{key}`: a value cannot be a {}", bad.kind()));
    }
    let field = if field.is_empty() { None } else { Some(field) };
    compile_values(field, &mods, values, opts).map_err(|e| format!("`{key}`: {e}"))
}

// ---------------------------------------------------------------------------------------------------------
// Modifiers

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    Contains,
    StartsWith,
    EndsWith,
    All,
    Base64,
    Base64Offset,
    Utf16Le,
    Utf16Be,
    Utf16,
    Windash,
    Re,
    ReIgnoreCase,
    ReMultiLine,
    ReDotAll,
    Cidr,
    Exists,
    FieldRef,
    Compare(Cmp),
    Cased,
    Neq,
    Expand,
}

impl Modifier {
    fn parse(name: &str) -> Result<Modifier, String> {
        Ok(match name {
            "contains" => Modifier::Contains,
            "startswith" => Modifier::StartsWith,
            "endswith" => Modifier::EndsWith,
            "all" => Modifier::All,
            "base64" => Modifier::Base64,
            "base64offset" => Modifier::Base64Offset,
            "utf16le" | "wide" => Modifier::Utf16Le,
            "utf16be" => Modifier::Utf16Be,
            "utf16" => Modifier::Utf16,
            "windash" => Modifier::Windash,
            "re" => Modifier::Re,
            "i" | "ignorecase" => Modifier::ReIgnoreCase,
            "m" | "multiline" => Modifier::ReMultiLine,
            "s" | "dotall" => Modifier::ReDotAll,
            "cidr" => Modifier::Cidr,
            "exists" => Modifier::Exists,
            "fieldref" => Modifier::FieldRef,
            "lt" => Modifier::Compare(Cmp::Lt),
            "lte" => Modifier::Compare(Cmp::Lte),
            "gt" => Modifier::Compare(Cmp::Gt),
            "gte" => Modifier::Compare(Cmp::Gte),
            "cased" => Modifier::Cased,
            "neq" => Modifier::Neq,
            "expand" => Modifier::Expand,
            "minute" | "hour" | "day" | "week" | "month" | "year" => {
                return Err(format!(
                    "unsupported modifier `{name}`: time-part modifiers need the field parsed as a timestamp, which ghosthunt does not do"
                ));
            }
            "" => return Err("empty modifier".into()),
            _ => return Err(format!("unknown modifier `{name}`")),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Modifier::Contains => "contains",
            Modifier::StartsWith => "startswith",
            Modifier::EndsWith => "endswith",
            Modifier::All => "all",
            Modifier::Base64 => "base64",
            Modifier::Base64Offset => "base64offset",
            Modifier::Utf16Le => "utf16le",
            Modifier::Utf16Be => "utf16be",
            Modifier::Utf16 => "utf16",
            Modifier::Windash => "windash",
            Modifier::Re => "re",
            Modifier::ReIgnoreCase => "i",
            Modifier::ReMultiLine => "m",
            Modifier::ReDotAll => "s",
            Modifier::Cidr => "cidr",
            Modifier::Exists => "exists",
            Modifier::FieldRef => "fieldref",
            Modifier::Compare(Cmp::Lt) => "lt",
            Modifier::Compare(Cmp::Lte) => "lte",
            Modifier::Compare(Cmp::Gt) => "gt",
            Modifier::Compare(Cmp::Gte) => "gte",
            Modifier::Cased => "cased",
            Modifier::Neq => "neq",
            Modifier::Expand => "expand",
        }
    }

    /// Modifiers that change how the list of values is combined rather than a value.
    fn is_list_level(self) -> bool {
        matches!(self, Modifier::All | Modifier::Neq)
    }
}

/// A piece of a Sigma string while modifiers apply (a [`Piece`] or an unexpanded placeholder).
#[derive(Debug, Clone, PartialEq, Eq)]
enum SPiece {
    Lit(String),
    Many,
    One,
    Placeholder(String),
}

/// A value as modifiers transform it.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str {
        s: Vec<SPiece>,
        cased: bool,
    },
    /// UTF-16 bytes waiting for `base64`/`base64offset`; the modifier that produced them.
    Bytes(Vec<u8>, &'static str),
    Re {
        pattern: String,
        i: bool,
        m: bool,
        s: bool,
    },
    Cidr(IpAddr, u8),
    Num(Cmp, f64),
    Null,
    Exists(bool),
    FieldRef {
        other: String,
        position: Position,
        cased: bool,
    },
}

/// Sigma escapes (pySigma's reading): `*` and `?` are wildcards; a backslash makes a following `*`, `?` or
/// `\` plain; any other backslash (including a trailing one) is a plain backslash.
fn parse_sigma_string(raw: &str) -> Vec<SPiece> {
    let mut out = Vec::new();
    let mut acc = String::new();
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '*' | '?' | '\\') {
                acc.push('\\');
            }
            acc.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '*' || c == '?' {
            if !acc.is_empty() {
                out.push(SPiece::Lit(std::mem::take(&mut acc)));
            }
            out.push(if c == '*' { SPiece::Many } else { SPiece::One });
        } else {
            acc.push(c);
        }
    }
    if escaped {
        acc.push('\\');
    }
    if !acc.is_empty() {
        out.push(SPiece::Lit(acc));
    }
    out
}

fn normalise(pieces: Vec<SPiece>) -> Vec<SPiece> {
    let mut out: Vec<SPiece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match (out.last_mut(), p) {
            (_, SPiece::Lit(s)) if s.is_empty() => {}
            (Some(SPiece::Lit(prev)), SPiece::Lit(s)) => prev.push_str(&s),
            (Some(SPiece::Many), SPiece::Many) => {}
            (_, p) => out.push(p),
        }
    }
    out
}

/// The plain text of a string without wildcards or placeholders.
fn plain_text(s: &[SPiece]) -> Option<String> {
    let mut t = String::new();
    for p in s {
        match p {
            SPiece::Lit(l) => t.push_str(l),
            _ => return None,
        }
    }
    Some(t)
}

/// A scalar of the rule as written.
struct Raw<'a> {
    yaml: &'a Yaml,
}

impl Raw<'_> {
    fn text(&self) -> Option<String> {
        match self.yaml {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(_) | Yaml::Float(_) | Yaml::Bool(_) => self.yaml.scalar_text(),
            _ => None,
        }
    }

    fn number(&self) -> Option<f64> {
        match self.yaml {
            Yaml::Int(i) => Some(*i as f64),
            Yaml::Float(f) if f.is_finite() => Some(*f),
            Yaml::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    fn initial(&self) -> Val {
        match self.yaml {
            Yaml::Null => Val::Null,
            Yaml::Str(s) => Val::Str {
                s: parse_sigma_string(s),
                cased: false,
            },
            // Numbers and booleans: their text, taken literally (no wildcard meaning).
            other => Val::Str {
                s: normalise(vec![SPiece::Lit(other.scalar_text().unwrap_or_default())]),
                cased: false,
            },
        }
    }
}

const DASHES: [&str; 5] = ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"];

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// pySigma's windash: `\B[-/]\b` in each literal part → each of [`DASHES`], all combinations.
fn windash(s: &[SPiece]) -> Result<Vec<Vec<SPiece>>, String> {
    // Split literals into fixed text and dash slots.
    enum Slot {
        Fixed(SPiece),
        Dash,
    }
    let mut slots = Vec::new();
    let mut n_dash = 0u32;
    for p in s {
        match p {
            SPiece::Lit(l) => {
                let chars: Vec<char> = l.chars().collect();
                let mut acc = String::new();
                for (i, &c) in chars.iter().enumerate() {
                    let starts_word = (c == '-' || c == '/')
                        && (i == 0 || !is_word(chars[i - 1]))
                        && chars.get(i + 1).is_some_and(|&n| is_word(n));
                    if starts_word {
                        if !acc.is_empty() {
                            slots.push(Slot::Fixed(SPiece::Lit(std::mem::take(&mut acc))));
                        }
                        slots.push(Slot::Dash);
                        n_dash += 1;
                    } else {
                        acc.push(c);
                    }
                }
                if !acc.is_empty() {
                    slots.push(Slot::Fixed(SPiece::Lit(acc)));
                }
            }
            other => slots.push(Slot::Fixed(other.clone())),
        }
    }
    let count = 5usize.checked_pow(n_dash).filter(|&c| c <= MAX_EXPANSION);
    if count.is_none() {
        return Err(format!(
            "windash would expand {n_dash} dashes into more than {MAX_EXPANSION} variants"
        ));
    }
    // Cartesian product, the first dash varying slowest (pySigma's order).
    let mut variants: Vec<Vec<SPiece>> = vec![Vec::new()];
    for slot in slots {
        match slot {
            Slot::Fixed(p) => variants.iter_mut().for_each(|v| v.push(p.clone())),
            Slot::Dash => {
                variants = variants
                    .into_iter()
                    .flat_map(|v| {
                        DASHES.iter().map(move |d| {
                            let mut v = v.clone();
                            v.push(SPiece::Lit(d.to_string()));
                            v
                        })
                    })
                    .collect();
            }
        }
    }
    Ok(variants.into_iter().map(normalise).collect())
}

/// `expand`: `%name%` in literal parts (not preceded by `\`) becomes a placeholder; `\%` becomes `%`.
fn insert_placeholders(s: &[SPiece]) -> Vec<SPiece> {
    let mut out = Vec::new();
    for p in s {
        let SPiece::Lit(l) = p else {
            out.push(p.clone());
            continue;
        };
        let chars: Vec<char> = l.chars().collect();
        let mut acc: Vec<char> = Vec::new();
        let mut i = 0;
        let flush = |acc: &mut Vec<char>, out: &mut Vec<SPiece>| {
            let text: String = acc.drain(..).collect();
            if !text.is_empty() {
                out.push(SPiece::Lit(text.replace("\\%", "%")));
            }
        };
        while i < chars.len() {
            if chars[i] == '%' && (i == 0 || chars[i - 1] != '\\') {
                let mut j = i + 1;
                while j < chars.len() && is_word(chars[j]) {
                    j += 1;
                }
                if j > i + 1 && j < chars.len() && chars[j] == '%' {
                    flush(&mut acc, &mut out);
                    out.push(SPiece::Placeholder(chars[i + 1..j].iter().collect()));
                    i = j + 1;
                    continue;
                }
            }
            acc.push(chars[i]);
            i += 1;
        }
        flush(&mut acc, &mut out);
    }
    normalise(out)
}

/// Replaces every placeholder by each of its configured values (Sigma strings), all combinations.
fn expand_placeholders(s: &[SPiece], opts: &ParseOptions) -> Result<Vec<Vec<SPiece>>, String> {
    let mut variants: Vec<Vec<SPiece>> = vec![Vec::new()];
    for p in s {
        match p {
            SPiece::Placeholder(name) => {
                let values = opts.placeholders.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                    format!("placeholder `%{name}%` has no configured values (configure it or disable the rule)")
                })?;
                if variants.len().saturating_mul(values.len()) > MAX_EXPANSION {
                    return Err(format!(
                        "placeholder expansion exceeds {MAX_EXPANSION} variants"
                    ));
                }
                variants = variants
                    .into_iter()
                    .flat_map(|v| {
                        values.iter().map(move |val| {
                            let mut v = v.clone();
                            v.extend(parse_sigma_string(val));
                            v
                        })
                    })
                    .collect();
            }
            other => variants.iter_mut().for_each(|v| v.push(other.clone())),
        }
    }
    Ok(variants.into_iter().map(normalise).collect())
}

fn utf16_bytes(text: &str, m: Modifier) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2 + 2);
    if m == Modifier::Utf16 {
        out.extend_from_slice(&[0xFF, 0xFE]);
    }
    for unit in text.encode_utf16() {
        match m {
            Modifier::Utf16Be => out.extend_from_slice(&unit.to_be_bytes()),
            _ => out.extend_from_slice(&unit.to_le_bytes()),
        }
    }
    out
}

/// pySigma's base64offset: the value encoded after 0, 1 and 2 bytes of padding, with the characters that
/// depend on the unknown neighbouring bytes cut off.
pub fn base64_offsets(data: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END_CUT: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(data);
            let enc = B64.encode(&padded);
            let end = enc.len().saturating_sub(END_CUT[(data.len() + i) % 3]);
            enc.get(START[i]..end).unwrap_or("").to_string()
        })
        .collect()
}

fn cased_base64(text: String) -> Val {
    Val::Str {
        s: normalise(vec![SPiece::Lit(text)]),
        cased: true,
    }
}

fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let t = text.trim();
    let (addr, prefix) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid CIDR `{text}`: `{addr}` is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = match prefix {
        None => max,
        Some(p) => Some(p)
            .filter(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|&p| p <= max)
            .ok_or_else(|| format!("invalid CIDR `{text}`: prefix must be 0..={max}"))?,
    };
    let network = match ip {
        IpAddr::V4(v4) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    Ok((network, prefix))
}

fn validate_regex(pattern: &str, i: bool, m: bool, s: bool) -> Result<(), String> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(i)
        .multi_line(m)
        .dot_matches_new_line(s)
        .build()
        .map(|_| ())
        .map_err(|e| {
            let detail = e.to_string();
            let why = if detail.contains("look-around") {
                "uses look-around, which the linear-time regex engine does not support"
            } else if detail.contains("backreference") {
                "uses a backreference, which the linear-time regex engine does not support"
            } else {
                "does not compile"
            };
            let last = detail
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            format!("regular expression `{pattern}` {why} ({last})")
        })
}

/// Applies the value modifiers, left to right, to one value written in the rule.
fn apply_modifiers(
    raw: &Raw,
    mods: &[Modifier],
    has_field: bool,
    opts: &ParseOptions,
) -> Result<Vec<Val>, String> {
    let mut vals = vec![raw.initial()];
    for (applied, &m) in mods.iter().filter(|m| !m.is_list_level()).enumerate() {
        let first = applied == 0; // no value modifier applied before this one
        let name = m.name();
        let need_first = || -> Result<(), String> {
            if first {
                Ok(())
            } else {
                Err(format!("`{name}` must be the first modifier"))
            }
        };
        vals = match m {
            Modifier::Re => {
                need_first()?;
                let pattern = raw.text().ok_or("`re` needs a string value")?;
                vec![Val::Re {
                    pattern,
                    i: false,
                    m: false,
                    s: false,
                }]
            }
            Modifier::Cidr => {
                need_first()?;
                let text = raw.text().ok_or("`cidr` needs a string value")?;
                let (net, prefix) = parse_cidr(&text)?;
                vec![Val::Cidr(net, prefix)]
            }
            Modifier::Exists => {
                need_first()?;
                if !has_field {
                    return Err("`exists` needs a field".into());
                }
                match raw.yaml {
                    Yaml::Bool(b) => vec![Val::Exists(*b)],
                    _ => return Err("`exists` needs `true` or `false`".into()),
                }
            }
            Modifier::Compare(op) => {
                need_first()?;
                let n = raw.number().ok_or_else(|| {
                    format!(
                        "`{name}` needs a numeric value, not {:?}",
                        raw.yaml.text_or_kind()
                    )
                })?;
                vec![Val::Num(op, n)]
            }
            _ => {
                let mut next = Vec::with_capacity(vals.len());
                for v in vals {
                    next.extend(apply_one(v, m, opts)?);
                }
                if next.len() > MAX_EXPANSION {
                    return Err(format!(
                        "modifiers expand one value into more than {MAX_EXPANSION} variants"
                    ));
                }
                next
            }
        };
    }
    Ok(vals)
}

fn apply_one(v: Val, m: Modifier, opts: &ParseOptions) -> Result<Vec<Val>, String> {
    let name = m.name();
    let wrong = |v: &Val| -> String {
        match v {
            Val::Bytes(_, enc) => format!(
                "`{name}` cannot follow `{enc}`: UTF-16 bytes must be turned into text by `base64` or `base64offset` first"
            ),
            Val::Null => format!("`{name}` cannot apply to null"),
            Val::Re { .. } => format!("`{name}` cannot apply to a regular expression"),
            Val::Cidr(..) => format!("`{name}` cannot apply to a CIDR network"),
            Val::Num(..) => format!("`{name}` cannot apply to a numeric comparison"),
            Val::Exists(_) => format!("`{name}` cannot apply to an existence test"),
            Val::FieldRef { .. } => format!("`{name}` cannot apply to a field reference"),
            Val::Str { .. } => format!("`{name}` cannot apply to a string"),
        }
    };
    Ok(match (m, v) {
        (
            Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith,
            Val::Str { mut s, cased },
        ) => {
            if m != Modifier::EndsWith && s.last() != Some(&SPiece::Many) {
                s.push(SPiece::Many);
            }
            if m != Modifier::StartsWith && s.first() != Some(&SPiece::Many) {
                s.insert(0, SPiece::Many);
            }
            vec![Val::Str { s, cased }]
        }
        // A regular expression is matched anywhere in the value already (pySigma only pads it with `.*`).
        (Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith, v @ Val::Re { .. }) => {
            vec![v]
        }
        (
            Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith,
            Val::FieldRef {
                other,
                position,
                cased,
            },
        ) => {
            let (mut starts, mut ends) = match position {
                Position::Equals => (false, false),
                Position::StartsWith => (true, false),
                Position::EndsWith => (false, true),
                Position::Contains => (true, true),
            };
            match m {
                Modifier::Contains => (starts, ends) = (true, true),
                Modifier::StartsWith => starts = true,
                _ => ends = true,
            }
            let position = match (starts, ends) {
                (true, true) => Position::Contains,
                (true, false) => Position::StartsWith,
                (false, true) => Position::EndsWith,
                (false, false) => Position::Equals,
            };
            vec![Val::FieldRef {
                other,
                position,
                cased,
            }]
        }
        (Modifier::Base64 | Modifier::Base64Offset, v @ (Val::Str { .. } | Val::Bytes(..))) => {
            let data = match &v {
                Val::Bytes(b, _) => b.clone(),
                Val::Str { s, .. } => plain_text(s)
                    .ok_or_else(|| {
                        format!("`{name}` cannot encode a value with wildcards or placeholders")
                    })?
                    .into_bytes(),
                _ => unreachable!(),
            };
            if data.is_empty() {
                return Err(format!("`{name}` of an empty value"));
            }
            if m == Modifier::Base64 {
                vec![cased_base64(B64.encode(&data))]
            } else {
                let variants: Vec<Val> = base64_offsets(&data)
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(cased_base64)
                    .collect();
                if variants.is_empty() {
                    return Err(
                        "`base64offset` of a value too short to have a stable encoding".into(),
                    );
                }
                variants
            }
        }
        (Modifier::Utf16Le | Modifier::Utf16Be | Modifier::Utf16, Val::Str { s, .. }) => {
            let text = plain_text(&s).ok_or_else(|| {
                format!("`{name}` of a value with wildcards or placeholders cannot be matched (it would need `base64`, which refuses wildcards)")
            })?;
            vec![Val::Bytes(utf16_bytes(&text, m), name)]
        }
        (Modifier::Windash, Val::Str { s, cased }) => windash(&s)?
            .into_iter()
            .map(|s| Val::Str { s, cased })
            .collect(),
        (Modifier::ReIgnoreCase, Val::Re { pattern, m, s, .. }) => vec![Val::Re {
            pattern,
            i: true,
            m,
            s,
        }],
        (Modifier::ReMultiLine, Val::Re { pattern, i, s, .. }) => vec![Val::Re {
            pattern,
            i,
            m: true,
            s,
        }],
        (Modifier::ReDotAll, Val::Re { pattern, i, m, .. }) => vec![Val::Re {
            pattern,
            i,
            m,
            s: true,
        }],
        (Modifier::ReIgnoreCase | Modifier::ReMultiLine | Modifier::ReDotAll, _) => {
            return Err(format!("`{name}` is a flag of `re` and must follow it"));
        }
        (Modifier::Cased, Val::Str { s, .. }) => vec![Val::Str { s, cased: true }],
        (
            Modifier::Cased,
            Val::FieldRef {
                other, position, ..
            },
        ) => vec![Val::FieldRef {
            other,
            position,
            cased: true,
        }],
        (Modifier::FieldRef, Val::Str { s, .. }) => {
            let other =
                plain_text(&s).ok_or("`fieldref` needs a plain field name without wildcards")?;
            if other.is_empty() {
                return Err("`fieldref` needs a field name".into());
            }
            vec![Val::FieldRef {
                other,
                position: Position::Equals,
                cased: false,
            }]
        }
        (Modifier::Expand, Val::Str { s, cased }) => {
            let with = insert_placeholders(&s);
            expand_placeholders(&with, opts)?
                .into_iter()
                .map(|s| Val::Str { s, cased })
                .collect()
        }
        (_, v) => return Err(wrong(&v)),
    })
}

/// Compiles the values of one item (field test or keyword) with its modifiers.
fn compile_values(
    field: Option<&str>,
    mods: &[Modifier],
    values: &[Yaml],
    opts: &ParseOptions,
) -> Result<Expr, String> {
    let all = mods.contains(&Modifier::All);
    let neq = mods.contains(&Modifier::Neq);
    let positional = mods.iter().any(|m| {
        matches!(
            m,
            Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith
        )
    });
    let mut per_value = Vec::with_capacity(values.len());
    for y in values {
        let raw = Raw { yaml: y };
        if matches!(y, Yaml::Null) && mods.iter().any(|m| !m.is_list_level()) {
            return Err("`null` takes no value modifier".into());
        }
        let vals = apply_modifiers(&raw, mods, field.is_some(), opts)?;
        let mut alternatives = Vec::with_capacity(vals.len());
        for v in vals {
            alternatives.push(match field {
                Some(f) => Expr::Field {
                    field: f.to_string(),
                    test: to_test(v)?,
                },
                None => to_keyword(v, positional)?,
            });
        }
        per_value.push(simplify(Expr::Or(alternatives)));
    }
    let combined = simplify(if all {
        Expr::And(per_value)
    } else {
        Expr::Or(per_value)
    });
    if neq {
        let Some(f) = field else {
            return Err("`neq` needs a field".into());
        };
        if has_exists(&combined) {
            return Err("`neq` cannot combine with `exists`".into());
        }
        return Ok(Expr::And(vec![
            Expr::Field {
                field: f.to_string(),
                test: Test::Exists(true),
            },
            Expr::Not(Box::new(combined)),
        ]));
    }
    Ok(combined)
}

fn has_exists(e: &Expr) -> bool {
    match e {
        Expr::Field {
            test: Test::Exists(_),
            ..
        } => true,
        Expr::And(v) | Expr::Or(v) => v.iter().any(has_exists),
        Expr::Not(e) => has_exists(e),
        _ => false,
    }
}

fn to_pattern(s: Vec<SPiece>) -> Result<Pattern, String> {
    let mut pieces = Vec::with_capacity(s.len());
    for p in s {
        pieces.push(match p {
            SPiece::Lit(l) => Piece::Lit(l),
            SPiece::Many => Piece::AnyMany,
            SPiece::One => Piece::AnyOne,
            // `expand` resolves placeholders immediately; a leftover is a bug, reported not panicked.
            SPiece::Placeholder(n) => return Err(format!("unexpanded placeholder `%{n}%`")),
        });
    }
    Ok(Pattern::new(pieces))
}

fn to_test(v: Val) -> Result<Test, String> {
    Ok(match v {
        Val::Str { s, cased } => Test::Str {
            pattern: to_pattern(s)?,
            cased,
        },
        Val::Bytes(_, enc) => {
            return Err(format!(
                "`{enc}` without `base64`/`base64offset`: UTF-16 bytes cannot match decoded event text"
            ));
        }
        Val::Re { pattern, i, m, s } => {
            validate_regex(&pattern, i, m, s)?;
            Test::Re {
                pattern,
                case_insensitive: i,
                multi_line: m,
                dot_matches_new_line: s,
            }
        }
        Val::Cidr(network, prefix) => Test::Cidr { network, prefix },
        Val::Num(op, value) => Test::Num { op, value },
        Val::Null => Test::Null,
        Val::Exists(b) => Test::Exists(b),
        Val::FieldRef {
            other,
            position,
            cased,
        } => Test::FieldRef {
            other,
            position,
            cased,
        },
    })
}

fn to_keyword(v: Val, positional: bool) -> Result<Expr, String> {
    match v {
        Val::Str { mut s, cased } => {
            if !positional {
                // A bare keyword is found anywhere in a value.
                if s.first() != Some(&SPiece::Many) {
                    s.insert(0, SPiece::Many);
                }
                if s.last() != Some(&SPiece::Many) {
                    s.push(SPiece::Many);
                }
            }
            Ok(Expr::Keyword {
                pattern: to_pattern(s)?,
                cased,
            })
        }
        Val::Bytes(_, enc) => Err(format!(
            "`{enc}` without `base64`/`base64offset`: UTF-16 bytes cannot match decoded event text"
        )),
        Val::Null => Err("`null` is not a valid keyword".into()),
        _ => Err("keywords (values without a field) support string matching only".into()),
    }
}

/// Light, deterministic simplification: flattens nested `And`/`Or`, drops `True` from `And`, makes an
/// `Or` containing `True` `True`, and replaces single-child `And`/`Or` by the child.
pub fn simplify(e: Expr) -> Expr {
    match e {
        Expr::And(v) => {
            let mut out = Vec::with_capacity(v.len());
            for c in v {
                match simplify(c) {
                    Expr::True => {}
                    Expr::And(inner) => out.extend(inner),
                    c => out.push(c),
                }
            }
            match out.len() {
                0 => Expr::True,
                1 => out.pop().unwrap(),
                _ => Expr::And(out),
            }
        }
        Expr::Or(v) => {
            let mut out = Vec::with_capacity(v.len());
            for c in v {
                match simplify(c) {
                    Expr::True => return Expr::True,
                    Expr::Or(inner) => out.extend(inner),
                    c => out.push(c),
                }
            }
            match out.len() {
                0 => Expr::Or(out), // never produced by the parser: an empty list is refused
                1 => out.pop().unwrap(),
                _ => Expr::Or(out),
            }
        }
        Expr::Not(inner) => Expr::Not(Box::new(simplify(*inner))),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------------------
// ATT&CK tags

/// ATT&CK tactic short names (Enterprise incl. v18's `stealth`/`defense-impairment`, ICS, Mobile).
const TACTICS: &[&str] = &[
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "stealth",
    "defense-impairment",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
    "evasion",
    "inhibit-response-function",
    "impair-process-control",
    "network-effects",
    "remote-service-effects",
];

/// Techniques (`T1059`, `T1059.001`, upper-cased) and tactics (short names with `-`) from `attack.*` tags,
/// each deduplicated in tag order. Groups, software and other `attack.*` tags are ignored.
pub fn attack_from_tags(tags: &[String]) -> (Vec<String>, Vec<String>) {
    let mut techniques: Vec<String> = Vec::new();
    let mut tactics: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_ascii_lowercase();
        let Some(rest) = tag.strip_prefix("attack.") else {
            continue;
        };
        if is_technique(rest) {
            let t = rest.to_ascii_uppercase();
            if !techniques.contains(&t) {
                techniques.push(t);
            }
        } else {
            let t = rest.replace('_', "-");
            if TACTICS.contains(&t.as_str()) && !tactics.contains(&t) {
                tactics.push(t);
            }
        }
    }
    (techniques, tactics)
}

fn is_technique(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b't' && digits(&b[1..5]),
        9 => b[0] == b't' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..9]),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------------------
// YAML values, in document order

/// A YAML node with mapping order preserved (`serde_json::Value` would sort keys).
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(items) => items
                .iter()
                .rev()
                .find(|(k, _)| matches!(k, Yaml::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn without(self, key: &str) -> Yaml {
        match self {
            Yaml::Map(items) => Yaml::Map(
                items
                    .into_iter()
                    .filter(|(k, _)| !matches!(k, Yaml::Str(s) if s == key))
                    .collect(),
            ),
            other => other,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Yaml::Null => "null",
            Yaml::Bool(_) => "boolean",
            Yaml::Int(_) | Yaml::Float(_) => "number",
            Yaml::Str(_) => "string",
            Yaml::Seq(_) => "list",
            Yaml::Map(_) => "mapping",
        }
    }

    /// The text of a scalar: strings as is, numbers in decimal (a float with an integral value as an
    /// integer, as pySigma), booleans `true`/`false`.
    fn scalar_text(&self) -> Option<String> {
        match self {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 => {
                Some(format!("{}", *f as i64))
            }
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            Yaml::Null | Yaml::Seq(_) | Yaml::Map(_) => None,
        }
    }

    fn text_or_kind(&self) -> String {
        self.scalar_text()
            .unwrap_or_else(|| self.kind().to_string())
    }

    fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Yaml::Null => J::Null,
            Yaml::Bool(b) => J::Bool(*b),
            Yaml::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    J::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    J::from(v)
                } else {
                    serde_json::Number::from_f64(*i as f64).map_or(J::Null, J::Number)
                }
            }
            Yaml::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Yaml::Str(s) => J::String(s.clone()),
            Yaml::Seq(v) => J::Array(v.iter().map(Yaml::to_json).collect()),
            Yaml::Map(items) => J::Object(
                items
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.scalar_text().unwrap_or_else(|| k.kind().to_string()),
                            v.to_json(),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

/// Sigma 1 collections: `over` merged into `base`, mappings recursively, anything else replaced.
fn deep_merge(base: Yaml, over: Yaml) -> Yaml {
    match (base, over) {
        (Yaml::Map(mut b), Yaml::Map(o)) => {
            for (k, v) in o {
                match b.iter().position(|(bk, _)| *bk == k) {
                    Some(i) => {
                        let old = std::mem::replace(&mut b[i].1, Yaml::Null);
                        b[i].1 = deep_merge(old, v);
                    }
                    None => b.push((k, v)),
                }
            }
            Yaml::Map(b)
        }
        (_, o) => o,
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Yaml, E> {
        Ok(i128::try_from(v)
            .map(Yaml::Int)
            .unwrap_or(Yaml::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Yaml, E> {
        Ok(Yaml::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut v = Vec::new();
        while let Some(item) = seq.next_element()? {
            v.push(item);
        }
        Ok(Yaml::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut v = Vec::new();
        while let Some((k, val)) = map.next_entry()? {
            v.push((k, val));
        }
        Ok(Yaml::Map(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use Piece::{AnyMany as M, AnyOne as O};

    fn lit(s: &str) -> Piece {
        Piece::Lit(s.to_string())
    }

    fn field(f: &str, test: Test) -> Expr {
        Expr::Field {
            field: f.to_string(),
            test,
        }
    }

    fn str_test(pieces: Vec<Piece>) -> Test {
        Test::Str {
            pattern: Pattern::new(pieces),
            cased: false,
        }
    }

    fn cased_test(pieces: Vec<Piece>) -> Test {
        Test::Str {
            pattern: Pattern::new(pieces),
            cased: true,
        }
    }

    fn rule_with(
        detection: &str,
        placeholders: &HashMap<String, Vec<String>>,
    ) -> Result<SigmaRule, Refusal> {
        let indented: String = detection.lines().map(|l| format!("    {l}\n")).collect();
        let text = format!(
            "title: T\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n    product: windows\ndetection:\n{indented}"
        );
        let opts = ParseOptions { placeholders };
        let mut docs = parse_file(&text, &opts).expect("valid YAML");
        assert_eq!(docs.len(), 1);
        match docs.pop().unwrap()? {
            Document::Rule(r) => Ok(r),
            other => panic!("not a rule: {other:?}"),
        }
    }

    /// The compiled detection of a rule whose detection block is `detection`.
    fn det(detection: &str) -> Expr {
        match rule_with(detection, &HashMap::new()) {
            Ok(r) => r.detection,
            Err(e) => panic!("refused: {e}"),
        }
    }

    /// The refusal reason for a detection block.
    fn refused(detection: &str) -> String {
        match rule_with(detection, &HashMap::new()) {
            Ok(r) => panic!("unexpectedly parsed: {:?}", r.detection),
            Err(e) => e.reason,
        }
    }

    fn pieces(raw: &str) -> Vec<SPiece> {
        parse_sigma_string(raw)
    }

    fn l(s: &str) -> SPiece {
        SPiece::Lit(s.to_string())
    }

    // ---- escapes ------------------------------------------------------------------------------------

    #[test]
    fn wildcards_and_escapes_follow_the_specification() {
        assert_eq!(pieces("prog?.exe"), vec![l("prog"), SPiece::One, l(".exe")]);
        assert_eq!(pieces("*\\cmd.exe"), vec![SPiece::Many, l("\\cmd.exe")]);
        assert_eq!(pieces("a\\*b"), vec![l("a*b")]);
        assert_eq!(pieces("a\\?b"), vec![l("a?b")]);
        // `\\*`: a plain backslash followed by a wildcard.
        assert_eq!(pieces("a\\\\*"), vec![l("a\\"), SPiece::Many]);
        // `\\\*`: a plain backslash and a plain star.
        assert_eq!(pieces("a\\\\\\*"), vec![l("a\\*")]);
        // Three or four backslashes are a double backslash.
        assert_eq!(pieces("a\\\\\\\\b"), vec![l("a\\\\b")]);
        assert_eq!(pieces("a\\\\\\b"), vec![l("a\\\\b")]);
        // A backslash before anything else is plain, also at the end.
        assert_eq!(pieces("C:\\Windows\\"), vec![l("C:\\Windows\\")]);
        assert_eq!(pieces(""), vec![]);
    }

    #[test]
    fn escaped_values_compile_to_literal_patterns() {
        assert_eq!(
            det("sel:\n    F: 'a\\*b\\?'\ncondition: sel"),
            field("F", str_test(vec![lit("a*b?")]))
        );
        assert_eq!(
            det("sel:\n    F: 'C:\\Temp\\*'\ncondition: sel"),
            field("F", str_test(vec![lit("C:\\Temp*")]))
        );
        assert_eq!(
            det("sel:\n    F: 'C:\\Temp\\\\*'\ncondition: sel"),
            field("F", str_test(vec![lit("C:\\Temp\\"), M]))
        );
    }

    // ---- structure ----------------------------------------------------------------------------------

    #[test]
    fn map_is_and_list_value_is_or() {
        let e = det(
            "sel:\n    EventID:\n        - 517\n        - 1102\n    EventLog: Security\ncondition: sel",
        );
        assert_eq!(
            e,
            Expr::And(vec![
                Expr::Or(vec![
                    field("EventID", str_test(vec![lit("517")])),
                    field("EventID", str_test(vec![lit("1102")]))
                ]),
                field("EventLog", str_test(vec![lit("Security")])),
            ])
        );
    }

    #[test]
    fn list_of_maps_is_or_of_ands() {
        let e = det(
            "sel:\n    - Image|endswith: '\\a.exe'\n    - Description|contains: 'Test'\n      Company: X\ncondition: sel",
        );
        assert_eq!(
            e,
            Expr::Or(vec![
                field("Image", str_test(vec![M, lit("\\a.exe")])),
                Expr::And(vec![
                    field("Description", str_test(vec![M, lit("Test"), M])),
                    field("Company", str_test(vec![lit("X")]))
                ]),
            ])
        );
    }

    #[test]
    fn keyword_lists_are_or_of_contains_keywords() {
        let e = det("keywords:\n    - 'event::clear'\n    - 'sekurlsa*'\ncondition: keywords");
        assert_eq!(
            e,
            Expr::Or(vec![
                Expr::Keyword {
                    pattern: Pattern::new([M, lit("event::clear"), M]),
                    cased: false
                },
                Expr::Keyword {
                    pattern: Pattern::new([M, lit("sekurlsa"), M]),
                    cased: false
                },
            ])
        );
        let e = det(
            "keywords:\n    '|all':\n        - 'OabVirtualDirectory'\n        - ' -ExternalUrl '\ncondition: keywords",
        );
        assert_eq!(
            e,
            Expr::And(vec![
                Expr::Keyword {
                    pattern: Pattern::new([M, lit("OabVirtualDirectory"), M]),
                    cased: false
                },
                Expr::Keyword {
                    pattern: Pattern::new([M, lit(" -ExternalUrl "), M]),
                    cased: false
                },
            ])
        );
        // Explicit position on a keyword is kept.
        let e = det("kw:\n    '|startswith': 'abc'\ncondition: kw");
        assert_eq!(
            e,
            Expr::Keyword {
                pattern: Pattern::new([lit("abc"), M]),
                cased: false
            }
        );
    }

    #[test]
    fn null_empty_numbers_and_booleans() {
        assert_eq!(
            det("f:\n    CommandLine: null\ncondition: f"),
            field("CommandLine", Test::Null)
        );
        assert_eq!(
            det("f:\n    CommandLine: ''\ncondition: f"),
            field("CommandLine", str_test(vec![]))
        );
        assert_eq!(
            det("f:\n    EventID: 4688\ncondition: f"),
            field("EventID", str_test(vec![lit("4688")]))
        );
        assert_eq!(
            det("f:\n    Enabled: true\ncondition: f"),
            field("Enabled", str_test(vec![lit("true")]))
        );
        assert_eq!(
            det("f:\n    Ratio: 1.5\ncondition: f"),
            field("Ratio", str_test(vec![lit("1.5")]))
        );
        // YAML 1.2: `no` is a string, a leading-zero number keeps its spelling, `*` in a number is literal.
        assert_eq!(
            det("f:\n    Flag: no\ncondition: f"),
            field("Flag", str_test(vec![lit("no")]))
        );
        assert_eq!(
            det("f:\n    Mode: 0755\ncondition: f"),
            field("Mode", str_test(vec![lit("0755")]))
        );
        let e = det("f:\n    X:\n        - a\n        - null\ncondition: f");
        assert_eq!(
            e,
            Expr::Or(vec![
                field("X", str_test(vec![lit("a")])),
                field("X", Test::Null)
            ])
        );
    }

    #[test]
    fn condition_list_is_or_and_precedence_is_applied() {
        let a = field("A", str_test(vec![lit("1")]));
        let b = field("B", str_test(vec![lit("2")]));
        let c = field("C", str_test(vec![lit("3")]));
        let e = det("a:\n    A: 1\nb:\n    B: 2\nc:\n    C: 3\ncondition: not a and b or c");
        assert_eq!(
            e,
            Expr::Or(vec![
                Expr::And(vec![Expr::Not(Box::new(a.clone())), b.clone()]),
                c.clone()
            ])
        );
        let e = det("a:\n    A: 1\nb:\n    B: 2\ncondition:\n    - a\n    - b");
        assert_eq!(e, Expr::Or(vec![a.clone(), b.clone()]));
        let e = det(
            "sel_a:\n    A: 1\nsel_b:\n    B: 2\nfilter_c:\n    C: 3\ncondition: all of sel_* and not 1 of filter_*",
        );
        assert_eq!(e, Expr::And(vec![a, b, Expr::Not(Box::new(c))]));
    }

    #[test]
    fn empty_selection_is_true_and_and_is_flattened() {
        let e = det("sel:\n    A: 1\nempty: {}\ncondition: sel and empty");
        assert_eq!(e, field("A", str_test(vec![lit("1")])));
        let e = simplify(Expr::And(vec![
            Expr::And(vec![Expr::True, field("A", Test::Null)]),
            Expr::Or(vec![
                Expr::Or(vec![field("B", Test::Null)]),
                field("C", Test::Null),
            ]),
        ]));
        assert_eq!(
            e,
            Expr::And(vec![
                field("A", Test::Null),
                Expr::Or(vec![field("B", Test::Null), field("C", Test::Null)])
            ])
        );
        assert_eq!(
            simplify(Expr::Or(vec![field("A", Test::Null), Expr::True])),
            Expr::True
        );
    }

    #[test]
    fn structural_errors_are_refused_with_reasons() {
        assert!(refused("sel:\n    A: 1\ncondition: sel and nope").contains("`nope`"));
        assert!(
            refused("sel:\n    A: 1\ncondition: sel | count() by A > 3").contains("deprecated")
        );
        assert!(
            refused("sel:\n    A: 1\ntimeframe: 5m\ncondition: sel | count() > 3")
                .contains("deprecated")
        );
        assert!(refused("sel:\n    A: 1").contains("no `condition`"));
        assert!(refused("sel:\n    A: []\ncondition: sel").contains("empty value list"));
        assert!(refused("sel:\n    A:\n        x: 1\ncondition: sel").contains("mapping"));
        assert!(refused("sel:\ncondition: sel").contains("null"));
        assert!(refused("sel:\n    - - a\ncondition: sel").contains("nested"));
        assert!(refused("sel:\n    A|foo: 1\ncondition: sel").contains("unknown modifier `foo`"));
        assert!(refused("sel:\n    A|: 1\ncondition: sel").contains("empty modifier"));
    }

    // ---- modifiers ----------------------------------------------------------------------------------

    #[test]
    fn contains_startswith_endswith_add_wildcards_once() {
        assert_eq!(
            det("s:\n    F|contains: 'x'\ncondition: s"),
            field("F", str_test(vec![M, lit("x"), M]))
        );
        assert_eq!(
            det("s:\n    F|contains: '*x*'\ncondition: s"),
            field("F", str_test(vec![M, lit("x"), M]))
        );
        assert_eq!(
            det("s:\n    F|startswith: 'x'\ncondition: s"),
            field("F", str_test(vec![lit("x"), M]))
        );
        assert_eq!(
            det("s:\n    F|endswith: 'x?'\ncondition: s"),
            field("F", str_test(vec![M, lit("x"), O]))
        );
    }

    #[test]
    fn all_links_values_with_and() {
        let e = det("s:\n    F|contains|all:\n        - a\n        - b\ncondition: s");
        assert_eq!(
            e,
            Expr::And(vec![
                field("F", str_test(vec![M, lit("a"), M])),
                field("F", str_test(vec![M, lit("b"), M]))
            ])
        );
    }

    #[test]
    fn base64_matches_pysigma_and_is_case_sensitive() {
        assert_eq!(
            det("s:\n    F|base64: foobar\ncondition: s"),
            field("F", cased_test(vec![lit("Zm9vYmFy")]))
        );
        assert_eq!(
            det("s:\n    F|base64|contains: 'http://'\ncondition: s"),
            field("F", cased_test(vec![M, lit("aHR0cDovLw=="), M]))
        );
        assert!(refused("s:\n    F|base64: 'foo*bar'\ncondition: s").contains("wildcards"));
        // Order matters: contains first puts wildcards in, which base64 refuses.
        assert!(refused("s:\n    F|contains|base64: foo\ncondition: s").contains("wildcards"));
    }

    #[test]
    fn base64offset_matches_pysigma_outputs() {
        // pySigma tests/test_modifiers.py::test_base64offset
        assert_eq!(
            base64_offsets(b"foobar"),
            vec!["Zm9vYmFy", "Zvb2Jhc", "mb29iYX"]
        );
        assert_eq!(
            base64_offsets(b"/bin/bash"),
            vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
        let e = det("s:\n    F|base64offset|contains: foobar\ncondition: s");
        assert_eq!(
            e,
            Expr::Or(vec![
                field("F", cased_test(vec![M, lit("Zm9vYmFy"), M])),
                field("F", cased_test(vec![M, lit("Zvb2Jhc"), M])),
                field("F", cased_test(vec![M, lit("mb29iYX"), M])),
            ])
        );
    }

    #[test]
    fn base64offset_variants_find_the_value_at_every_alignment() {
        use base64::Engine as _;
        let needle = b"IEX (New-Object Net.WebClient)";
        let variants = base64_offsets(needle);
        for prefix in ["", "a", "ab", "abc", "abcd"] {
            let mut data = prefix.as_bytes().to_vec();
            data.extend_from_slice(needle);
            data.extend_from_slice(b" trailing");
            let encoded = B64.encode(&data);
            assert!(
                variants.iter().any(|v| encoded.contains(v.as_str())),
                "prefix {prefix:?}: {encoded} vs {variants:?}"
            );
        }
    }

    #[test]
    fn utf16_encodings_feed_base64() {
        // "cmd" as UTF-16LE is 63 00 6d 00 64 00.
        assert_eq!(
            det("s:\n    F|wide|base64: cmd\ncondition: s"),
            field("F", cased_test(vec![lit("YwBtAGQA")]))
        );
        assert_eq!(
            det("s:\n    F|utf16le|base64: cmd\ncondition: s"),
            field("F", cased_test(vec![lit("YwBtAGQA")]))
        );
        // UTF-16BE: 00 63 00 6d 00 64; with BOM (utf16): FF FE 63 00 6d 00 64 00.
        assert_eq!(
            det("s:\n    F|utf16be|base64: cmd\ncondition: s"),
            field("F", cased_test(vec![lit("AGMAbQBk")]))
        );
        assert_eq!(
            det("s:\n    F|utf16|base64: cmd\ncondition: s"),
            field("F", cased_test(vec![lit("//5jAG0AZAA=")]))
        );
        let e = det("s:\n    F|wide|base64offset|contains: 'ping'\ncondition: s");
        let expected: Vec<Expr> = base64_offsets(&utf16_bytes("ping", Modifier::Utf16Le))
            .into_iter()
            .map(|v| field("F", cased_test(vec![M, lit(&v), M])))
            .collect();
        assert_eq!(e, Expr::Or(expected));
        assert!(refused("s:\n    F|wide: cmd\ncondition: s").contains("without `base64`"));
        assert!(
            refused("s:\n    F|wide|contains: cmd\ncondition: s")
                .contains("cannot follow `utf16le`")
        );
        assert!(refused("s:\n    F|contains|wide|base64: cmd\ncondition: s").contains("wildcards"));
    }

    fn texts(v: &[Vec<SPiece>]) -> Vec<String> {
        v.iter().map(|p| plain_text(p).unwrap()).collect()
    }

    #[test]
    fn windash_matches_pysigma_permutations() {
        let v = texts(&windash(&pieces("-param-1 -param2")).unwrap());
        assert_eq!(v.len(), 25);
        assert_eq!(v[0], "-param-1 -param2");
        assert_eq!(v[1], "-param-1 /param2");
        assert_eq!(v[2], "-param-1 \u{2013}param2");
        assert_eq!(v[5], "/param-1 -param2");
        assert_eq!(v[24], "\u{2015}param-1 \u{2015}param2");
        // pySigma's test_windash (from before en/em dash and horizontal bar were added): the `-`/`/` subset,
        // in the same order.
        let ascii: Vec<&String> = v.iter().filter(|s| s.is_ascii()).collect();
        assert_eq!(
            ascii,
            [
                "-param-1 -param2",
                "-param-1 /param2",
                "/param-1 -param2",
                "/param-1 /param2"
            ]
        );
        // Only a dash starting a word is expanded; inner dashes stay.
        let v = texts(&windash(&pieces(" -param-name ")).unwrap());
        assert_eq!(
            v,
            [
                " -param-name ",
                " /param-name ",
                " \u{2013}param-name ",
                " \u{2014}param-name ",
                " \u{2015}param-name "
            ]
        );
        assert_eq!(texts(&windash(&pieces("a-b")).unwrap()), ["a-b"]);
        assert_eq!(texts(&windash(&pieces("/format:")).unwrap()).len(), 5);
    }

    #[test]
    fn windash_after_contains_or_before_is_an_or_of_variants() {
        let e = det("s:\n    CommandLine|contains|windash: ' -s '\ncondition: s");
        let Expr::Or(v) = e else { panic!() };
        assert_eq!(v.len(), 5);
        assert_eq!(
            v[1],
            field("CommandLine", str_test(vec![M, lit(" /s "), M]))
        );
        assert_eq!(
            det("s:\n    C|windash|contains: '-s'\ncondition: s"),
            det("s:\n    C|contains|windash: '-s'\ncondition: s")
        );
    }

    #[test]
    fn re_keeps_the_pattern_and_takes_flags() {
        let e = det("s:\n    F|re: '^a.*b$'\ncondition: s");
        assert_eq!(
            e,
            field(
                "F",
                Test::Re {
                    pattern: "^a.*b$".into(),
                    case_insensitive: false,
                    multi_line: false,
                    dot_matches_new_line: false
                }
            )
        );
        let e = det("s:\n    F|re|i|m|s: 'x'\ncondition: s");
        assert_eq!(
            e,
            field(
                "F",
                Test::Re {
                    pattern: "x".into(),
                    case_insensitive: true,
                    multi_line: true,
                    dot_matches_new_line: true
                }
            )
        );
        let e = det("s:\n    F|re|ignorecase: 'x'\ncondition: s");
        assert!(matches!(
            e,
            Expr::Field {
                test: Test::Re {
                    case_insensitive: true,
                    ..
                },
                ..
            }
        ));
        // Wildcards and escapes have no Sigma meaning inside a regex.
        let e = det("s:\n    F|re: 'a\\*b?'\ncondition: s");
        assert!(
            matches!(e, Expr::Field { test: Test::Re { ref pattern, .. }, .. } if pattern == "a\\*b?")
        );
    }

    #[test]
    fn re_with_unsupported_constructs_is_refused() {
        let r = refused("s:\n    F|re: 'foo(?=bar)'\ncondition: s");
        assert!(r.contains("look-around") && r.contains("foo(?=bar)"), "{r}");
        let r = refused("s:\n    F|re: '(a)\\1'\ncondition: s");
        assert!(r.contains("backreference"), "{r}");
        assert!(refused("s:\n    F|re: '(unclosed'\ncondition: s").contains("does not compile"));
        assert!(refused("s:\n    F|contains|re: 'x'\ncondition: s").contains("first modifier"));
        assert!(refused("s:\n    F|i: 'x'\ncondition: s").contains("flag of `re`"));
    }

    #[test]
    fn cidr_validates_and_normalises() {
        let e = det("s:\n    Ip|cidr: 10.1.2.3/8\ncondition: s");
        assert_eq!(
            e,
            field(
                "Ip",
                Test::Cidr {
                    network: "10.0.0.0".parse().unwrap(),
                    prefix: 8
                }
            )
        );
        let e = det("s:\n    Ip|cidr: '2001:db8::1/32'\ncondition: s");
        assert_eq!(
            e,
            field(
                "Ip",
                Test::Cidr {
                    network: "2001:db8::".parse().unwrap(),
                    prefix: 32
                }
            )
        );
        let e = det("s:\n    Ip|cidr: 192.168.1.1\ncondition: s");
        assert_eq!(
            e,
            field(
                "Ip",
                Test::Cidr {
                    network: "192.168.1.1".parse().unwrap(),
                    prefix: 32
                }
            )
        );
        let e = det("s:\n    Ip|cidr: ::/0\ncondition: s");
        assert_eq!(
            e,
            field(
                "Ip",
                Test::Cidr {
                    network: "::".parse().unwrap(),
                    prefix: 0
                }
            )
        );
        assert!(refused("s:\n    Ip|cidr: 10.0.0.0/33\ncondition: s").contains("prefix"));
        assert!(refused("s:\n    Ip|cidr: 10.0.0/8\ncondition: s").contains("not an IP"));
        assert!(refused("s:\n    Ip|cidr: '10.0.0.0/'\ncondition: s").contains("prefix"));
        assert!(refused("s:\n    Ip|cidr: '10.0.0.0/+8'\ncondition: s").contains("prefix"));
    }

    #[test]
    fn exists_takes_a_boolean() {
        assert_eq!(
            det("s:\n    F|exists: true\ncondition: s"),
            field("F", Test::Exists(true))
        );
        assert_eq!(
            det("s:\n    F|exists: false\ncondition: s"),
            field("F", Test::Exists(false))
        );
        assert!(refused("s:\n    F|exists: 'yes'\ncondition: s").contains("`true` or `false`"));
        assert!(refused("s:\n    '|exists': true\ncondition: s").contains("needs a field"));
    }

    #[test]
    fn fieldref_with_position_and_case() {
        let fr = |position, cased| {
            field(
                "A",
                Test::FieldRef {
                    other: "B".into(),
                    position,
                    cased,
                },
            )
        };
        assert_eq!(
            det("s:\n    A|fieldref: B\ncondition: s"),
            fr(Position::Equals, false)
        );
        assert_eq!(
            det("s:\n    A|fieldref|contains: B\ncondition: s"),
            fr(Position::Contains, false)
        );
        assert_eq!(
            det("s:\n    A|fieldref|startswith: B\ncondition: s"),
            fr(Position::StartsWith, false)
        );
        assert_eq!(
            det("s:\n    A|fieldref|endswith|cased: B\ncondition: s"),
            fr(Position::EndsWith, true)
        );
        assert_eq!(
            det("s:\n    A|fieldref|startswith|endswith: B\ncondition: s"),
            fr(Position::Contains, false)
        );
        assert!(
            refused("s:\n    A|contains|fieldref: B\ncondition: s").contains("plain field name")
        );
    }

    #[test]
    fn numeric_comparisons_need_numbers() {
        assert_eq!(
            det("s:\n    N|lt: 5\ncondition: s"),
            field(
                "N",
                Test::Num {
                    op: Cmp::Lt,
                    value: 5.0
                }
            )
        );
        assert_eq!(
            det("s:\n    N|lte: 5.5\ncondition: s"),
            field(
                "N",
                Test::Num {
                    op: Cmp::Lte,
                    value: 5.5
                }
            )
        );
        assert_eq!(
            det("s:\n    N|gt: '10'\ncondition: s"),
            field(
                "N",
                Test::Num {
                    op: Cmp::Gt,
                    value: 10.0
                }
            )
        );
        assert_eq!(
            det("s:\n    N|gte: -1\ncondition: s"),
            field(
                "N",
                Test::Num {
                    op: Cmp::Gte,
                    value: -1.0
                }
            )
        );
        assert!(refused("s:\n    N|gt: abc\ncondition: s").contains("numeric"));
        assert!(refused("s:\n    N|contains|gt: 1\ncondition: s").contains("first modifier"));
    }

    #[test]
    fn cased_makes_strings_case_sensitive() {
        assert_eq!(
            det("s:\n    F|cased: IEX\ncondition: s"),
            field("F", cased_test(vec![lit("IEX")]))
        );
        assert_eq!(
            det("s:\n    F|contains|cased: IEX\ncondition: s"),
            det("s:\n    F|cased|contains: IEX\ncondition: s")
        );
        assert!(refused("s:\n    F|re|cased: x\ncondition: s").contains("regular expression"));
    }

    #[test]
    fn neq_is_present_and_different() {
        let e = det("s:\n    F|neq:\n        - a\n        - b\ncondition: s");
        assert_eq!(
            e,
            Expr::And(vec![
                field("F", Test::Exists(true)),
                Expr::Not(Box::new(Expr::Or(vec![
                    field("F", str_test(vec![lit("a")])),
                    field("F", str_test(vec![lit("b")]))
                ]))),
            ])
        );
        let e = det("s:\n    F|contains|neq: a\ncondition: s");
        assert_eq!(
            e,
            Expr::And(vec![
                field("F", Test::Exists(true)),
                Expr::Not(Box::new(field("F", str_test(vec![M, lit("a"), M]))))
            ])
        );
        assert!(refused("s:\n    '|neq': a\ncondition: s").contains("needs a field"));
    }

    #[test]
    fn expand_replaces_placeholders_with_configured_values() {
        let mut ph = HashMap::new();
        ph.insert(
            "DomainControllers".to_string(),
            vec!["dc1*".to_string(), "dc2".to_string()],
        );
        let r = rule_with(
            "s:\n    Host|expand: '%DomainControllers%'\ncondition: s",
            &ph,
        )
        .unwrap();
        assert_eq!(
            r.detection,
            Expr::Or(vec![
                field("Host", str_test(vec![lit("dc1"), M])),
                field("Host", str_test(vec![lit("dc2")]))
            ])
        );
        let r = rule_with(
            "s:\n    Host|expand|contains: 'x\\%y%DomainControllers%z'\ncondition: s",
            &ph,
        )
        .unwrap();
        assert_eq!(
            r.detection,
            Expr::Or(vec![
                field("Host", str_test(vec![M, lit("x%ydc1"), M, lit("z"), M])),
                field("Host", str_test(vec![M, lit("x%ydc2z"), M]))
            ])
        );
        let e = rule_with("s:\n    Host|expand: '%Servers%'\ncondition: s", &ph).unwrap_err();
        assert!(e.reason.contains("`%Servers%`"), "{}", e.reason);
        // Without `expand`, `%name%` is literal text.
        assert_eq!(
            det("s:\n    Host: '%Servers%'\ncondition: s"),
            field("Host", str_test(vec![lit("%Servers%")]))
        );
    }

    #[test]
    fn time_and_unknown_modifiers_are_refused() {
        assert!(refused("s:\n    T|hour: 3\ncondition: s").contains("time-part"));
        assert!(
            refused("s:\n    T|EndsWith: 3\ncondition: s").contains("unknown modifier `EndsWith`")
        );
        assert!(refused("s:\n    F: null\n    G|contains: null\ncondition: s").contains("null"));
    }

    // ---- documents ----------------------------------------------------------------------------------

    const FULL_RULE: &str = r#"
title: Whoami Execution
id: 8f8e5d1a-0000-4000-8000-000000000001
name: whoami_exec
status: test
description: Detects whoami
author:
    - A
    - B
level: High
tags:
    - attack.discovery
    - attack.t1033
references: https://example.com
falsepositives:
    - Admins
fields:
    - CommandLine
logsource:
    category: process_creation
    product: windows
    definition: 'ignored'
custom_attribute: allowed
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
"#;

    #[test]
    fn metadata_is_read() {
        let docs = parse_file(FULL_RULE, &ParseOptions::default()).unwrap();
        let Ok(Document::Rule(r)) = &docs[0] else {
            panic!("{docs:?}")
        };
        assert_eq!(r.id, "8f8e5d1a-0000-4000-8000-000000000001");
        assert_eq!(r.name.as_deref(), Some("whoami_exec"));
        assert_eq!(r.title, "Whoami Execution");
        assert_eq!(r.description, "Detects whoami");
        assert_eq!(r.status.as_deref(), Some("test"));
        assert_eq!(r.level, Some(Level::High));
        assert_eq!(r.author.as_deref(), Some("A, B"));
        assert_eq!(r.tags, ["attack.discovery", "attack.t1033"]);
        assert_eq!(r.references, ["https://example.com"]);
        assert_eq!(r.falsepositives, ["Admins"]);
        assert_eq!(r.fields, ["CommandLine"]);
        assert_eq!(
            r.logsource,
            Logsource {
                product: Some("windows".into()),
                category: Some("process_creation".into()),
                service: None
            }
        );
        assert_eq!(
            r.detection,
            field("Image", str_test(vec![M, lit("\\whoami.exe")]))
        );
    }

    #[test]
    fn missing_required_keys_are_refused_with_title_and_id() {
        let docs = parse_file(
            "title: X\nid: abc\ndetection:\n    s:\n        A: 1\n    condition: s\n",
            &ParseOptions::default(),
        )
        .unwrap();
        let Err(r) = &docs[0] else { panic!() };
        assert_eq!(
            (r.title.as_deref(), r.id.as_deref()),
            (Some("X"), Some("abc"))
        );
        assert!(r.reason.contains("logsource"));
        let docs = parse_file(
            "title: X\nlogsource: {product: x}\ndetection: {s: {A: 1}, condition: s}\n",
            &ParseOptions::default(),
        )
        .unwrap();
        assert!(matches!(&docs[0], Err(r) if r.reason.contains("`id`")));
        let docs = parse_file("title: X\nid: a\nlevel: severe\nlogsource: {product: x}\ndetection: {s: {A: 1}, condition: s}\n", &ParseOptions::default()).unwrap();
        assert!(matches!(&docs[0], Err(r) if r.reason.contains("level")));
    }

    #[test]
    fn correlation_and_filter_documents_are_handed_off() {
        let text = "title: A\nid: a\nlogsource: {product: x}\ndetection: {s: {A: 1}, condition: s}\n---\ntitle: C\ncorrelation:\n    type: event_count\n    rules: [a]\n    group-by: [User]\n    timespan: 5m\n    condition: {gte: 10}\n---\ntitle: F\nlogsource: {product: x}\nfilter:\n    rules: [a]\n    selection: {User: admin}\n    condition: not selection\n";
        let docs = parse_file(text, &ParseOptions::default()).unwrap();
        assert_eq!(docs.len(), 3);
        assert!(matches!(&docs[0], Ok(Document::Rule(_))));
        let Ok(Document::Correlation(c)) = &docs[1] else {
            panic!()
        };
        assert_eq!(c["correlation"]["type"], "event_count");
        assert_eq!(c["correlation"]["condition"]["gte"], 10);
        let Ok(Document::Filter(f)) = &docs[2] else {
            panic!()
        };
        assert_eq!(f["filter"]["selection"]["User"], "admin");
    }

    #[test]
    fn sigma1_collections_merge_global_and_repeat() {
        let text = "action: global\ntitle: G\nlogsource: {product: windows}\ndetection:\n    condition: sel\n---\nid: one\ndetection:\n    sel: {A: 1}\n---\naction: repeat\nid: two\ndetection:\n    sel: {A: 2}\n---\naction: reset\n---\nid: three\ntitle: T\nlogsource: {product: linux}\ndetection: {x: {B: 1}, condition: x}\n";
        let docs = parse_file(text, &ParseOptions::default()).unwrap();
        let rules: Vec<&SigmaRule> = docs
            .iter()
            .map(|d| match d {
                Ok(Document::Rule(r)) => r,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            (rules[0].id.as_str(), rules[0].title.as_str()),
            ("one", "G")
        );
        assert_eq!(rules[0].detection, field("A", str_test(vec![lit("1")])));
        assert_eq!(rules[1].id, "two");
        assert_eq!(rules[1].detection, field("A", str_test(vec![lit("2")])));
        assert_eq!(rules[2].logsource.product.as_deref(), Some("linux"));
        let docs = parse_file("action: repeat\nid: x\n", &ParseOptions::default()).unwrap();
        assert!(matches!(&docs[0], Err(r) if r.reason.contains("repeat")));
    }

    #[test]
    fn yaml_syntax_errors_name_the_line() {
        let e = parse_file(
            "title: a\nid: b\ndetection:\n  sel: [unclosed\n",
            &ParseOptions::default(),
        )
        .unwrap_err();
        assert!(e.contains("line"), "{e}");
        let docs = parse_file("- just\n- a list\n", &ParseOptions::default()).unwrap();
        assert!(matches!(&docs[0], Err(r) if r.reason.contains("not a mapping")));
    }

    #[test]
    fn mapping_order_is_preserved_for_them() {
        let e = det("zeta:\n    Z: 1\nalpha:\n    A: 1\ncondition: 1 of them");
        assert_eq!(
            e,
            Expr::Or(vec![
                field("Z", str_test(vec![lit("1")])),
                field("A", str_test(vec![lit("1")]))
            ])
        );
    }

    #[test]
    fn attack_tags_become_techniques_and_tactics() {
        let tags: Vec<String> = [
            "attack.t1059.001",
            "attack.T1059",
            "attack.defense_evasion",
            "attack.defense-evasion",
            "attack.execution",
            "attack.g0016",
            "attack.s0002",
            "cve.2021-44228",
            "attack.stealth",
            "attack.t1059.001",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (t, ta) = attack_from_tags(&tags);
        assert_eq!(t, ["T1059.001", "T1059"]);
        assert_eq!(ta, ["defense-evasion", "execution", "stealth"]);
    }

    // ---- the corpus ---------------------------------------------------------------------------------

    fn corpus_root() -> PathBuf {
        std::env::var_os("GHOSTHUNT_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
    }

    fn yml_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                yml_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }

    /// A refusal reason with its specifics (quoted names, patterns) elided, for grouping.
    fn reason_group(reason: &str) -> String {
        let mut out = String::new();
        let mut in_quote = false;
        for c in reason.chars() {
            if c == '`' {
                if !in_quote {
                    out.push_str("`…`");
                }
                in_quote = !in_quote;
            } else if !in_quote {
                out.push(c);
            }
        }
        out.split(" (").next().unwrap_or("").to_string()
    }

    #[derive(Default)]
    struct Tally {
        rules: usize,
        parsed: usize,
        other_docs: usize,
        refused: BTreeMap<String, Vec<String>>,
    }

    impl Tally {
        fn pct(&self) -> f64 {
            100.0 * self.parsed as f64 / self.rules.max(1) as f64
        }
    }

    #[test]
    fn corpus_rules_parse() {
        let sigma = corpus_root().join("sigma");
        assert!(
            sigma.is_dir(),
            "Sigma corpus not found at {} (set GHOSTHUNT_CORPUS)",
            sigma.display()
        );
        let active = [
            "rules",
            "rules-emerging-threats",
            "rules-threat-hunting",
            "rules-compliance",
        ];
        let other = ["rules-placeholder", "deprecated", "unsupported"];
        let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
        let mut syntax_errors = Vec::new();
        let opts = ParseOptions::default();
        for dir in active.iter().chain(other.iter()) {
            let mut files = Vec::new();
            yml_files(&sigma.join(dir), &mut files);
            files.sort();
            assert!(
                !files.is_empty() || other.contains(dir),
                "no rules under {dir}"
            );
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                let rel = file.strip_prefix(&sigma).unwrap().display().to_string();
                let is_windows = rel.split('/').nth(1) == Some("windows");
                let group = match (active.contains(dir), is_windows) {
                    (true, true) => "active windows",
                    (true, false) => "active other",
                    (false, _) => dir,
                };
                let tally = tallies.entry(group).or_default();
                match parse_file(&text, &opts) {
                    Err(e) => {
                        tally.rules += 1;
                        syntax_errors.push(format!("{rel}: {e}"));
                        tally
                            .refused
                            .entry("YAML syntax error".into())
                            .or_default()
                            .push(rel);
                    }
                    Ok(docs) => {
                        for d in docs {
                            match d {
                                Ok(Document::Rule(_)) => {
                                    tally.rules += 1;
                                    tally.parsed += 1;
                                }
                                Ok(_) => tally.other_docs += 1,
                                Err(r) => {
                                    tally.rules += 1;
                                    tally
                                        .refused
                                        .entry(reason_group(&r.reason))
                                        .or_default()
                                        .push(format!("{rel}: {}", r.reason));
                                }
                            }
                        }
                    }
                }
            }
        }
        for (group, t) in &tallies {
            println!(
                "== {group}: {} rule documents, {} parsed ({:.2}%), {} correlation/filter documents",
                t.rules,
                t.parsed,
                t.pct(),
                t.other_docs
            );
            let mut reasons: Vec<_> = t.refused.iter().collect();
            reasons.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
            for (reason, examples) in reasons {
                println!("   {:>4}  {reason}", examples.len());
                for ex in examples.iter().take(3) {
                    println!("            e.g. {ex}");
                }
            }
        }
        let win = &tallies["active windows"];
        assert!(
            win.rules >= 2000,
            "only {} active Windows rules found",
            win.rules
        );
        assert!(
            win.pct() >= 99.0,
            "only {:.2}% of active Windows rules parse",
            win.pct()
        );
        let act = &tallies["active other"];
        assert!(
            act.pct() >= 97.0,
            "only {:.2}% of other active rules parse",
            act.pct()
        );
        assert!(syntax_errors.is_empty(), "YAML errors: {syntax_errors:#?}");
    }

    /// Mutated corpus documents (truncations, swapped characters, doubled modifiers) never panic.
    #[test]
    fn corpus_mutations_never_panic() {
        let sigma = corpus_root().join("sigma");
        assert!(
            sigma.is_dir(),
            "Sigma corpus not found at {} (set GHOSTHUNT_CORPUS)",
            sigma.display()
        );
        let mut files = Vec::new();
        yml_files(&sigma.join("rules/windows/process_creation"), &mut files);
        files.sort();
        assert!(!files.is_empty());
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let replacements = [
            "|",
            "*",
            "?",
            "\\",
            "'",
            "%",
            "(",
            ")",
            " of ",
            " not ",
            "null",
            "|re",
            "|base64offset",
            "|windash",
            "|cidr",
            "|exists",
            "|expand",
            "-",
            "\u{2013}",
            "é",
            ": ",
            "\n",
            "[",
            "{",
        ];
        let mut ph = HashMap::new();
        ph.insert("x".to_string(), vec!["*".to_string()]);
        let opts = ParseOptions { placeholders: &ph };
        let mut parsed = 0usize;
        for file in files.iter().step_by(7) {
            let text = std::fs::read_to_string(file).unwrap();
            let chars: Vec<char> = text.chars().collect();
            for _ in 0..12 {
                let mut m = chars.clone();
                let at = next(m.len());
                match next(3) {
                    0 => m.truncate(at),
                    1 => {
                        let r: Vec<char> = replacements[next(replacements.len())].chars().collect();
                        m.splice(at..(at + 1).min(m.len()), r);
                    }
                    _ => {
                        let j = next(m.len());
                        let last = m.len().saturating_sub(1);
                        if !m.is_empty() {
                            m.swap(at.min(last), j.min(last));
                        }
                    }
                }
                let s: String = m.into_iter().collect();
                if let Ok(docs) = parse_file(&s, &opts) {
                    parsed += docs.iter().filter(|d| d.is_ok()).count();
                }
            }
        }
        assert!(parsed > 0, "no mutated document parsed at all");
    }
}
