//! Backpressure: a backlog ten times larger does not make the pipeline hold ten times more memory — the
//! consumer stops polling while the bounded stages are full.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::Broker;

fn event(i: usize) -> (Option<String>, Vec<u8>) {
    let host = format!("WS-{:04}", i % 5000);
    let line = format!(
        r#"{{"@timestamp":"2024-05-01T10:{m:02}:{s:02}Z","EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"{host}","Image":"C:\\Windows\\System32\\svchost.exe","CommandLine":"svchost.exe -k netsvcs -p -s Schedule {pad}","ParentImage":"C:\\Windows\\System32\\services.exe"}}"#,
        m = i / 60 % 60,
        s = i % 60,
        pad = "x".repeat(600)
    );
    (Some(host), line.into_bytes())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the pipeline over `topic` until every event is acknowledged; returns its peak RSS in bytes.
async fn peak_rss(broker: &Broker, topic: &str, events: usize) -> u64 {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghosthunt"))
        .arg("run")
        .env_remove("RUST_LOG")
        .env("GHOSTHUNT__SOURCE__KIND", "kafka")
        .env("GHOSTHUNT__SOURCE__KAFKA__TOPICS", topic)
        .env("GHOSTHUNT__SOURCE__KAFKA__GROUP_ID", topic)
        .env(
            "GHOSTHUNT__SOURCE__KAFKA__OPTIONS__SESSION_TIMEOUT_MS",
            "6000",
        )
        .env("GHOSTHUNT__KAFKA__BROKERS", &broker.bootstrap)
        .env("GHOSTHUNT__ALERTS__SINK", "stdout")
        .env("GHOSTHUNT__DEAD_LETTERS__SINK", "stderr")
        .env("GHOSTHUNT__METRICS__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        assert!(
            Instant::now() < deadline,
            "the backlog of {events} was not processed in time"
        );
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            let text = r.text().await.unwrap_or_default();
            if common::metric(&text, "ghosthunt_acknowledged_events_total").unwrap_or(0.0)
                >= events as f64
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_times_larger_backlog_does_not_need_ten_times_the_memory() {
    let Some(broker) = Broker::start() else {
        return;
    };
    // The smaller backlog (~32 MiB of JSON) already exceeds the bounded stages (librdkafka's prefetch
    // queue alone holds 16 MiB), so both runs fill them and the comparison is about the bound. With
    // 15,000 events (~10 MiB) the small run stayed below it: its peak then depended on how the
    // allocator lays out the stages' memory. Debug build with jemalloc: 110–121 MiB for 15,000 events,
    // 157–173 for 150,000 and 170 for 450,000 (a plateau); 147–153 for 45,000 against 168–173.
    const SMALL: usize = 45_000;
    broker.create_topic("small", 3).await;
    broker.create_topic("burst", 3).await;
    let small: Vec<_> = (0..SMALL).map(event).collect();
    for part in small.chunks(5000) {
        broker.produce("small", part).await;
    }
    let burst: Vec<_> = (0..SMALL * 10).map(event).collect();
    for part in burst.chunks(5000) {
        broker.produce("burst", part).await;
    }
    drop(burst);
    let base = peak_rss(&broker, "small", SMALL).await;
    let peak = peak_rss(&broker, "burst", SMALL * 10).await;
    eprintln!(
        "peak RSS: {} MiB for a backlog of {SMALL} events (~{} MiB), {} MiB for {} (~{} MiB)",
        base >> 20,
        (SMALL * 750) >> 20,
        peak >> 20,
        SMALL * 10,
        (SMALL * 10 * 750) >> 20
    );
    assert!(
        peak < base * 3 / 2,
        "memory grew with the backlog: {} MiB → {} MiB",
        base >> 20,
        peak >> 20
    );
}
