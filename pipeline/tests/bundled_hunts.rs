//! Every bundled hunt and incident rule, run through the real pipeline on its sample events (an incident
//! rule's are rows of `alerts`), produces exactly its expected rows.

mod common;

use std::sync::Arc;

use ghosthunt::decode::EventSchema;
use ghosthunt::query::load;
use ghosthunt::testing;

#[tokio::test]
async fn every_bundled_hunt_produces_exactly_its_expected_rows() {
    let settings = common::test_settings();
    let mut failures = Vec::new();
    for (folder, at_least) in [("sql/hunts", 8), ("sql/incidents", 3)] {
        let dir = common::repo().join(folder);
        let files = load::hunt_files(&dir).unwrap();
        assert!(
            files.len() >= at_least,
            "at least {at_least} in {folder}, found {}",
            files.len()
        );
        failures.extend(run_all(&dir, files, &settings).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs the tests of `files` (in `dir`); the failures.
async fn run_all(
    dir: &std::path::Path,
    files: Vec<std::path::PathBuf>,
    settings: &ghosthunt::settings::Settings,
) -> Vec<String> {
    let mut failures = Vec::new();
    for path in files {
        let hunt = load::read_hunt(&path).unwrap();
        let id = hunt.id.clone();
        let Some(tests) = testing::test_dir(dir, &id) else {
            failures.push(format!("{id}: no sql/tests/{id}/events.jsonl"));
            continue;
        };
        let result =
            testing::run_test(hunt, &tests, Arc::new(EventSchema::windows()), settings).await;
        if !result.passed() {
            failures.push(format!("{id}: {result:#?}"));
        }
        assert!(
            result.produced > 0,
            "{id}: a fixture must show the hunt firing"
        );
    }
    failures
}

#[tokio::test]
async fn bundled_hunts_are_the_builtin_set() {
    let dir = common::repo().join("sql/hunts");
    let on_disk: Vec<String> = load::hunt_files(&dir)
        .unwrap()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let builtin = load::builtin();
    assert!(builtin.errors.is_empty(), "{:?}", builtin.errors);
    assert_eq!(builtin.hunts.keys().cloned().collect::<Vec<_>>(), on_disk);
}

#[tokio::test]
async fn bundled_hunts_give_the_same_rows_with_tiny_batches() {
    // Windows and per-batch hunts must not depend on where micro-batches are cut.
    let mut settings = common::test_settings();
    settings.decode.batch_size = 3;
    for folder in ["sql/hunts", "sql/incidents"] {
        let dir = common::repo().join(folder);
        for path in load::hunt_files(&dir).unwrap() {
            let hunt = load::read_hunt(&path).unwrap();
            let id = hunt.id.clone();
            let tests = testing::test_dir(&dir, &id).unwrap();
            let result =
                testing::run_test(hunt, &tests, Arc::new(EventSchema::windows()), &settings).await;
            assert!(result.passed(), "{id} with batches of 3: {result:#?}");
        }
    }
}

/// A hunt that fails at run time on its samples fails its test, even when no row was expected: its
/// alerts for those rows are lost in a live run.
#[tokio::test]
async fn a_hunt_failing_on_its_samples_fails_its_test_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (hunts, tests) = (dir.path().join("hunts"), dir.path().join("tests/casts"));
    std::fs::create_dir_all(&hunts).unwrap();
    std::fs::create_dir_all(&tests).unwrap();
    std::fs::write(
        hunts.join("casts.sql"),
        common::hunt(
            "casts",
            "none",
            "",
            "SELECT host FROM events WHERE CAST(command_line AS INT) > 3",
        ),
    )
    .unwrap();
    std::fs::write(
        tests.join("events.jsonl"),
        "{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"EventID\":1,\"CommandLine\":\"whoami\",\"Hostname\":\"h\"}\n",
    )
    .unwrap();
    std::fs::write(tests.join("expected.jsonl"), "").unwrap();
    let hunt = load::read_hunt(&hunts.join("casts.sql")).unwrap();
    let result = testing::run_test(
        hunt,
        &tests,
        Arc::new(EventSchema::windows()),
        &common::test_settings(),
    )
    .await;
    assert!(!result.passed(), "{result:#?}");
    let error = result.error.expect("the failure").to_string();
    assert!(error.contains("Cannot cast string 'whoami'"), "{error}");
}
