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

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::sigma::ir::{Expr, Logsource, Pattern, SigmaRule, Test};

/// The built-in mapping for Windows events, `sigma/windows.yml`.
const BUILTIN_YAML: &str = include_str!("../../sigma/windows.yml");
const BUILTIN_ORIGIN: &str = "sigma/windows.yml (built in)";
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
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    default_paths: Vec<String>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
    #[serde(default)]
    fields: BTreeMap<String, FieldDoc>,
    logsources: Vec<LogsourceDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldDoc {
    column: String,
    paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsourceDoc {
    logsource: LogsourceKeyDoc,
    variants: Vec<VariantDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsourceKeyDoc {
    product: Option<String>,
    category: Option<String>,
    service: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantDoc {
    #[serde(default)]
    when: BTreeMap<String, WhenValue>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WhenValue {
    One(Scalar),
    Many(Vec<Scalar>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Variant {
    /// (event field, accepted values), in key order.
    when: Vec<(String, Vec<String>)>,
    /// Sigma field -> event field.
    rename: BTreeMap<String, String>,
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

impl Mapping {
    /// The embedded `sigma/windows.yml`.
    pub fn builtin() -> Mapping {
        Mapping::from_yaml(BUILTIN_YAML, BUILTIN_ORIGIN)
            .expect("the built-in sigma/windows.yml is valid")
    }

    /// Loads a mapping file; `origin` (a path, usually) prefixes every error.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Mapping, MappingError> {
        let doc: FileDoc = serde_saphyr::from_str(text).map_err(|e| MappingError::Yaml {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |key: String, message: String| MappingError::Invalid {
            origin: origin.to_string(),
            key,
            message,
        };

        if doc.default_paths.is_empty() {
            return Err(invalid(
                "default_paths".into(),
                "needs at least one path".into(),
            ));
        }
        for (i, p) in doc.default_paths.iter().enumerate() {
            if !p.contains(FIELD_PLACEHOLDER) {
                return Err(invalid(
                    format!("default_paths[{i}]"),
                    format!("{p:?} lacks the {FIELD_PLACEHOLDER} placeholder"),
                ));
            }
            check_path(p).map_err(|m| invalid(format!("default_paths[{i}]"), m))?;
        }
        for (field, column) in &doc.columns {
            check_field_name(field).map_err(|m| invalid(format!("columns.{field}"), m))?;
            check_column_name(column).map_err(|m| invalid(format!("columns.{field}"), m))?;
            if doc.fields.contains_key(field) {
                return Err(invalid(
                    format!("columns.{field}"),
                    "is also declared in `fields`; keep one".into(),
                ));
            }
        }
        let targets: BTreeSet<&str> = doc.columns.values().map(String::as_str).collect();
        let mut fields = BTreeMap::new();
        let mut declared: BTreeMap<&str, &str> = BTreeMap::new();
        for (field, def) in &doc.fields {
            let key = format!("fields.{field}");
            check_field_name(field).map_err(|m| invalid(key.clone(), m))?;
            check_column_name(&def.column).map_err(|m| invalid(format!("{key}.column"), m))?;
            if def.column.contains("__") {
                return Err(invalid(
                    format!("{key}.column"),
                    "`__` is reserved for disambiguated automatic columns".into(),
                ));
            }
            if targets.contains(def.column.as_str()) {
                return Err(invalid(
                    format!("{key}.column"),
                    format!("{:?} is a built-in column named in `columns`", def.column),
                ));
            }
            if let Some(other) = declared.insert(&def.column, field) {
                return Err(invalid(
                    format!("{key}.column"),
                    format!("{:?} is also the column of field {other}", def.column),
                ));
            }
            if def.paths.is_empty() {
                return Err(invalid(
                    format!("{key}.paths"),
                    "needs at least one path".into(),
                ));
            }
            for (i, p) in def.paths.iter().enumerate() {
                check_path(p).map_err(|m| invalid(format!("{key}.paths[{i}]"), m))?;
            }
            fields.insert(
                field.clone(),
                ExtraColumn {
                    name: def.column.clone(),
                    paths: def.paths.clone(),
                },
            );
        }

        let mut entries: Vec<Entry> = Vec::new();
        for (i, ls) in doc.logsources.into_iter().enumerate() {
            let key = format!("logsources[{i}]");
            let logsource = Logsource {
                product: ls.logsource.product,
                category: ls.logsource.category,
                service: ls.logsource.service,
            };
            if logsource.product.is_none() {
                return Err(invalid(
                    format!("{key}.logsource"),
                    "needs a product".into(),
                ));
            }
            for (name, v) in [
                ("product", &logsource.product),
                ("category", &logsource.category),
                ("service", &logsource.service),
            ] {
                if let Some(v) = v
                    && (v.is_empty() || v.trim() != v)
                {
                    return Err(invalid(
                        format!("{key}.logsource.{name}"),
                        format!("{v:?} is empty or padded"),
                    ));
                }
            }
            if let Some(j) = entries.iter().position(|e| e.logsource == logsource) {
                return Err(invalid(
                    format!("{key}.logsource"),
                    format!("{logsource} is already mapped by logsources[{j}]"),
                ));
            }
            if ls.variants.is_empty() {
                return Err(invalid(
                    format!("{key}.variants"),
                    "needs at least one variant".into(),
                ));
            }
            let mut variants = Vec::new();
            for (j, v) in ls.variants.into_iter().enumerate() {
                let vkey = format!("{key}.variants[{j}]");
                let mut when = Vec::new();
                for (field, value) in v.when {
                    check_field_name(&field)
                        .map_err(|m| invalid(format!("{vkey}.when.{field}"), m))?;
                    let values: Vec<String> = match value {
                        WhenValue::One(s) => vec![s.text()],
                        WhenValue::Many(list) => list.iter().map(Scalar::text).collect(),
                    };
                    if values.is_empty() {
                        return Err(invalid(
                            format!("{vkey}.when.{field}"),
                            "an empty list matches no event".into(),
                        ));
                    }
                    if let Some(bad) = values.iter().find(|s| s.is_empty()) {
                        return Err(invalid(
                            format!("{vkey}.when.{field}"),
                            format!("{bad:?}: empty value"),
                        ));
                    }
                    when.push((field, values));
                }
                for (from, to) in &v.rename {
                    check_field_name(from)
                        .map_err(|m| invalid(format!("{vkey}.rename.{from}"), m))?;
                    check_field_name(to)
                        .map_err(|m| invalid(format!("{vkey}.rename.{from}"), m))?;
                }
                variants.push(Variant {
                    when,
                    rename: v.rename,
                });
            }
            entries.push(Entry {
                logsource,
                variants,
            });
        }
        Ok(Mapping {
            origin: origin.to_string(),
            default_paths: doc.default_paths,
            columns: doc.columns,
            fields,
            entries,
        })
    }

    /// Where the file came from (as passed to [`Mapping::from_yaml`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The logsources the file maps, in file order.
    pub fn logsources(&self) -> impl Iterator<Item = &Logsource> {
        self.entries.iter().map(|e| &e.logsource)
    }

    /// Checks the file against the built-in schema: every `columns` target must be a built-in column, and no
    /// `fields` column may be one. [`Mapping::bind`] runs the same check.
    pub fn check_schema(&self, base_columns: &[&str]) -> Result<(), String> {
        for (field, column) in &self.columns {
            if !base_columns.contains(&column.as_str()) {
                return Err(format!(
                    "{}: columns.{field}: {column:?} is not a column of the built-in schema",
                    self.origin
                ));
            }
        }
        for (field, extra) in &self.fields {
            if base_columns.contains(&extra.name.as_str()) {
                return Err(format!(
                    "{}: fields.{field}.column: {:?} is a column of the built-in schema; map the field in `columns` instead",
                    self.origin, extra.name
                ));
            }
        }
        Ok(())
    }

    /// The column an event field is read from. Total and deterministic: the same field always gives the same
    /// column, and distinct fields never share an automatic column.
    ///
    /// 1. `columns` names a built-in column for the field: that column.
    /// 2. `fields` declares the field: its column.
    /// 3. Otherwise an automatic column over `default_paths`, named `snake_case(field)` when the field is the
    ///    canonical (PascalCase) spelling of that name and the name is free (not a built-in column, a
    ///    `columns` target or a `fields` column), else `snake_case(field)__<fnv1a32(field) as 8 hex digits>`.
    ///    Plain names never contain `__`, so the two forms cannot meet.
    pub fn column_for(&self, field: &str, base_columns: &[&str]) -> Result<Column, String> {
        check_field_name(field).map_err(|m| format!("field {field:?}: {m}"))?;
        if let Some(c) = self.columns.get(field) {
            return Ok(Column::Builtin(c.clone()));
        }
        if let Some(c) = self.fields.get(field) {
            return Ok(Column::Extra(c.clone()));
        }
        let snake = snake_case(field);
        let taken = |name: &str| {
            base_columns.contains(&name)
                || self.columns.values().any(|c| c == name)
                || self.fields.values().any(|c| c.name == name)
        };
        let name = if !snake.is_empty() && pascal_case(&snake) == field && !taken(&snake) {
            snake
        } else {
            let stem = if snake.is_empty() {
                "field".to_string()
            } else {
                snake
            };
            format!("{stem}__{:08x}", fnv1a32(field.as_bytes()))
        };
        let paths = self
            .default_paths
            .iter()
            .map(|p| p.replace(FIELD_PLACEHOLDER, field))
            .collect();
        Ok(Column::Extra(ExtraColumn { name, paths }))
    }

    /// The mapping entry for a rule's logsource. Keys must be equal; a rule without `product` takes the
    /// product of the only entry with its category and service.
    fn entry_for(&self, ls: &Logsource) -> Result<&Entry, String> {
        if ls.product.is_none() && ls.category.is_none() && ls.service.is_none() {
            return Err("logsource is empty (it needs a product, category or service)".into());
        }
        let same =
            |e: &&Entry| e.logsource.category == ls.category && e.logsource.service == ls.service;
        let candidates: Vec<&Entry> = match &ls.product {
            Some(_) => self
                .entries
                .iter()
                .filter(|e| same(e) && e.logsource.product == ls.product)
                .collect(),
            None => self.entries.iter().filter(same).collect(),
        };
        match candidates.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("logsource {ls} is not mapped by {}", self.origin)),
            many => Err(format!(
                "logsource {ls} is ambiguous in {}: it lacks a product and {} entries match ({})",
                self.origin,
                many.len(),
                many.iter()
                    .map(|e| e.logsource.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }

    /// Binds a rule: its logsource's variants, each with its `when` condition and the rule's detection with
    /// field names replaced by column names (after the variant's renames). `base_columns` are the built-in
    /// schema's column names. Keyword tests pass through unchanged.
    pub fn bind(&self, rule: &SigmaRule, base_columns: &[&str]) -> Result<BoundRule, String> {
        self.check_schema(base_columns)?;
        let entry = self.entry_for(&rule.logsource)?;
        let mut extra: BTreeMap<String, ExtraColumn> = BTreeMap::new();
        let mut error: Option<String> = None;
        let resolve = |field: &str,
                       extra: &mut BTreeMap<String, ExtraColumn>,
                       error: &mut Option<String>|
         -> String {
            match self.column_for(field, base_columns) {
                Ok(Column::Builtin(name)) => name,
                Ok(Column::Extra(col)) => {
                    let name = col.name.clone();
                    extra.entry(name.clone()).or_insert(col);
                    name
                }
                Err(e) => {
                    error.get_or_insert(e);
                    String::new()
                }
            }
        };

        let mut variants = Vec::with_capacity(entry.variants.len());
        for v in &entry.variants {
            let mut keys = Vec::with_capacity(v.when.len());
            for (field, values) in &v.when {
                let column = resolve(field, &mut extra, &mut error);
                let tests: Vec<Expr> = values
                    .iter()
                    .map(|value| Expr::Field {
                        field: column.clone(),
                        test: Test::Str {
                            pattern: Pattern::literal(value),
                            cased: false,
                        },
                    })
                    .collect();
                keys.push(if tests.len() == 1 {
                    tests.into_iter().next().unwrap()
                } else {
                    Expr::Or(tests)
                });
            }
            let when = match keys.len() {
                0 => Expr::True,
                1 => keys.into_iter().next().unwrap(),
                _ => Expr::And(keys),
            };
            let detection = rule.detection.map_fields(&mut |sigma_field: &str| {
                let event_field = v
                    .rename
                    .get(sigma_field)
                    .map(String::as_str)
                    .unwrap_or(sigma_field);
                resolve(event_field, &mut extra, &mut error)
            });
            variants.push(BoundVariant { when, detection });
        }
        if let Some(e) = error {
            return Err(format!("rule {} ({}): {e}", rule.id, rule.title));
        }
        let mut logsource = entry.logsource.clone();
        if logsource.product.is_none() {
            logsource.product = rule.logsource.product.clone();
        }
        Ok(BoundRule {
            logsource,
            variants,
            columns: extra.into_values().collect(),
        })
    }
}

fn check_field_name(field: &str) -> Result<(), String> {
    if field.is_empty() {
        return Err("empty field name".into());
    }
    if field.trim() != field {
        return Err("field name has leading or trailing blanks".into());
    }
    if field.contains(FIELD_PLACEHOLDER) || field.split('.').any(str::is_empty) {
        return Err("field name is not usable in a path (empty segment or placeholder)".into());
    }
    Ok(())
}

fn check_column_name(column: &str) -> Result<(), String> {
    let ok = column
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && column
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{column:?} is not a column name (lower-case letters, digits, _)"
        ))
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if path.split('.').any(str::is_empty) {
        Err(format!("{path:?} has an empty segment"))
    } else {
        Ok(())
    }
}

/// `ImageLoaded` -> `image_loaded`, `EventID` -> `event_id`, `AttributeLDAPDisplayName` ->
/// `attribute_ldap_display_name`, `Provider_Name` -> `provider_name`, `param1` -> `param1`. Words break
/// before an upper-case letter that follows a lower-case letter or digit, before the last capital of a run
/// followed by a lower-case letter, and at any character other than an ASCII letter or digit.
fn snake_case(field: &str) -> String {
    let chars: Vec<char> = field.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_ascii_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                words.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words.join("_")
}

/// The canonical spelling of a snake_case name: `object_type` -> `ObjectType`.
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + cs.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// 32-bit FNV-1a: stable across builds and platforms, unlike `std`'s hasher.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::ir::Level;
    use serde_json::Value;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    // ---- helpers -------------------------------------------------------------------------------------

    const SCHEMA_TOML: &str = include_str!("../../schemas/windows.toml");

    /// (column name, paths) of the built-in schema, read from windows.toml (`name = "…"` then `paths = […]`;
    /// the array is valid JSON).
    fn schema() -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let mut name: Option<String> = None;
        for line in SCHEMA_TOML.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("name = ") {
                name = Some(serde_json::from_str(rest).unwrap());
            } else if let Some(rest) = line.strip_prefix("paths = ") {
                let paths: Vec<String> = serde_json::from_str(rest).unwrap();
                if let Some(n) = name.take() {
                    out.push((n, paths));
                }
            }
        }
        // The file's first `name` is the schema's own name, which has no paths and is dropped above.
        assert!(
            out.len() >= 60,
            "read only {} columns from windows.toml",
            out.len()
        );
        out
    }

    fn base_names(schema: &[(String, Vec<String>)]) -> Vec<&str> {
        schema.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn rule(logsource: Logsource, detection: Expr) -> SigmaRule {
        SigmaRule {
            id: "00000000-0000-0000-0000-000000000000".into(),
            name: None,
            title: "test rule".into(),
            description: String::new(),
            status: None,
            level: Some(Level::Medium),
            author: None,
            tags: vec![],
            references: vec![],
            falsepositives: vec![],
            logsource,
            fields: vec![],
            detection,
        }
    }

    fn ls(product: Option<&str>, category: Option<&str>, service: Option<&str>) -> Logsource {
        Logsource {
            product: product.map(str::to_string),
            category: category.map(str::to_string),
            service: service.map(str::to_string),
        }
    }

    fn eq(field: &str, value: &str) -> Expr {
        Expr::Field {
            field: field.into(),
            test: Test::Str {
                pattern: Pattern::literal(value),
                cased: false,
            },
        }
    }

    /// Follows a dot path (`*` = any one key) in a JSON event.
    fn lookup<'a>(v: &'a Value, segs: &[&str]) -> Option<&'a Value> {
        let Some((first, rest)) = segs.split_first() else {
            return if v.is_null() { None } else { Some(v) };
        };
        let obj = v.as_object()?;
        if *first == "*" {
            obj.values().find_map(|child| lookup(child, rest))
        } else {
            lookup(obj.get(*first)?, rest)
        }
    }

    /// A column's value in an event: the first present-and-not-null path, as text (numbers as written,
    /// lists joined by newlines), or None.
    fn column_value(event: &Value, paths: &[String]) -> Option<String> {
        paths.iter().find_map(|p| {
            let segs: Vec<&str> = p.split('.').collect();
            lookup(event, &segs).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Array(a) => Some(
                    a.iter()
                        .map(|x| x.as_str().map(str::to_string).unwrap_or(x.to_string()))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                _ => None,
            })
        })
    }

    /// Evaluates a bound `when` (And / Or / True / literal case-insensitive Str tests) on a JSON event.
    fn eval_when(e: &Expr, event: &Value, paths: &dyn Fn(&str) -> Vec<String>) -> bool {
        match e {
            Expr::True => true,
            Expr::And(v) => v.iter().all(|x| eval_when(x, event, paths)),
            Expr::Or(v) => v.iter().any(|x| eval_when(x, event, paths)),
            Expr::Field {
                field,
                test:
                    Test::Str {
                        pattern,
                        cased: false,
                    },
            } => {
                let [crate::sigma::ir::Piece::Lit(want)] = pattern.0.as_slice() else {
                    panic!("`when` holds a non-literal pattern: {pattern:?}")
                };
                column_value(event, &paths(field))
                    .is_some_and(|got| got.to_lowercase() == want.to_lowercase())
            }
            other => panic!("unexpected expression in `when`: {other:?}"),
        }
    }

    /// Paths of any column a bound rule may read: built-in ones from the schema, extra ones from the rule.
    fn path_finder<'a>(
        schema: &'a [(String, Vec<String>)],
        bound: &'a BoundRule,
    ) -> impl Fn(&str) -> Vec<String> + 'a {
        move |col: &str| {
            if let Some((_, p)) = schema.iter().find(|(n, _)| n == col) {
                return p.clone();
            }
            bound
                .columns
                .iter()
                .find(|c| c.name == col)
                .map(|c| c.paths.clone())
                .unwrap_or_else(|| panic!("column {col} unknown"))
        }
    }

    fn holds(
        m: &Mapping,
        schema: &[(String, Vec<String>)],
        logsource: Logsource,
        event: &Value,
    ) -> bool {
        let bound = m
            .bind(&rule(logsource, Expr::True), &base_names(schema))
            .unwrap();
        let paths = path_finder(schema, &bound);
        bound
            .variants
            .iter()
            .any(|v| eval_when(&v.when, event, &paths))
    }

    // ---- unit tests ----------------------------------------------------------------------------------

    #[test]
    fn builtin_loads_and_matches_the_schema() {
        let m = Mapping::builtin();
        let s = schema();
        m.check_schema(&base_names(&s)).unwrap();
        // Each `columns` entry must read the field it names: the column has the nested and the flat path of
        // that field, except the event header, which the schema reads from Event.System and NXLog's names.
        let header: BTreeMap<&str, (&str, &str)> = [
            ("EventID", ("event_id", "Event.System.EventID")),
            ("Channel", ("channel", "Event.System.Channel")),
            ("Computer", ("host", "Event.System.Computer")),
            (
                "Provider_Name",
                ("provider", "Event.System.Provider.#attributes.Name"),
            ),
            ("EventRecordID", ("record_id", "Event.System.EventRecordID")),
        ]
        .into();
        for (field, column) in &m.columns {
            let (_, paths) = s.iter().find(|(n, _)| n == column).unwrap();
            if let Some((col, path)) = header.get(field.as_str()) {
                assert_eq!(column, col, "{field}");
                assert!(
                    paths.iter().any(|p| p == path),
                    "columns.{field} -> {column}, which reads {paths:?}"
                );
                continue;
            }
            let nested = format!("Event.EventData.{field}");
            assert!(
                paths.contains(&nested) && paths.contains(field),
                "columns.{field} -> {column}, but {column} reads {paths:?}"
            );
        }
        // The 4688 spellings are read only when the Sysmon spelling is absent.
        for (field, sysmon) in [
            ("NewProcessName", "Image"),
            ("ParentProcessName", "ParentImage"),
        ] {
            let (_, paths) = s.iter().find(|(n, _)| n == &m.columns[field]).unwrap();
            let pos = |f: &str| {
                paths
                    .iter()
                    .position(|p| p == &format!("Event.EventData.{f}"))
                    .unwrap()
            };
            assert!(pos(sysmon) < pos(field), "{paths:?}");
        }
        assert!(m.logsources().count() > 60);
    }

    #[test]
    fn malformed_mappings_name_the_key() {
        let cases: &[(&str, &str)] = &[
            (
                "default_paths: ['Event.EventData.X']\nlogsources: []\n",
                "default_paths[0]",
            ),
            (
                "default_paths: ['{field}']\ncolumns: {Image: Image}\nlogsources: []\n",
                "columns.Image",
            ),
            (
                "default_paths: ['{field}']\nlogsources:\n  - logsource: {product: windows, category: x}\n    variants: []\n",
                "logsources[0].variants",
            ),
            (
                "default_paths: ['{field}']\nlogsources:\n  - logsource: {product: windows, category: x}\n    variants: [{when: {EventID: []}}]\n",
                "logsources[0].variants[0].when.EventID",
            ),
            (
                "default_paths: ['{field}']\nlogsources:\n  - logsource: {category: x}\n    variants: [{}]\n",
                "logsources[0].logsource",
            ),
            (
                "default_paths: ['{field}']\nlogsources:\n  - logsource: {product: windows, service: s}\n    variants: [{}]\n  - logsource: {product: windows, service: s}\n    variants: [{}]\n",
                "logsources[1].logsource",
            ),
            (
                "default_paths: ['{field}']\nfields: {A: {column: a__b, paths: [A]}}\nlogsources: []\n",
                "fields.A.column",
            ),
            (
                "default_paths: ['{field}']\nfields: {A: {column: x, paths: [A]}, B: {column: x, paths: [B]}}\nlogsources: []\n",
                "fields.B.column",
            ),
        ];
        for (text, key) in cases {
            let err = Mapping::from_yaml(text, "test.yml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("test.yml: "), "{err}");
            assert!(err.contains(key), "error {err:?} does not name {key}");
        }
        // Unknown keys (a typo) are refused by name, and so is YAML that is not a mapping file at all.
        let err = Mapping::from_yaml("default_paths: ['{field}']\nlogsource: []\n", "typo.yml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("typo.yml: ") && err.contains("logsource"),
            "{err}"
        );
        let err = Mapping::from_yaml(
            "default_paths: ['{field}']\nlogsources:\n  - logsource: {product: windows}\n    variants: [{whenn: {}}]\n",
            "typo.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("whenn"), "{err}");
        assert!(
            Mapping::from_yaml("[1, 2", "broken.yml")
                .unwrap_err()
                .to_string()
                .starts_with("broken.yml: ")
        );
        // A target that is not a built-in column is caught when binding.
        let m = Mapping::from_yaml(
            "default_paths: ['{field}']\ncolumns: {Image: imagee}\nlogsources:\n  - logsource: {product: windows}\n    variants: [{}]\n",
            "t.yml",
        )
        .unwrap();
        let err = m
            .bind(
                &rule(ls(Some("windows"), None, None), Expr::True),
                &base_names(&schema()),
            )
            .unwrap_err();
        assert!(
            err.contains("columns.Image") && err.contains("imagee"),
            "{err}"
        );
    }

    #[test]
    fn snake_case_and_canonical_names() {
        for (f, s) in [
            ("ImageLoaded", "image_loaded"),
            ("EventID", "event_id"),
            ("AttributeLDAPDisplayName", "attribute_ldap_display_name"),
            ("Provider_Name", "provider_name"),
            ("param1", "param1"),
            ("SourceIP", "source_ip"),
            ("Threat Name", "threat_name"),
            ("IpAddress", "ip_address"),
        ] {
            assert_eq!(snake_case(f), s, "{f}");
        }
        assert_eq!(pascal_case("object_type"), "ObjectType");
    }

    #[test]
    fn field_to_column_is_a_function_and_injective() {
        let m = Mapping::builtin();
        let s = schema();
        let base = base_names(&s);
        let name = |f: &str| m.column_for(f, &base).unwrap().name().to_string();
        // Built-in and declared.
        assert_eq!(name("Image"), "image");
        assert_eq!(name("User"), "user");
        assert_eq!(name("ProcessId"), "process_id_logged");
        // Plain automatic names.
        assert_eq!(name("ObjectType"), "object_type");
        assert_eq!(
            m.column_for("ObjectType", &base).unwrap(),
            Column::Extra(ExtraColumn {
                name: "object_type".into(),
                paths: vec![
                    "Event.EventData.ObjectType".into(),
                    "Event.UserData.*.ObjectType".into(),
                    "Event.System.ObjectType".into(),
                    "ObjectType".into()
                ]
            })
        );
        // `Provider` (a WMI event field) must not read the built-in `provider` (the event's provider name).
        let p = name("Provider");
        assert!(
            p.starts_with("provider__") && p.len() == "provider__".len() + 8,
            "{p}"
        );
        // Spellings that share a snake_case name get distinct columns, and each always the same one.
        let spellings = [
            "ProcessID",
            "processId",
            "Process_Id",
            "PROCESSID",
            "ProcessId",
            "process_id",
        ];
        let names: Vec<String> = spellings.iter().map(|f| name(f)).collect();
        let distinct: BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), spellings.len(), "{names:?}");
        for n in &names {
            assert!(!base.contains(&n.as_str()), "{n} is a built-in column");
        }
        assert_eq!(names, spellings.iter().map(|f| name(f)).collect::<Vec<_>>());
        // Non-canonical spellings are disambiguated even when the plain name is free.
        assert_ne!(name("objectType"), "object_type");
        assert_ne!(name("param1"), "param1");
        // Empty and padded names are refused.
        assert!(m.column_for("", &base).is_err());
        assert!(m.column_for(" Image", &base).is_err());
    }

    #[test]
    fn process_creation_binds_sysmon_and_4688() {
        let m = Mapping::builtin();
        let s = schema();
        let base = base_names(&s);
        let detection = Expr::And(vec![
            eq("Image", "C:\\Windows\\System32\\cmd.exe"),
            eq("ProcessId", "508"),
            Expr::Not(Box::new(eq("User", "NT AUTHORITY\\SYSTEM"))),
            Expr::Keyword {
                pattern: Pattern::literal("mimikatz"),
                cased: false,
            },
        ]);
        // No product: windows is the only product with process_creation.
        let bound = m
            .bind(
                &rule(ls(None, Some("process_creation"), None), detection.clone()),
                &base,
            )
            .unwrap();
        assert_eq!(
            bound.logsource,
            ls(Some("windows"), Some("process_creation"), None)
        );
        assert_eq!(bound.variants.len(), 2);
        let sysmon = &bound.variants[0];
        let sec = &bound.variants[1];
        assert_eq!(
            sysmon.when,
            Expr::And(vec![
                eq("channel", "Microsoft-Windows-Sysmon/Operational"),
                eq("event_id", "1")
            ])
        );
        assert_eq!(
            sec.when,
            Expr::And(vec![eq("channel", "Security"), eq("event_id", "4688")])
        );
        assert_eq!(
            sysmon.detection,
            Expr::And(vec![
                eq("image", "C:\\Windows\\System32\\cmd.exe"),
                eq("process_id_logged", "508"),
                Expr::Not(Box::new(eq("user", "NT AUTHORITY\\SYSTEM"))),
                Expr::Keyword {
                    pattern: Pattern::literal("mimikatz"),
                    cased: false
                },
            ])
        );
        // 4688: ProcessId is NewProcessId (the integer column process_id); User stays `user`, absent in 4688.
        assert_eq!(
            sec.detection,
            Expr::And(vec![
                eq("image", "C:\\Windows\\System32\\cmd.exe"),
                eq("process_id", "508"),
                Expr::Not(Box::new(eq("user", "NT AUTHORITY\\SYSTEM"))),
                Expr::Keyword {
                    pattern: Pattern::literal("mimikatz"),
                    cased: false
                },
            ])
        );
        assert_eq!(
            bound
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["process_id_logged"]
        );

        // On real-shaped events: the column bound to `Image` reads NewProcessName in a 4688 event and Image in
        // a Sysmon 1 event, and only the right variant's `when` holds for each.
        let ev4688: Value = serde_json::json!({"Event": {
            "System": {"EventID": 4688, "Channel": "Security", "Computer": "PC01.example.corp",
                       "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}},
            "EventData": {"SubjectUserName": "PC01$", "NewProcessId": "0x1fc",
                          "NewProcessName": "C:\\Windows\\System32\\cmd.exe", "ProcessId": "0x278",
                          "CommandLine": "cmd /c whoami", "ParentProcessName": "C:\\Windows\\explorer.exe"}}});
        let ev1: Value = serde_json::json!({"Event": {
            "System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "PC01"},
            "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe", "ProcessId": 4460,
                          "ParentImage": "C:\\Windows\\System32\\cmd.exe", "User": "PC01\\bob"}}});
        let paths = path_finder(&s, &bound);
        let image_col = |d: &Expr| match d {
            Expr::And(v) => match &v[0] {
                Expr::Field { field, .. } => field.clone(),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        };
        assert_eq!(
            column_value(&ev4688, &paths(&image_col(&sec.detection))).as_deref(),
            Some("C:\\Windows\\System32\\cmd.exe")
        );
        assert_eq!(
            column_value(&ev1, &paths(&image_col(&sysmon.detection))).as_deref(),
            Some("C:\\Windows\\System32\\whoami.exe")
        );
        assert!(eval_when(&sec.when, &ev4688, &paths) && !eval_when(&sysmon.when, &ev4688, &paths));
        assert!(eval_when(&sysmon.when, &ev1, &paths) && !eval_when(&sec.when, &ev1, &paths));
        // The Sysmon variant's ProcessId reads the event's own ProcessId; in 4688 that is the creator, which
        // the 4688 variant does not use.
        assert_eq!(
            column_value(&ev1, &paths("process_id_logged")).as_deref(),
            Some("4460")
        );
        // ParentImage -> parent_image, which reads ParentProcessName in 4688.
        let parent = m
            .bind(
                &rule(
                    ls(Some("windows"), Some("process_creation"), None),
                    eq("ParentImage", "x"),
                ),
                &base,
            )
            .unwrap();
        assert_eq!(parent.variants[1].detection, eq("parent_image", "x"));
        assert_eq!(
            column_value(&ev4688, &paths("parent_image")).as_deref(),
            Some("C:\\Windows\\explorer.exe")
        );
    }

    #[test]
    fn services_select_their_channel_only() {
        let m = Mapping::builtin();
        let s = schema();
        let security = ls(Some("windows"), None, Some("security"));
        let system = ls(Some("windows"), None, Some("system"));
        let ev_system: Value = serde_json::json!({"Event": {"System": {"EventID": {"#text": 7045, "#attributes": {"Qualifiers": 16384}}, "Channel": "System"},
                                                  "EventData": {"ServiceName": "x"}}});
        let ev_security: Value = serde_json::json!({"Event": {"System": {"EventID": 4624, "Channel": "Security"}, "EventData": {}}});
        // Flat (OTRF) shape, with the lower-case channel some recordings have.
        let ev_flat_lower: Value = serde_json::json!({"EventID": 4688, "Channel": "security", "Hostname": "WORKSTATION5",
                                                      "NewProcessName": "C:\\Windows\\System32\\cmd.exe"});
        assert!(!holds(&m, &s, security.clone(), &ev_system));
        assert!(holds(&m, &s, system.clone(), &ev_system));
        assert!(holds(&m, &s, security.clone(), &ev_security));
        assert!(!holds(&m, &s, system, &ev_security));
        assert!(holds(&m, &s, security, &ev_flat_lower));
        assert!(holds(
            &m,
            &s,
            ls(Some("windows"), Some("process_creation"), None),
            &ev_flat_lower
        ));
        assert!(!holds(
            &m,
            &s,
            ls(Some("windows"), Some("ps_script"), None),
            &ev_flat_lower
        ));
        // product windows alone: every event, one variant whose `when` is True.
        let all = m
            .bind(
                &rule(ls(Some("windows"), None, None), Expr::True),
                &base_names(&s),
            )
            .unwrap();
        assert_eq!(
            all.variants,
            vec![BoundVariant {
                when: Expr::True,
                detection: Expr::True
            }]
        );
        // Lists of channels become an Or.
        let ps = m
            .bind(
                &rule(ls(Some("windows"), Some("ps_script"), None), Expr::True),
                &base_names(&s),
            )
            .unwrap();
        assert_eq!(
            ps.variants[0].when,
            Expr::And(vec![
                Expr::Or(vec![
                    eq("channel", "Microsoft-Windows-PowerShell/Operational"),
                    eq("channel", "PowerShellCore/Operational")
                ]),
                eq("event_id", "4104"),
            ])
        );
    }

    #[test]
    fn unmapped_logsources_are_refused_precisely() {
        let m = Mapping::builtin();
        let s = schema();
        let base = base_names(&s);
        let err = m
            .bind(
                &rule(
                    ls(Some("linux"), Some("process_creation"), None),
                    Expr::True,
                ),
                &base,
            )
            .unwrap_err();
        assert!(
            err.contains("logsource product=linux category=process_creation is not mapped"),
            "{err}"
        );
        let err = m
            .bind(
                &rule(
                    ls(Some("windows"), Some("process_creation"), Some("sysmon")),
                    Expr::True,
                ),
                &base,
            )
            .unwrap_err();
        assert!(
            err.contains("product=windows category=process_creation service=sysmon"),
            "{err}"
        );
        let err = m
            .bind(&rule(ls(None, None, None), Expr::True), &base)
            .unwrap_err();
        assert!(err.contains("logsource is empty"), "{err}");
        // An empty field name in a detection is refused with the rule named.
        let err = m
            .bind(
                &rule(ls(Some("windows"), None, Some("system")), eq("", "x")),
                &base,
            )
            .unwrap_err();
        assert!(
            err.contains("test rule") && err.contains("empty field name"),
            "{err}"
        );
        // Ambiguity when a product-less rule matches entries of several products.
        let two = Mapping::from_yaml(
            "default_paths: ['{field}']\nlogsources:\n  - logsource: {product: windows, category: process_creation}\n    variants: [{}]\n  - logsource: {product: linux, category: process_creation}\n    variants: [{}]\n",
            "two.yml",
        )
        .unwrap();
        let err = two
            .bind(
                &rule(ls(None, Some("process_creation"), None), Expr::True),
                &base,
            )
            .unwrap_err();
        assert!(
            err.contains("ambiguous") && err.contains("product=linux"),
            "{err}"
        );
    }

    #[test]
    fn auto_columns_are_collected_once_and_fieldrefs_are_mapped() {
        let m = Mapping::builtin();
        let s = schema();
        let base = base_names(&s);
        let det = Expr::Or(vec![
            eq("ObjectType", "File"),
            eq("ObjectType", "Key"),
            Expr::Field {
                field: "User".into(),
                test: Test::FieldRef {
                    other: "ParentUser".into(),
                    position: crate::sigma::ir::Position::Equals,
                    cased: false,
                },
            },
        ]);
        let bound = m
            .bind(
                &rule(ls(Some("windows"), None, Some("security")), det),
                &base,
            )
            .unwrap();
        assert_eq!(
            bound
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["object_type", "parent_user"]
        );
        let mut seen = Vec::new();
        bound.variants[0]
            .detection
            .visit_fields(&mut |f| seen.push(f.to_string()));
        assert_eq!(seen, ["object_type", "object_type", "user", "parent_user"]);
    }

    // ---- corpus tests --------------------------------------------------------------------------------

    fn corpus() -> PathBuf {
        let dir = std::env::var("GHOSTHUNT_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
            });
        assert!(
            dir.join("sigma/rules").is_dir(),
            "Sigma corpus not found at {} (set GHOSTHUNT_CORPUS)",
            dir.display()
        );
        dir
    }

    fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, ext, out);
            } else if p.extension().is_some_and(|e| e == ext) {
                out.push(p);
            }
        }
    }

    #[derive(Deserialize)]
    struct LightRule {
        id: Option<String>,
        logsource: Option<LightLogsource>,
    }
    #[derive(Deserialize)]
    struct LightLogsource {
        product: Option<String>,
        category: Option<String>,
        service: Option<String>,
    }

    /// Every rule file of the Windows rule folders: (path, id, logsource).
    fn windows_rules(corpus: &Path) -> Vec<(PathBuf, String, Logsource)> {
        let sigma = corpus.join("sigma");
        let mut files = Vec::new();
        walk(&sigma.join("rules/windows"), "yml", &mut files);
        walk(
            &sigma.join("rules-threat-hunting/windows"),
            "yml",
            &mut files,
        );
        let mut et = Vec::new();
        walk(&sigma.join("rules-emerging-threats"), "yml", &mut et);
        let mut out = Vec::new();
        for f in files.into_iter().chain(et) {
            let text = std::fs::read_to_string(&f).unwrap();
            let r: LightRule =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let Some(l) = r.logsource else { continue };
            // rules-emerging-threats mixes products; keep the Windows ones.
            if l.product.as_deref() != Some("windows") {
                assert!(
                    !f.starts_with(sigma.join("rules/windows")),
                    "{} is not a Windows rule",
                    f.display()
                );
                if !f.to_string_lossy().contains("/windows/") {
                    continue;
                }
            }
            out.push((
                f,
                r.id.unwrap_or_default(),
                Logsource {
                    product: l.product,
                    category: l.category,
                    service: l.service,
                },
            ));
        }
        out
    }

    #[test]
    fn corpus_every_windows_logsource_resolves() {
        let corpus = corpus();
        let m = Mapping::builtin();
        let s = schema();
        let base = base_names(&s);
        let rules = windows_rules(&corpus);
        assert!(
            rules.len() >= 2800,
            "only {} Windows rules found",
            rules.len()
        );
        let mut counts: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
        for (_, _, l) in &rules {
            let slot = counts.entry(l.to_string()).or_insert((0, None));
            slot.0 += 1;
            if slot.0 == 1 {
                slot.1 = m.bind(&rule(l.clone(), Expr::True), &base).err();
            }
        }
        let mut table: Vec<_> = counts.iter().collect();
        table.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        println!("{:<70} {:>6}  status", "logsource", "rules");
        for (l, (n, err)) in &table {
            println!("{l:<70} {n:>6}  {}", err.as_deref().unwrap_or("ok"));
        }
        let failed: Vec<_> = table
            .iter()
            .filter(|(_, (_, e))| e.is_some())
            .map(|(l, (n, _))| format!("{l} ({n})"))
            .collect();
        println!(
            "{} logsources, {} rules; unmapped: {failed:?}",
            table.len(),
            rules.len()
        );
        assert!(failed.is_empty(), "unmapped logsources: {failed:?}");
    }

    /// Splits a file of one or more concatenated JSON documents.
    fn json_docs(text: &str) -> Vec<Value> {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn corpus_regression_events_satisfy_their_logsource() {
        let corpus = corpus();
        let m = Mapping::builtin();
        let s = schema();
        let base = base_names(&s);
        let by_id: HashMap<String, Logsource> = windows_rules(&corpus)
            .into_iter()
            .map(|(_, id, l)| (id, l))
            .collect();

        let mut infos = Vec::new();
        walk(&corpus.join("sigma/regression_data"), "yml", &mut infos);
        #[derive(Deserialize)]
        struct Info {
            rule_metadata: Vec<RuleMeta>,
            #[serde(default)]
            regression_tests_info: Vec<TestInfo>,
        }
        #[derive(Deserialize)]
        struct RuleMeta {
            id: String,
        }
        #[derive(Deserialize)]
        struct TestInfo {
            path: String,
            match_count: Option<usize>,
        }
        let (mut files, mut ok, mut events, mut events_in) = (0, 0, 0, 0);
        let mut failures = Vec::new();
        for info_path in infos
            .iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "info.yml"))
        {
            let info: Info =
                serde_saphyr::from_str(&std::fs::read_to_string(info_path).unwrap()).unwrap();
            let id = &info.rule_metadata[0].id;
            if info.regression_tests_info.is_empty() {
                println!(
                    "{}: no regression event listed, skipped",
                    info_path.display()
                );
                continue;
            }
            let Some(l) = by_id.get(id) else {
                failures.push(format!(
                    "{}: rule {id} not among the Windows rules",
                    info_path.display()
                ));
                continue;
            };
            for t in &info.regression_tests_info {
                let json = corpus.join("sigma").join(t.path.replace(".evtx", ".json"));
                let Ok(text) = std::fs::read_to_string(&json) else {
                    println!(
                        "no event file {} (listed by {})",
                        json.display(),
                        info_path.display()
                    );
                    continue;
                };
                files += 1;
                let bound = m.bind(&rule(l.clone(), Expr::True), &base).unwrap();
                let paths = path_finder(&s, &bound);
                let docs = json_docs(&text);
                let inside = docs
                    .iter()
                    .filter(|e| bound.variants.iter().any(|v| eval_when(&v.when, e, &paths)))
                    .count();
                events += docs.len();
                events_in += inside;
                let needed = t.match_count.unwrap_or(1).min(docs.len()).max(1);
                if inside >= needed {
                    ok += 1;
                } else {
                    failures.push(format!(
                        "{} ({l}): {inside} of {} events in the logsource, {needed} needed",
                        json.display(),
                        docs.len()
                    ));
                }
            }
        }
        println!(
            "regression files whose events satisfy their logsource: {ok}/{files} ({events_in}/{events} events)"
        );
        for f in &failures {
            println!("FAIL {f}");
        }
        assert!(files >= 200, "only {files} regression event files found");
        assert!(failures.is_empty(), "{} failures", failures.len());
    }
}
