//! From alerts to incidents through the real pipeline: the generator's multi-stage campaign (encoded
//! PowerShell → LSASS read → PowerShell remoting → a suspicious service, on one workstation) opens one
//! kill-chain incident holding the first three stages' alerts and updates it — same id — when the fourth
//! arrives; a replay of the same events, cut into other batches, gives the same incidents; every Incident Finding (and every alert)
//! has what its OCSF 1.3 class requires.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ghosthunt::app::{self, Handles};
use ghosthunt::settings::{FileSettings, OutputSettings, Settings, SourceSettings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

fn settings(events: &Path, out: &Path) -> Settings {
    let mut s = common::test_settings();
    s.source = SourceSettings::File(FileSettings {
        paths: vec![events.display().to_string()],
        follow: false,
        poll_interval: Duration::from_millis(100),
        max_open: 64,
    });
    s.alerts = OutputSettings::File(out.join("alerts.jsonl"));
    s.incidents.output = OutputSettings::File(out.join("incidents.jsonl"));
    s.dead_letters = OutputSettings::File(out.join("dead.jsonl"));
    s
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The hunt ids of an incident finding's alerts.
fn hunts_of(finding: &Value) -> BTreeSet<String> {
    finding["finding_info_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["analytic"]["uid"].as_str().unwrap().to_string())
        .collect()
}

/// What a run sent, comparable across runs: (incident id, activity, alert ids) in order.
fn digest(incidents: &[Value]) -> Vec<(String, u64, Vec<String>)> {
    incidents.iter().map(common::incident_digest).collect()
}

#[tokio::test]
async fn a_campaign_on_one_host_is_one_incident_updated_not_repeated_and_a_replay_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let hosts = common::campaign_events(&events, 100);
    assert_eq!(hosts.len(), 1, "one campaign in 100 minutes: {hosts:?}");
    let host = &hosts[0];

    let mut runs = Vec::new();
    // The replay cuts its batches elsewhere: incidents must not depend on it.
    for run in ["first", "replay"] {
        let out = dir.path().join(run);
        std::fs::create_dir(&out).unwrap();
        let handles = Handles::default();
        let mut settings = settings(&events, &out);
        if run == "replay" {
            settings.decode.batch_size = 97;
            settings.decode.adaptive = false;
        }
        let summary = app::run(settings, handles.clone(), CancellationToken::new())
            .await
            .expect("the run finishes");
        let incidents = lines(&out.join("incidents.jsonl"));
        assert_eq!(summary.incidents as usize, incidents.len());
        // Counted where they are sent: one kill-chain creation, its updates.
        let metrics = handles.metrics.render();
        let count = |activity: &str| {
            common::metric(
                &metrics,
                &format!(
                    "ghosthunt_incidents_total{{activity=\"{activity}\",rule=\"kill_chain\"}}"
                ),
            )
        };
        assert_eq!(count("create"), Some(1.0), "{metrics}");
        assert!(count("update").is_some_and(|n| n >= 1.0), "{metrics}");
        assert_eq!(
            common::metric(&metrics, "ghosthunt_incidents_open"),
            Some(0.0)
        );
        runs.push((incidents, lines(&out.join("alerts.jsonl"))));
    }
    let (incidents, alerts) = &runs[0];
    let sorted = |v: &[Value]| {
        let mut d = digest(v);
        d.sort();
        d
    };
    assert_eq!(
        sorted(incidents),
        sorted(&runs[1].0),
        "a replay sends the same incidents"
    );

    let kill_chain: Vec<&Value> = incidents
        .iter()
        .filter(|i| i["unmapped"]["rule_id"] == "kill_chain")
        .collect();
    let ids: BTreeSet<&str> = kill_chain
        .iter()
        .map(|i| i["metadata"]["correlation_uid"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one kill-chain incident: {kill_chain:#?}");
    assert_eq!(kill_chain[0]["unmapped"]["entity"]["value"], host.as_str());
    let created = kill_chain[0];
    assert_eq!(created["activity_id"], 1);
    assert_eq!(created["class_uid"], 2005);
    let first_stages: BTreeSet<String> = [
        "encoded_powershell",
        "lsass_memory_access",
        "ps_remoting_lateral_movement",
    ]
    .map(String::from)
    .into();
    assert!(
        hunts_of(created).is_superset(&first_stages),
        "the incident opens with the first three stages' alerts: {:?}",
        hunts_of(created)
    );
    assert!(!hunts_of(created).contains("suspicious_service_install"));
    assert_eq!(
        created["unmapped"]["result"]["chain"],
        serde_json::json!(["execution", "credential-access", "lateral-movement"])
    );
    let updates: Vec<&&Value> = kill_chain
        .iter()
        .filter(|i| i["activity_id"] == 2)
        .collect();
    assert!(!updates.is_empty(), "the fourth stage updates the incident");
    let last = kill_chain.last().unwrap();
    assert!(hunts_of(last).contains("suspicious_service_install"));
    // An update lists the alerts it adds, nothing the incident already listed.
    for update in &updates {
        assert_eq!(
            update["finding_info_list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| &f["uid"])
                .collect::<Vec<_>>(),
            update["unmapped"]["added_alert_ids"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            "{update:#}"
        );
    }
    assert_eq!(last["type_uid"], 200502);
    // Every alert of the campaign's host in the incident's time is in it.
    let start = created["start_time"].as_i64().unwrap();
    let end = last["end_time"].as_i64().unwrap();
    let host_alerts: BTreeSet<&str> = alerts
        .iter()
        .filter(|a| a["evidences"][0]["data"]["host"] == host.as_str())
        .filter(|a| (start..=end).contains(&a["end_time"].as_i64().unwrap()))
        .map(|a| a["finding_info"]["uid"].as_str().unwrap())
        .collect();
    let in_incident: BTreeSet<&str> = kill_chain
        .iter()
        .flat_map(|f| f["finding_info_list"].as_array().unwrap())
        .map(|f| f["uid"].as_str().unwrap())
        .collect();
    assert!(
        in_incident.is_superset(&host_alerts),
        "{host_alerts:?} not all in {in_incident:?}"
    );
    assert_eq!(last["unmapped"]["alert_count"], in_incident.len());
    // The response steps come ordered by phase, identification first.
    let phases: Vec<&str> = last["unmapped"]["response"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        phases.contains(&"identify") && phases.contains(&"contain"),
        "{phases:?}"
    );
    let remediation = last["remediation"]["desc"].as_str().unwrap();
    assert!(remediation.find("Identify:").unwrap() < remediation.find("Contain:").unwrap());

    let schema = Ocsf::load();
    for incident in incidents {
        assert_eq!(
            schema.violations(incident, "incident_finding"),
            Vec::<String>::new(),
            "{incident:#}"
        );
    }
    for alert in alerts {
        assert_eq!(
            schema.violations(alert, "detection_finding"),
            Vec::<String>::new(),
            "{alert:#}"
        );
    }
}

/// What the OCSF 1.3 schema requires of a class and the objects in it (`fixtures/ocsf`, extracted from
/// the schema by `extract.py`).
struct Ocsf(Value);

impl Ocsf {
    fn load() -> Ocsf {
        let path = common::repo().join("pipeline/tests/fixtures/ocsf/ocsf-1.3.0-findings.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(schema["version"], "1.3.0");
        Ocsf(schema)
    }

    /// Required attributes missing, `at_least_one` constraints unmet and objects where the schema wants
    /// something else, in `doc` and every object inside it; empty when it validates.
    fn violations(&self, doc: &Value, class: &str) -> Vec<String> {
        let spec = &self.0["classes"][class];
        let mut out = Vec::new();
        let uid = spec["uid"].as_u64().unwrap();
        if doc["class_uid"].as_u64() != Some(2000 + uid) {
            out.push(format!(
                "class_uid {} is not {}",
                doc["class_uid"],
                2000 + uid
            ));
        }
        let expected_type =
            doc["class_uid"].as_u64().unwrap_or(0) * 100 + doc["activity_id"].as_u64().unwrap_or(0);
        if doc["type_uid"].as_u64() != Some(expected_type) {
            out.push(format!(
                "type_uid {} is not class_uid × 100 + activity_id",
                doc["type_uid"]
            ));
        }
        self.check(doc, spec, class, &mut out);
        out
    }

    fn check(&self, doc: &Value, spec: &Value, at: &str, out: &mut Vec<String>) {
        let Some(object) = doc.as_object() else {
            out.push(format!("{at}: not an object"));
            return;
        };
        let attributes = spec["attributes"].as_object().unwrap();
        for (name, a) in attributes {
            if a["requirement"] == "required" && object.get(name).is_none_or(Value::is_null) {
                out.push(format!("{at}.{name}: required, missing"));
            }
        }
        if let Some(names) = spec["constraints"]["at_least_one"].as_array()
            && !names.iter().any(|n| {
                object
                    .get(n.as_str().unwrap())
                    .is_some_and(|v| !v.is_null())
            })
        {
            out.push(format!("{at}: needs at least one of {names:?}"));
        }
        for (name, value) in object {
            let Some(a) = attributes.get(name) else {
                continue;
            };
            let Some(kind) = a["object"].as_str() else {
                continue;
            };
            let object_spec = &self.0["objects"][kind];
            let path = format!("{at}.{name}");
            match (a["array"].as_bool().unwrap(), value) {
                (true, Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, object_spec, &format!("{path}[{i}]"), out);
                    }
                }
                (true, _) => out.push(format!("{path}: the schema wants an array")),
                (false, v) => self.check(v, object_spec, &path, out),
            }
        }
    }
}
