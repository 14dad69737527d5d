//! A rule document's keys other than `detection` (title, id, level, logsource, tags …) → [`SigmaRule`], and
//! the ATT&CK techniques and tactics named by its `attack.*` tags.

use super::ParseOptions;
use super::detection::parse_detection;
use super::yaml::Yaml;
use crate::hunt::{TACTICS, is_technique};
use crate::sigma::error::{RefusalKind, RuleError};
use crate::sigma::ir::{Level, Logsource, SigmaRule};

pub(super) fn parse_rule(doc: &Yaml, opts: &ParseOptions) -> Result<SigmaRule, RuleError> {
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
        None => return Err(RefusalKind::Metadata.error("the rule has no `logsource`")),
        Some(_) => return Err(RefusalKind::Metadata.error("`logsource` is not a mapping")),
    };
    let detection = match doc.get("detection") {
        Some(d) => parse_detection(d, opts)?,
        None => return Err(RefusalKind::Metadata.error("the rule has no `detection`")),
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

fn parse_level(v: &Yaml) -> Result<Level, RuleError> {
    let t = v.scalar_text().unwrap_or_default();
    Ok(match t.to_ascii_lowercase().as_str() {
        "informational" => Level::Informational,
        "low" => Level::Low,
        "medium" => Level::Medium,
        "high" => Level::High,
        "critical" => Level::Critical,
        _ => {
            return Err(RefusalKind::Metadata.error(format!(
                "invalid `level` {:?} (expected informational, low, medium, high or critical)",
                v.text_or_kind()
            )));
        }
    })
}

fn required_text(doc: &Yaml, key: &str) -> Result<String, RuleError> {
    match optional_text(doc, key)? {
        Some(t) if !t.trim().is_empty() => Ok(t),
        _ => Err(RefusalKind::Metadata.error(format!("the rule has no `{key}`"))),
    }
}

fn optional_text(doc: &Yaml, key: &str) -> Result<Option<String>, RuleError> {
    match doc.get(key) {
        None | Some(Yaml::Null) => Ok(None),
        Some(v) => v.scalar_text().map(Some).ok_or_else(|| {
            RefusalKind::Metadata.error(format!(
                "`{key}` must be a single value, not a {}",
                v.kind()
            ))
        }),
    }
}

fn text_list(doc: &Yaml, key: &str) -> Result<Vec<String>, RuleError> {
    match doc.get(key) {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::Seq(items)) => items
            .iter()
            .filter(|i| !matches!(i, Yaml::Null))
            .map(|i| {
                i.scalar_text().ok_or_else(|| {
                    RefusalKind::Metadata.error(format!(
                        "`{key}` items must be single values, not a {}",
                        i.kind()
                    ))
                })
            })
            .collect(),
        Some(v) => v.scalar_text().map(|t| vec![t]).ok_or_else(|| {
            RefusalKind::Metadata.error(format!("`{key}` must be a list, not a {}", v.kind()))
        }),
    }
}

// ---------------------------------------------------------------------------------------------------------
// ATT&CK tags

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
        let t = rest.to_ascii_uppercase();
        if is_technique(&t) {
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
