//! Mapping tests over the Sigma corpus (`GHOSTHUNT_CORPUS`; skipped without it, see `crate::test_needs`):
//! every Windows rule's logsource resolves, and the regression events of each rule satisfy its
//! logsource's `when`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::tests::{base_names, eval_when, path_finder, rule, schema};
use super::*;

// ---- corpus tests --------------------------------------------------------------------------------

/// The rule folders `windows_rules` reads.
const WINDOWS_RULES: [&str; 3] = [
    "sigma/rules/windows",
    "sigma/rules-threat-hunting/windows",
    "sigma/rules-emerging-threats",
];

fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, ext, out);
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
}

#[derive(Deserialize)]
struct LightRule {
    id: Option<String>,
    logsource: Option<LightLogsource>,
}
#[derive(Deserialize)]
struct LightLogsource {
    product: Option<String>,
    category: Option<String>,
    service: Option<String>,
}

/// Every rule file of the Windows rule folders: (path, id, logsource).
fn windows_rules(corpus: &Path) -> Vec<(PathBuf, String, Logsource)> {
    let sigma = corpus.join("sigma");
    let mut files = Vec::new();
    walk(&sigma.join("rules/windows"), "yml", &mut files);
    walk(
        &sigma.join("rules-threat-hunting/windows"),
        "yml",
        &mut files,
    );
    let mut et = Vec::new();
    walk(&sigma.join("rules-emerging-threats"), "yml", &mut et);
    let mut out = Vec::new();
    for f in files.into_iter().chain(et) {
        let text = std::fs::read_to_string(&f).unwrap();
        let r: LightRule =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let Some(l) = r.logsource else { continue };
        // rules-emerging-threats mixes products; keep the Windows ones.
        if l.product.as_deref() != Some("windows") {
            assert!(
                !f.starts_with(sigma.join("rules/windows")),
                "{} is not a Windows rule",
                f.display()
            );
            if !f.to_string_lossy().contains("/windows/") {
                continue;
            }
        }
        out.push((
            f,
            r.id.unwrap_or_default(),
            Logsource {
                product: l.product,
                category: l.category,
                service: l.service,
            },
        ));
    }
    out
}

#[test]
fn corpus_every_windows_logsource_resolves() {
    let Some(corpus) = crate::test_needs::corpus(WINDOWS_RULES) else {
        return;
    };
    let m = Mapping::builtin();
    let s = schema();
    let base = base_names(&s);
    let rules = windows_rules(&corpus);
    assert!(
        rules.len() >= 2800,
        "only {} Windows rules found",
        rules.len()
    );
    let mut counts: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
    for (_, _, l) in &rules {
        let slot = counts.entry(l.to_string()).or_insert((0, None));
        slot.0 += 1;
        if slot.0 == 1 {
            slot.1 = m
                .bind(&rule(l.clone(), Expr::True), &base)
                .err()
                .map(|e| e.to_string());
        }
    }
    let mut table: Vec<_> = counts.iter().collect();
    table.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    println!("{:<70} {:>6}  status", "logsource", "rules");
    for (l, (n, err)) in &table {
        println!("{l:<70} {n:>6}  {}", err.as_deref().unwrap_or("ok"));
    }
    let failed: Vec<_> = table
        .iter()
        .filter(|(_, (_, e))| e.is_some())
        .map(|(l, (n, _))| format!("{l} ({n})"))
        .collect();
    println!(
        "{} logsources, {} rules; unmapped: {failed:?}",
        table.len(),
        rules.len()
    );
    assert!(failed.is_empty(), "unmapped logsources: {failed:?}");
}

/// Splits a file of one or more concatenated JSON documents.
fn json_docs(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn corpus_regression_events_satisfy_their_logsource() {
    let needs = WINDOWS_RULES.iter().chain(&["sigma/regression_data"]);
    let Some(corpus) = crate::test_needs::corpus(needs) else {
        return;
    };
    let m = Mapping::builtin();
    let s = schema();
    let base = base_names(&s);
    let by_id: HashMap<String, Logsource> = windows_rules(&corpus)
        .into_iter()
        .map(|(_, id, l)| (id, l))
        .collect();

    let mut infos = Vec::new();
    walk(&corpus.join("sigma/regression_data"), "yml", &mut infos);
    #[derive(Deserialize)]
    struct Info {
        rule_metadata: Vec<RuleMeta>,
        #[serde(default)]
        regression_tests_info: Vec<TestInfo>,
    }
    #[derive(Deserialize)]
    struct RuleMeta {
        id: String,
    }
    #[derive(Deserialize)]
    struct TestInfo {
        path: String,
        match_count: Option<usize>,
    }
    let (mut files, mut ok, mut events, mut events_in) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for info_path in infos
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "info.yml"))
    {
        let info: Info =
            serde_saphyr::from_str(&std::fs::read_to_string(info_path).unwrap()).unwrap();
        let id = &info.rule_metadata[0].id;
        if info.regression_tests_info.is_empty() {
            println!(
                "{}: no regression event listed, skipped",
                info_path.display()
            );
            continue;
        }
        let Some(l) = by_id.get(id) else {
            failures.push(format!(
                "{}: rule {id} not among the Windows rules",
                info_path.display()
            ));
            continue;
        };
        for t in &info.regression_tests_info {
            let json = corpus.join("sigma").join(t.path.replace(".evtx", ".json"));
            let Ok(text) = std::fs::read_to_string(&json) else {
                println!(
                    "no event file {} (listed by {})",
                    json.display(),
                    info_path.display()
                );
                continue;
            };
            files += 1;
            let bound = m.bind(&rule(l.clone(), Expr::True), &base).unwrap();
            let paths = path_finder(&s, &bound);
            let docs = json_docs(&text);
            let inside = docs
                .iter()
                .filter(|e| bound.variants.iter().any(|v| eval_when(&v.when, e, &paths)))
                .count();
            events += docs.len();
            events_in += inside;
            let needed = t.match_count.unwrap_or(1).min(docs.len()).max(1);
            if inside >= needed {
                ok += 1;
            } else {
                failures.push(format!(
                    "{} ({l}): {inside} of {} events in the logsource, {needed} needed",
                    json.display(),
                    docs.len()
                ));
            }
        }
    }
    println!(
        "regression files whose events satisfy their logsource: {ok}/{files} ({events_in}/{events} events)"
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(files >= 200, "only {files} regression event files found");
    assert!(failures.is_empty(), "{} failures", failures.len());
}
