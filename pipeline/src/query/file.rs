//! A SQL hunt file: the YAML metadata header and the SQL, parsed and checked (but not yet planned).
//!
//! File format (see `sql/README.md`): a leading block comment holding YAML metadata, then one SELECT over
//! `events`. Errors carry the file and the line.

use serde::Deserialize;

use crate::hunt::{
    Attack, Hunt, HuntError, Origin, Severity, Suppression, TACTICS, WindowSpec, is_technique,
    line_of,
};

/// `suppress: 1h`, or `suppress: { for: 1h, by: [host, user] }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSuppress {
    Period(String),
    Keyed {
        #[serde(rename = "for")]
        period: String,
        #[serde(default)]
        by: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    hypothesis: String,
    #[serde(default)]
    attack: Attack,
    severity: Severity,
    window: String,
    #[serde(default)]
    allowed_lateness: Option<String>,
    #[serde(default)]
    entity: Option<String>,
    #[serde(default)]
    suppress: Option<RawSuppress>,
    #[serde(default)]
    partition_by: Vec<String>,
    #[serde(default)]
    risk: Option<u32>,
    response: Vec<String>,
    #[serde(default)]
    references: Vec<String>,
}

impl Hunt {
    /// Parses a hunt file. `stem` is the file name without `.sql`, which must equal the id.
    pub fn parse(text: &str, stem: &str, origin: Origin) -> Result<Hunt, HuntError> {
        let at = |line: usize, reason: String| HuntError {
            origin: origin.to_string(),
            line,
            reason,
        };
        let trimmed = text.trim_start();
        let lead = text.len() - trimmed.len();
        if !trimmed.starts_with("/*") {
            return Err(at(
                1,
                "a hunt starts with its metadata in a block comment: /* id: …, title: …, hypothesis: … */"
                    .into(),
            ));
        }
        let header_start = lead + 2;
        let Some(header_len) = text[header_start..].find("*/") else {
            return Err(at(
                line_of(text, lead),
                "the metadata comment is not closed with */".into(),
            ));
        };
        let yaml = &text[header_start..header_start + header_len];
        let first_line = line_of(text, header_start);
        let raw: RawMetadata = serde_saphyr::from_str(yaml).map_err(|e| {
            let line = e
                .location()
                .map_or(first_line, |l| first_line + l.line() as usize - 1);
            at(line, format!("metadata: {}", first_line_of(&e.to_string())))
        })?;
        // Line of a metadata key, for errors about its value.
        let key_line = |key: &str| {
            yaml.lines()
                .position(|l| l.trim_start().starts_with(&format!("{key}:")))
                .map_or(first_line, |i| first_line + i)
        };
        if raw.id != stem {
            return Err(at(
                key_line("id"),
                format!("id `{}` must equal the file name `{stem}.sql`", raw.id),
            ));
        }
        if raw.id.is_empty()
            || !raw
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(at(
                key_line("id"),
                format!("id `{}`: use lower-case letters, digits, _ and -", raw.id),
            ));
        }
        for (key, value) in [("title", &raw.title), ("hypothesis", &raw.hypothesis)] {
            if value.trim().is_empty() {
                return Err(at(key_line(key), format!("`{key}` must not be empty")));
            }
        }
        if raw.response.is_empty() || raw.response.iter().any(|s| s.trim().is_empty()) {
            return Err(at(
                key_line("response"),
                "`response` lists the analyst's first steps: at least one, none empty".into(),
            ));
        }
        for t in &raw.attack.techniques {
            if !is_technique(t) {
                return Err(at(
                    key_line("attack"),
                    format!("`{t}` is not an ATT&CK technique id (T1234 or T1234.001)"),
                ));
            }
        }
        for t in &raw.attack.tactics {
            if !TACTICS.contains(&t.as_str()) {
                return Err(at(
                    key_line("attack"),
                    format!(
                        "`{t}` is not an ATT&CK tactic (one of {})",
                        TACTICS.join(", ")
                    ),
                ));
            }
        }
        let window =
            WindowSpec::parse(&raw.window).map_err(|e| at(key_line("window"), e.to_string()))?;
        let allowed_lateness = raw
            .allowed_lateness
            .map(|s| {
                humantime::parse_duration(&s).map_err(|e| {
                    at(
                        key_line("allowed_lateness"),
                        format!("allowed_lateness `{s}`: {e}"),
                    )
                })
            })
            .transpose()?;
        if allowed_lateness.is_some() && window == WindowSpec::None {
            return Err(at(
                key_line("allowed_lateness"),
                "allowed_lateness applies to windowed hunts only (this one has window: none)"
                    .into(),
            ));
        }
        if !raw.partition_by.is_empty() && window == WindowSpec::None {
            return Err(at(
                key_line("partition_by"),
                "partition_by applies to windowed hunts only (this one has window: none: it is evaluated where each event is)"
                    .into(),
            ));
        }
        let suppress = match raw.suppress {
            None => None,
            Some(s) => {
                let (period, by) = match s {
                    RawSuppress::Period(p) => (p, Vec::new()),
                    RawSuppress::Keyed { period, by } => (period, by),
                };
                let period = humantime::parse_duration(&period).map_err(|e| {
                    at(
                        key_line("suppress"),
                        format!("suppress `{period}`: {e}; write e.g. 30m, 1h"),
                    )
                })?;
                if period.is_zero() {
                    return Err(at(
                        key_line("suppress"),
                        "suppress must be longer than 0s (leave it out to alert on every row)"
                            .into(),
                    ));
                }
                Some(Suppression { period, by })
            }
        };
        let body = &text[header_start + header_len + 2..];
        if body.trim().is_empty() {
            return Err(at(
                line_of(text, header_start + header_len),
                "no SQL after the metadata comment".into(),
            ));
        }
        Ok(Hunt {
            id: raw.id,
            title: raw.title.trim().to_string(),
            description: raw.description.trim().to_string(),
            hypothesis: raw.hypothesis.trim().to_string(),
            attack: raw.attack,
            severity: raw.severity,
            window,
            allowed_lateness,
            entity: raw.entity,
            suppress,
            partition_by: raw.partition_by,
            risk: raw.risk,
            response: raw.response,
            references: raw.references,
            sql: text.to_string(),
            origin,
        })
    }
}

fn first_line_of(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = "/*\nid: demo\ntitle: Demo\nhypothesis: Something happens.\nattack:\n  techniques: [T1059.001]\n  tactics: [execution]\nseverity: high\nwindow: hopping 5m every 1m\nresponse:\n  - Look.\n*/\nSELECT host FROM events\n";

    fn parse(text: &str) -> Result<Hunt, HuntError> {
        Hunt::parse(text, "demo", Origin::File("hunts/demo.sql".into()))
    }

    #[test]
    fn parses_metadata_and_keeps_file_lines_for_sql() {
        let h = parse(GOOD).unwrap();
        assert_eq!(h.severity, Severity::High);
        assert_eq!(
            h.window,
            WindowSpec::Hopping {
                size: Duration::from_secs(300),
                slide: Duration::from_secs(60)
            }
        );
        assert_eq!(h.attack.techniques, vec!["T1059.001"]);
        assert_eq!(h.sql_line(), 13);
    }

    #[test]
    fn bad_metadata_is_refused_with_file_and_line() {
        let e =
            parse(&GOOD.replace("window: hopping 5m every 1m", "window: sliding 5m")).unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(e.to_string().starts_with("hunts/demo.sql:9:"), "{e}");
        let e = parse(&GOOD.replace("T1059.001", "T59")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        let e = parse(&GOOD.replace("id: demo", "id: other")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse(&GOOD.replace("severity: high", "severity: huge")).unwrap_err();
        assert!(e.to_string().contains("metadata"), "{e}");
        assert_eq!(e.line, 8, "{e}");
        let e = parse("SELECT 1").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse(&GOOD.replace("title: Demo\n", "title: Demo\ncolour: red\n")).unwrap_err();
        assert!(e.reason.contains("colour"), "{e}");
    }

    #[test]
    fn window_specs() {
        assert_eq!(WindowSpec::parse("none").unwrap(), WindowSpec::None);
        assert_eq!(
            WindowSpec::parse("tumbling 30s").unwrap(),
            WindowSpec::Tumbling {
                size: Duration::from_secs(30)
            }
        );
        assert!(WindowSpec::parse("hopping 1m every 5m").is_err());
        assert!(WindowSpec::parse("tumbling soon").is_err());
    }
}
