//! The embedded default end to end: the built-in generator feeds the built-in hunts, every injected attack
//! scenario is detected, and `/metrics` (scraped over HTTP and parsed) shows it, latency histogram included.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use ghosthunt::app::{self, Handles};
use ghosthunt::settings::{FileSettings, GeneratorSettings, OutputSettings, SourceSettings};
use tokio_util::sync::CancellationToken;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_scenarios_are_detected_and_metrics_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let alerts_path = dir.path().join("alerts.jsonl");
    let mut settings = common::test_settings();
    settings.source = SourceSettings::Generator(GeneratorSettings {
        rate: 20_000,
        hosts: 30,
        users: 80,
        seed: 7,
        attack_interval: Duration::from_secs(4),
        campaign_interval: Duration::ZERO,
        limit: Some(120_000),
        // 6 s of wall clock are 3 minutes of event time: the windowed scenarios (bursts over 30–180 s) complete.
        speed: 30.0,
    });
    settings.alerts = OutputSettings::File(alerts_path.clone());
    settings.dead_letters = OutputSettings::File(dir.path().join("dead.jsonl"));
    settings.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let handles = Handles::default();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app::run(settings, handles.clone(), shutdown.clone()));

    // Scrape while it runs: health first, then metrics once an unwindowed alert was acknowledged.
    let mut addr = None;
    for _ in 0..200 {
        addr = *handles.metrics_addr.lock().unwrap();
        if addr.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let base = format!("http://{}", addr.expect("metrics endpoint is up"));
    let mut scraped = String::new();
    for _ in 0..400 {
        let (code, text) = get(&format!("{base}/metrics")).await;
        assert_eq!(code, 200);
        if common::metric(
            &text,
            r#"ghosthunt_end_to_end_latency_seconds_count{window="none"}"#,
        )
        .unwrap_or(0.0)
            > 0.0
        {
            scraped = text;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !scraped.is_empty(),
        "no alert was acknowledged while running"
    );
    let (code, health) = get(&format!("{base}/healthz")).await;
    assert_eq!(code, 200, "{health}");

    // Parse the exposition: every sample line is `name{labels} value` with a number.
    for line in scraped
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (_, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    for name in [
        "ghosthunt_events_received_total",
        "ghosthunt_received_bytes_total",
        "ghosthunt_batches_total",
        "ghosthunt_batch_rows_count",
        "ghosthunt_watermark_lag_seconds",
        "ghosthunt_hunts_loaded",
        "process_resident_memory_bytes",
    ] {
        assert!(common::metric(&scraped, name).is_some(), "{name} missing");
    }
    let p50_bucket = scraped
        .lines()
        .any(|l| l.starts_with("ghosthunt_end_to_end_latency_seconds_bucket{window=\"none\""));
    assert!(p50_bucket, "latency histogram buckets are exported");
    assert!(
        scraped.contains("ghosthunt_hunt_evaluation_seconds_bucket{hunt="),
        "evaluation histogram"
    );

    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.records, 120_000);
    assert_eq!(summary.dead_letters, 0);

    // Every scenario kind was injected (≈ 45 injections in 3 minutes of event time) and its hunt fired.
    let text = std::fs::read_to_string(&alerts_path).unwrap();
    let fired: BTreeSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["finding_info"]["analytic"]["uid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for hunt in [
        "ps_remoting_lateral_movement",
        "password_guessing",
        "password_spray",
        "encoded_powershell",
        "lsass_memory_access",
        "suspicious_service_install",
        "privileged_group_member_added",
        "office_spawns_shell",
    ] {
        assert!(
            fired.contains(hunt),
            "{hunt} did not fire; fired: {fired:?}"
        );
    }
}

/// Files read once are kept in step by event time: a file whose events are newer than the other's by
/// more than `window.max_lead` waits while the older one is read. `ghosthunt_inputs_held_back` counts it
/// meanwhile (set by the pipeline after each step: while batches are always ready, ticks do not run),
/// and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_waiting_for_an_older_one_is_counted_as_held_back() {
    let dir = tempfile::tempdir().unwrap();
    // 25 events per second of event time: the newer file starts 33 minutes after the older one, and
    // waits while the pipeline decodes the older one's 50,000 events (0.35 s in a debug build).
    let (_, lines) = common::generated_lines(dir.path(), 100_000);
    let (first, second) = lines.split_at(50_000);
    let (old, new) = (dir.path().join("old.jsonl"), dir.path().join("new.jsonl"));
    std::fs::write(&old, first.join("\n") + "\n").unwrap();
    std::fs::write(&new, second.join("\n") + "\n").unwrap();
    let mut settings = common::test_settings();
    settings.source = SourceSettings::File(FileSettings {
        paths: vec![new.display().to_string(), old.display().to_string()],
        follow: false,
        poll_interval: Duration::from_millis(100),
        ..settings.file.clone()
    });
    // A tick every 100 ms (a quarter of it); the older file is read without a pause that long.
    settings.window.idle_timeout = Duration::from_millis(400);
    settings.alerts = OutputSettings::File(dir.path().join("alerts.jsonl"));
    settings.dead_letters = OutputSettings::File(dir.path().join("dead.jsonl"));
    settings.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let handles = Handles::default();
    let task = tokio::spawn(app::run(
        settings,
        handles.clone(),
        CancellationToken::new(),
    ));

    let mut held = Vec::new();
    while !task.is_finished() {
        let addr = *handles.metrics_addr.lock().unwrap();
        if let Some(addr) = addr
            && let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await
            && let Ok(text) = response.text().await
            && let Some(value) = common::metric(&text, "ghosthunt_inputs_held_back")
        {
            let received = common::metric(&text, "ghosthunt_events_received_total").unwrap_or(0.0);
            held.push((value, received));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let summary = task.await.unwrap().unwrap();
    assert_eq!((summary.records, summary.dead_letters), (100_000, 0));
    let Some(first) = held.iter().position(|&(v, _)| v == 1.0) else {
        panic!(
            "the newer file was never counted as held back: {} scrapes, all 0",
            held.len()
        );
    };
    // Let go, it is read on (about 0.35 s in a debug build): the gauge says so at the next step, before
    // the last events are received. Set only at ticks, which wait while batches are ready, it stayed at
    // 1 to the end or was never set.
    assert!(
        held[first..]
            .iter()
            .any(|&(v, received)| v == 0.0 && received < 100_000.0),
        "the gauge stayed at 1 while the newer file was read: {:?}",
        &held[first..]
    );
    assert!(held.iter().all(|&(v, _)| v <= 1.0), "{held:?}");
}
