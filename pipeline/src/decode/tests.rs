//! The decoder's semantics, record by record: path priority, shapes, coercions, dead letters.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use super::*;
use crate::source::RawRecord;

fn decoder(schema: EventSchema) -> Decoder {
    Decoder::new(Arc::new(schema), 1 << 20, &Metrics::new())
}

fn records(lines: &[&str]) -> Vec<RawRecord> {
    RawRecord::from_lines("test", lines.iter().copied())
}

/// Decodes one line: its row, or its dead letter's reason and detail.
fn decode(d: &Decoder, line: &str) -> Result<RecordBatch, (DeadLetterReason, String)> {
    let out = d.decode(0, records(&[line]));
    match out.dead_letters.first() {
        Some(l) => Err((l.reason, l.detail.clone())),
        None => Ok(out.batch),
    }
}

fn cell(batch: &RecordBatch, name: &str) -> ScalarValue {
    ScalarValue::try_from_array(batch.column_by_name(name).unwrap(), 0).unwrap()
}

fn text(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.into()))
}

const T: &str = r#""@timestamp":"2024-05-01T10:00:00Z""#;

#[test]
fn nested_and_flat_shapes_give_the_same_cells() {
    let d = decoder(EventSchema::windows());
    let nested = decode(&d, r##"{"Event":{"System":{"EventID":4625,"Channel":"Security","Computer":"DC01","TimeCreated":{"#attributes":{"SystemTime":"2024-05-01T10:00:01.5Z"}}},"EventData":{"TargetUserName":"alice","LogonType":"3","IpAddress":"10.0.0.5"}}}"##).unwrap();
    let flat = decode(&d, r#"{"@timestamp":"2024-05-01T10:00:01.500Z","EventID":4625,"Channel":"Security","Hostname":"DC01","TargetUserName":"alice","LogonType":3,"IpAddress":"10.0.0.5"}"#).unwrap();
    assert_eq!(nested, flat);
    assert_eq!(cell(&flat, "logon_type"), ScalarValue::Int64(Some(3)));
    assert_eq!(cell(&flat, "host"), text("DC01"));
}

#[test]
fn dash_means_no_value_in_number_columns() {
    let d = decoder(EventSchema::windows());
    let row = decode(
        &d,
        &format!(r#"{{{T},"EventID":4624,"IpPort":"-","IpAddress":"-"}}"#),
    )
    .unwrap();
    assert_eq!(cell(&row, "ip_port"), ScalarValue::Int64(None));
    assert_eq!(cell(&row, "ip_address"), text("-"));
}

#[test]
fn event_id_with_qualifiers_object_is_read_from_its_text() {
    let d = decoder(EventSchema::windows());
    let row = decode(&d, r##"{"Event":{"System":{"EventID":{"#text":7045,"#attributes":{"Qualifiers":16384}},"TimeCreated":{"#attributes":{"SystemTime":"2024-05-01T10:00:00Z"}}}}}"##).unwrap();
    assert_eq!(cell(&row, "event_id"), ScalarValue::Int64(Some(7045)));
    // Without #text the object itself is the value of the next path: the wrong type.
    let (reason, detail) = decode(
        &d,
        &format!(r#"{{{T},"Event":{{"System":{{"EventID":{{"a":1}}}}}}}}"#),
    )
    .unwrap_err();
    assert_eq!(reason, DeadLetterReason::WrongType);
    assert!(
        detail.contains("Event.System.EventID") && detail.contains("object"),
        "{detail}"
    );
}

#[test]
fn path_order_wins_over_document_order() {
    let d = decoder(EventSchema::windows());
    // image: Event.EventData.Image, Image, Event.EventData.NewProcessName, NewProcessName
    for line in [
        format!(r#"{{{T},"Image":"flat","Event":{{"EventData":{{"Image":"nested"}}}}}}"#),
        format!(r#"{{{T},"Event":{{"EventData":{{"Image":"nested"}}}},"Image":"flat"}}"#),
    ] {
        assert_eq!(cell(&decode(&d, &line).unwrap(), "image"), text("nested"));
    }
    let row = decode(
        &d,
        &format!(r#"{{{T},"NewProcessName":"late","Image":"first"}}"#),
    )
    .unwrap();
    assert_eq!(cell(&row, "image"), text("first"));
    // null is "not present": the next path fills the column.
    let row = decode(
        &d,
        &format!(r#"{{{T},"Event":{{"EventData":{{"Image":null}}}},"Image":"y"}}"#),
    )
    .unwrap();
    assert_eq!(cell(&row, "image"), text("y"));
    // A wrong-typed lower-priority value does not matter when a better path is present.
    let row = decode(
        &d,
        &format!(
            r#"{{{T},"CommandLine":{{"a":1}},"Event":{{"EventData":{{"CommandLine":"x"}}}}}}"#
        ),
    )
    .unwrap();
    assert_eq!(cell(&row, "command_line"), text("x"));
    // A duplicate key: the last one, as serde_json's Value keeps it.
    let row = decode(&d, &format!(r#"{{{T},"Image":"a","Image":"b"}}"#)).unwrap();
    assert_eq!(cell(&row, "image"), text("b"));
}

#[test]
fn wildcard_segment_matches_any_child_object() {
    let d = decoder(EventSchema::windows());
    let row = decode(&d, &format!(r#"{{{T},"Event":{{"UserData":{{"x":3,"LogFileCleared":{{"SubjectUserName":"bob"}},"Other":{{"SubjectUserName":"eve"}}}}}}}}"#)).unwrap();
    assert_eq!(cell(&row, "subject_user_name"), text("bob"));
}

#[test]
fn unmapped_subtrees_are_skipped_but_still_checked_as_json() {
    let d = decoder(EventSchema::windows());
    let row = decode(
        &d,
        &format!(r#"{{"Deep":{{"a":[1,{{"b":"\u00e9\n"}}],"c":{{}}}},{T},"Hostname":"h\\x"}}"#),
    )
    .unwrap();
    assert_eq!(cell(&row, "host"), text("h\\x"));
    let (reason, _) = decode(&d, &format!(r#"{{"Deep":{{"a":[1,}}]}},{T}}}"#)).unwrap_err();
    assert_eq!(reason, DeadLetterReason::InvalidJson);
}

#[test]
fn bad_records_are_refused_with_a_reason() {
    let d = decoder(EventSchema::windows());
    let reason = |line: &str| decode(&d, line).unwrap_err().0;
    assert_eq!(reason("{not json"), DeadLetterReason::InvalidJson);
    assert_eq!(reason(r#"{"a":1} x"#), DeadLetterReason::InvalidJson);
    assert_eq!(reason("[1,2]"), DeadLetterReason::NotAnObject);
    assert_eq!(reason(r#""text""#), DeadLetterReason::NotAnObject);
    assert_eq!(
        reason(r#"{"EventID":1}"#),
        DeadLetterReason::MissingTimestamp
    );
    assert_eq!(
        reason(r#"{"@timestamp":"-","EventID":1}"#),
        DeadLetterReason::MissingTimestamp
    );
    assert_eq!(
        reason(r#"{"@timestamp":"yesterday","EventID":1}"#),
        DeadLetterReason::BadTimestamp
    );
    let (wrong, detail) = decode(&d, &format!(r#"{{{T},"EventID":"abc"}}"#)).unwrap_err();
    assert_eq!(wrong, DeadLetterReason::WrongType);
    assert!(
        detail.contains("event_id") && detail.contains("\"abc\""),
        "{detail}"
    );
    // A number that is no integer says which and why; a whole one written as a float is that integer.
    for (value, why) in [
        ("4.5", "4.5, not a whole number"),
        ("99999999999999999999", "beyond the 64-bit integer range"),
        (
            "18446744073709551615",
            "18446744073709551615, beyond the 64-bit integer range",
        ),
        ("9007199254740993.0", "too large to be exact as a float"),
    ] {
        let (wrong, detail) = decode(&d, &format!(r#"{{{T},"EventID":{value}}}"#)).unwrap_err();
        assert_eq!(wrong, DeadLetterReason::WrongType);
        assert!(detail.contains(why), "{value}: {detail}");
    }
    let row = decode(&d, &format!(r#"{{{T},"EventID":4624.0}}"#)).unwrap();
    assert_eq!(cell(&row, "event_id"), ScalarValue::Int64(Some(4624)));
    assert_eq!(
        reason(&format!(r#"{{{T},"CommandLine":{{"a":1}}}}"#)),
        DeadLetterReason::WrongType
    );
    assert_eq!(
        reason(&format!(r#"{{{T},"CommandLine":[1]}}"#)),
        DeadLetterReason::WrongType
    );
    let out = d.decode(
        0,
        vec![RawRecord {
            bytes: bytes::Bytes::from_static(b"\xff\xfe"),
            ..records(&["x"]).remove(0)
        }],
    );
    assert_eq!(out.dead_letters[0].reason, DeadLetterReason::InvalidUtf8);
}

#[test]
fn a_refused_record_leaves_nothing_in_the_batch() {
    let d = decoder(EventSchema::windows());
    let good = |host: &str| format!(r#"{{{T},"Hostname":"{host}","EventID":1}}"#);
    // Hostname, Channel and CommandLine go in before EventID (a later column) refuses the record.
    let bad =
        format!(r#"{{{T},"Hostname":"bad","Channel":"c","CommandLine":"x","LogonType":"no"}}"#);
    let out = d.decode(0, records(&[&good("a"), &bad, &good("b")]));
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.batch.num_rows(), 2);
    let host = out.batch.column_by_name("host").unwrap();
    assert_eq!(ScalarValue::try_from_array(host, 1).unwrap(), text("b"));
    assert_eq!(
        out.batch
            .column_by_name("command_line")
            .unwrap()
            .null_count(),
        2
    );
    assert_eq!(out.batch.column_by_name("channel").unwrap().null_count(), 2);
}

#[test]
fn lenient_string_columns_take_objects_and_arrays_as_json_text() {
    let schema = EventSchema::parse(
        r#"name = "t"
time_column = "t"
[[columns]]
name = "t"
type = "timestamp"
paths = ["t"]
[[columns]]
name = "data"
type = "string"
paths = ["E.Data", "Data"]
lenient = true
[[columns]]
name = "inner"
type = "string"
paths = ["E.Data.b"]
[[columns]]
name = "strict"
type = "string"
paths = ["S"]
"#,
        "test",
    )
    .unwrap();
    let d = decoder(schema);
    let t = r#""t":"2024-05-01T10:00:00Z""#;
    let row = decode(
        &d,
        &format!(r#"{{{t},"E":{{"Data":{{"b":"x","a":[1, 2]}}}}}}"#),
    )
    .unwrap();
    assert_eq!(cell(&row, "data"), text(r#"{"a":[1,2],"b":"x"}"#));
    assert_eq!(cell(&row, "inner"), text("x"));
    let row = decode(&d, &format!(r#"{{{t},"Data":[true,null]}}"#)).unwrap();
    assert_eq!(cell(&row, "data"), text("[true,null]"));
    let row = decode(&d, &format!(r#"{{{t},"Data":7}}"#)).unwrap();
    assert_eq!(cell(&row, "data"), text("7"));
    let (reason, _) = decode(&d, &format!(r#"{{{t},"S":{{"a":1}}}}"#)).unwrap_err();
    assert_eq!(reason, DeadLetterReason::WrongType);
}

#[test]
fn the_values_column_holds_every_value_of_the_record_and_no_key() {
    use super::schema::VALUES_COLUMN;
    let plain = decoder(EventSchema::windows());
    let line = r##"{"Event":{"System":{"EventID":808,"Channel":"Microsoft-Windows-PrintService/Admin","Computer":"WS1","TimeCreated":{"#attributes":{"SystemTime":"2024-05-01T10:00:01Z"}}},"UserData":{"Printer":{"Name":"Kiwi \"Legit\" Printer","Ports":["LPT1:",3]}},"EventData":{"Data":{"#text":["a\\b",true,null]}},"Message":"Provider= SCM Event Provider"}}"##;
    assert!(
        decode(&plain, line)
            .unwrap()
            .column_by_name(VALUES_COLUMN)
            .is_none()
    );
    let d = decoder(EventSchema::windows().with_values_column());
    let row = decode(&d, line).unwrap();
    // Document order, unescaped, numbers and booleans as text, null left out; keys (`Printer`, `Name`)
    // are not values.
    assert_eq!(
        cell(&row, VALUES_COLUMN),
        text(
            "808\u{1f}Microsoft-Windows-PrintService/Admin\u{1f}WS1\u{1f}2024-05-01T10:00:01Z\u{1f}\
             Kiwi \"Legit\" Printer\u{1f}LPT1:\u{1f}3\u{1f}a\\b\u{1f}true\u{1f}\
             Provider= SCM Event Provider\u{1f}"
        )
    );
    // The other columns decode as without it.
    assert_eq!(cell(&row, "host"), text("WS1"));
    assert_eq!(
        cell(&row, "event_id"),
        cell(&decode(&plain, line).unwrap(), "event_id")
    );
}

#[test]
fn each_row_of_the_values_column_holds_its_own_record_s_values_a_refused_record_between() {
    use super::schema::VALUES_COLUMN;
    let d = decoder(EventSchema::windows().with_values_column());
    let lines = [
        format!(r#"{{{T},"Hostname":"a","Note":"first"}}"#),
        format!(r#"{{{T},"Hostname":"bad","LogonType":"no"}}"#),
        format!(r#"{{{T},"Hostname":"b"}}"#),
    ];
    let out = d.decode(
        0,
        records(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    assert_eq!(out.dead_letters.len(), 1);
    let values = out.batch.column_by_name(VALUES_COLUMN).unwrap();
    let row = |i| ScalarValue::try_from_array(values, i).unwrap();
    assert_eq!(row(0), text("2024-05-01T10:00:00Z\u{1f}a\u{1f}first\u{1f}"));
    assert_eq!(row(1), text("2024-05-01T10:00:00Z\u{1f}b\u{1f}"));
}

#[test]
fn the_values_column_sees_inside_values_a_lenient_column_takes_whole() {
    use super::schema::VALUES_COLUMN;
    let schema = EventSchema::windows()
        .with_string_columns([(
            "user_data".to_string(),
            vec!["Event.UserData".to_string()],
            String::new(),
        )])
        .unwrap()
        .with_values_column();
    let d = decoder(schema);
    let row = decode(
        &d,
        r#"{"@timestamp":"2024-05-01T10:00:00Z","Event":{"UserData":{"X":{"Y":"deep","Z":[1,"two"]}}}}"#,
    )
    .unwrap();
    assert_eq!(
        cell(&row, VALUES_COLUMN),
        text("2024-05-01T10:00:00Z\u{1f}deep\u{1f}1\u{1f}two\u{1f}")
    );
    assert_eq!(
        cell(&row, "user_data"),
        text(r#"{"X":{"Y":"deep","Z":[1,"two"]}}"#)
    );
}

/// The batch timeout of the batcher tests: far above what a small batch takes to decode, so that "cut
/// early" and "waited the timeout" cannot be mistaken for each other on a loaded machine.
const LINGER_MS: u128 = 2000;

/// Runs the batcher over `chunks` sent 10 ms apart, with adaptive batching every `interval` (`None`: off).
/// `keep_up`: decoded batches are taken as they come (hunts that keep up); otherwise nothing is taken
/// until all chunks are sent (hunts far behind). Returns (ms from the first send to when each batch was
/// taken, its rows); the source stays open until no batch came for twice the timeout.
async fn batches(
    interval: Option<u64>,
    chunks: Vec<Vec<RawRecord>>,
    keep_up: bool,
) -> Vec<(u128, usize)> {
    let d = Arc::new(decoder(EventSchema::windows()));
    let decode: DecodeFn =
        Arc::new(move |seq, records, threads| d.decode_on(seq, records, threads));
    let (_decoders, decoder_rx) = tokio::sync::watch::channel((0, decode));
    let (record_tx, record_rx) = mpsc::channel(8);
    let (batch_tx, batch_rx) = mpsc::channel(2);
    let ms = std::time::Duration::from_millis;
    let batching = Batching {
        size: 4096,
        bytes: 8 << 20,
        timeout: ms(LINGER_MS as u64),
        adaptive: interval.is_some(),
        adaptive_interval: ms(interval.unwrap_or(0)),
        decoders: tokio::sync::watch::channel(decoders_in_flight(1)).1,
    };
    tokio::spawn(run_batcher(decoder_rx, record_rx, batch_tx, batching));
    let start = std::time::Instant::now();
    let drain = move |mut rx: mpsc::Receiver<DecodedBatch>| async move {
        let mut out = Vec::new();
        while let Ok(Some(b)) = tokio::time::timeout(ms(2 * LINGER_MS as u64), rx.recv()).await {
            out.push((start.elapsed().as_millis(), b.batch.num_rows()));
        }
        out
    };
    let drained = if keep_up {
        Ok(tokio::spawn(drain(batch_rx)))
    } else {
        Err(batch_rx)
    };
    for chunk in chunks {
        record_tx.send(SourceMessage::Records(chunk)).await.unwrap();
        tokio::time::sleep(ms(10)).await;
    }
    let out = match drained {
        Ok(task) => task.await.unwrap(),
        Err(rx) => drain(rx).await,
    };
    drop(record_tx);
    out
}

#[test]
fn a_batch_ends_at_its_byte_bound_and_a_larger_record_is_a_batch_of_its_own() {
    let sized = |sizes: &[usize]| -> Vec<RawRecord> {
        let lines: Vec<String> = sizes.iter().map(|&n| "x".repeat(n)).collect();
        RawRecord::from_lines("test", lines.iter().map(String::as_str))
    };
    // 1,000-byte records, 10,000 bytes a batch: ten of them, whatever the record bound says.
    let even = sized(&[1000; 35]);
    assert_eq!(batch_len(&even, 4096, 10_000), 10);
    assert_eq!(batch_len(&even, 4, 10_000), 4);
    assert_eq!(batch_len(&even[30..], 4096, 10_000), 5);
    // A record above the bound goes alone; the one after it starts the next batch.
    let big = sized(&[25_000, 10, 10]);
    assert_eq!(batch_len(&big, 4096, 10_000), 1);
    assert_eq!(batch_len(&sized(&[10, 25_000]), 4096, 10_000), 1);
}

fn chunk(n: usize) -> Vec<RawRecord> {
    let line = format!(r#"{{{T},"EventID":4624,"Channel":"Security"}}"#);
    records(&vec![line.as_str(); n])
}

fn rows(got: &[(u128, usize)]) -> Vec<usize> {
    got.iter().map(|&(_, n)| n).collect()
}

#[tokio::test]
async fn adaptive_batching_cuts_when_nothing_more_is_ready() {
    // Hunts keep up: each chunk is a batch at once, not after the timeout.
    let got = batches(Some(1), vec![chunk(20), chunk(20), chunk(5)], true).await;
    assert_eq!(rows(&got), [20, 20, 5], "{got:?}");
    assert!(got.iter().all(|&(ms, _)| ms < LINGER_MS / 2), "{got:?}");
    // Without it, the batch waits out the timeout (all three chunks arrive within it).
    let got = batches(None, vec![chunk(20), chunk(20), chunk(5)], true).await;
    assert_eq!(rows(&got), [45], "{got:?}");
    assert!(got[0].0 >= LINGER_MS, "{got:?}");
}

#[tokio::test]
async fn adaptive_batching_cuts_at_most_once_per_interval() {
    // A trickle: 2 records every 10 ms for 200 ms. Cut early at most every 100 ms: a handful of batches,
    // not one per chunk, none waiting the timeout.
    let got = batches(Some(100), (0..20).map(|_| chunk(2)).collect(), true).await;
    assert_eq!(rows(&got).iter().sum::<usize>(), 40, "{got:?}");
    assert!((2..=4).contains(&got.len()), "{got:?}");
    assert!(got.iter().all(|&(ms, _)| ms < LINGER_MS / 2), "{got:?}");
}

#[tokio::test]
async fn adaptive_batching_fills_batches_while_the_hunts_are_behind() {
    // Nobody takes a decoded batch until all six chunks are sent: small batches fill the channel (it
    // holds two), the later chunks gather into one batch, cut as soon as the hunts free a slot — not
    // after the timeout.
    let got = batches(Some(1), (0..6).map(|_| chunk(10)).collect(), false).await;
    let rows = rows(&got);
    assert_eq!(rows.iter().sum::<usize>(), 60, "{got:?}");
    assert!(rows.len() <= 3 && rows.iter().any(|&n| n >= 30), "{got:?}");
    assert!(got.iter().all(|&(ms, _)| ms < LINGER_MS / 2), "{got:?}");
}

/// Four batches of ten cut at once, the first slowest to decode (300 ms, the others 150 ms each), with
/// `in_flight` batches decoded at once — lowered to `lowered` once the batcher runs, if given. Returns
/// (seq, first offset, rows) of each batch as it came out and how long all four took.
async fn four_slow_batches(
    in_flight: usize,
    lowered: Option<usize>,
) -> (Vec<(u64, u64, usize)>, std::time::Duration) {
    let d = Arc::new(decoder(EventSchema::windows()));
    let decode: DecodeFn = Arc::new(move |seq, records, threads| {
        std::thread::sleep(std::time::Duration::from_millis(if seq == 0 {
            300
        } else {
            150
        }));
        d.decode_on(seq, records, threads)
    });
    let (_decoders, decoder_rx) = tokio::sync::watch::channel((0, decode));
    let (record_tx, record_rx) = mpsc::channel(8);
    let (batch_tx, mut batch_rx) = mpsc::channel(8);
    let (in_flight_tx, in_flight_rx) = tokio::sync::watch::channel(in_flight);
    let batching = Batching {
        size: 10,
        bytes: 8 << 20,
        timeout: std::time::Duration::from_millis(LINGER_MS as u64),
        adaptive: true,
        adaptive_interval: std::time::Duration::from_millis(1),
        decoders: in_flight_rx,
    };
    let started = std::time::Instant::now();
    tokio::spawn(run_batcher(decoder_rx, record_rx, batch_tx, batching));
    if let Some(n) = lowered {
        // The batcher is running (waiting for records) when the count changes.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        in_flight_tx.send_replace(n);
    }
    record_tx
        .send(SourceMessage::Records(chunk(40)))
        .await
        .unwrap();
    drop(record_tx);
    let mut got = Vec::new();
    while let Some(b) = batch_rx.recv().await {
        if b.batch.num_rows() > 0 {
            let first = b.records[0].offset;
            got.push((b.seq, first, b.batch.num_rows()));
        }
    }
    (got, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_decoded_at_once_come_out_in_the_order_they_were_cut() {
    let (got, elapsed) = four_slow_batches(decoders_in_flight(1), None).await;
    assert_eq!(
        got,
        [(0, 1, 10), (1, 11, 10), (2, 21, 10), (3, 31, 10)],
        "in the order cut, each with its own records"
    );
    // One at a time they take 750 ms; with two cores, two at a time.
    if decoders_in_flight(1) >= 2 {
        assert!(
            elapsed < std::time::Duration::from_millis(700),
            "decoded one at a time: {elapsed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_decoders_in_flight_take_effect_while_the_batcher_runs() {
    // Started with four at once, lowered to one (a reload brought hunts that keep every core busy):
    // the four batches are decoded one after another, 750 ms in all at least.
    let (got, elapsed) = four_slow_batches(4, Some(1)).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        elapsed >= std::time::Duration::from_millis(740),
        "decoded more than one at a time: {elapsed:?}"
    );
}

#[test]
fn decoders_take_the_cores_the_hunts_leave() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(decoders_in_flight(1), cores.min(4));
    // A rule set splitting every batch over all cores: one batch decoded at a time.
    assert_eq!(decoders_in_flight(cores), 1);
    assert_eq!(decoders_in_flight(0), cores.min(4));
    assert_eq!(decoders_in_flight(64), 1);
}

#[test]
fn a_sigma_rule_set_on_every_core_has_each_batch_decoded_on_every_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(threads_per_decode(decoders_in_flight(cores)), cores);
    // SQL hunts: a batch per core (up to four), each on one thread where they fill the cores.
    assert_eq!(
        threads_per_decode(decoders_in_flight(1)),
        (cores / cores.min(4)).max(1)
    );
    assert_eq!(threads_per_decode(0), cores);
}

/// Records of two inputs taking turns, about 1 KB each: every 97th refused (its EventID is not a
/// number), every 11th without an EventID (`-`), a logon type on every 5th, an IP address only from
/// record 4,000 on (a column empty in all but the last part); event times wrap at the hour (record 3,600).
fn interleaved(n: usize) -> Vec<RawRecord> {
    let inputs = [
        Input::new("a", crate::source::InputKind::Stdin),
        Input::new("b", crate::source::InputKind::Stdin),
    ];
    let received = Instant::now();
    let pad = "x".repeat(900);
    (0..n)
        .map(|i| {
            let id = match i {
                _ if i % 97 == 0 => "\"no\"".to_string(),
                _ if i % 11 == 0 => "\"-\"".to_string(),
                _ => (i % 7).to_string(),
            };
            let logon = if i % 5 == 0 { r#","LogonType":3"# } else { "" };
            let ip = if i >= 4000 {
                format!(r#","IpAddress":"10.0.0.{}""#, i % 250)
            } else {
                String::new()
            };
            let line = format!(
                r#"{{"@timestamp":"2024-05-01T10:{:02}:{:02}Z","EventID":{id},"Hostname":"h{}"{logon}{ip},"CommandLine":"{pad} {i}"}}"#,
                (i / 60) % 60,
                i % 60,
                i % 13
            );
            RawRecord {
                input: Arc::clone(&inputs[i % 2]),
                offset: i as u64 + 1,
                bytes: line.into_bytes().into(),
                received,
                source_timestamp: None,
            }
        })
        .collect()
}

#[test]
fn a_batch_is_cut_into_parts_of_about_the_same_bytes_and_at_least_a_mebibyte_each() {
    let offsets = |parts: &[Vec<RawRecord>]| -> Vec<Vec<u64>> {
        parts
            .iter()
            .map(|p| p.iter().map(|r| r.offset).collect())
            .collect()
    };
    let bytes = |p: &[RawRecord]| p.iter().map(|r| r.bytes.len()).sum::<usize>();
    // About 1 KB a record: 1,000 records are under two parts' worth, 5,000 make four parts at most.
    assert_eq!(split(interleaved(1000), 4).len(), 1);
    assert_eq!(split(interleaved(5000), 1).len(), 1);
    let parts = split(interleaved(5000), 4);
    assert_eq!(parts.len(), 4);
    let flat: Vec<u64> = offsets(&parts).concat();
    assert_eq!(
        flat,
        (1..=5000).collect::<Vec<u64>>(),
        "every record, in order"
    );
    let sizes: Vec<usize> = parts.iter().map(|p| bytes(p)).collect();
    let (least, most) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(*least >= MIN_PART_BYTES, "{sizes:?}");
    // Each part ends within a record (about 1 KB) past its share; the last takes what is left.
    assert!(most - least < 4 * 1024, "{sizes:?}");
    // One record larger than the rest together is one part with whatever follows it.
    let mut big = interleaved(3);
    big[0].bytes = vec![b' '; 4 << 20].into();
    assert_eq!(split(big, 4).len(), 1);
}

#[test]
fn a_batch_decoded_in_parts_is_the_batch_decoded_whole() {
    let metrics = Metrics::new();
    let d = Decoder::new(Arc::new(EventSchema::windows()), 1 << 20, &metrics);
    let whole = d.decode_on(7, interleaved(5000), 1);
    assert_eq!(whole.dead_letters.len(), 52);
    let column = |name: &str| whole.batch.column_by_name(name).unwrap().null_count();
    // Of the 4,948 rows: 455 records are a multiple of 11, 5 of them refused; 989 of the 1,000 with a
    // logon type kept; 3,958 of the 4,000 without an address (42 refused).
    assert_eq!(column("event_id"), 450);
    assert_eq!((column("logon_type"), column("ip_address")), (3959, 3958));
    for threads in [2, 3, 4] {
        assert_eq!(split(interleaved(5000), threads).len(), threads);
        let parts = d.decode_on(7, interleaved(5000), threads);
        assert_eq!(parts.seq, 7);
        assert_eq!(parts.batch, whole.batch, "{threads} threads");
        let offsets = |b: &DecodedBatch| -> Vec<(String, u64)> {
            b.records
                .iter()
                .map(|r| (r.input.name.clone(), r.offset))
                .collect()
        };
        assert_eq!(offsets(&parts), offsets(&whole));
        let refused = |b: &DecodedBatch| -> Vec<(DeadLetterReason, u64)> {
            b.dead_letters
                .iter()
                .map(|l| (l.reason, l.offset))
                .collect()
        };
        assert_eq!(refused(&parts), refused(&whole));
        let positions = |b: &DecodedBatch| -> Vec<(String, u64)> {
            b.positions
                .0
                .iter()
                .map(|(i, o)| (i.name.clone(), *o))
                .collect()
        };
        assert_eq!(
            positions(&parts),
            vec![("a".into(), 4999), ("b".into(), 5000)]
        );
        assert_eq!(positions(&parts), positions(&whole));
        let times = |b: &DecodedBatch| -> Vec<(String, Option<i64>)> {
            b.input_times
                .iter()
                .map(|(i, t)| (i.name.clone(), *t))
                .collect()
        };
        assert_eq!(times(&parts), times(&whole));
        assert_eq!(parts.bytes, whole.bytes);
    }
    // Counted once per batch, however many parts it was decoded in.
    assert_eq!(metrics.batches.get(), 4);
    assert_eq!(metrics.events_received.get(), 4 * 5000);
}

#[test]
fn rows_far_ahead_of_the_clock_are_dead_letters_except_the_generator_s() {
    let d = decoder(EventSchema::windows());
    let now = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap();
    let line = |time: &str| format!(r#"{{"@timestamp":"{time}","EventID":1}}"#);
    let mut file = records(&[
        &line("2024-05-01T10:30:00Z"),
        &line("2024-05-02T10:00:00Z"),
        &line("2024-05-01T09:00:00Z"),
    ]);
    let generator = Input::new("generator", crate::source::InputKind::Generator);
    let mut generated = records(&[&line("2024-05-02T10:00:00Z")]);
    generated[0].input = Arc::clone(&generator);
    file.append(&mut generated);
    let decoded = d.decode(0, file);
    let out = future_to_dead_letters(decoded, d.schema.time_index, Duration::from_secs(3600), now);
    let letters: Vec<(u64, DeadLetterReason)> = out
        .dead_letters
        .iter()
        .map(|l| (l.offset, l.reason))
        .collect();
    assert_eq!(letters, vec![(2, DeadLetterReason::Future)]);
    assert!(
        out.dead_letters[0].detail.contains("1day ahead"),
        "{}",
        out.dead_letters[0].detail
    );
    assert_eq!(
        out.batch.num_rows(),
        3,
        "within the hour, older, and the generator's"
    );
    assert_eq!(out.records.len(), 3);
    // The input's newest time is its rows kept: half past ten, not the next day.
    let half_past = now + 30 * 60 * 1_000_000_000;
    let times: Vec<(&str, Option<i64>)> = out
        .input_times
        .iter()
        .map(|(i, t)| (i.name.as_str(), *t))
        .collect();
    assert!(times.contains(&("test", Some(half_past))), "{times:?}");
    assert!(
        times.contains(&("generator", Some(now + 24 * 3_600_000_000_000))),
        "{times:?}"
    );
}
