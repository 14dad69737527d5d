//! Hot reload through the real pipeline (issue #10): `ghosthunt run` following a JSON-lines file while the
//! test edits the hunt and Sigma directories. A new hunt fires without a restart; a broken file is refused
//! and the running set goes on; a windowed hunt edited mid-window does not disturb the others' windows; a
//! new Sigma rule reading a new field is picked up (the decoder switches schema between two batches); a rule
//! for another platform added beside it does not hold the reload back, an edit that would stop a running
//! rule does.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ghosthunt::app::{self, Handles};
use ghosthunt::settings::{FileSettings, OutputSettings, Settings, SourceSettings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use common::{event, hunt};

/// A pipeline following `events.jsonl` in a temporary folder, hunts from `hunts/` (and Sigma rules from
/// `sigma/` when asked), alerts to `alerts.jsonl`.
struct Live {
    dir: tempfile::TempDir,
    handles: Handles,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<ghosthunt::pipeline::Summary, app::AppError>>,
}

impl Live {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(hunts: &[(&str, String)], sigma: &[(&str, &str)]) -> Live {
        common::init_logs();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hunts")).unwrap();
        for (id, text) in hunts {
            write(&dir.path().join("hunts").join(format!("{id}.sql")), text);
        }
        std::fs::write(dir.path().join("events.jsonl"), "").unwrap();
        let mut settings: Settings = common::test_settings();
        settings.hunts.builtin = false;
        settings.hunts.directories = vec![dir.path().join("hunts")];
        if !sigma.is_empty() {
            std::fs::create_dir(dir.path().join("sigma")).unwrap();
            for (name, text) in sigma {
                write(&dir.path().join("sigma").join(name), text);
            }
            settings.sigma.directories = vec![dir.path().join("sigma")];
        }
        settings.source = SourceSettings::File(FileSettings {
            paths: vec![dir.path().join("events.jsonl").display().to_string()],
            follow: true,
            poll_interval: Duration::from_millis(20),
            max_open: 64,
        });
        settings.alerts = OutputSettings::File(dir.path().join("alerts.jsonl"));
        settings.dead_letters = OutputSettings::File(dir.path().join("dead.jsonl"));
        let handles = Handles::default();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app::run(settings, handles.clone(), shutdown.clone()));
        Live {
            dir,
            handles,
            shutdown,
            task,
        }
    }

    fn append(&self, lines: &[String]) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("events.jsonl"))
            .unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
    }

    /// Every alert document written so far.
    fn alerts(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("alerts.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn alerts_of(&self, hunt: &str) -> Vec<Value> {
        self.alerts()
            .into_iter()
            .filter(|a| a["finding_info"]["analytic"]["uid"] == hunt)
            .collect()
    }

    async fn wait_for(&self, what: &str, done: impl Fn(&Live) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; alerts so far: {:#?}",
                self.alerts()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn reloads(&self, result: &str) -> u64 {
        self.handles
            .metrics
            .reloads
            .with_label_values(&[result])
            .get()
    }

    async fn stop(mut self) -> (Vec<Value>, ghosthunt::pipeline::Summary) {
        self.shutdown.cancel();
        let summary = (&mut self.task)
            .await
            .unwrap()
            .expect("the pipeline drains");
        (self.alerts(), summary)
    }
}

fn write(path: &Path, text: &str) {
    // Write then rename: the watcher sees one complete file, as with an editor's atomic save.
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn on_event(id: &str, event_id: u32) -> String {
    hunt(
        id,
        "none",
        "",
        &format!("SELECT event_time, host, event_id FROM events WHERE event_id = {event_id}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_hunt_fires_and_a_broken_file_leaves_the_running_set_alone() {
    let live = Live::start(&[("failed_logon", on_event("failed_logon", 4625))], &[]);
    live.append(&[event("2026-11-30T10:00:00Z", 4625, &[])]);
    live.wait_for("the first alert", |l| {
        l.alerts_of("failed_logon").len() == 1
    })
    .await;

    // A new hunt file while events flow: the next matching event alerts, without a restart.
    write(&live.path("hunts/logon.sql"), &on_event("logon", 4624));
    live.wait_for("the reload", |l| l.reloads("ok") == 1).await;
    live.append(&[event("2026-11-30T10:00:01Z", 4624, &[])]);
    live.wait_for("the new hunt's alert", |l| l.alerts_of("logon").len() == 1)
        .await;
    assert_eq!(
        live.handles.metrics.hunts_loaded.get(),
        2,
        "ghosthunt_hunts_loaded counts the new hunt"
    );

    // A broken file: the reload is refused, counted, and both hunts keep alerting.
    write(
        &live.path("hunts/broken.sql"),
        &hunt("broken", "none", "", "SELECT no_such_column FROM events"),
    );
    live.wait_for("the refused reload", |l| l.reloads("failed") == 1)
        .await;
    live.append(&[
        event("2026-11-30T10:00:02Z", 4625, &[]),
        event("2026-11-30T10:00:03Z", 4624, &[]),
    ]);
    live.wait_for("both hunts alerting again", |l| {
        l.alerts_of("failed_logon").len() == 2 && l.alerts_of("logon").len() == 2
    })
    .await;
    assert_eq!(live.handles.metrics.hunts_loaded.get(), 2);
    assert_eq!(live.reloads("ok"), 1, "the broken file did not take over");
    assert!(live.handles.health.get().0, "/healthz stays ok");

    // Once the broken file is gone, a reload finds the running set again (`unchanged`); SIGHUP reloads
    // too, without any file changing.
    std::fs::remove_file(live.path("hunts/broken.sql")).unwrap();
    live.wait_for("the reload after the fix", |l| {
        l.reloads("unchanged") + l.reloads("ok") >= 2
    })
    .await;
    let before = live.reloads("unchanged");
    // SIGHUP to this process, for which the reload task has a handler.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    live.wait_for("the SIGHUP reload", |l| {
        l.reloads("unchanged") == before + 1
    })
    .await;
    let (alerts, summary) = live.stop().await;
    assert_eq!(alerts.len(), 4, "{alerts:#?}");
    assert!(summary.disabled.is_empty());
}

/// Alert ids of the windowed hunt `keep` when `edit` is (or is not) edited in the middle of the window.
async fn windowed_run(edit_mid_window: bool) -> (BTreeSet<String>, Vec<Value>) {
    let count_at_least = |id: &str, n: u32| {
        hunt(
            id,
            "tumbling 1m",
            "",
            &format!(
                "SELECT window_start, window_end, host, count(*) AS n FROM events \
                 WHERE event_id = 4625 GROUP BY window_start, window_end, host HAVING count(*) >= {n}"
            ),
        )
    };
    let live = Live::start(
        &[
            ("keep", count_at_least("keep", 2)),
            ("edit", count_at_least("edit", 5)),
        ],
        &[],
    );
    live.append(&[
        event("2026-11-30T10:00:01Z", 4625, &[]),
        event("2026-11-30T10:00:02Z", 4625, &[]),
        event("2026-11-30T10:00:03Z", 4625, &[]),
    ]);
    // Let the three rows land in the windows before anything changes.
    live.wait_for("the rows in the windows", |l| {
        l.handles
            .metrics
            .window_rows
            .with_label_values(&["keep"])
            .get()
            == 3
    })
    .await;
    if edit_mid_window {
        write(&live.path("hunts/edit.sql"), &count_at_least("edit", 2));
        live.wait_for("the reload", |l| l.reloads("ok") == 1).await;
    }
    live.append(&[
        event("2026-11-30T10:00:04Z", 4625, &[]),
        // Past the window: the watermark closes [10:00, 10:01).
        event("2026-11-30T10:02:00Z", 4624, &[]),
    ]);
    live.wait_for("the window to close", |l| !l.alerts_of("keep").is_empty())
        .await;
    let (alerts, _) = live.stop().await;
    let keep: Vec<Value> = alerts
        .iter()
        .filter(|a| a["finding_info"]["analytic"]["uid"] == "keep")
        .cloned()
        .collect();
    let ids = keep
        .iter()
        .map(|a| a["finding_info"]["uid"].as_str().unwrap().to_string())
        .collect();
    let edited: Vec<Value> = alerts
        .into_iter()
        .filter(|a| a["finding_info"]["analytic"]["uid"] == "edit")
        .collect();
    assert_eq!(keep.len(), 1, "one alert for the one window: {keep:#?}");
    assert_eq!(
        keep[0]["evidences"][0]["data"]["n"], 4,
        "every row counted once"
    );
    (ids, edited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_windowed_hunt_mid_window_keeps_the_other_hunts_windows() {
    let (without_reload, edit_untouched) = windowed_run(false).await;
    let (with_reload, edit_changed) = windowed_run(true).await;
    assert_eq!(
        without_reload, with_reload,
        "the unchanged hunt's alerts are the same, with the same ids, whether or not another hunt was \
         edited mid-window"
    );
    assert!(edit_untouched.is_empty(), "4 < 5: {edit_untouched:#?}");
    // The edited hunt starts empty at the reload: it counts the one row after it, below its new threshold
    // of 2; the old version is drained at the reload with 3 rows (< 5) and alerts nothing.
    assert!(edit_changed.is_empty(), "{edit_changed:#?}");
}

const RULE_4625: &str = "title: Failed logon (test)
id: 6a3f0c2e-1f7b-4f43-9a51-5b0c7f0e0001
status: test
logsource:
  product: windows
  service: security
detection:
  selection:
    EventID: 4625
  condition: selection
level: high
";

/// Reads a field that no built-in column or loaded rule reads: the schema grows by a column.
const RULE_NEEDLE: &str = "title: Needle in a custom field (test)
id: 6a3f0c2e-1f7b-4f43-9a51-5b0c7f0e0002
status: test
logsource:
  product: windows
  service: security
detection:
  selection:
    HuntingNeedle|contains: haystack-needle
  condition: selection
level: high
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sigma_rule_reading_a_new_field_is_picked_up() {
    let live = Live::start(
        &[("failed_logon", on_event("failed_logon", 4625))],
        &[("failed.yml", RULE_4625)],
    );
    live.append(&[event("2026-11-30T10:00:00Z", 4625, &[])]);
    let rule_4625 = "6a3f0c2e-1f7b-4f43-9a51-5b0c7f0e0001";
    let needle = "6a3f0c2e-1f7b-4f43-9a51-5b0c7f0e0002";
    live.wait_for("the SQL and the Sigma alert", |l| {
        l.alerts_of("failed_logon").len() == 1 && l.alerts_of(rule_4625).len() == 1
    })
    .await;
    // Before the rule exists, its field is in no column: an event carrying it finds nothing.
    live.append(&[event(
        "2026-11-30T10:00:01Z",
        4624,
        &[("HuntingNeedle", "a haystack-needle here")],
    )]);
    write(&live.path("sigma/needle.yml"), RULE_NEEDLE);
    live.wait_for("the reload", |l| l.reloads("ok") == 1).await;
    live.append(&[
        event(
            "2026-11-30T10:00:02Z",
            4624,
            &[("HuntingNeedle", "another haystack-needle")],
        ),
        event("2026-11-30T10:00:03Z", 4625, &[]),
    ]);
    live.wait_for("the new rule's alert", |l| l.alerts_of(needle).len() == 1)
        .await;
    live.wait_for("the running hunts still alerting", |l| {
        l.alerts_of("failed_logon").len() == 2 && l.alerts_of(rule_4625).len() == 2
    })
    .await;
    let (alerts, _) = live.stop().await;
    let found = alerts
        .iter()
        .find(|a| a["finding_info"]["analytic"]["uid"] == needle)
        .unwrap();
    let evidence = found["evidences"][0]["data"].as_object().unwrap();
    assert!(
        evidence
            .values()
            .any(|v| v.as_str() == Some("another haystack-needle")),
        "the new column is decoded after the reload: {evidence:?}"
    );
}

/// A web server rule: valid Sigma whose logsource the Windows mapping does not have.
const RULE_WEB: &str = "title: Command in a URL (test)
id: 6a3f0c2e-1f7b-4f43-9a51-5b0c7f0e0003
status: test
logsource:
  category: webserver
detection:
  selection:
    cs-uri-query|contains: cmd.exe
  condition: selection
level: high
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_for_another_platform_do_not_hold_a_reload_back_but_a_running_rule_that_would_stop_does()
 {
    let live = Live::start(
        &[("failed_logon", on_event("failed_logon", 4625))],
        &[("failed.yml", RULE_4625)],
    );
    let rule_4625 = "6a3f0c2e-1f7b-4f43-9a51-5b0c7f0e0001";
    let needle = "6a3f0c2e-1f7b-4f43-9a51-5b0c7f0e0002";
    live.append(&[event("2026-11-30T10:00:00Z", 4625, &[])]);
    live.wait_for("the Sigma alert", |l| l.alerts_of(rule_4625).len() == 1)
        .await;
    // A rule repository pulled: a web server rule beside a new Windows rule. The web rule is left out
    // (as it would be at start); the Windows rule runs.
    write(&live.path("sigma/web.yml"), RULE_WEB);
    write(&live.path("sigma/needle.yml"), RULE_NEEDLE);
    live.wait_for("the reload", |l| {
        l.reloads("ok") >= 1 && l.reloads("failed") == 0
    })
    .await;
    live.append(&[event(
        "2026-11-30T10:00:01Z",
        4624,
        &[("HuntingNeedle", "a haystack-needle")],
    )]);
    live.wait_for("the new Windows rule's alert", |l| {
        l.alerts_of(needle).len() == 1
    })
    .await;
    assert_eq!(
        live.reloads("failed"),
        0,
        "the web rule held the reload back"
    );
    // The running 4625 rule edited to a logsource the mapping does not have: it would stop running, so
    // the reload is refused and it goes on.
    write(
        &live.path("sigma/failed.yml"),
        &RULE_4625.replace(
            "  product: windows\n  service: security\n",
            "  category: webserver\n",
        ),
    );
    live.wait_for("the refused reload", |l| l.reloads("failed") == 1)
        .await;
    live.append(&[event("2026-11-30T10:00:02Z", 4625, &[])]);
    live.wait_for("the running rule still alerting", |l| {
        l.alerts_of(rule_4625).len() == 2
    })
    .await;
    live.stop().await;
}
