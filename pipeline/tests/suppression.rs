//! Alert suppression through the real pipeline (issue #10): a hunt with `suppress: 1h` alerts once per
//! host and period; the alert is updated with the count it stands for; replays give the same ids.

mod common;

use std::collections::BTreeSet;

use common::{Run, Step, event, hunt, plan_hunts, run_script, test_settings};
use serde_json::Value;

const SQL: &str = "SELECT event_time, host, target_user_name FROM events WHERE event_id = 4625";

/// `n` failed logons on `host`, 6 s apart from 10:00:00 (100 of them span 9 min 54 s).
fn burst(host: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let t = format!("2026-11-30T10:{:02}:{:02}Z", i * 6 / 60, i * 6 % 60);
            event(&t, 4625, &[("Hostname", host), ("TargetUserName", "alice")])
        })
        .collect()
}

async fn run(lines: Vec<String>) -> Run {
    let text = hunt("spray", "none", "entity: host\nsuppress: 1h\n", SQL);
    let hunts = plan_hunts(&[("spray", &text)]).await;
    run_script(test_settings(), hunts, vec![Step::Lines("a", lines)]).await
}

fn documents(run: &Run) -> Vec<Value> {
    run.alerts
        .iter()
        .map(|a| serde_json::from_str(&a.json).unwrap())
        .collect()
}

/// (finding uid, activity, count) of every document.
fn findings(run: &Run) -> BTreeSet<(String, i64, i64)> {
    documents(run)
        .iter()
        .map(|d| {
            (
                d["finding_info"]["uid"].as_str().unwrap().to_string(),
                d["activity_id"].as_i64().unwrap(),
                d["count"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_burst_for_one_host_is_one_alert_standing_for_all_of_it() {
    let run = run(burst("WS-0001", 100)).await;
    let docs = documents(&run);
    let uids: BTreeSet<&str> = docs
        .iter()
        .map(|d| d["finding_info"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), 1, "one finding: {docs:#?}");
    assert_eq!(
        docs.len(),
        2,
        "created at the first event, updated when the period ended"
    );
    assert_eq!(docs[0]["activity_name"], "Create");
    assert_eq!(
        docs[0]["evidences"][0]["data"]["event_time"],
        "2026-11-30T10:00:00Z"
    );
    assert_eq!(docs[1]["activity_name"], "Update");
    assert_eq!(docs[1]["count"], 100);
    assert_eq!(docs[1]["unmapped"]["suppression"]["period"], "1h");
    assert_eq!(
        docs[1]["unmapped"]["suppression"]["last_event_time"],
        "2026-11-30T10:09:54Z"
    );
    assert_eq!(
        run.metrics
            .alerts_suppressed
            .with_label_values(&["spray"])
            .get(),
        99
    );
}

#[tokio::test]
async fn two_hosts_are_two_alerts() {
    let mut lines = burst("WS-0001", 50);
    lines.extend(burst("WS-0002", 50));
    let run = run(lines).await;
    let created: Vec<Value> = documents(&run)
        .into_iter()
        .filter(|d| d["activity_id"] == 1)
        .collect();
    assert_eq!(created.len(), 2, "{created:#?}");
    let counts: Vec<i64> = documents(&run)
        .iter()
        .filter(|d| d["activity_id"] == 2)
        .map(|d| d["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![50, 50]);
}

#[tokio::test]
async fn a_replay_gives_the_same_alerts() {
    let mut lines = burst("WS-0001", 30);
    lines.extend(burst("WS-0002", 20));
    let first = findings(&run(lines.clone()).await);
    let again = findings(&run(lines).await);
    assert_eq!(first.len(), 4);
    assert_eq!(first, again);
}

#[tokio::test]
async fn a_later_burst_after_the_period_is_a_new_alert() {
    let mut lines = burst("WS-0001", 10);
    // Two hours later: the first period (one hour from 10:00:00) has ended.
    lines.extend((0..5).map(|i| {
        event(
            &format!("2026-11-30T12:00:{:02}Z", i),
            4625,
            &[("Hostname", "WS-0001"), ("TargetUserName", "alice")],
        )
    }));
    let run = run(lines).await;
    let f = findings(&run);
    let created = f.iter().filter(|(_, activity, _)| *activity == 1).count();
    let counts: BTreeSet<i64> = f
        .iter()
        .filter(|(_, activity, _)| *activity == 2)
        .map(|(_, _, count)| *count)
        .collect();
    assert_eq!(created, 2, "{f:#?}");
    assert_eq!(counts, BTreeSet::from([10, 5]));
}

#[tokio::test]
async fn suppression_by_an_unknown_column_is_refused_at_planning() {
    let text = hunt(
        "spray",
        "none",
        "entity: host\nsuppress:\n  for: 1h\n  by: [no_such_column]\n",
        SQL,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spray.sql"), text).unwrap();
    let loaded = ghosthunt::query::load::load(false, &[dir.path().to_path_buf()]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let (planned, errors) = ghosthunt::query::plan_all(
        loaded.hunts.into_values(),
        &ghosthunt::decode::EventSchema::windows(),
    )
    .await;
    assert!(planned.is_empty());
    assert!(
        errors[0]
            .to_string()
            .contains("suppress by `no_such_column`"),
        "{errors:?}"
    );
}
