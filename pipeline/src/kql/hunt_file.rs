//! `.kql` hunt files: a header of `//` comment lines holding the same YAML as a SQL hunt's `/* */`
//! header, then one KQL query. [`sql_hunt_text`] turns such a file into the text of the SQL hunt it
//! stands for — the header as a `/* */` block on the same lines, then the translated SELECT — which
//! `query::file` parses like any SQL hunt, so everything downstream is shared.
//!
//! The header's `window:` may be left out: `summarize … by bin(Timestamp, X)` then makes the hunt
//! `tumbling X`, a query that neither aggregates nor joins runs unwindowed (`none`), and an aggregating
//! query without a bin must say its window. Translation errors carry the file line of the KQL.

use crate::hunt::{HuntError, WindowSpec};

use super::translate::{Options, translate};

/// The header (YAML, `//` stripped) and the byte offset where the query starts.
pub fn split_header(text: &str) -> (Vec<&str>, usize) {
    let mut yaml = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("//") else {
            break;
        };
        let rest = rest.trim_end_matches(['\n', '\r']);
        yaml.push(rest.strip_prefix(' ').unwrap_or(rest));
        offset += line.len();
    }
    (yaml, offset)
}

/// The query part of a `.kql` hunt file (everything after the header).
pub fn query_text(text: &str) -> &str {
    &text[split_header(text).1..]
}

/// The SQL hunt file text a `.kql` hunt file stands for.
pub fn sql_hunt_text(text: &str, origin: &str) -> Result<String, HuntError> {
    let at = |line: usize, reason: String| HuntError {
        origin: origin.to_string(),
        line,
        reason,
    };
    let (yaml, offset) = split_header(text);
    if yaml.is_empty() {
        return Err(at(
            1,
            "a KQL hunt starts with its metadata as `//` comment lines: // id: …, // title: …"
                .into(),
        ));
    }
    let header_lines = yaml.len();
    let window_text = yaml
        .iter()
        .find_map(|l| l.strip_prefix("window:"))
        .map(|w| w.trim().trim_matches(['"', '\'']).to_string());
    let window = window_text
        .as_deref()
        .and_then(|w| WindowSpec::parse(w).ok());
    let tumbling = match window {
        Some(WindowSpec::Tumbling { size }) => Some(size.as_nanos() as i64),
        _ => None,
    };
    let body = &text[offset..];
    let translation = translate(
        body,
        Options {
            window: tumbling,
            ad_hoc: false,
        },
    )
    .map_err(|e| at(header_lines + e.line(), e.reason_at_column()))?;
    let derived = match (&window_text, translation.bin_window_spec()) {
        (Some(_), _) => None,
        (None, Some(spec)) => Some(format!("window: {spec}")),
        (None, None) if translation.stateful => {
            return Err(at(
                header_lines + 1,
                "this query aggregates, joins or keeps the first rows (take / top): give the hunt a \
                 `window:` in its header, or summarize … by bin(Timestamp, <size>)"
                    .into(),
            ));
        }
        (None, None) => Some("window: none".into()),
    };
    let mut out = String::from("/*");
    out.push_str(&yaml.join("\n"));
    out.push('\n');
    if let Some(w) = derived {
        out.push_str(&w);
        out.push('\n');
    }
    out.push_str("*/\n");
    out.push_str(&translation.sql);
    out.push('\n');
    Ok(out)
}
