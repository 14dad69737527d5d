//! Defender / Sentinel tables as views over `events`, defined as data in `pipeline/kql/tables.yml`.
//!
//! [`Tables::builtin`] parses the embedded file once. The translator reads a table's columns (name, SQL,
//! type) and the columns it cannot supply (with the reason a query reading one is refused); the planner
//! (`query::plan`) registers [`Table::view_sql`] as a view so SQL hunts can select from the tables too.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// The mapping built into the binary.
pub const BUILTIN_YAML: &str = include_str!("../../kql/tables.yml");

/// Columns every view carries besides its own: event time (alerts take theirs from it, `now()` falls
/// back to it) and the window bounds (NULL for unwindowed hunts).
pub const HIDDEN_COLUMNS: [&str; 3] = ["event_time", "window_start", "window_end"];

/// A KQL scalar type as far as the translator needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Long,
    Real,
    Bool,
    Datetime,
    Timespan,
    Dynamic,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawColumn {
    Sql(String),
    Typed {
        sql: String,
        #[serde(rename = "type")]
        ty: ColumnType,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(rename = "where")]
    filter: String,
    columns: indexmap_like::Ordered<RawColumn>,
    #[serde(default)]
    unavailable: BTreeMap<String, String>,
    #[serde(default)]
    unavailable_from: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    unavailable_sets: BTreeMap<String, BTreeMap<String, String>>,
    tables: indexmap_like::Ordered<RawTable>,
}

/// Keeps a YAML mapping's keys in file order (column order is the order users see).
mod indexmap_like {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use std::marker::PhantomData;

    #[derive(Debug)]
    pub struct Ordered<V>(pub Vec<(String, V)>);

    impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V2<V>(PhantomData<V>);
            impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
                type Value = Ordered<V>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a mapping")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, V>()? {
                        out.push((k, v));
                    }
                    Ok(Ordered(out))
                }
            }
            d.deserialize_map(V2(PhantomData))
        }
    }
}

/// One column of a table: its name, the SQL over event columns, its type.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub sql: String,
    pub ty: ColumnType,
}

/// One table: which events are its rows, its columns, and the columns it cannot have (with why).
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub filter: String,
    pub columns: Vec<Column>,
    pub unavailable: BTreeMap<String, String>,
}

impl Table {
    /// The name the view is registered under (SQL folds unquoted names to lower case).
    pub fn view_name(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    /// `SELECT <sql> AS "<Column>", ..., event_time, window_start, window_end FROM events WHERE <filter>`.
    pub fn view_sql(&self) -> String {
        let mut items: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} AS \"{}\"", c.sql.trim(), c.name))
            .collect();
        items.extend(HIDDEN_COLUMNS.iter().map(|h| h.to_string()));
        format!(
            "SELECT {} FROM events WHERE {}",
            items.join(", "),
            self.filter.trim()
        )
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Why the tables file does not load.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("KQL tables: {0}")]
    Yaml(String),
    #[error("KQL table `{table}`: unknown unavailable set `{set}`")]
    UnknownSet { table: String, set: String },
}

/// All tables, by name (case-sensitive, as KQL).
#[derive(Debug, Clone)]
pub struct Tables {
    pub tables: Vec<Table>,
}

impl Tables {
    pub fn parse(text: &str) -> Result<Tables, TablesError> {
        let raw: RawFile =
            serde_saphyr::from_str(text).map_err(|e| TablesError::Yaml(e.to_string()))?;
        let mut tables = Vec::new();
        for (name, t) in raw.tables.0 {
            let mut unavailable = BTreeMap::new();
            for set in &t.unavailable_from {
                let entries =
                    raw.unavailable_sets
                        .get(set)
                        .ok_or_else(|| TablesError::UnknownSet {
                            table: name.clone(),
                            set: set.clone(),
                        })?;
                unavailable.extend(entries.clone());
            }
            unavailable.extend(t.unavailable);
            let columns: Vec<Column> = t
                .columns
                .0
                .into_iter()
                .map(|(name, c)| match c {
                    RawColumn::Sql(sql) => Column {
                        name,
                        sql,
                        ty: ColumnType::String,
                    },
                    RawColumn::Typed { sql, ty } => Column { name, sql, ty },
                })
                .collect();
            // A column the table defines is available, whatever a shared set says.
            unavailable.retain(|k, _| !columns.iter().any(|c| &c.name == k));
            tables.push(Table {
                name,
                filter: t.filter,
                columns,
                unavailable,
            });
        }
        Ok(Tables { tables })
    }

    /// The tables of `pipeline/kql/tables.yml`, parsed once.
    pub fn builtin() -> &'static Tables {
        static BUILTIN: LazyLock<Tables> = LazyLock::new(|| {
            Tables::parse(BUILTIN_YAML).expect("the built-in KQL tables file is valid")
        });
        &BUILTIN
    }

    pub fn get(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Tables whose name occurs in `sql` (case-insensitive): the views a hunt's session needs.
    pub fn mentioned_in<'a>(&'a self, sql: &str) -> impl Iterator<Item = &'a Table> {
        let lower = sql.to_ascii_lowercase();
        self.tables.iter().filter(move |t| {
            let name = t.view_name();
            lower.match_indices(&name).any(|(at, _)| {
                let before = lower[..at].chars().next_back();
                let after = lower[at + name.len()..].chars().next();
                let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                !word(before) && !word(after)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables_load_with_their_columns_in_file_order() {
        let t = Tables::builtin();
        let p = t.get("DeviceProcessEvents").unwrap();
        assert_eq!(p.columns[0].name, "Timestamp");
        assert_eq!(p.column("Timestamp").unwrap().ty, ColumnType::Datetime);
        assert!(
            p.unavailable
                .contains_key("InitiatingProcessParentFileName")
        );
        for name in [
            "DeviceNetworkEvents",
            "DeviceFileEvents",
            "DeviceRegistryEvents",
            "DeviceImageLoadEvents",
            "DeviceLogonEvents",
            "DeviceEvents",
            "SecurityEvent",
            "Event",
            "SysmonEvent",
        ] {
            assert!(t.get(name).is_some(), "{name}");
        }
        let mentioned: Vec<_> = t
            .mentioned_in("select * from DeviceProcessEvents join deviceevents_x")
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(mentioned, vec!["DeviceProcessEvents"]);
    }
}
