//! The hunt model every language produces: id, metadata, window, entity. At the bottom of the crate:
//! every stage may import it, it imports no other module of the crate.
//!
//! SQL files (`query`), Sigma rules (`sigma`) and, next, KQL are front ends that produce [`Hunt`]s; the
//! runtime, the alerts and the metrics only ever see this type.

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

/// Why a window specification does not parse (the hunt author's to fix).
#[derive(Debug, thiserror::Error)]
pub enum WindowSpecError {
    #[error("`{text}` is not a duration ({source}); write e.g. 30s, 5m, 1h")]
    Duration {
        text: String,
        source: humantime::DurationError,
    },
    #[error("`{0}`: a window must be at least 1ms")]
    TooShort(String),
    #[error("`{0}`: window sizes are whole milliseconds")]
    SubMillisecond(String),
    #[error(
        "hopping window slide {} is larger than its size {}: rows between windows would be skipped",
        humantime::format_duration(*slide),
        humantime::format_duration(*size)
    )]
    SlideExceedsSize { size: Duration, slide: Duration },
    #[error("window `{0}`: expected `none`, `tumbling <size>` or `hopping <size> every <slide>`")]
    Syntax(String),
}

impl WindowSpec {
    /// Parses `none`, `tumbling 5m`, `hopping 10m every 1m`.
    pub fn parse(text: &str) -> Result<WindowSpec, WindowSpecError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let duration = |s: &str| {
            let d = humantime::parse_duration(s).map_err(|source| WindowSpecError::Duration {
                text: s.to_string(),
                source,
            })?;
            if d < Duration::from_millis(1) {
                Err(WindowSpecError::TooShort(s.to_string()))
            } else if d.subsec_nanos() % 1_000_000 != 0 {
                Err(WindowSpecError::SubMillisecond(s.to_string()))
            } else {
                Ok(d)
            }
        };
        match words.as_slice() {
            ["none"] => Ok(WindowSpec::None),
            ["tumbling", size] => Ok(WindowSpec::Tumbling {
                size: duration(size)?,
            }),
            ["hopping", size, "every", slide] => {
                let (size, slide) = (duration(size)?, duration(slide)?);
                if slide > size {
                    return Err(WindowSpecError::SlideExceedsSize { size, slide });
                }
                Ok(WindowSpec::Hopping { size, slide })
            }
            _ => Err(WindowSpecError::Syntax(text.to_string())),
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

/// Alert suppression: after an alert, further alerts of the same hunt with the same key within `period`
/// of event time are counted, not emitted (the alert that stands for them is updated with the count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub period: Duration,
    /// Result columns whose values make the key; empty: the hunt's entity (or the whole hunt without one).
    pub by: Vec<String>,
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
    /// `None`: every result row alerts.
    pub suppress: Option<Suppression>,
    /// Event columns that partition a windowed hunt's rows when scaled out (`partition_by:`); empty: the
    /// key read from its plan (see `query::partition`).
    pub partition_by: Vec<String>,
    /// Risk an alert of this hunt adds to its entities (`risk:` in the header); `None`: the
    /// `[incidents.risk]` setting for its severity.
    pub risk: Option<u32>,
    pub response: Vec<String>,
    pub references: Vec<String>,
    /// The whole file text: the header is a SQL comment, so line numbers in SQL errors are file lines.
    pub sql: String,
    pub origin: Origin,
}

impl Hunt {
    /// Line of the first SQL token after the header (for errors with no better position).
    pub fn sql_line(&self) -> usize {
        let end = self.sql.find("*/").map_or(0, |i| i + 2);
        let rest = &self.sql[end..];
        let skip = rest.len() - rest.trim_start().len();
        line_of(&self.sql, end + skip)
    }
}

#[cfg(test)]
impl Hunt {
    /// A hunt with an id, a title, a response step and nothing else, for tests to fill in.
    pub(crate) fn sample(id: &str) -> Hunt {
        Hunt {
            id: id.into(),
            title: id.to_uppercase(),
            description: String::new(),
            hypothesis: "h".into(),
            attack: Attack::default(),
            severity: Severity::High,
            window: WindowSpec::None,
            allowed_lateness: None,
            entity: None,
            suppress: None,
            partition_by: Vec::new(),
            risk: None,
            response: vec!["Look.".into()],
            references: Vec::new(),
            sql: String::new(),
            origin: Origin::Builtin("sample.sql"),
        }
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
