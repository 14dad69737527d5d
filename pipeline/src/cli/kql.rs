//! `ghosthunt kql convert|check`: a `.kql` hunt as the SQL hunt it becomes; a query collection's
//! parse / translate / plan counts with refusals by reason. Each returns a report for `main` to print.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use tracing::instrument::WithSubscriber;

use super::CliError;
use crate::decode::EventSchema;
use crate::hunt::{Hunt, Origin};
use crate::kql::{Options, TranslateError, Translation, hunt_file, translate, translate_document};

/// The Defender tables of Windows endpoints that `pipeline/kql/tables.yml` maps.
pub const ENDPOINT_TABLES: [&str; 7] = [
    "DeviceProcessEvents",
    "DeviceNetworkEvents",
    "DeviceFileEvents",
    "DeviceRegistryEvents",
    "DeviceImageLoadEvents",
    "DeviceLogonEvents",
    "DeviceEvents",
];

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The SQL hunt file a `.kql` hunt file becomes; for a file without a `//` header, the query's SQL.
pub fn convert(file: &Path) -> Result<String, CliError> {
    let text = read(file)?;
    if hunt_file::split_header(&text).0.is_empty() {
        return translate(&text, Options::default())
            .map(|t| t.sql)
            .map_err(|e| {
                CliError::Hunt(crate::hunt::HuntError {
                    origin: file.display().to_string(),
                    line: e.line(),
                    reason: e.reason_at_column(),
                })
            });
    }
    Ok(hunt_file::sql_hunt_text(
        &text,
        &file.display().to_string(),
    )?)
}

/// Counts over a set of queries.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub queries: usize,
    pub parsed: usize,
    pub translated: usize,
    /// Translated and planned by DataFusion.
    pub compiled: usize,
    /// Refusal category → how many queries.
    pub refused: BTreeMap<String, usize>,
}

impl Counts {
    fn percent(&self, n: usize) -> f64 {
        if self.queries == 0 {
            0.0
        } else {
            100.0 * n as f64 / self.queries as f64
        }
    }
}

/// What `kql check` found: all queries, and those reading only Windows-endpoint tables.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub all: Counts,
    pub endpoint: Counts,
    /// Each query not compiled: where it is (file, or collection key and number) and why.
    pub refusals: Vec<(String, String)>,
}

/// Table-like names in a query (`XxxEvents`, `XxxInfo`, …): what decides whether it is endpoint-only.
fn table_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            w.starts_with(|c: char| c.is_ascii_uppercase())
                && ["Events", "Info", "Beta", "Evidence", "Signals"]
                    .iter()
                    .any(|s| w.ends_with(s))
        })
        .map(str::to_string)
        .collect()
}

/// A query to check: where it is (its file, or the collection's key and its number in it), its text,
/// and whether that text is an editor document (a collection's entry: queries separated by blank
/// lines, each checked) or one query, as a hunt file holds.
pub struct Checked {
    pub origin: String,
    pub text: String,
    pub document: bool,
}

/// The queries of a folder of `.kql` files, of one `.kql` file, or of a JSON object whose values are
/// arrays of strings (a collection).
pub fn queries(path: &Path) -> Result<Vec<Checked>, CliError> {
    let one = |f: &Path| {
        read(f).map(|t| Checked {
            origin: f.display().to_string(),
            text: hunt_file::query_text(&t).to_string(),
            document: false,
        })
    };
    if path.is_file()
        && path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("kql"))
    {
        return Ok(vec![one(path)?]);
    }
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| CliError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("kql")))
            .collect();
        files.sort();
        return files.iter().map(|f| one(f)).collect();
    }
    let text = read(path)?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| CliError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let mut out = Vec::new();
    if let Some(map) = value.as_object() {
        for (key, v) in map {
            for (i, q) in v.as_array().into_iter().flatten().enumerate() {
                if let Some(s) = q.as_str() {
                    out.push(Checked {
                        origin: format!("{}: {key:?} #{}", path.display(), i + 1),
                        text: s.to_string(),
                        document: true,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Parses, translates and plans every query of `path`.
pub async fn check(path: &Path, schema: &EventSchema) -> Result<CheckReport, CliError> {
    let mut report = CheckReport::default();
    for Checked {
        origin,
        text,
        document,
    } in queries(path)?
    {
        let words = table_words(&text);
        let endpoint =
            !words.is_empty() && words.iter().all(|w| ENDPOINT_TABLES.contains(&w.as_str()));
        // Quietly: planning warns of what a hunt file would be told (e.g. no event_time), which
        // means nothing for a query checked here.
        let outcome = check_one(&text, document, schema)
            .with_subscriber(tracing::subscriber::NoSubscriber::default())
            .await;
        match &outcome {
            Outcome::Compiled => {}
            Outcome::PlanFailed(reason) => report.refusals.push((origin, reason.clone())),
            Outcome::Refused(_, why) | Outcome::Syntax(why) => {
                report.refusals.push((origin, why.clone()))
            }
        }
        for counts in
            std::iter::once(&mut report.all).chain(endpoint.then_some(&mut report.endpoint))
        {
            counts.queries += 1;
            match &outcome {
                Outcome::Compiled => {
                    counts.parsed += 1;
                    counts.translated += 1;
                    counts.compiled += 1;
                }
                Outcome::PlanFailed(reason) => {
                    counts.parsed += 1;
                    counts.translated += 1;
                    *counts.refused.entry(reason.clone()).or_default() += 1;
                }
                Outcome::Refused(reason, _) => {
                    counts.parsed += 1;
                    *counts.refused.entry(reason.clone()).or_default() += 1;
                }
                Outcome::Syntax(_) => {
                    *counts.refused.entry("syntax".into()).or_default() += 1;
                }
            }
        }
    }
    Ok(report)
}

enum Outcome {
    Compiled,
    PlanFailed(String),
    /// The refusal's kind (counted), and where and why.
    Refused(String, String),
    /// Where and why.
    Syntax(String),
}

/// A collection entry is an editor document: compiled when every query in it is. A file is one query,
/// as the hunt loader reads it.
async fn check_one(text: &str, document: bool, schema: &EventSchema) -> Outcome {
    let translations = match document {
        true => match translate_document(text) {
            Ok(t) => t,
            Err(e) => return Outcome::Syntax(e.to_string()),
        },
        false => vec![translate(text, Options::default())],
    };
    for translation in translations {
        match translation {
            Ok(t) => match plan_one(t, schema).await {
                Outcome::Compiled => {}
                failed => return failed,
            },
            Err(e @ TranslateError::Parse(_)) => return Outcome::Syntax(e.to_string()),
            Err(e) => return Outcome::Refused(e.kind(), e.to_string()),
        }
    }
    Outcome::Compiled
}

async fn plan_one(translation: Translation, schema: &EventSchema) -> Outcome {
    // Planned as a hunt would be: one that aggregates or joins in a window (its `bin()`'s, else an
    // hour's), one that does not on each batch.
    let window = match (translation.bin_window_spec(), translation.stateful) {
        (Some(spec), _) => spec,
        (None, true) => "tumbling 1h".to_string(),
        (None, false) => "none".to_string(),
    };
    let file = format!(
        "/*\nid: q\ntitle: q\nhypothesis: q\nseverity: low\nwindow: {window}\nresponse: [q]\n*/\n{}\n",
        translation.sql
    );
    let hunt = match Hunt::parse(&file, "q", Origin::Builtin("q.kql")) {
        Ok(h) => h,
        Err(e) => return Outcome::PlanFailed(format!("plan: {}", short(&e.reason))),
    };
    match crate::query::plan::plan(hunt, schema).await {
        Ok(_) => Outcome::Compiled,
        Err(e) => Outcome::PlanFailed(format!("plan: {}", short(&e.reason))),
    }
}

/// The first words of a planning error: enough to group like failures.
fn short(reason: &str) -> String {
    reason
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  queries {}, parsed {} ({:.0}%), translated {} ({:.0}%), compiled {} ({:.0}%)",
            self.queries,
            self.parsed,
            self.percent(self.parsed),
            self.translated,
            self.percent(self.translated),
            self.compiled,
            self.percent(self.compiled)
        )?;
        let mut by_count: Vec<_> = self.refused.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (reason, n) in by_count {
            writeln!(f, "    {n:>4}  {reason}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (origin, why) in &self.refusals {
            writeln!(f, "refused: {origin}: {why}")?;
        }
        writeln!(f, "all queries:")?;
        write!(f, "{}", self.all)?;
        writeln!(
            f,
            "queries over Windows-endpoint tables only ({}):",
            ENDPOINT_TABLES.join(", ")
        )?;
        write!(f, "{}", self.endpoint)
    }
}
