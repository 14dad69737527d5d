//! The lake on object storage (`lake.path = "s3://bucket/prefix"`), against a real S3-compatible server:
//! s3s-fs (the S3 API over files on disk, with SigV4 authentication), served in-process by the test. The
//! live pipeline writes both tables there, a retro-hunt over them gives the live alert ids, reading the
//! same file again adds nothing (commits and application transactions on S3), and maintenance runs.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use ghosthunt::app::{self, Handles};
use ghosthunt::lake::read::Range;
use ghosthunt::settings::{FileSettings, OutputSettings, Settings, SourceSettings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const ACCESS_KEY: &str = "ghosthunt";
const SECRET_KEY: &str = "ghosthunt-secret";

/// An S3 server over `root` (each directory a bucket) on a free local port.
async fn s3_server(root: &Path) -> SocketAddr {
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs over the directory");
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    addr
}

fn lake_settings(addr: SocketAddr, alerts: &Path) -> Settings {
    let mut s = common::test_settings();
    s.lake.path = "s3://lake/ghosthunt".to_string();
    s.lake.storage = vec![
        ("aws_access_key_id".into(), ACCESS_KEY.into()),
        ("aws_allow_http".into(), "true".into()),
        ("aws_endpoint".into(), format!("http://{addr}")),
        ("aws_region".into(), "us-east-1".into()),
        ("aws_secret_access_key".into(), SECRET_KEY.into()),
    ];
    // Several batches of events, and a commit every 5,000 rows: several commits per run.
    s.decode.batch_size = 2_000;
    s.lake.flush_rows = 5_000;
    s.alerts = OutputSettings::File(alerts.to_path_buf());
    s.dead_letters = OutputSettings::File(alerts.with_extension("dead.jsonl"));
    s
}

use common::alert_ids_in as alert_ids;

async fn run(settings: Settings) -> ghosthunt::pipeline::Summary {
    app::run(settings, Handles::default(), CancellationToken::new())
        .await
        .expect("the run finishes")
}

/// The first row of an ad-hoc query over the lake.
async fn rows(settings: &Settings, sql: &str) -> Value {
    common::lake_rows(settings, sql).await.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lake_on_s3_takes_the_live_stream_and_gives_retro_hunts_the_live_ids() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("lake")).unwrap();
    let addr = s3_server(&root).await;

    let events = dir.path().join("events.jsonl");
    common::generated_events(&events, 12_000, 20);
    let from_file = |mut s: Settings| {
        s.source = SourceSettings::File(FileSettings {
            paths: vec![events.display().to_string()],
            follow: false,
            poll_interval: std::time::Duration::from_millis(100),
            max_open: 64,
        });
        s
    };

    let live_alerts = dir.path().join("live.jsonl");
    let live = run(from_file(lake_settings(addr, &live_alerts))).await;
    assert_eq!(live.records, 12_000);
    // The tables are objects in the bucket: a Delta log and Parquet files under the prefix.
    let log = root.join("lake/ghosthunt/events/_delta_log");
    assert!(
        std::fs::read_dir(&log).unwrap().count() >= 3,
        "several commits"
    );

    let retro_alerts = dir.path().join("retro.jsonl");
    let mut retro = lake_settings(addr, &retro_alerts);
    retro.source = SourceSettings::Lake(Range::default());
    run(retro).await;
    let (live_ids, retro_ids) = (alert_ids(&live_alerts), alert_ids(&retro_alerts));
    assert!(!live_ids.is_empty());
    assert_eq!(live_ids, retro_ids, "live and retro alert ids differ");
    // Read an object at a time (each file of the date its own slice): the same.
    let sliced_alerts = dir.path().join("sliced.jsonl");
    let mut sliced = lake_settings(addr, &sliced_alerts);
    sliced.source = SourceSettings::Lake(Range::default());
    sliced.lake.read_rows = 1;
    run(sliced).await;
    assert_eq!(
        live_ids,
        alert_ids(&sliced_alerts),
        "a retro-hunt in slices differs"
    );

    // The same file again: the table already holds every record (its application transaction).
    run(from_file(lake_settings(
        addr,
        &dir.path().join("again.jsonl"),
    )))
    .await;
    let settings = lake_settings(addr, &dir.path().join("q.jsonl"));
    let n = rows(
        &settings,
        "SELECT count(*) AS n, count(DISTINCT _offset) AS k FROM events",
    )
    .await;
    assert_eq!(n["n"], 12_000);
    assert_eq!(n["k"], 12_000);
    let a = rows(&settings, "SELECT count(DISTINCT id) AS n FROM alerts").await;
    assert_eq!(a["n"], live_ids.len());

    // Maintenance on S3: compaction rewrites the small files into fewer.
    let compacted = ghosthunt::lake::maintain::optimize(&settings.lake, 256 << 20, false)
        .await
        .unwrap();
    assert!(
        compacted.iter().any(|c| c.files_removed > c.files_added),
        "{compacted:?}"
    );
    let after = rows(&settings, "SELECT count(*) AS n FROM events").await;
    assert_eq!(after["n"], 12_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_s3_credentials_fail_with_the_servers_answer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("lake")).unwrap();
    let addr = s3_server(&root).await;
    let mut settings = lake_settings(addr, &dir.path().join("alerts.jsonl"));
    for (k, v) in &mut settings.lake.storage {
        if k == "aws_secret_access_key" {
            *v = "not-the-key".into();
        }
    }
    settings.source = SourceSettings::Lake(Range::default());
    let error = app::run(settings, Handles::default(), CancellationToken::new())
        .await
        .expect_err("a lake it cannot sign for");
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(
        text.contains("lake") && text.to_lowercase().contains("signature"),
        "{text}"
    );
}
