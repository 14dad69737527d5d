//! Bad hunts are refused with their file, line and reason; hunts are read-only.

mod common;

use ghosthunt::decode::EventSchema;
use ghosthunt::query::{self, load};

async fn refusal(id: &str, text: &str) -> ghosthunt::hunt::HuntError {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{id}.sql")), text).unwrap();
    let loaded = load::load(false, &[dir.path().to_path_buf()]);
    if let Some(e) = loaded.errors.into_iter().next() {
        return e;
    }
    let (planned, errors) =
        query::plan_all(loaded.hunts.into_values(), &EventSchema::windows()).await;
    assert!(planned.is_empty(), "{id} was accepted");
    errors.into_iter().next().unwrap()
}

#[tokio::test]
async fn syntax_error_is_refused_with_file_and_line() {
    let text = common::hunt(
        "broken",
        "none",
        "",
        "SELECT host\nFROM events\nWHERE event_id = = 4624",
    );
    let e = refusal("broken", &text).await;
    assert!(e.origin.ends_with("broken.sql"), "{e}");
    assert_eq!(e.line, 12, "{e}");
}

#[tokio::test]
async fn unknown_column_is_refused_with_its_line() {
    let text = common::hunt(
        "unknown",
        "none",
        "",
        "SELECT host,\n  no_such_column\nFROM events",
    );
    let e = refusal("unknown", &text).await;
    assert_eq!(e.line, 11, "{e}");
    assert!(e.reason.contains("no_such_column"), "{e}");
}

/// The optimizer's failure names the rule that failed; the refusal gives its cause.
#[tokio::test]
async fn a_value_or_pattern_the_optimizer_refuses_is_refused_with_its_cause() {
    for (sql, cause) in [
        (
            "SELECT host FROM events WHERE event_id = 'abc'",
            "Cannot cast string 'abc'",
        ),
        (
            "SELECT host FROM events WHERE regexp_like(host, '([a-z')",
            "unclosed character class",
        ),
    ] {
        let e = refusal("bad", &common::hunt("bad", "none", "", sql)).await;
        assert!(e.reason.contains(cause), "{sql}: {e}");
        assert!(!e.reason.contains("Optimizer rule"), "{sql}: {e}");
    }
}

#[tokio::test]
async fn bad_metadata_is_refused_with_its_line() {
    let text = common::hunt("meta", "every now and then", "", "SELECT host FROM events");
    let e = refusal("meta", &text).await;
    assert_eq!(e.line, 6, "{e}");
    assert!(e.reason.contains("window"), "{e}");
}

#[tokio::test]
async fn ddl_dml_and_other_statements_are_refused() {
    for (id, sql) in [
        ("ddl", "CREATE TABLE stolen AS SELECT * FROM events"),
        (
            "external",
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        ),
        ("dml", "INSERT INTO events SELECT * FROM events"),
        ("copy", "COPY (SELECT * FROM events) TO '/tmp/out.csv'"),
        ("set", "SET datafusion.execution.batch_size = 1"),
        ("two", "SELECT host FROM events; DROP TABLE events"),
    ] {
        let e = refusal(id, &common::hunt(id, "none", "", sql)).await;
        assert_eq!(e.line, 10, "{id}: {e}");
        if id == "two" {
            assert_eq!(
                e.reason,
                "one SELECT per hunt: the text holds several statements (separated by `;`)"
            );
        }
    }
}

#[tokio::test]
async fn hunts_cannot_read_files_or_other_tables() {
    for (id, sql) in [
        ("file", "SELECT * FROM '/etc/passwd'"),
        ("url", "SELECT * FROM 'https://example.com/x.csv'"),
        ("other", "SELECT * FROM information_schema.tables"),
    ] {
        let e = refusal(id, &common::hunt(id, "none", "", sql)).await;
        assert!(e.origin.ends_with(&format!("{id}.sql")), "{e}");
    }
}

/// Plans one hunt; its refusal's reason, if refused.
async fn planned(id: &str, window: &str, extra: &str, sql: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let text = common::hunt(id, window, extra, sql);
    std::fs::write(dir.path().join(format!("{id}.sql")), text).unwrap();
    let loaded = load::load(false, &[dir.path().to_path_buf()]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let (_, errors) = query::plan_all(loaded.hunts.into_values(), &EventSchema::windows()).await;
    match errors.into_iter().next() {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}

/// An unwindowed hunt is evaluated on each micro-batch by itself: one that relates events to one
/// another (a count, a window function, events joined with events, a LIMIT) would find what a batch
/// happens to hold — five failed logons in one batch alert, the same five over two batches do not — so
/// it is refused with what relates them, and told to take a window. Filters, deduplication and joins
/// with constant rows relate nothing and are planned.
#[tokio::test]
async fn an_unwindowed_hunt_that_relates_events_is_refused_and_told_to_take_a_window() {
    for (sql, what) in [
        (
            "SELECT host, count(*) AS failures FROM events WHERE event_id = 4625 GROUP BY host HAVING count(*) >= 5",
            "an aggregate",
        ),
        ("SELECT count(*) AS n FROM events", "an aggregate"),
        (
            "SELECT host, lag(event_id) OVER (PARTITION BY host ORDER BY event_time) AS before FROM events",
            "a window function",
        ),
        (
            "SELECT event_time, host FROM events WHERE event_id = 4624 AND host IN (SELECT host FROM events WHERE event_id = 4625)",
            "a join of the events with the events",
        ),
        (
            "SELECT event_time, host FROM events ORDER BY event_time LIMIT 3",
            "a LIMIT",
        ),
        (
            "SELECT event_time, host, event_id FROM events WHERE host = (SELECT host FROM events WHERE event_id = 4625)",
            "a subquery over the events",
        ),
    ] {
        let e = planned("rel", "none", "", sql).await.unwrap_err();
        assert!(e.contains(what), "{sql}: {e}");
        assert!(e.contains("window: tumbling"), "{e}");
        assert!(e.contains("rel.sql"), "{e}");
        // The same hunt over event-time windows relates events as it means to.
        if !sql.contains("LIMIT") {
            planned("rel", "tumbling 5m", "", sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    for sql in [
        "SELECT event_time, host FROM events WHERE event_id = 4688 AND command_line LIKE '%-enc%'",
        "SELECT DISTINCT event_time, host, command_line FROM events WHERE event_id = 4688",
        "SELECT e.event_time, e.host, v.label FROM events e JOIN (VALUES (4624, 'logon'), (4625, 'failed')) AS v(id, label) ON e.event_id = v.id",
        "SELECT event_time, host FROM events WHERE event_id = 4688 UNION ALL SELECT event_time, host FROM events WHERE event_id = 1",
        "SELECT event_time, host FROM events WHERE event_id = (SELECT max(id) FROM (VALUES (4624), (4625)) AS v(id))",
    ] {
        planned("ok", "none", "", sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// `partition_by` overrides a windowed hunt's key only with columns its rows meet on: a column it
/// does not group by would split one group's rows over the instances, each counting a part.
#[tokio::test]
async fn partition_by_a_column_the_hunt_does_not_group_by_is_refused() {
    let sql = "SELECT window_start, host, count(*) AS n FROM events GROUP BY window_start, window_end, host, ip_address";
    let e = planned(
        "part",
        "tumbling 5m",
        "partition_by: [target_user_name]\n",
        sql,
    )
    .await
    .unwrap_err();
    assert!(e.contains("partition_by `target_user_name`"), "{e}");
    assert!(e.contains("keyed by host, ip_address"), "{e}");
    planned("part", "tumbling 5m", "partition_by: [host]\n", sql)
        .await
        .unwrap();
    planned(
        "part",
        "tumbling 5m",
        "partition_by: [ip_address, host]\n",
        sql,
    )
    .await
    .unwrap();
    // A count over all rows has no key to split it by.
    let global = "SELECT window_start, count(*) AS n FROM events GROUP BY window_start, window_end";
    let e = planned("part", "tumbling 5m", "partition_by: [host]\n", global)
        .await
        .unwrap_err();
    assert!(e.contains("evaluated in one place"), "{e}");
    // Constant rows joined or tested against relate no events: the key stays the grouping's.
    for with_values in [
        "SELECT window_start, host, count(*) AS n FROM events e JOIN (VALUES (4625), (4624)) AS v(id) ON e.event_id = v.id GROUP BY window_start, window_end, host",
        "SELECT window_start, host, count(*) AS n FROM events WHERE event_id IN (SELECT id FROM (VALUES (4625), (4624)) AS v(id) GROUP BY id) GROUP BY window_start, window_end, host",
    ] {
        planned("part", "tumbling 5m", "partition_by: [host]\n", with_values)
            .await
            .unwrap_or_else(|e| panic!("{with_values}: {e}"));
    }
}

#[tokio::test]
async fn one_bad_hunt_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.sql"),
        common::hunt("good", "none", "", "SELECT host FROM events"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.sql"),
        common::hunt("bad", "none", "", "SELEKT"),
    )
    .unwrap();
    let loaded = load::load(false, &[dir.path().to_path_buf()]);
    let (planned, errors) =
        query::plan_all(loaded.hunts.into_values(), &EventSchema::windows()).await;
    assert_eq!(planned.len(), 1);
    assert_eq!(errors.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hunts_planned_at_once_come_out_in_their_order_and_so_do_their_refusals() {
    use ghosthunt::hunt::{Hunt, Origin};
    let ids: Vec<String> = (0..12).map(|i| format!("hunt_{i:02}")).collect();
    let hunts: Vec<Hunt> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            // Every third hunt reads a column the schema does not have.
            let column = if i % 3 == 2 { "no_such_column" } else { "host" };
            let text = common::hunt(id, "none", "", &format!("SELECT {column}\nFROM events"));
            Hunt::parse(&text, id, Origin::File(format!("{id}.sql").into())).unwrap()
        })
        .collect();
    let (planned, errors) = query::plan_all(hunts, &EventSchema::windows()).await;
    let planned: Vec<&str> = planned.iter().map(|p| p.hunt.id.as_str()).collect();
    let refused: Vec<&str> = errors.iter().map(|e| e.origin.as_str()).collect();
    let (want_planned, want_refused): (Vec<_>, Vec<_>) =
        ids.iter().enumerate().partition(|(i, _)| i % 3 != 2);
    assert_eq!(
        planned,
        want_planned
            .iter()
            .map(|(_, id)| id.as_str())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        refused,
        want_refused
            .iter()
            .map(|(_, id)| format!("{id}.sql"))
            .collect::<Vec<_>>()
    );
}
