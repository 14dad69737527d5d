//! A hunt as written: the YAML metadata header and the SQL, parsed and checked (but not yet planned).
//!
//! File format (see `sql/README.md`): a leading block comment holding YAML metadata, then one SELECT over
//! `events`. Errors carry the file and the line.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Where a hunt came from: a file, or built into the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(std::path::PathBuf),
    Builtin(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Builtin(name) => write!(f, "(built-in) sql/hunts/{name}"),
        }
    }
}

/// A hunt that cannot be used: file, line (1-based) and reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}:{line}: {reason}")]
pub struct HuntError {
    pub origin: String,
    pub line: usize,
    pub reason: String,
}

/// How severe a hunt's alerts are (OCSF severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// OCSF `severity_id`.
    pub fn ocsf_id(self) -> u8 {
        match self {
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }

    /// OCSF `severity` caption.
    pub fn caption(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Over which rows a hunt runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Each micro-batch on its own: lowest latency, no state.
    None,
    /// Consecutive windows of `size` aligned to the Unix epoch.
    Tumbling { size: Duration },
    /// Windows of `size` starting every `slide` (aligned to the Unix epoch): a row is in size/slide windows.
    Hopping { size: Duration, slide: Duration },
}

impl WindowSpec {
    /// Parses `none`, `tumbling 5m`, `hopping 10m every 1m`.
    pub fn parse(text: &str) -> Result<WindowSpec, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let duration = |s: &str| {
            humantime::parse_duration(s)
                .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 30s, 5m, 1h"))
                .and_then(|d| {
                    if d < Duration::from_millis(1) {
                        Err(format!("`{s}`: a window must be at least 1ms"))
                    } else if d.subsec_nanos() % 1_000_000 != 0 {
                        Err(format!("`{s}`: window sizes are whole milliseconds"))
                    } else {
                        Ok(d)
                    }
                })
        };
        match words.as_slice() {
            ["none"] => Ok(WindowSpec::None),
            ["tumbling", size] => Ok(WindowSpec::Tumbling {
                size: duration(size)?,
            }),
            ["hopping", size, "every", slide] => {
                let (size, slide) = (duration(size)?, duration(slide)?);
                if slide > size {
                    return Err(format!(
                        "hopping window slide {} is larger than its size {}: rows between windows would be skipped",
                        humantime::format_duration(slide),
                        humantime::format_duration(size)
                    ));
                }
                Ok(WindowSpec::Hopping { size, slide })
            }
            _ => Err(format!(
                "window `{text}`: expected `none`, `tumbling <size>` or `hopping <size> every <slide>`"
            )),
        }
    }

    /// `none`, `tumbling`, `hopping`: the metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            WindowSpec::None => "none",
            WindowSpec::Tumbling { .. } => "tumbling",
            WindowSpec::Hopping { .. } => "hopping",
        }
    }

    /// (size, slide) for windowed hunts.
    pub fn size_slide(&self) -> Option<(Duration, Duration)> {
        match *self {
            WindowSpec::None => None,
            WindowSpec::Tumbling { size } => Some((size, size)),
            WindowSpec::Hopping { size, slide } => Some((size, slide)),
        }
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowSpec::None => write!(f, "none"),
            WindowSpec::Tumbling { size } => {
                write!(f, "tumbling {}", humantime::format_duration(*size))
            }
            WindowSpec::Hopping { size, slide } => write!(
                f,
                "hopping {} every {}",
                humantime::format_duration(*size),
                humantime::format_duration(*slide)
            ),
        }
    }
}

/// ATT&CK references of a hunt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attack {
    #[serde(default)]
    pub techniques: Vec<String>,
    #[serde(default)]
    pub tactics: Vec<String>,
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
    response: Vec<String>,
    #[serde(default)]
    references: Vec<String>,
}

/// ATT&CK tactic short names: Enterprise (incl. v18's `stealth` and `defense-impairment`), ICS and Mobile.
/// SQL hunt headers and Sigma `attack.*` tags are checked against the same list.
pub const TACTICS: &[&str] = &[
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

/// A parsed and checked hunt, not yet planned.
#[derive(Debug, Clone)]
pub struct Hunt {
    pub id: String,
    pub title: String,
    pub description: String,
    pub hypothesis: String,
    pub attack: Attack,
    pub severity: Severity,
    pub window: WindowSpec,
    /// `None`: the pipeline's `window.allowed_lateness`.
    pub allowed_lateness: Option<Duration>,
    /// Result column naming the main entity (alert key).
    pub entity: Option<String>,
    pub response: Vec<String>,
    pub references: Vec<String>,
    /// The whole file text: the header is a SQL comment, so line numbers in SQL errors are file lines.
    pub sql: String,
    pub origin: Origin,
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
        let window = WindowSpec::parse(&raw.window).map_err(|e| at(key_line("window"), e))?;
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
            response: raw.response,
            references: raw.references,
            sql: text.to_string(),
            origin,
        })
    }

    /// Line of the first SQL token after the header (for errors with no better position).
    pub fn sql_line(&self) -> usize {
        let end = self.sql.find("*/").map_or(0, |i| i + 2);
        let rest = &self.sql[end..];
        let skip = rest.len() - rest.trim_start().len();
        line_of(&self.sql, end + skip)
    }
}

/// `T1234` or `T1234.001`.
pub fn is_technique(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..]),
        _ => false,
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

fn first_line_of(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

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
