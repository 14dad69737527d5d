//! Event-time windows through the real pipeline: boundaries, watermark and allowed lateness, late records,
//! event time going on at the wall clock's pace while a stream is quiet, and acknowledgements held back
//! by open windows.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Step, event, hunt, plan_hunts, run_script, test_settings};
use ghosthunt::decode::DeadLetterReason;
use serde_json::{Value, json};

const COUNT_SQL: &str = "SELECT window_start, window_end, count(*) AS n FROM events WHERE event_id = 4625 GROUP BY window_start, window_end";

fn failures(times: &[&str]) -> Vec<String> {
    times
        .iter()
        .map(|t| event(t, 4625, &[("TargetUserName", "alice")]))
        .collect()
}

/// Rows in window order.
fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|r| {
        (
            r["window_start"].as_str().unwrap_or_default().to_string(),
            r.to_string(),
        )
    });
    rows
}

/// Lets the batcher cut a batch here (lateness is judged per batch).
fn pause() -> Step {
    Step::Sleep(Duration::from_millis(80))
}

#[tokio::test]
async fn tumbling_windows_split_exactly_at_their_boundary() {
    let hunts = plan_hunts(&[("t", &hunt("t", "tumbling 1m", "", COUNT_SQL))]).await;
    let lines = failures(&[
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00:59.999Z",
        "2024-05-01T10:01:00Z",
        "2024-05-01T10:01:30Z",
        "2024-05-01T10:01:59.999999999Z",
        "2024-05-01T10:02:00Z",
    ]);
    let run = run_script(test_settings(), hunts, vec![Step::Lines("a", lines)]).await;
    assert_eq!(
        sorted(run.rows()),
        vec![
            json!({"window_start": "2024-05-01T10:00:00Z", "window_end": "2024-05-01T10:01:00Z", "n": 2}),
            json!({"window_start": "2024-05-01T10:01:00Z", "window_end": "2024-05-01T10:02:00Z", "n": 3}),
            json!({"window_start": "2024-05-01T10:02:00Z", "window_end": "2024-05-01T10:03:00Z", "n": 1}),
        ]
    );
}

/// A hunt that reads no event column (every event counted per window) keeps its rows as a count; it
/// failed on every batch ("must either specify a row count or at least one column") before.
#[tokio::test]
async fn a_windowed_hunt_that_reads_no_event_column_counts_every_row() {
    let sql = "SELECT window_start, count(*) AS n FROM events GROUP BY window_start";
    let hunts = plan_hunts(&[("t", &hunt("t", "tumbling 1m", "", sql))]).await;
    let mut lines = failures(&["2024-05-01T10:00:00Z", "2024-05-01T10:00:30Z"]);
    lines.push(event("2024-05-01T10:01:10Z", 4688, &[]));
    let run = run_script(test_settings(), hunts, vec![Step::Lines("a", lines)]).await;
    assert_eq!(run.summary.dead_letters, 0);
    assert_eq!(
        sorted(run.rows()),
        vec![
            json!({"window_start": "2024-05-01T10:00:00Z", "n": 2}),
            json!({"window_start": "2024-05-01T10:01:00Z", "n": 1}),
        ]
    );
}

#[tokio::test]
async fn hopping_windows_count_a_row_in_every_window_that_covers_it() {
    let hunts = plan_hunts(&[("h", &hunt("h", "hopping 2m every 1m", "", COUNT_SQL))]).await;
    let lines = failures(&[
        "2024-05-01T10:00:30Z",
        "2024-05-01T10:01:00Z",
        "2024-05-01T10:02:59Z",
    ]);
    let run = run_script(test_settings(), hunts, vec![Step::Lines("a", lines)]).await;
    assert_eq!(
        sorted(run.rows()),
        vec![
            json!({"window_start": "2024-05-01T09:59:00Z", "window_end": "2024-05-01T10:01:00Z", "n": 1}),
            json!({"window_start": "2024-05-01T10:00:00Z", "window_end": "2024-05-01T10:02:00Z", "n": 2}),
            json!({"window_start": "2024-05-01T10:01:00Z", "window_end": "2024-05-01T10:03:00Z", "n": 2}),
            json!({"window_start": "2024-05-01T10:02:00Z", "window_end": "2024-05-01T10:04:00Z", "n": 1}),
        ]
    );
}

#[tokio::test]
async fn window_closes_on_the_watermark_not_at_the_end_of_input() {
    // A 1-minute window must be evaluated once a later event moves the watermark past its end, while the
    // source is still open: the alert is acknowledged before the source finishes.
    let hunts = plan_hunts(&[("t", &hunt("t", "tumbling 1m", "", COUNT_SQL))]).await;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let source = common::ScriptedSource {
        steps: vec![
            Step::Lines("a", failures(&["2024-05-01T10:00:10Z"])),
            Step::Sleep(Duration::from_millis(100)),
            Step::Lines("a", failures(&["2024-05-01T10:01:10Z"])),
        ],
        acknowledged: Arc::clone(&acknowledged),
        linger: true,
    };
    let running = common::spawn_pipeline(test_settings(), hunts, Box::new(source));
    assert_eq!(
        running.wait_for_alerts(1).await,
        1,
        "the first window closed while the stream was still open"
    );
    // Line 1 is acknowledged (its window is done); line 2 is held by the open window.
    assert_eq!(
        acknowledged.lock().unwrap().clone(),
        vec![("a".to_string(), 1)]
    );
    let alerts = running.alerts.clone();
    running.stop().await;
    assert_eq!(
        alerts.snapshot().len(),
        2,
        "the second window closes on shutdown"
    );
    assert_eq!(
        acknowledged.lock().unwrap().last(),
        Some(&("a".to_string(), 2))
    );
}

#[tokio::test]
async fn allowed_lateness_admits_a_late_row_and_a_later_one_is_dead_lettered() {
    let hunts = plan_hunts(&[(
        "t",
        &hunt("t", "tumbling 1m", "allowed_lateness: 10s\n", COUNT_SQL),
    )])
    .await;
    let run = run_script(
        test_settings(),
        hunts,
        vec![
            Step::Lines(
                "a",
                failures(&["2024-05-01T10:00:10Z", "2024-05-01T10:01:05Z"]),
            ),
            pause(),
            // 10:01:05 - 10s = 10:00:55: the first window is still open, this row counts in it.
            Step::Lines("a", failures(&["2024-05-01T10:00:50Z"])),
            pause(),
            // 10:01:20 - 10s = 10:01:10: the first window closes.
            Step::Lines("a", failures(&["2024-05-01T10:01:20Z"])),
            pause(),
            // Too late now: dead-lettered, counted, not silently dropped.
            Step::Lines("a", failures(&["2024-05-01T10:00:59Z"])),
        ],
    )
    .await;
    assert_eq!(
        sorted(run.rows()),
        vec![
            json!({"window_start": "2024-05-01T10:00:00Z", "window_end": "2024-05-01T10:01:00Z", "n": 2}),
            json!({"window_start": "2024-05-01T10:01:00Z", "window_end": "2024-05-01T10:02:00Z", "n": 2}),
        ]
    );
    assert_eq!(run.dead_letters.len(), 1);
    let late = &run.dead_letters[0];
    assert_eq!(late.reason, DeadLetterReason::Late);
    assert_eq!((late.input.name.as_str(), late.offset), ("a", 5));
    assert!(late.detail.contains("t"), "{}", late.detail);
    assert!(String::from_utf8_lossy(&late.bytes).contains("10:00:59"));
    let text = run.metrics.render();
    assert_eq!(
        common::metric(&text, r#"ghosthunt_late_records_total{hunt="t"}"#),
        Some(1.0)
    );
    assert_eq!(
        common::metric(&text, r#"ghosthunt_dead_letters_total{reason="late"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn rows_a_hunt_filters_out_are_never_late() {
    // A late event that the hunt would not keep is not its concern: no dead letter.
    let hunts = plan_hunts(&[("t", &hunt("t", "tumbling 1m", "", COUNT_SQL))]).await;
    let run = run_script(
        test_settings(),
        hunts,
        vec![
            Step::Lines(
                "a",
                failures(&["2024-05-01T10:00:10Z", "2024-05-01T10:05:00Z"]),
            ),
            pause(),
            Step::Lines("a", vec![event("2024-05-01T10:00:20Z", 4624, &[])]),
            pause(),
            Step::Lines("a", failures(&["2024-05-01T10:00:30Z"])),
        ],
    )
    .await;
    // Only the failed logon (which the hunt keeps) is late, not the 4624 it filters out.
    assert_eq!(run.dead_letters.len(), 1, "{:?}", run.dead_letters);
    assert_eq!(run.dead_letters[0].offset, 4);
}

#[tokio::test]
async fn quiet_stream_closes_its_last_window_once_the_quiet_covers_the_rest_of_it() {
    let hunts = plan_hunts(&[("t", &hunt("t", "tumbling 1m", "", COUNT_SQL))]).await;
    let mut settings = test_settings();
    settings.window.idle_timeout = Duration::from_millis(300);
    // The window ends 1.2 s of event time after the newest event: while the stream is quiet, event
    // time goes on at the wall clock's pace, so the window closes after ~1.2 s of quiet, not at the
    // idle timeout.
    let source = common::ScriptedSource {
        steps: vec![Step::Lines(
            "a",
            failures(&["2024-05-01T10:00:10Z", "2024-05-01T10:00:58.8Z"]),
        )],
        acknowledged: Default::default(),
        linger: true,
    };
    let started = std::time::Instant::now();
    let running = common::spawn_pipeline(settings, hunts, Box::new(source));
    let got = running.wait_for_alerts(1).await;
    let elapsed = started.elapsed();
    assert_eq!(got, 1, "the window closed while the source stayed open");
    assert!(
        elapsed >= Duration::from_millis(1200),
        "not before the quiet covered the rest of the window: {elapsed:?}"
    );
    running.stop().await;
}

#[tokio::test]
async fn events_ending_a_quiet_spell_find_their_windows_still_open() {
    // A live stream (event time = wall clock) quiet for longer than the idle timeout, then the next
    // failure, one second of event time later: it belongs to the windows the first one opened. They
    // must not have been closed by the quiet (both rows counted, nothing late).
    let hunts = plan_hunts(&[("h", &hunt("h", "hopping 10m every 5m", "", COUNT_SQL))]).await;
    let mut settings = test_settings();
    settings.window.idle_timeout = Duration::from_millis(200);
    let run = run_script(
        settings,
        hunts,
        vec![
            Step::Lines("a", failures(&["2024-05-01T10:00:01Z"])),
            Step::Sleep(Duration::from_millis(700)),
            Step::Lines("a", failures(&["2024-05-01T10:00:02Z"])),
        ],
    )
    .await;
    assert!(run.dead_letters.is_empty(), "{:?}", run.dead_letters);
    assert_eq!(
        sorted(run.rows()),
        vec![
            json!({"window_start": "2024-05-01T09:55:00Z", "window_end": "2024-05-01T10:05:00Z", "n": 2}),
            json!({"window_start": "2024-05-01T10:00:00Z", "window_end": "2024-05-01T10:10:00Z", "n": 2}),
        ]
    );
}

#[tokio::test]
async fn idle_input_stops_holding_back_the_watermark_of_a_busy_one() {
    let hunts = plan_hunts(&[("t", &hunt("t", "tumbling 1m", "", COUNT_SQL))]).await;
    let mut settings = test_settings();
    settings.window.idle_timeout = Duration::from_millis(200);
    let run = run_script(
        settings,
        hunts,
        vec![
            Step::Lines("slow", failures(&["2024-05-01T10:00:01Z"])),
            Step::Lines("busy", failures(&["2024-05-01T10:00:02Z"])),
            Step::Sleep(Duration::from_millis(150)),
            Step::Lines("busy", failures(&["2024-05-01T10:03:00Z"])),
            Step::Sleep(Duration::from_millis(150)),
            // `slow` has been quiet for 300 ms > 200 ms: busy alone moves the watermark, which closes the
            // first window; this row of `slow` for that window is now late.
            Step::Lines("busy", failures(&["2024-05-01T10:03:30Z"])),
            Step::Sleep(Duration::from_millis(100)),
            Step::Lines("slow", failures(&["2024-05-01T10:00:30Z"])),
        ],
    )
    .await;
    assert_eq!(run.dead_letters.len(), 1, "{:?}", run.dead_letters);
    assert_eq!(run.dead_letters[0].input.name, "slow");
}
