//! Parser tests over the Sigma corpus (`GHOSTHUNT_CORPUS`; skipped without it, see `crate::test_needs`):
//! how many rules parse, grouped refusal reasons, and mutated rule files that must never panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

// ---- the corpus ---------------------------------------------------------------------------------

fn yml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
}

/// A refusal reason with its specifics (quoted names, patterns) elided, for grouping.
fn reason_group(reason: &str) -> String {
    let mut out = String::new();
    let mut in_quote = false;
    for c in reason.chars() {
        if c == '`' {
            if !in_quote {
                out.push_str("`…`");
            }
            in_quote = !in_quote;
        } else if !in_quote {
            out.push(c);
        }
    }
    out.split(" (").next().unwrap_or("").to_string()
}

#[derive(Default)]
struct Tally {
    rules: usize,
    parsed: usize,
    other_docs: usize,
    refused: BTreeMap<String, Vec<String>>,
}

impl Tally {
    fn pct(&self) -> f64 {
        100.0 * self.parsed as f64 / self.rules.max(1) as f64
    }
}

#[test]
fn corpus_rules_parse() {
    let active = [
        "rules",
        "rules-emerging-threats",
        "rules-threat-hunting",
        "rules-compliance",
    ];
    let Some(corpus) = crate::test_needs::corpus(active.map(|d| format!("sigma/{d}"))) else {
        return;
    };
    let sigma = corpus.join("sigma");
    let other = ["rules-placeholder", "deprecated", "unsupported"];
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut syntax_errors = Vec::new();
    let opts = ParseOptions::default();
    for dir in active.iter().chain(other.iter()) {
        let mut files = Vec::new();
        yml_files(&sigma.join(dir), &mut files);
        files.sort();
        assert!(
            !files.is_empty() || other.contains(dir),
            "no rules under {dir}"
        );
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let rel = file.strip_prefix(&sigma).unwrap().display().to_string();
            let is_windows = rel.split('/').nth(1) == Some("windows");
            let group = match (active.contains(dir), is_windows) {
                (true, true) => "active windows",
                (true, false) => "active other",
                (false, _) => dir,
            };
            let tally = tallies.entry(group).or_default();
            match parse_file(&text, &opts) {
                Err(e) => {
                    tally.rules += 1;
                    syntax_errors.push(format!("{rel}: {e}"));
                    tally
                        .refused
                        .entry("YAML syntax error".into())
                        .or_default()
                        .push(rel);
                }
                Ok(docs) => {
                    for d in docs {
                        match d {
                            Ok(Document::Rule(_)) => {
                                tally.rules += 1;
                                tally.parsed += 1;
                            }
                            Ok(_) => tally.other_docs += 1,
                            Err(r) => {
                                tally.rules += 1;
                                tally
                                    .refused
                                    .entry(reason_group(&r.reason.to_string()))
                                    .or_default()
                                    .push(format!("{rel}: {}", r.reason));
                            }
                        }
                    }
                }
            }
        }
    }
    for (group, t) in &tallies {
        println!(
            "== {group}: {} rule documents, {} parsed ({:.2}%), {} correlation/filter documents",
            t.rules,
            t.parsed,
            t.pct(),
            t.other_docs
        );
        let mut reasons: Vec<_> = t.refused.iter().collect();
        reasons.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        for (reason, examples) in reasons {
            println!("   {:>4}  {reason}", examples.len());
            for ex in examples.iter().take(3) {
                println!("            e.g. {ex}");
            }
        }
    }
    let win = &tallies["active windows"];
    assert!(
        win.rules >= 2000,
        "only {} active Windows rules found",
        win.rules
    );
    assert!(
        win.pct() >= 99.0,
        "only {:.2}% of active Windows rules parse",
        win.pct()
    );
    let act = &tallies["active other"];
    assert!(
        act.pct() >= 97.0,
        "only {:.2}% of other active rules parse",
        act.pct()
    );
    assert!(syntax_errors.is_empty(), "YAML errors: {syntax_errors:#?}");
}

/// Mutated corpus documents (truncations, swapped characters, doubled modifiers) never panic.
#[test]
fn corpus_mutations_never_panic() {
    let Some(corpus) = crate::test_needs::corpus(["sigma/rules/windows/process_creation"]) else {
        return;
    };
    let sigma = corpus.join("sigma");
    let mut files = Vec::new();
    yml_files(&sigma.join("rules/windows/process_creation"), &mut files);
    files.sort();
    assert!(!files.is_empty());
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    let replacements = [
        "|",
        "*",
        "?",
        "\\",
        "'",
        "%",
        "(",
        ")",
        " of ",
        " not ",
        "null",
        "|re",
        "|base64offset",
        "|windash",
        "|cidr",
        "|exists",
        "|expand",
        "-",
        "\u{2013}",
        "é",
        ": ",
        "\n",
        "[",
        "{",
    ];
    let mut ph = HashMap::new();
    ph.insert("x".to_string(), vec!["*".to_string()]);
    let opts = ParseOptions { placeholders: &ph };
    let mut parsed = 0usize;
    for file in files.iter().step_by(7) {
        let text = std::fs::read_to_string(file).unwrap();
        let chars: Vec<char> = text.chars().collect();
        for _ in 0..12 {
            let mut m = chars.clone();
            let at = next(m.len());
            match next(3) {
                0 => m.truncate(at),
                1 => {
                    let r: Vec<char> = replacements[next(replacements.len())].chars().collect();
                    m.splice(at..(at + 1).min(m.len()), r);
                }
                _ => {
                    let j = next(m.len());
                    let last = m.len().saturating_sub(1);
                    if !m.is_empty() {
                        m.swap(at.min(last), j.min(last));
                    }
                }
            }
            let s: String = m.into_iter().collect();
            if let Ok(docs) = parse_file(&s, &opts) {
                parsed += docs.iter().filter(|d| d.is_ok()).count();
            }
        }
    }
    assert!(parsed > 0, "no mutated document parsed at all");
}
