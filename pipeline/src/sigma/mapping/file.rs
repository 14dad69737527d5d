//! The mapping file: its YAML format (`sigma/windows.yml` is the built-in one), loading it into a
//! [`Mapping`] with every key validated, and the check against the built-in schema.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::{Entry, ExtraColumn, FIELD_PLACEHOLDER, Mapping, MappingError, Variant};
use crate::sigma::ir::Logsource;

/// The built-in mapping for Windows events, `sigma/windows.yml`.
const BUILTIN_YAML: &str = include_str!("../../../sigma/windows.yml");
const BUILTIN_ORIGIN: &str = "sigma/windows.yml (built in)";

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
    unless: BTreeMap<String, WhenValue>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
    /// The Sigma fields this variant's events can carry at all (besides its `when` and `rename` keys);
    /// absent: every field.
    supplies: Option<Vec<String>>,
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
                let when = conditions(v.when, &format!("{vkey}.when"), &invalid)?;
                let unless = conditions(v.unless, &format!("{vkey}.unless"), &invalid)?;
                for (from, to) in &v.rename {
                    check_field_name(from)
                        .map_err(|m| invalid(format!("{vkey}.rename.{from}"), m))?;
                    check_field_name(to)
                        .map_err(|m| invalid(format!("{vkey}.rename.{from}"), m))?;
                }
                let supplies = match v.supplies {
                    None => None,
                    Some(list) => {
                        for f in &list {
                            check_field_name(f)
                                .map_err(|m| invalid(format!("{vkey}.supplies"), m))?;
                        }
                        let mut set: BTreeSet<String> = list.into_iter().collect();
                        set.extend(when.iter().map(|(f, _)| f.clone()));
                        set.extend(v.rename.keys().cloned());
                        Some(set)
                    }
                };
                variants.push(Variant {
                    when,
                    unless,
                    rename: v.rename,
                    supplies,
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
    pub fn check_schema(&self, base_columns: &[&str]) -> Result<(), MappingError> {
        for (field, column) in &self.columns {
            if !base_columns.contains(&column.as_str()) {
                return Err(MappingError::Invalid {
                    origin: self.origin.clone(),
                    key: format!("columns.{field}"),
                    message: format!("{column:?} is not a column of the built-in schema"),
                });
            }
        }
        for (field, extra) in &self.fields {
            if base_columns.contains(&extra.name.as_str()) {
                return Err(MappingError::Invalid {
                    origin: self.origin.clone(),
                    key: format!("fields.{field}.column"),
                    message: format!(
                        "{:?} is a column of the built-in schema; map the field in `columns` instead",
                        extra.name
                    ),
                });
            }
        }
        Ok(())
    }
}

pub(super) fn check_field_name(field: &str) -> Result<(), String> {
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

/// A variant's `when` or `unless`: event field -> accepted values, checked.
fn conditions<E>(
    doc: BTreeMap<String, WhenValue>,
    key: &str,
    invalid: &dyn Fn(String, String) -> E,
) -> Result<Vec<(String, Vec<String>)>, E> {
    let mut out = Vec::new();
    for (field, value) in doc {
        check_field_name(&field).map_err(|m| invalid(format!("{key}.{field}"), m))?;
        let values: Vec<String> = match value {
            WhenValue::One(s) => vec![s.text()],
            WhenValue::Many(list) => list.iter().map(Scalar::text).collect(),
        };
        if values.is_empty() {
            return Err(invalid(
                format!("{key}.{field}"),
                "an empty list matches no event".into(),
            ));
        }
        if let Some(bad) = values.iter().find(|s| s.is_empty()) {
            return Err(invalid(
                format!("{key}.{field}"),
                format!("{bad:?}: empty value"),
            ));
        }
        out.push((field, values));
    }
    Ok(out)
}
