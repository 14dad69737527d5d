//! Sigma rule files → bound rules: read the directories, parse every document, bind each detection rule to
//! columns through the mapping, and keep every refusal with its file and reason.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::sigma::correlation::{CorrelationRule, parse_correlation};
use crate::sigma::error::{RefusalKind, RuleError};
use crate::sigma::ir::SigmaRule;
use crate::sigma::mapping::{BoundRule, ExtraColumn, Mapping};
use crate::sigma::parse::{Document, ParseOptions, parse_file};

/// A rule (or a whole file) that is not run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaRefusal {
    pub file: PathBuf,
    pub title: Option<String>,
    pub id: Option<String>,
    pub reason: RuleError,
}

impl fmt::Display for SigmaRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        match (&self.title, &self.id) {
            (Some(t), Some(i)) => write!(f, "rule {t:?} ({i}): ")?,
            (Some(t), None) => write!(f, "rule {t:?}: ")?,
            (None, Some(i)) => write!(f, "rule {i}: ")?,
            (None, None) => {}
        }
        write!(f, "{}", self.reason)
    }
}

impl SigmaRefusal {
    /// What is wrong, for counting refusals by kind (and whose move it is: [`RefusalKind::fault`]).
    pub fn kind(&self) -> RefusalKind {
        self.reason.kind()
    }
}

/// A detection rule bound to columns.
#[derive(Debug, Clone)]
pub struct LoadedRule {
    pub rule: SigmaRule,
    pub file: PathBuf,
    pub bound: BoundRule,
}

/// Everything read from the rule directories.
#[derive(Debug, Default)]
pub struct Loaded {
    pub rules: Vec<LoadedRule>,
    pub correlations: Vec<(CorrelationRule, PathBuf)>,
    pub refusals: Vec<SigmaRefusal>,
    /// Rule files read.
    pub files: usize,
    /// Filter documents (Sigma filters) are not supported; counted among the refusals.
    pub documents: usize,
}

impl Loaded {
    /// Columns the bound detections need beyond the base schema, each once, sorted by name (the rule set's
    /// whole answer, correlations included, is `compile::added_columns`).
    pub(super) fn extra_columns(&self) -> Vec<ExtraColumn> {
        let mut all: BTreeMap<String, ExtraColumn> = BTreeMap::new();
        for r in &self.rules {
            for c in &r.bound.columns {
                all.entry(c.name.clone()).or_insert_with(|| c.clone());
            }
        }
        all.into_values().collect()
    }

    /// Refusals counted by kind of reason, most frequent first.
    pub fn refusals_by_kind(&self) -> Vec<(RefusalKind, usize)> {
        let mut counts: HashMap<RefusalKind, usize> = HashMap::new();
        for r in &self.refusals {
            *counts.entry(r.kind()).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// The `*.yml` / `*.yaml` files under `dir` (or `dir` itself when it is a file), sorted.
pub fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads every rule file under `paths` and binds the rules. The files are read and parsed on up to
/// `threads` threads, each a run of consecutive files, and the runs joined in order: the result is the
/// one reading them one by one gives.
pub fn load(
    paths: &[PathBuf],
    mapping: &Mapping,
    placeholders: &HashMap<String, Vec<String>>,
    base_columns: &[&str],
    threads: usize,
) -> Loaded {
    // Every file, in order; a directory that cannot be read is a refusal in its place.
    let mut items: Vec<Result<PathBuf, SigmaRefusal>> = Vec::new();
    for dir in paths {
        match rule_files(dir) {
            Ok(files) => items.extend(files.into_iter().map(Ok)),
            Err(e) => items.push(Err(file_refusal(
                dir,
                RefusalKind::Unreadable.error(format!("cannot read the directory: {e}")),
            ))),
        }
    }
    let read = |run: &[Result<PathBuf, SigmaRefusal>]| {
        let mut loaded = Loaded::default();
        for item in run {
            match item {
                Ok(file) => match std::fs::read_to_string(file) {
                    Ok(text) => add_file(
                        &mut loaded,
                        &text,
                        file,
                        mapping,
                        placeholders,
                        base_columns,
                    ),
                    Err(e) => loaded.refusals.push(file_refusal(
                        file,
                        RefusalKind::Unreadable.error(e.to_string()),
                    )),
                },
                Err(refusal) => loaded.refusals.push(refusal.clone()),
            }
        }
        loaded
    };
    let run = items.len().div_ceil(threads.max(1)).max(1);
    let runs = crate::parallel::in_order(items.chunks(run).collect(), "sigma-load", read);
    let mut loaded = Loaded::default();
    for part in runs {
        loaded.rules.extend(part.rules);
        loaded.correlations.extend(part.correlations);
        loaded.refusals.extend(part.refusals);
        loaded.files += part.files;
        loaded.documents += part.documents;
    }
    dedupe_ids(&mut loaded);
    loaded
}

fn file_refusal(file: &Path, reason: RuleError) -> SigmaRefusal {
    SigmaRefusal {
        file: file.to_path_buf(),
        title: None,
        id: None,
        reason,
    }
}

/// Parses one file's documents into `loaded`.
pub fn add_file(
    loaded: &mut Loaded,
    text: &str,
    file: &Path,
    mapping: &Mapping,
    placeholders: &HashMap<String, Vec<String>>,
    base_columns: &[&str],
) {
    loaded.files += 1;
    let docs = match parse_file(text, &ParseOptions { placeholders }) {
        Ok(docs) => docs,
        Err(e) => {
            loaded.refusals.push(file_refusal(file, e));
            return;
        }
    };
    for doc in docs {
        loaded.documents += 1;
        match doc {
            Ok(Document::Rule(rule)) => match mapping.bind(&rule, base_columns) {
                Ok(bound) => loaded.rules.push(LoadedRule {
                    rule,
                    file: file.to_path_buf(),
                    bound,
                }),
                Err(reason) => loaded.refusals.push(SigmaRefusal {
                    file: file.to_path_buf(),
                    title: Some(rule.title.clone()),
                    id: Some(rule.id.clone()),
                    reason,
                }),
            },
            Ok(Document::Correlation(value)) => match parse_correlation(&value) {
                Ok(c) => loaded.correlations.push((c, file.to_path_buf())),
                Err(reason) => loaded.refusals.push(SigmaRefusal {
                    file: file.to_path_buf(),
                    title: value.get("title").and_then(|v| v.as_str()).map(String::from),
                    id: value.get("id").and_then(|v| v.as_str()).map(String::from),
                    reason: reason.context("correlation"),
                }),
            },
            Ok(Document::Filter(value)) => loaded.refusals.push(SigmaRefusal {
                file: file.to_path_buf(),
                title: value.get("title").and_then(|v| v.as_str()).map(String::from),
                id: value.get("id").and_then(|v| v.as_str()).map(String::from),
                reason: RefusalKind::Unsupported.error(
                    "Sigma filters (meta filters) are not supported: put the exclusion into the rule",
                ),
            }),
            Err(refusal) => loaded.refusals.push(SigmaRefusal {
                file: file.to_path_buf(),
                title: refusal.title,
                id: refusal.id,
                reason: refusal.reason,
            }),
        }
    }
}

/// A rule id seen twice: the later file's rule is refused (ids name hunts and alerts).
fn dedupe_ids(loaded: &mut Loaded) {
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut kept = Vec::with_capacity(loaded.rules.len());
    for r in std::mem::take(&mut loaded.rules) {
        if let Some(first) = seen.get(&r.rule.id) {
            loaded.refusals.push(SigmaRefusal {
                file: r.file.clone(),
                title: Some(r.rule.title.clone()),
                id: Some(r.rule.id.clone()),
                reason: RefusalKind::DuplicateId
                    .error(format!("duplicate rule id (first in {})", first.display())),
            });
        } else {
            seen.insert(r.rule.id.clone(), r.file.clone());
            kept.push(r);
        }
    }
    loaded.rules = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::EventSchema;

    /// The kind of the one refusal `add_file` makes of `text`.
    fn refusal_kind(text: &str) -> RefusalKind {
        let schema = EventSchema::windows();
        let base: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        let mut loaded = Loaded::default();
        let file = Path::new("rule.yml");
        add_file(
            &mut loaded,
            text,
            file,
            &Mapping::builtin(),
            &HashMap::new(),
            &base,
        );
        assert!(loaded.rules.is_empty(), "compiled: {text}");
        assert_eq!(loaded.refusals.len(), 1, "{:?}", loaded.refusals);
        loaded.refusals[0].kind()
    }

    #[test]
    fn files_read_at_once_come_out_as_read_one_by_one() {
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let rule = |n: usize, title: &str| {
            format!(
                "title: {title}{n}\nid: 3f0b2b5e-0000-4000-8000-{n:012}\n{PROCESS}detection:\n  s: {{Image|endswith: x{n}}}\n  condition: s\n"
            )
        };
        // 40 files a directory, a rule each, but file 7 is not YAML, file 23 repeats file 3's id, file 31
        // holds two rules. The second directory's rules have the first's ids and other titles.
        for (dir, title) in [(&first, "r"), (&second, "s")] {
            for n in 0..40 {
                let text = match n {
                    7 => "a: [unclosed".to_string(),
                    23 => rule(3, title).replace(&format!("title: {title}3"), "title: again"),
                    31 => format!("{}---\n{}", rule(31, title), rule(131, title)),
                    _ => rule(n, title),
                };
                std::fs::write(dir.path().join(format!("{n:02}.yml")), text).unwrap();
            }
        }
        let missing = first.path().join("missing");
        let schema = EventSchema::windows();
        let base: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        let (mapping, placeholders) = (Mapping::builtin(), HashMap::new());
        let paths = [
            first.path().to_path_buf(),
            missing.clone(),
            second.path().to_path_buf(),
        ];

        let mut one_by_one = Loaded::default();
        for path in &paths {
            let Ok(files) = rule_files(path) else {
                one_by_one.refusals.push(file_refusal(
                    path,
                    RefusalKind::Unreadable.error("cannot read the directory".to_string()),
                ));
                continue;
            };
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                add_file(
                    &mut one_by_one,
                    &text,
                    &file,
                    &mapping,
                    &placeholders,
                    &base,
                );
            }
        }
        dedupe_ids(&mut one_by_one);
        let rules = |l: &Loaded| -> Vec<(PathBuf, String)> {
            l.rules
                .iter()
                .map(|r| (r.file.clone(), r.rule.title.clone()))
                .collect()
        };
        let refusals = |l: &Loaded| -> Vec<(PathBuf, RefusalKind)> {
            l.refusals
                .iter()
                .map(|r| (r.file.clone(), r.kind()))
                .collect()
        };
        // 39 rules of the first directory (file 31's two, less file 23's), none of the second's.
        assert_eq!(one_by_one.rules.len(), 39);
        assert!(
            one_by_one
                .rules
                .iter()
                .all(|r| r.rule.title.starts_with('r'))
        );
        for threads in 1..=8 {
            let loaded = load(&paths, &mapping, &placeholders, &base, threads);
            assert_eq!(rules(&loaded), rules(&one_by_one), "{threads} threads");
            assert_eq!(
                refusals(&loaded),
                refusals(&one_by_one),
                "{threads} threads"
            );
            assert_eq!((loaded.files, loaded.documents), (80, 80));
            assert_eq!(loaded.refusals[1].file, missing);
            // Files 7 twice, the missing directory; then file 23 and all 40 of the second directory.
            assert_eq!(loaded.refusals.len(), 3 + 1 + 40);
        }
    }

    const HEAD: &str = "title: t\nid: 3f0b2b5e-0000-4000-8000-000000000001\n";
    const PROCESS: &str = "logsource: {product: windows, category: process_creation}\n";

    #[test]
    fn refusals_are_classified_where_the_fault_is_found_not_from_their_text() {
        let rule =
            |logsource: &str, detection: &str| format!("{HEAD}{logsource}detection:\n{detection}");
        let cases = [
            ("a: [unclosed", RefusalKind::Yaml),
            (
                "title: t\nlogsource: {product: windows}\ndetection: {s: {a: 1}, condition: s}",
                RefusalKind::Metadata,
            ),
            (
                &rule(PROCESS, "  s: {Image|endswith: x}\n  condition: s and (\n"),
                RefusalKind::Condition,
            ),
            (
                &rule(PROCESS, "  s: {Image|endswith: x}\n  condition: s and t\n"),
                RefusalKind::Condition,
            ),
            (
                &rule(PROCESS, "  s: {Image|nosuch: x}\n  condition: s\n"),
                RefusalKind::Modifier,
            ),
            (
                &rule(PROCESS, "  s: {Image|re: 'a(b'}\n  condition: s\n"),
                RefusalKind::Value,
            ),
            (
                &rule(PROCESS, "  s: {Image|re: '(?=a)'}\n  condition: s\n"),
                RefusalKind::Unsupported,
            ),
            (
                &rule(
                    PROCESS,
                    "  s: {Image|expand: '%nowhere%'}\n  condition: s\n",
                ),
                RefusalKind::Placeholder,
            ),
            (
                &rule(PROCESS, "  s: {Image: []}\n  condition: s\n"),
                RefusalKind::Detection,
            ),
            (
                &rule(PROCESS, "  s: {Image: x}\n  condition: s | count() > 5\n"),
                RefusalKind::Unsupported,
            ),
            (
                &rule(
                    "logsource: {product: linux, category: process_creation}\n",
                    "  s: {Image: x}\n  condition: s\n",
                ),
                RefusalKind::Logsource,
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(refusal_kind(text), kind, "{text}");
        }
        assert_eq!(
            RefusalKind::Logsource.fault(),
            crate::sigma::error::Fault::Mapping
        );
    }
}
