//! The README stays true: every event column, metric, hunt, dashboard panel and alert rule is documented.

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

#[test]
fn readme_lists_every_dashboard_panel_and_alert() {
    let text = readme();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("dashboards/ghosthunt.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            let title = panel["title"].as_str().unwrap();
            assert!(
                text.contains(&format!("| {title} |")),
                "README lacks panel {title}"
            );
        }
    }
    for (alert, _) in common::stack::alert_rules(&common::stack::yaml("dashboards/alerts.yml")) {
        assert!(
            text.contains(&format!("| `{alert}` |")),
            "README lacks alert {alert}"
        );
    }
}
