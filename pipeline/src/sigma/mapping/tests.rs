//! Mapping tests: the helpers shared by all of them (the built-in schema, rule builders, a small evaluator
//! of bound `when` conditions over JSON events), the mapping file (built-in, malformed) and field → column
//! naming.

use std::collections::BTreeSet;

use serde_json::Value;

use super::bind::{pascal_case, snake_case};
use super::*;
use crate::sigma::ir::{Level, Pattern, SigmaRule, Test};

// ---- helpers -------------------------------------------------------------------------------------

const SCHEMA_TOML: &str = include_str!("../../../schemas/windows.toml");

/// (column name, paths) of the built-in schema, read from windows.toml (`name = "…"` then `paths = […]`;
/// the array is valid JSON).
pub(super) fn schema() -> Vec<(String, Vec<String>)> {
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

pub(super) fn base_names(schema: &[(String, Vec<String>)]) -> Vec<&str> {
    schema.iter().map(|(n, _)| n.as_str()).collect()
}

pub(super) fn rule(logsource: Logsource, detection: Expr) -> SigmaRule {
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

pub(super) fn ls(
    product: Option<&str>,
    category: Option<&str>,
    service: Option<&str>,
) -> Logsource {
    Logsource {
        product: product.map(str::to_string),
        category: category.map(str::to_string),
        service: service.map(str::to_string),
    }
}

pub(super) fn eq(field: &str, value: &str) -> Expr {
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
pub(super) fn column_value(event: &Value, paths: &[String]) -> Option<String> {
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

/// Evaluates a bound `when` (And / Or / Not / True / literal case-insensitive Str tests) on a JSON event.
pub(super) fn eval_when(e: &Expr, event: &Value, paths: &dyn Fn(&str) -> Vec<String>) -> bool {
    match e {
        Expr::True => true,
        Expr::Not(inner) => !eval_when(inner, event, paths),
        Expr::And(v) => v.iter().all(|x| eval_when(x, event, paths)),
        Expr::Or(v) => v.iter().any(|x| eval_when(x, event, paths)),
        Expr::Field {
            field,
            test: Test::Str {
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
pub(super) fn path_finder<'a>(
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

pub(super) fn holds(
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
        err.to_string().contains("columns.Image") && err.to_string().contains("imagee"),
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
