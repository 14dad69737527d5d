//! The file source: globs read in order, files read at once in step by event time (one file per host
//! finds what one file of all their events finds), and following growing, new and replaced files like
//! `tail -F`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ghosthunt::alert::{Alert, MemorySink};
use ghosthunt::settings::{FileSettings, OutputSettings, Settings, SourceSettings};
use ghosthunt::source::FileSource;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use common::{alert_and_hunt_ids as alert_ids, hunt_files as hunt_file, run_app as run};

const SQL: &str = "SELECT event_time, host, command_line FROM events WHERE event_id = 1";

fn process(second: u32, host: &str) -> String {
    format!(
        "{{\"@timestamp\":\"2024-05-01T10:00:{second:02}Z\",\"EventID\":1,\"Hostname\":\"{host}\",\"CommandLine\":\"whoami\"}}\n"
    )
}

async fn wait_for(alerts: &MemorySink<Alert>, n: usize) -> usize {
    for _ in 0..200 {
        if alerts.snapshot().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    alerts.snapshot().len()
}

#[tokio::test]
async fn glob_reads_every_matching_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.jsonl"), process(2, "B")).unwrap();
    std::fs::write(dir.path().join("a.jsonl"), process(1, "A")).unwrap();
    std::fs::write(dir.path().join("c.txt"), process(3, "C")).unwrap();
    let hunts = common::plan_hunts(&[("p", &common::hunt("p", "none", "", SQL))]).await;
    let source = FileSource::new(
        FileSettings {
            paths: vec![format!("{}/*.jsonl", dir.path().display())],
            follow: false,
            poll_interval: Duration::from_millis(50),
            max_open: 64,
        },
        1 << 20,
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let run = common::run_pipeline(
        common::test_settings(),
        hunts,
        Box::new(source),
        CancellationToken::new(),
    )
    .await;
    let mut hosts: Vec<String> = run
        .rows()
        .iter()
        .map(|r| r["host"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    assert_eq!(hosts, vec!["A", "B"], "c.txt does not match the glob");
}

#[test]
fn a_pattern_that_matches_nothing_is_an_error_at_start() {
    let refusal = |path: String| {
        FileSource::new(
            FileSettings {
                paths: vec![path],
                follow: false,
                poll_interval: Duration::from_millis(50),
                max_open: 64,
            },
            1 << 20,
            std::time::Duration::from_secs(60),
        )
        .err()
        .expect("refused")
    };
    let err = refusal("/nonexistent/*.jsonl".into());
    assert!(err.to_string().contains("/nonexistent/*.jsonl"), "{err}");
    // A directory given for its files says so.
    let dir = tempfile::tempdir().unwrap();
    let err = refusal(dir.path().display().to_string());
    assert!(err.to_string().contains("is a directory"), "{err}");
    assert!(err.to_string().contains("/*.jsonl"), "{err}");
    // A named pipe (`--file <(zcat …)` gives one) is not read as a file: standard input is the way.
    let pipe = dir.path().join("events.pipe");
    let c_path = std::ffi::CString::new(pipe.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path it is given and nothing else of ours.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let err = refusal(pipe.display().to_string());
    assert!(err.to_string().contains("is a pipe or a device"), "{err}");
    assert!(err.to_string().contains("standard input"), "{err}");
}

/// A source following the files `pattern` matches, polled every `poll_ms`.
fn following(pattern: String, poll_ms: u64) -> FileSource {
    FileSource::new(
        FileSettings {
            paths: vec![pattern],
            follow: true,
            poll_interval: Duration::from_millis(poll_ms),
            max_open: 64,
        },
        1 << 20,
        Duration::from_secs(60),
    )
    .unwrap()
}

#[tokio::test]
async fn follow_reads_appended_lines_new_files_and_replaced_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    std::fs::write(&a, process(1, "A")).unwrap();
    let hunts = common::plan_hunts(&[("p", &common::hunt("p", "none", "", SQL))]).await;
    let source = following(format!("{}/*.jsonl", dir.path().display()), 40);
    let running = common::spawn_pipeline(common::test_settings(), hunts, Box::new(source));
    let alerts = running.alerts.clone();
    assert_eq!(wait_for(&alerts, 1).await, 1);

    // A growing file: an appended line, written in two parts (a half line is not a record yet).
    let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    let line = process(2, "A");
    f.write_all(&line.as_bytes()[..20]).unwrap();
    f.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    f.write_all(&line.as_bytes()[20..]).unwrap();
    drop(f);
    assert_eq!(wait_for(&alerts, 2).await, 2);

    // A new file under the glob.
    std::fs::write(dir.path().join("b.jsonl"), process(3, "B")).unwrap();
    assert_eq!(wait_for(&alerts, 3).await, 3);

    // Rotation: a.jsonl replaced by a new, shorter file is read from its start.
    let rotated = dir.path().join("a.jsonl.new");
    std::fs::write(&rotated, process(4, "A2")).unwrap();
    std::fs::rename(&rotated, &a).unwrap();
    assert_eq!(wait_for(&alerts, 4).await, 4);

    // Truncation: the same file (same inode) cut shorter than what was read of it is read from its start.
    let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    f.write_all(format!("{}{}", process(5, "A2"), process(6, "A2")).as_bytes())
        .unwrap();
    drop(f);
    assert_eq!(wait_for(&alerts, 6).await, 6);
    std::fs::write(&a, process(7, "A3")).unwrap();
    assert_eq!(wait_for(&alerts, 7).await, 7);

    running.stop().await;
    let hosts: Vec<String> = alerts
        .snapshot()
        .iter()
        .map(|a| {
            ghosthunt::testing::evidence(a)["host"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(hosts, vec!["A", "A", "B", "A2", "A2", "A2", "A3"]);
}

/// Followed, a compressed file is read to its end once: it does not grow, and its decompressed length
/// is no measure of the file's (taken as a truncation, it was read again at every poll).
#[tokio::test]
async fn follow_reads_a_compressed_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for second in 1..=3 {
        gzip.write_all(process(second, "Z").as_bytes()).unwrap();
    }
    std::fs::write(dir.path().join("z.jsonl.gz"), gzip.finish().unwrap()).unwrap();
    let hunts = common::plan_hunts(&[("p", &common::hunt("p", "none", "", SQL))]).await;
    let source = following(format!("{}/*.gz", dir.path().display()), 20);
    let running = common::spawn_pipeline(common::test_settings(), hunts, Box::new(source));
    let alerts = running.alerts.clone();
    assert_eq!(wait_for(&alerts, 3).await, 3);
    // Many polls later, nothing was read again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    running.stop().await;
    assert_eq!(alerts.snapshot().len(), 3);
}

/// Followed, a damaged file (a gzip stream cut short) is left with an error naming it, and the other
/// files are followed on: lines appended to them later are still hunted. When stopped, the run ends
/// with the damaged file's error. The damage ended every followed file.
#[tokio::test]
async fn follow_leaves_a_damaged_file_and_follows_the_others_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for second in 1..=40 {
        gzip.write_all(process(second, "GZ").as_bytes()).unwrap();
    }
    let gzip = gzip.finish().unwrap();
    std::fs::write(dir.path().join("old.jsonl.gz"), &gzip[..gzip.len() / 2]).unwrap();
    let live = dir.path().join("live.jsonl");
    std::fs::write(&live, process(1, "LIVE")).unwrap();
    let hunts = common::plan_hunts(&[("p", &common::hunt("p", "none", "", SQL))]).await;
    let source = following(format!("{}/*", dir.path().display()), 20);
    let running = common::spawn_pipeline(common::test_settings(), hunts, Box::new(source));
    let hosts = |alerts: &MemorySink<Alert>| -> Vec<String> {
        alerts
            .snapshot()
            .iter()
            .filter_map(|a| a.subject.host.clone())
            .collect()
    };
    assert!(running.wait_for_alerts(1).await >= 1);
    // Long enough for the damaged file to be started (a poll after it was written) and to fail.
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap()
        .write_all(process(2, "LIVE").as_bytes())
        .unwrap();
    for _ in 0..200 {
        if hosts(&running.alerts)
            .iter()
            .filter(|h| *h == "LIVE")
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let seen = hosts(&running.alerts);
    assert_eq!(
        seen.iter().filter(|h| *h == "LIVE").count(),
        2,
        "the line appended after the damage is hunted: {seen:?}"
    );
    running.shutdown.cancel();
    let error = format!(
        "{:#}",
        anyhow::Error::from(
            running
                .task
                .await
                .unwrap()
                .expect_err("the damaged file is the run's error")
        )
    );
    assert!(error.contains("old.jsonl.gz"), "{error}");
}

/// Settings that read `paths` once with the bundled hunts, alerts and dead letters to files in `dir`.
fn reading(dir: &Path, name: &str, paths: Vec<String>) -> (Settings, PathBuf) {
    let mut s = common::test_settings();
    let alerts = dir.join(format!("{name}.alerts.jsonl"));
    s.alerts = OutputSettings::File(alerts.clone());
    s.dead_letters = OutputSettings::File(dir.join(format!("{name}.dead.jsonl")));
    s.source = SourceSettings::File(FileSettings {
        paths,
        follow: false,
        poll_interval: Duration::from_millis(100),
        ..s.file.clone()
    });
    (s, alerts)
}

/// The way hosts' logs are collected: a file per host, each in time order, all covering the same hours.
/// Read before files were read at once, each file after the first was late against the windows the
/// first had closed (dead letters, and the windowed hunts' alerts missed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_per_host_finds_what_one_file_of_all_their_events_finds() {
    let dir = tempfile::tempdir().unwrap();
    let (all, lines) = common::generated_lines(dir.path(), 30_000);
    let mut by_host: BTreeMap<String, String> = BTreeMap::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap();
        let host = v["Hostname"].as_str().unwrap_or("none").to_string();
        let text = by_host.entry(host).or_default();
        text.push_str(line);
        text.push('\n');
    }
    let hosts = dir.path().join("hosts");
    std::fs::create_dir(&hosts).unwrap();
    for (i, text) in by_host.values().enumerate() {
        std::fs::write(hosts.join(format!("{i:03}.jsonl")), text).unwrap();
    }
    let (one, one_alerts) = reading(dir.path(), "one", vec![all.display().to_string()]);
    let (per_host, per_host_alerts) = reading(
        dir.path(),
        "per_host",
        vec![format!("{}/*.jsonl", hosts.display())],
    );
    let SourceSettings::File(f) = &per_host.source else {
        unreachable!()
    };
    assert!(
        by_host.len() > 20 && by_host.len() <= f.max_open,
        "{} hosts",
        by_host.len()
    );

    let whole = run(one).await;
    let split = run(per_host).await;
    assert_eq!(whole.dead_letters, 0);
    assert_eq!(
        split.dead_letters, 0,
        "an event of a host's file was late (or bad)"
    );
    assert_eq!(split.records, whole.records);
    let (expected, found) = (alert_ids(&one_alerts), alert_ids(&per_host_alerts));
    let hunts: BTreeSet<&str> = expected.iter().map(|(_, h)| h.as_str()).collect();
    for windowed in ["password_spray", "password_guessing", "brute_force_success"] {
        assert!(
            hunts.contains(windowed),
            "{windowed} did not fire: {hunts:?}"
        );
    }
    assert_eq!(
        found, expected,
        "a file per host found other alerts than one file of the same events"
    );
}

/// Files given newest first (`b` holds the first half of event time, `a` the second): `a` is read up to
/// the lead past `b` (and what the pipeline holds before its event time is known) and then waits for it.
/// Without the wait the whole of `a` (50,000 rows) would wait in the windows for `b`; with room for
/// fewer rows than that in a window (`window.max_rows_per_hunt`), rows would be dropped and the counts
/// differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_ahead_in_event_time_waits_for_the_others_instead_of_filling_the_windows() {
    common::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (all, lines) = common::generated_lines(dir.path(), 100_000);
    let (first, second) = lines.split_at(lines.len() / 2);
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(&a, second.join("\n") + "\n").unwrap();
    std::fs::write(&b, first.join("\n") + "\n").unwrap();
    let hunts = common::per_minute_hunt(dir.path());
    let settings = |name: &str, paths: Vec<String>| {
        let (mut s, alerts) = reading(dir.path(), name, paths);
        s.hunts.builtin = false;
        s.hunts.directories = vec![hunts.clone()];
        // 1,500 events a minute: room for 20 minutes of them, far from half of the events.
        s.window.max_rows_per_hunt = 30_000;
        s.window.max_lead = Duration::from_secs(60);
        (s, alerts)
    };
    let (one, one_alerts) = settings("one", vec![all.display().to_string()]);
    let (two, two_alerts) = settings(
        "two",
        vec![a.display().to_string(), b.display().to_string()],
    );
    let whole = run(one).await;
    let split = run(two).await;
    assert_eq!((whole.dead_letters, split.dead_letters), (0, 0));
    let expected = alert_ids(&one_alerts);
    assert!(
        expected.len() >= 20,
        "{} windows, {} alerts, {} records",
        expected.len(),
        whole.alerts,
        whole.records
    );
    assert_eq!(
        alert_ids(&two_alerts),
        expected,
        "the windows' counts differ: rows were dropped or late"
    );
}

/// A file as Windows PowerShell 5.1's `Out-File` writes it (UTF-16LE with its mark, CRLF line ends) gives
/// the alerts of the same events in UTF-8, and its progress counts the file's own bytes: counted as the
/// records' UTF-8 bytes, it showed about half done until the end.
#[test]
fn a_utf16_file_gives_the_alerts_of_its_utf8_events_and_its_progress_counts_its_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (utf8, lines) = common::generated_lines(dir.path(), 20_000);
    let utf16 = dir.path().join("all.utf16.jsonl");
    let mut bytes = vec![0xFF, 0xFE];
    for line in &lines {
        for unit in line.encode_utf16().chain("\r\n".encode_utf16()) {
            bytes.extend(unit.to_le_bytes());
        }
    }
    std::fs::write(&utf16, &bytes).unwrap();

    let (a, b) = (
        dir.path().join("utf8.jsonl"),
        dir.path().join("utf16.jsonl"),
    );
    hunt_file(&utf8, &a, &[]);
    let out = hunt_file(&utf16, &b, &[]);
    let (from_utf8, from_utf16) = (common::alert_ids_in(&a), common::alert_ids_in(&b));
    assert!(!from_utf8.is_empty());
    assert_eq!(from_utf8, from_utf16);
    assert_eq!(
        std::fs::read_to_string(b.with_extension("dead")).unwrap_or_default(),
        ""
    );
    let progress = common::last_progress(&out.stderr);
    assert_eq!(progress["finished"], true, "{progress}");
    assert_eq!(progress["events"], lines.len(), "{progress}");
    assert_eq!(progress["bytes_total"], bytes.len(), "{progress}");
    assert_eq!(progress["bytes"], bytes.len(), "{progress}");
    assert_eq!(progress["done_percent"], 100.0, "{progress}");
}

/// Collected logs are often compressed: a `*.gz` file (here two gzip members concatenated, as `cat a.gz
/// b.gz` makes) and a `*.zst` file give the alerts of their lines, and the progress counts the bytes
/// read of the compressed files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_zstd_files_give_the_alerts_of_their_lines() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (plain, lines) = common::generated_lines(dir.path(), 20_000);
    let text = std::fs::read(&plain).unwrap();
    let cut = text[..text.len() / 2]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    let mut gzip = Vec::new();
    for part in [&text[..cut], &text[cut..]] {
        let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        member.write_all(part).unwrap();
        gzip.extend(member.finish().unwrap());
    }
    let mut zstd = async_compression::tokio::write::ZstdEncoder::new(Vec::new());
    zstd.write_all(&text).await.unwrap();
    zstd.shutdown().await.unwrap();
    let zstd = zstd.into_inner();
    let gz_path = dir.path().join("all.jsonl.gz");
    let zst_path = dir.path().join("all.jsonl.ZST");
    std::fs::write(&gz_path, &gzip).unwrap();
    std::fs::write(&zst_path, &zstd).unwrap();

    let expected = {
        let alerts = dir.path().join("plain.jsonl");
        hunt_file(&plain, &alerts, &[]);
        common::alert_ids_in(&alerts)
    };
    assert!(!expected.is_empty());
    for (file, bytes) in [(&gz_path, gzip.len()), (&zst_path, zstd.len())] {
        let alerts = dir.path().join(format!(
            "{}.alerts.jsonl",
            file.file_name().unwrap().to_string_lossy()
        ));
        let out = hunt_file(file, &alerts, &[]);
        assert_eq!(common::alert_ids_in(&alerts), expected, "{file:?}");
        assert_eq!(
            std::fs::read_to_string(alerts.with_extension("dead")).unwrap_or_default(),
            "",
            "{file:?}"
        );
        let progress = common::last_progress(&out.stderr);
        assert_eq!(progress["events"], lines.len(), "{progress}");
        assert_eq!(progress["bytes_total"], bytes, "{progress}");
        assert_eq!(progress["bytes"], bytes, "{progress}");
    }
}

/// Followed files that run apart in event time — the first half of 100,000 events (33 minutes) in one,
/// the second in another, both there when the pipeline starts, as after a while away — keep in step
/// while a windowed hunt's state fills: the windows have room for 40,000 rows, and the newer file's
/// 50,000 read beside the older one's overflowed them (rows dropped, other counts; checked). A last
/// line far in the future in both closes every window of the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_files_apart_in_event_time_keep_in_step_while_the_windows_fill() {
    let dir = tempfile::tempdir().unwrap();
    let (all, lines) = common::generated_lines(dir.path(), 100_000);
    let followed = dir.path().join("followed");
    std::fs::create_dir(&followed).unwrap();
    let sentinel = r#"{"@timestamp":"2026-06-01T00:00:00Z","EventID":1,"Computer":"sentinel"}"#;
    for (name, half) in [
        ("old.jsonl", &lines[..50_000]),
        ("new.jsonl", &lines[50_000..]),
    ] {
        let mut body = half.join("\n");
        body.push('\n');
        body.push_str(sentinel);
        body.push('\n');
        std::fs::write(followed.join(name), body).unwrap();
    }
    let source = [
        ("GHOSTHUNT__SOURCE__KIND", "file".to_string()),
        (
            "GHOSTHUNT__SOURCE__FILE__PATHS",
            format!("{}/*.jsonl", followed.display()),
        ),
        ("GHOSTHUNT__SOURCE__FILE__FOLLOW", "true".into()),
    ];
    let log = common::assert_live_windows_count_as_the_file(dir.path(), &all, &source).await;
    assert!(
        log.lines()
            .any(|l| l.contains("Input waits for older inputs") && l.contains("new.jsonl")),
        "the newer file never waited:\n{log}"
    );
}

/// A pattern that matches the files the pipeline writes does not read them: followed, `*.jsonl` would
/// read each dead letter back and dead-letter it again, escaped once more, without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_matching_the_files_ghosthunt_writes_does_not_read_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("events.jsonl"),
        format!("{}not json\n", process(1, "WS-1")),
    )
    .unwrap();
    let pattern = dir.path().join("*.jsonl").display().to_string();
    for follow in [false, true] {
        let name = if follow { "followed" } else { "once" };
        let (mut s, alerts) = reading(dir.path(), name, vec![pattern.clone()]);
        if let SourceSettings::File(f) = &mut s.source {
            f.follow = follow;
        }
        let hunts = dir.path().join(format!("{name}-hunts"));
        std::fs::create_dir(&hunts).unwrap();
        std::fs::write(hunts.join("p.sql"), common::hunt("p", "none", "", SQL)).unwrap();
        s.hunts.builtin = false;
        s.hunts.directories = vec![hunts];
        let stop = CancellationToken::new();
        let run = tokio::spawn(ghosthunt::app::run(
            s,
            ghosthunt::app::Handles::default(),
            stop.clone(),
        ));
        if follow {
            // Polls every 100 ms: long enough for the written files to be read back, many times over.
            tokio::time::sleep(Duration::from_secs(2)).await;
            stop.cancel();
        }
        run.await.unwrap().expect("the run ends");
        let dead = std::fs::read_to_string(dir.path().join(format!("{name}.dead.jsonl"))).unwrap();
        assert_eq!(
            dead.lines().count(),
            1,
            "{name}: the one bad line, once: {dead}"
        );
        let alerts = std::fs::read_to_string(&alerts).unwrap();
        assert_eq!(
            alerts.lines().count(),
            1,
            "{name}: the one event's alert, once"
        );
        // The next run's pattern would match these: files of another run are files like any other.
        for written in ["alerts", "dead"] {
            std::fs::remove_file(dir.path().join(format!("{name}.{written}.jsonl"))).unwrap();
        }
    }
}

/// A damaged file (a gzip stream cut short): the lines before the damage are hunted, the other files
/// are read whole, and the run then fails naming the file. The damage stopped the run at once, before
/// the lines read were hunted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_fails_the_run_after_every_readable_line_is_hunted() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    // Fewer lines than a chunk of records: none would have been sent before the damage.
    let (plain, _) = common::generated_lines(dir.path(), 600);
    let text = std::fs::read(&plain).unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&text).unwrap();
    let gzip = gzip.finish().unwrap();
    let damaged = dir.path().join("damaged.jsonl.gz");
    std::fs::write(&damaged, &gzip[..gzip.len() * 3 / 5]).unwrap();
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, process(1, "OTHER-HOST")).unwrap();

    let (mut s, alerts) = reading(
        dir.path(),
        "damaged",
        vec![damaged.display().to_string(), other.display().to_string()],
    );
    // One file at a time: the other starts after the damaged one has failed.
    if let SourceSettings::File(f) = &mut s.source {
        f.max_open = 1;
    }
    let hunts = dir.path().join("hunts");
    std::fs::create_dir(&hunts).unwrap();
    std::fs::write(hunts.join("p.sql"), common::hunt("p", "none", "", SQL)).unwrap();
    s.hunts.builtin = false;
    s.hunts.directories = vec![hunts];
    let result = ghosthunt::app::run(
        s,
        ghosthunt::app::Handles::default(),
        CancellationToken::new(),
    )
    .await;
    let error = format!(
        "{:#}",
        anyhow::Error::from(result.expect_err("the damage is an error"))
    );
    assert!(error.contains("damaged.jsonl.gz"), "{error}");
    let hosts: BTreeSet<String> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|a| {
            a["evidences"][0]["data"]["host"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(hosts.contains("OTHER-HOST"), "the other file is read whole");
    assert!(
        hosts.len() > 1,
        "the damaged file's first lines are hunted: {hosts:?}"
    );
}

/// A file announced and then failing (here an `.evtx` that is not EVTX) stops holding the watermark
/// back: the windows of the other files close as they go, none fills up and drops rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_fails_to_open_holds_no_other_file_back() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = common::generated_lines(dir.path(), 20_000);
    let bad = dir.path().join("bad.evtx");
    std::fs::write(&bad, "not an event log").unwrap();
    let hunts = common::per_minute_hunt(dir.path());
    let run = |name: &str, paths: Vec<String>| {
        let (mut s, alerts) = reading(dir.path(), name, paths);
        s.hunts.builtin = false;
        s.hunts.directories = vec![hunts.clone()];
        // Half the events (about seven minutes): a watermark held to the end would drop rows. Room
        // for ten batches, so that the good file's first batches, read while the bad one is still
        // failing, do not (a machine under load took longer than three batches to fail it).
        s.window.max_rows_per_hunt = 10_000;
        s.decode.batch_size = 1_000;
        s.decode.adaptive = false;
        s.window.idle_timeout = Duration::from_secs(3600);
        (s, alerts)
    };
    let (alone, alone_alerts) = run("alone", vec![good.display().to_string()]);
    ghosthunt::app::run(
        alone,
        ghosthunt::app::Handles::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let (both, both_alerts) = run(
        "both",
        vec![bad.display().to_string(), good.display().to_string()],
    );
    let result = ghosthunt::app::run(
        both,
        ghosthunt::app::Handles::default(),
        CancellationToken::new(),
    )
    .await;
    let error = format!("{:#}", anyhow::Error::from(result.expect_err("bad.evtx")));
    assert!(error.contains("bad.evtx"), "{error}");
    let expected = common::alert_ids_in(&alone_alerts);
    assert!(expected.len() >= 10);
    assert_eq!(common::alert_ids_in(&both_alerts), expected);
}
