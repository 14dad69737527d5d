//! The event schema as data: column names, types and the JSON paths that fill them.
//!
//! A schema file (TOML, see `schemas/windows.toml`) is loaded into an [`EventSchema`]; the decoder walks its
//! columns in order and the `events` table that hunts query has exactly these columns.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

/// The built-in Windows schema (Sysmon, Security, System, PowerShell; nested EVTX and flat shapes).
pub const WINDOWS_SCHEMA_TOML: &str = include_str!("../../schemas/windows.toml");
/// The `alerts` table incident rules select from (see `incident`).
pub const ALERTS_SCHEMA_TOML: &str = include_str!("../../schemas/alerts.toml");

/// The column holding every scalar value of a record (strings, numbers and booleans as text, keys left out),
/// each followed by [`VALUE_SEPARATOR`]: what Sigma keywords search. Present only when a loaded rule has
/// keywords ([`EventSchema::with_values_column`]).
pub const VALUES_COLUMN: &str = "_values";

/// Ends each value in [`VALUES_COLUMN`] (ASCII unit separator: no event value contains it, so a search
/// never runs across two values).
pub const VALUE_SEPARATOR: char = '\u{1f}';

/// Timezone of every timestamp column: event time is always UTC.
pub const UTC: &str = "UTC";

/// The Arrow type of a timestamp column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()))
}

/// A schema file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {origin}: {reason}")]
    Invalid { origin: String, reason: String },
    #[error("schema {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Int,
    Float,
    Bool,
    Timestamp,
}

impl ColumnType {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Timestamp => timestamp_type(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    name: String,
    time_column: String,
    columns: Vec<RawColumn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(rename = "type")]
    ty: ColumnType,
    paths: Vec<String>,
    #[serde(default)]
    doc: String,
    #[serde(default)]
    lenient: bool,
}

/// One column: its name, type, and the JSON paths tried in order (each path split into its keys).
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub paths: Vec<Vec<String>>,
    pub doc: String,
    /// A string column that takes any JSON value (lists of strings as lines, objects as JSON text)
    /// instead of dead-lettering the event: the columns added for Sigma fields.
    pub lenient: bool,
}

/// A loaded, checked schema.
#[derive(Debug, Clone)]
pub struct EventSchema {
    pub name: String,
    pub columns: Vec<Column>,
    /// Index of the event-time column in `columns`.
    pub time_index: usize,
    /// Index of [`VALUES_COLUMN`], when the schema has it.
    pub values_index: Option<usize>,
    arrow: SchemaRef,
}

impl EventSchema {
    /// The built-in Windows schema.
    pub fn windows() -> EventSchema {
        EventSchema::parse(WINDOWS_SCHEMA_TOML, "built-in windows")
            .expect("the built-in schema is valid (checked by a unit test)")
    }

    /// The `alerts` table: one row per alert, what incident rules select from.
    pub fn alerts() -> EventSchema {
        EventSchema::parse(ALERTS_SCHEMA_TOML, "built-in alerts")
            .expect("the built-in alerts schema is valid (checked by a unit test)")
    }

    /// Loads a schema file.
    pub fn load(path: &Path) -> Result<EventSchema, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
            path: path.display().to_string(),
            source,
        })?;
        EventSchema::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a schema from TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<EventSchema, SchemaError> {
        let invalid = |reason: String| SchemaError::Invalid {
            origin: origin.to_string(),
            reason,
        };
        let raw: RawSchema = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| invalid(e.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        let mut columns = Vec::with_capacity(raw.columns.len());
        for c in raw.columns {
            if !is_identifier(&c.name) {
                return Err(invalid(format!(
                    "column `{}`: names are lower-case snake_case identifiers",
                    c.name
                )));
            }
            if matches!(c.name.as_str(), "window_start" | "window_end") {
                return Err(invalid(format!(
                    "column `{}` is reserved for windowed hunts",
                    c.name
                )));
            }
            if !seen.insert(c.name.clone()) {
                return Err(invalid(format!("column `{}` appears twice", c.name)));
            }
            if c.paths.is_empty() || c.paths.iter().any(|p| p.is_empty()) {
                return Err(invalid(format!(
                    "column `{}` needs at least one non-empty path",
                    c.name
                )));
            }
            columns.push(Column {
                paths: c
                    .paths
                    .iter()
                    .map(|p| p.split('.').map(str::to_string).collect())
                    .collect(),
                name: c.name,
                ty: c.ty,
                doc: c.doc,
                lenient: c.lenient,
            });
        }
        let time_index = columns
            .iter()
            .position(|c| c.name == raw.time_column)
            .ok_or_else(|| invalid(format!("time_column `{}` is not a column", raw.time_column)))?;
        if columns[time_index].ty != ColumnType::Timestamp {
            return Err(invalid(format!(
                "time_column `{}` must have type timestamp",
                raw.time_column
            )));
        }
        Ok(EventSchema {
            name: raw.name,
            arrow: arrow_schema(&columns),
            columns,
            time_index,
            values_index: None,
        })
    }

    /// This schema with lenient string columns added (the event fields Sigma rules read that no column
    /// has yet). A name already taken is an error: the mapping resolves fields to distinct columns.
    pub fn with_string_columns(
        &self,
        extra: impl IntoIterator<Item = (String, Vec<String>, String)>,
    ) -> Result<EventSchema, SchemaError> {
        let mut columns = self.columns.clone();
        for (name, paths, doc) in extra {
            let invalid = |reason: String| SchemaError::Invalid {
                origin: format!("{} + sigma fields", self.name),
                reason,
            };
            if !is_identifier(&name) || columns.iter().any(|c| c.name == name) {
                return Err(invalid(format!(
                    "added column `{name}` is not a new snake_case name"
                )));
            }
            if paths.is_empty() || paths.iter().any(String::is_empty) {
                return Err(invalid(format!("added column `{name}` has an empty path")));
            }
            columns.push(Column {
                name,
                ty: ColumnType::String,
                paths: paths
                    .iter()
                    .map(|p| p.split('.').map(str::to_string).collect())
                    .collect(),
                doc,
                lenient: true,
            });
        }
        Ok(EventSchema {
            name: self.name.clone(),
            arrow: arrow_schema(&columns),
            columns,
            time_index: self.time_index,
            values_index: self.values_index,
        })
    }

    /// This schema with [`VALUES_COLUMN`] added (once): the decoder fills it with every scalar value of
    /// the record, in the same single walk.
    pub fn with_values_column(&self) -> EventSchema {
        if self.values_index.is_some() {
            return self.clone();
        }
        let mut columns = self.columns.clone();
        columns.push(Column {
            name: VALUES_COLUMN.to_string(),
            ty: ColumnType::String,
            paths: Vec::new(),
            doc:
                "Every scalar value of the record (not its keys), each ended by U+001F: what Sigma \
                  keywords search."
                    .to_string(),
            lenient: false,
        });
        EventSchema {
            name: self.name.clone(),
            arrow: arrow_schema(&columns),
            values_index: Some(columns.len() - 1),
            columns,
            time_index: self.time_index,
        }
    }

    /// The Arrow schema of decoded batches.
    pub fn arrow(&self) -> &SchemaRef {
        &self.arrow
    }

    /// Name of the event-time column.
    pub fn time_column(&self) -> &str {
        &self.columns[self.time_index].name
    }
}

fn arrow_schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            // All nullable: a windowed hunt's stored rows leave the columns it does not read empty.
            .map(|c| Field::new(&c.name, c.ty.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_windows_schema_is_valid_and_has_event_time() {
        let s = EventSchema::windows();
        assert_eq!(s.time_column(), "event_time");
        assert!(s.columns.len() > 50);
        for name in [
            "host",
            "event_id",
            "command_line",
            "granted_access",
            "image_path",
        ] {
            assert!(s.arrow().field_with_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn builtin_alerts_schema_is_valid_and_has_alert_time() {
        let s = EventSchema::alerts();
        assert_eq!(s.time_column(), "time");
        for name in [
            "alert_id", "hunt_id", "risk", "tactics", "host", "user", "src_ip",
        ] {
            assert!(s.arrow().field_with_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn schema_errors_name_the_column() {
        let err = EventSchema::parse(
            "name = \"x\"\ntime_column = \"t\"\n[[columns]]\nname = \"t\"\ntype = \"string\"\npaths = [\"t\"]\n",
            "test.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("test.toml") && err.contains("timestamp"),
            "{err}"
        );
        let err = EventSchema::parse(
            "name = \"x\"\ntime_column = \"t\"\n[[columns]]\nname = \"Bad Name\"\ntype = \"string\"\npaths = [\"t\"]\n",
            "test.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Bad Name"), "{err}");
    }
}
