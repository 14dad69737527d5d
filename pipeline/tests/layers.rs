//! The crate's layers point one way: no top-level module of `pipeline/src` imports one that imports it
//! back, directly or around a loop (issue #10). A module that needs a type of a module above it means the
//! type belongs lower down (as `hunt` holds the hunt model every stage uses).
//!
//! The graph is read from the source text: every `crate::<module>` path in a file counts as an import of
//! that top-level module by the file's top-level module. Test code does not count: files that are only
//! compiled for tests (`tests.rs`, `*_tests.rs`, files under a `tests/` folder) and everything after a
//! `#[cfg(test)]` in a file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn test_only(relative: &Path) -> bool {
    let name = relative.file_stem().unwrap().to_string_lossy();
    name == "tests"
        || name.ends_with("_tests")
        || relative.components().any(|c| c.as_os_str() == "tests")
}

/// Top-level module → the top-level modules it imports.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top_module(src, f))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(src).unwrap();
        let from = top_module(src, file);
        if from == "lib" || from == "main" || test_only(relative) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != from && modules.contains(&name) {
                graph.entry(from.clone()).or_default().insert(name);
            }
        }
        graph.entry(from).or_default();
    }
    graph
}

fn top_module(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// Every module from which `to` can be reached, with the path (for the message).
fn path_between(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in graph.get(last).into_iter().flatten() {
            if next == to {
                let mut found = path.clone();
                found.push(next.clone());
                return Some(found);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (module, imports) in graph {
        for import in imports {
            if let Some(back) = path_between(graph, import, module) {
                found.push(format!("{module} -> {}", back.join(" -> ")));
            }
        }
    }
    found
}

#[test]
fn top_level_modules_import_each_other_in_one_direction_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    assert!(
        graph.len() >= 10,
        "the crate's modules were not found: {graph:?}"
    );
    let loops = cycles(&graph);
    assert!(
        loops.is_empty(),
        "top-level modules that import each other (move the shared type down):\n{}",
        loops.join("\n")
    );
}

#[test]
fn the_hunt_model_is_at_the_bottom() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    assert_eq!(
        graph.get("hunt"),
        Some(&BTreeSet::new()),
        "hunt.rs imports nothing of the crate"
    );
}

#[test]
fn a_loop_is_found() {
    // The check itself: a two-module loop and a three-module loop are reported, a chain is not.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["a"]),
        ("c", vec!["d"]),
        ("d", vec!["e"]),
        ("e", vec!["c"]),
        ("f", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let loops = cycles(&graph);
    assert!(loops.contains(&"a -> b -> a".to_string()), "{loops:?}");
    assert!(
        loops.iter().any(|l| l.starts_with("c -> d -> e -> c")),
        "{loops:?}"
    );
    assert!(!loops.iter().any(|l| l.starts_with("f ")), "{loops:?}");
}
