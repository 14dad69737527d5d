//! Every bundled hunt, run through the real pipeline on its sample events, produces exactly its expected rows.

mod common;

use std::sync::Arc;

use ghosthunt::decode::EventSchema;
use ghosthunt::query::load;
use ghosthunt::testing;

#[tokio::test]
async fn every_bundled_hunt_produces_exactly_its_expected_rows() {
    let dir = common::repo().join("sql/hunts");
    let files = load::hunt_files(&dir).unwrap();
    assert!(
        files.len() >= 8,
        "at least 8 bundled hunts, found {}",
        files.len()
    );
    let settings = common::test_settings();
    let mut failures = Vec::new();
    for path in files {
        let hunt = load::read_hunt(&path).unwrap();
        let id = hunt.id.clone();
        let Some(tests) = testing::test_dir(&dir, &id) else {
            failures.push(format!("{id}: no sql/tests/{id}/events.jsonl"));
            continue;
        };
        let result =
            testing::run_test(hunt, &tests, Arc::new(EventSchema::windows()), &settings).await;
        if !result.passed() {
            failures.push(format!("{id}: {result:#?}"));
        }
        assert!(
            result.produced > 0,
            "{id}: a fixture must show the hunt firing"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
    let dir = common::repo().join("sql/hunts");
    let mut settings = common::test_settings();
    settings.decode.batch_size = 3;
    for path in load::hunt_files(&dir).unwrap() {
        let hunt = load::read_hunt(&path).unwrap();
        let id = hunt.id.clone();
        let tests = testing::test_dir(&dir, &id).unwrap();
        let result =
            testing::run_test(hunt, &tests, Arc::new(EventSchema::windows()), &settings).await;
        assert!(result.passed(), "{id} with batches of 3: {result:#?}");
    }
}
