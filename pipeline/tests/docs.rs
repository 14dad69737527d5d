//! The README stays true: every event column and every metric is documented, and so is every hunt.

mod common;

use ghosthunt::decode::EventSchema;
use ghosthunt::telemetry::metrics::names;

fn readme() -> String {
    std::fs::read_to_string(common::repo().join("README.md")).unwrap()
}

#[test]
fn readme_documents_every_event_column() {
    let text = readme();
    for column in &EventSchema::windows().columns {
        assert!(
            text.contains(&format!("| `{}` |", column.name)),
            "README lacks column {}",
            column.name
        );
    }
}

#[test]
fn readme_documents_every_metric() {
    let text = readme();
    for name in names::ALL {
        assert!(
            text.contains(&format!("| `{name}` |")),
            "README lacks metric {name}"
        );
    }
}

#[test]
fn readme_names_every_bundled_hunt() {
    let text = readme();
    for id in ghosthunt::query::load::builtin().hunts.keys() {
        assert!(text.contains(&format!("`{id}`")), "README lacks hunt {id}");
    }
}
