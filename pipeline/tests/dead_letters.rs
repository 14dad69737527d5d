//! Bad records are data, not an outage: each becomes a dead letter with its reason, position and original
//! bytes, is counted, and the good records around it still produce their alerts.

mod common;

use std::io::Write;

use ghosthunt::decode::DeadLetterReason;
use ghosthunt::settings::{FileSettings, OutputSettings};
use ghosthunt::source::FileSource;
use tokio_util::sync::CancellationToken;

const LSASS: &str = r#"{"@timestamp":"2024-05-01T10:00:0SECZ","EventID":10,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WS1","SourceImage":"C:\\Users\\bob\\AppData\\Local\\Temp\\procdump64.exe","TargetImage":"C:\\Windows\\system32\\lsass.exe","GrantedAccess":"0x1fffff","CallTrace":"C:\\Windows\\SYSTEM32\\ntdll.dll+9d1e4|UNKNOWN(00007FFB)"}"#;

fn lsass(second: u32) -> Vec<u8> {
    LSASS.replace("SEC", &second.to_string()).into_bytes()
}

/// The built-in hunt `id` over the JSON-lines file `path`, read once.
async fn run_one_hunt(
    settings: ghosthunt::settings::Settings,
    id: &str,
    path: &std::path::Path,
) -> common::Run {
    let hunts = ghosthunt::app::hunts(&settings, &ghosthunt::decode::EventSchema::windows())
        .await
        .0
        .into_iter()
        .filter(|h| h.hunt.id == id)
        .collect();
    let source = FileSource::new(
        FileSettings {
            paths: vec![path.display().to_string()],
            follow: false,
            poll_interval: std::time::Duration::from_millis(50),
            max_open: 64,
        },
        settings.decode.max_record_bytes,
        settings.window.max_lead,
    )
    .unwrap();
    common::run_pipeline(settings, hunts, Box::new(source), CancellationToken::new()).await
}

#[tokio::test]
async fn malformed_lines_are_dead_lettered_while_the_rest_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut oversized =
        br#"{"@timestamp":"2024-05-01T10:00:05Z","EventID":1,"CommandLine":""#.to_vec();
    oversized.extend(std::iter::repeat_n(b'A', 5000));
    oversized.extend(br#""}"#);
    let lines: Vec<Vec<u8>> = vec![
        lsass(1),                                                                     // 1 good
        b"{\"@timestamp\": \"2024-05-01T10:00:02Z\", \"EventID\": 10".to_vec(), // 2 truncated JSON
        b"[\"not\", \"an\", \"object\"]".to_vec(),                              // 3
        br#"{"@timestamp":"2024-05-01T10:00:03Z","EventID":"ten"}"#.to_vec(),   // 4 wrong type
        b"{\"@timestamp\":\"2024-05-01T10:00:04Z\",\"Image\":\"\xff\xfe\"}".to_vec(), // 5 invalid UTF-8
        br#"{"@timestamp":"last tuesday","EventID":10}"#.to_vec(), // 6 bad timestamp
        br#"{"EventID":10,"Hostname":"WS1"}"#.to_vec(),            // 7 no timestamp
        oversized,                                                 // 8 oversized
        lsass(9),                                                  // 9 good
    ];
    for line in &lines {
        f.write_all(line).unwrap();
        f.write_all(b"\n").unwrap();
    }
    drop(f);

    let mut settings = common::test_settings();
    settings.decode.max_record_bytes = 4096;
    let run = run_one_hunt(settings, "lsass_memory_access", &path).await;

    assert_eq!(run.alerts.len(), 2, "both good events alert");
    let got: Vec<(u64, DeadLetterReason)> = run
        .dead_letters
        .iter()
        .map(|d| (d.offset, d.reason))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, DeadLetterReason::InvalidJson),
            (3, DeadLetterReason::NotAnObject),
            (4, DeadLetterReason::WrongType),
            (5, DeadLetterReason::InvalidUtf8),
            (6, DeadLetterReason::BadTimestamp),
            (7, DeadLetterReason::MissingTimestamp),
            (8, DeadLetterReason::Oversized),
        ]
    );
    for d in &run.dead_letters {
        assert_eq!(d.input.name, path.display().to_string());
        if d.reason != DeadLetterReason::Oversized {
            assert_eq!(
                d.bytes,
                lines[d.offset as usize - 1],
                "original bytes of line {}",
                d.offset
            );
        }
    }
    assert!(
        run.dead_letters[2].detail.contains("event_id"),
        "{}",
        run.dead_letters[2].detail
    );
    let text = run.metrics.render();
    for reason in [
        "invalid_json",
        "not_an_object",
        "wrong_type",
        "invalid_utf8",
        "bad_timestamp",
        "missing_timestamp",
        "oversized",
    ] {
        assert_eq!(
            common::metric(
                &text,
                &format!("ghosthunt_decode_failures_total{{reason=\"{reason}\"}}")
            ),
            Some(1.0),
            "{reason}"
        );
    }
    assert_eq!(
        common::metric(&text, "ghosthunt_events_received_total"),
        Some(9.0)
    );
    assert_eq!(run.summary.dead_letters, 7);
}

#[tokio::test]
async fn dead_letter_file_keeps_reason_position_and_original_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, b"{oops\n\xff\n").unwrap();
    let letters = dir.path().join("dead.jsonl");
    let alerts = dir.path().join("alerts.jsonl");
    let mut settings = common::test_settings();
    settings.source = ghosthunt::settings::SourceSettings::File(FileSettings {
        paths: vec![input.display().to_string()],
        follow: false,
        poll_interval: std::time::Duration::from_millis(50),
        max_open: 64,
    });
    settings.dead_letters = OutputSettings::File(letters.clone());
    settings.alerts = OutputSettings::File(alerts);
    ghosthunt::app::run(settings, Default::default(), CancellationToken::new())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&letters).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["reason"], "invalid_json");
    assert_eq!(rows[0]["offset"], 1);
    assert_eq!(rows[0]["record"], "{oops");
    assert_eq!(rows[0]["input"], input.display().to_string());
    assert_eq!(rows[1]["reason"], "invalid_utf8");
    assert_eq!(rows[1]["record_base64"], "/w==");
}

/// One event from a host whose clock is a day ahead, before a password-guessing burst: it is a dead
/// letter (`future`) and the burst is found. Unchecked, it moved the watermark a day on and every event
/// after it was late: the windowed hunts were blind until the clock caught up.
#[tokio::test]
async fn an_event_far_ahead_of_the_clock_is_a_dead_letter_and_does_not_blind_the_windows() {
    let dir = tempfile::tempdir().unwrap();
    let samples = common::repo().join("sql/tests/password_guessing");
    let burst = std::fs::read_to_string(samples.join("events.jsonl")).unwrap();
    let expected = std::fs::read_to_string(samples.join("expected.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(expected > 0);
    let ahead = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let path = dir.path().join("events.jsonl");
    std::fs::write(
        &path,
        format!(
            "{{\"@timestamp\":\"{ahead}\",\"EventID\":4625,\"Channel\":\"Security\",\"Hostname\":\"skewed\"}}\n{burst}"
        ),
    )
    .unwrap();
    for checked in [true, false] {
        let mut settings = common::test_settings();
        // The skewed event in a batch of its own, as when it arrives on its own (a followed file).
        settings.decode.batch_size = 1;
        settings.decode.adaptive = false;
        if !checked {
            settings.window.max_future = std::time::Duration::ZERO;
        }
        let run = run_one_hunt(settings, "password_guessing", &path).await;
        let reasons: Vec<DeadLetterReason> = run.dead_letters.iter().map(|d| d.reason).collect();
        if checked {
            assert_eq!(reasons, vec![DeadLetterReason::Future]);
            assert_eq!(run.dead_letters[0].offset, 1);
            assert!(run.dead_letters[0].detail.contains("window.max_future"));
            assert_eq!(run.alerts.len(), expected, "the burst is found");
        } else {
            // What the check prevents: the burst is late, all of it.
            assert!(run.alerts.is_empty());
            assert!(
                reasons.iter().all(|r| *r == DeadLetterReason::Late),
                "{reasons:?}"
            );
            assert!(!reasons.is_empty());
        }
    }
}
