//! Configuration: what the user wrote, layered and checked once, and what the pipeline runs with.
//!
//! Layers, last wins: the embedded `default.toml` → `--config FILE` → environment variables
//! `GHOSTHUNT__SECTION__KEY`. [`RawConfig`] mirrors the file (unknown keys are errors that name the key);
//! [`Settings::load`] validates it into [`Settings`], whose errors name the key and where it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded defaults: the embedded default run needs no file at all.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// Prefix of environment overrides: `GHOSTHUNT__SOURCE__KIND=file`.
pub const ENV_PREFIX: &str = "GHOSTHUNT";

/// A configuration that cannot be used, with the key and the layer that set it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration {origin}: {source}")]
    Layer {
        origin: String,
        #[source]
        source: config::ConfigError,
    },
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// What the pipeline runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: SourceSettings,
    /// The generator's settings, whatever the source (`ghosthunt produce` uses them).
    pub generator: GeneratorSettings,
    /// The file source's settings, whatever the source (`ghosthunt hunt --source files` and `bench --file`
    /// read their files with them).
    pub file: FileSettings,
    pub decode: DecodeSettings,
    pub hunts: HuntSettings,
    pub sigma: SigmaSettings,
    pub window: WindowSettings,
    pub alerts: OutputSettings,
    pub incidents: IncidentSettings,
    pub dead_letters: OutputSettings,
    /// Kafka message key of alerts.
    pub alert_key: AlertKey,
    /// `None`: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    pub log_filter: String,
    pub kafka: KafkaSettings,
    pub lake: LakeSettings,
    pub scale: ScaleSettings,
    /// Progress of a run that reads history once (`ghosthunt hunt` sets it; not a configuration key).
    pub progress: bool,
    /// Alerts and incidents on stdout as text for a person, not OCSF JSON (`--format`; not a configuration
    /// key).
    pub human_output: bool,
}

/// Where events come from.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    Generator(GeneratorSettings),
    File(FileSettings),
    Stdin,
    Kafka(KafkaSourceSettings),
    /// The lake's events table over a time range (`ghosthunt hunt`; not a `source.kind`).
    Lake(TimeRange),
    /// The Kafka source's topics over a time range, read once (`ghosthunt hunt --source kafka`).
    KafkaHistory(KafkaSourceSettings, TimeRange),
}

#[derive(Debug, Clone)]
pub struct GeneratorSettings {
    pub rate: u64,
    pub hosts: u32,
    pub users: u32,
    pub seed: u64,
    pub attack_interval: Duration,
    pub campaign_interval: Duration,
    pub limit: Option<u64>,
    pub speed: f64,
}

#[derive(Debug, Clone)]
pub struct FileSettings {
    pub paths: Vec<String>,
    pub follow: bool,
    pub poll_interval: Duration,
    /// At most this many files read at once; the next starts as one ends.
    pub max_open: usize,
}

/// Most record bytes one batch may hold (`decode.batch_bytes` is at most this). A string column of a batch
/// holds at most the batch's record bytes, and Arrow's `Utf8` arrays address at most 2 GiB: within this
/// bound every column stays addressable.
pub const MAX_BATCH_BYTES: usize = 256 << 20;

#[derive(Debug, Clone)]
pub struct DecodeSettings {
    /// `None`: the built-in Windows schema.
    pub schema_path: Option<PathBuf>,
    pub batch_size: usize,
    /// A batch is also cut at this many record bytes: what batches in flight hold stays bounded
    /// whatever the records' size.
    pub batch_bytes: usize,
    pub batch_timeout: Duration,
    /// Cut a batch as soon as the source has nothing more ready and no decoded batch waits for the
    /// hunts, instead of waiting out `batch_timeout` (see `decode::run_batcher`).
    pub adaptive: bool,
    /// Adaptive batching cuts a batch early at most once per this interval (each batch costs every hunt
    /// an evaluation, so a trickle of records must not become a batch per chunk).
    pub adaptive_interval: Duration,
    pub max_record_bytes: usize,
    /// Only events in this event-time range go to the hunts (`ghosthunt hunt --source files`; not
    /// configurable).
    pub time_range: Option<TimeRange>,
}

#[derive(Debug, Clone)]
pub struct HuntSettings {
    /// Only the hunts with these ids (empty: all). Set by `ghosthunt hunt --hunt`, not by configuration.
    pub only: Vec<String>,
    pub builtin: bool,
    pub directories: Vec<PathBuf>,
    pub concurrency: usize,
}

/// Sigma rules run next to the SQL hunts.
#[derive(Debug, Clone, Default)]
pub struct SigmaSettings {
    /// Directories searched recursively for `*.yml` / `*.yaml` rules.
    pub directories: Vec<PathBuf>,
    /// `None`: the built-in Windows mapping.
    pub mapping: Option<PathBuf>,
    /// Values of `%name%` placeholders (the `expand` modifier).
    pub placeholders: std::collections::HashMap<String, Vec<String>>,
    /// Suppression period of every rule's alerts per host (`None`: every match alerts).
    pub suppress: Option<Duration>,
    /// Threads a batch's rows are split over for rule evaluation, and the most the rules are loaded and
    /// compiled on (at least 1).
    pub threads: usize,
}

#[derive(Debug, Clone)]
pub struct WindowSettings {
    pub allowed_lateness: Duration,
    pub idle_timeout: Duration,
    pub max_rows_per_hunt: usize,
    /// Inputs read from history at once (files read once, Kafka partitions by time) keep within this
    /// much event time of the oldest: one further ahead waits (`source::align`). A live consumer's
    /// partitions and followed files too, while the windows fill.
    pub max_lead: Duration,
    /// An event further ahead of the wall clock than this is a dead letter (`future`); zero: no check.
    pub max_future: Duration,
}

/// `[incidents]`: rules over the alerts, and where their Incident Findings go.
#[derive(Debug, Clone)]
pub struct IncidentSettings {
    pub builtin: bool,
    pub directories: Vec<PathBuf>,
    pub output: OutputSettings,
    pub assignee_group: String,
    /// Risk of an alert by its hunt's severity, indexed by OCSF severity id − 1 (informational … critical).
    pub risk: [u32; 5],
}

impl IncidentSettings {
    /// The risk an alert of `hunt` adds: its own `risk:`, else the setting for its severity.
    pub fn risk_of(&self, hunt: &crate::hunt::Hunt) -> u32 {
        hunt.risk
            .unwrap_or(self.risk[usize::from(hunt.severity.ocsf_id().clamp(1, 5)) - 1])
    }
}

/// Where alerts or dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSettings {
    Stdout,
    Stderr,
    File(PathBuf),
    Kafka { topic: String },
}

impl Settings {
    /// Merges the layers and validates the result. `env` is the process environment in production and an
    /// explicit list in tests (so that tests do not race on `std::env`).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let raw = RawConfig::load(file, env)?;
        Settings::validate(raw)
    }

    /// Checks every value once; the runtime types below carry no unchecked input.
    pub fn validate(raw: RawConfig) -> Result<Settings, SettingsError> {
        let g = raw.source.generator;
        if g.rate == 0 {
            return Err(invalid(
                "source.generator.rate",
                "must be at least 1 event/s",
            ));
        }
        if !(g.speed.is_finite() && g.speed > 0.0) {
            return Err(invalid(
                "source.generator.speed",
                "must be a number above zero",
            ));
        }
        if g.hosts == 0 || g.users == 0 {
            return Err(invalid(
                "source.generator.hosts",
                "hosts and users must be at least 1",
            ));
        }
        let f = raw.source.file;
        if f.poll_interval.is_zero() {
            return Err(invalid("source.file.poll_interval", "must be above zero"));
        }
        if f.max_open == 0 {
            return Err(invalid("source.file.max_open", "must be at least 1"));
        }
        let file = FileSettings {
            // `GHOSTHUNT__SOURCE__FILE__PATHS=` (empty) is no path, not a path named "".
            paths: f
                .paths
                .into_iter()
                .filter(|p| !p.trim().is_empty())
                .collect(),
            follow: f.follow,
            poll_interval: f.poll_interval,
            max_open: f.max_open,
        };
        let generator = GeneratorSettings {
            rate: g.rate,
            hosts: g.hosts,
            users: g.users,
            seed: g.seed,
            attack_interval: g.attack_interval,
            campaign_interval: g.campaign_interval,
            limit: (g.limit > 0).then_some(g.limit),
            speed: g.speed,
        };
        let source = match raw.source.kind.as_str() {
            "generator" => SourceSettings::Generator(generator.clone()),
            "file" => {
                if file.paths.is_empty() {
                    return Err(invalid(
                        "source.file.paths",
                        "the file source needs at least one path or glob",
                    ));
                }
                SourceSettings::File(file.clone())
            }
            "stdin" => SourceSettings::Stdin,
            "kafka" => {
                let k = raw.source.kafka;
                let pattern = k.topic_pattern.trim().to_string();
                if pattern.is_empty() && k.topics.iter().all(|t| t.trim().is_empty()) {
                    return Err(invalid(
                        "source.kafka.topics",
                        "the Kafka source needs topics or a topic_pattern",
                    ));
                }
                if k.group_id.trim().is_empty() {
                    return Err(invalid("source.kafka.group_id", "must not be empty"));
                }
                if !matches!(
                    k.auto_offset_reset.as_str(),
                    "earliest" | "latest" | "error"
                ) {
                    return Err(invalid(
                        "source.kafka.auto_offset_reset",
                        format!(
                            "`{}`: expected earliest, latest or error",
                            k.auto_offset_reset
                        ),
                    ));
                }
                if k.commit_interval.is_zero() {
                    return Err(invalid(
                        "source.kafka.commit_interval",
                        "must be above zero",
                    ));
                }
                SourceSettings::Kafka(KafkaSourceSettings {
                    topics: k
                        .topics
                        .into_iter()
                        .filter(|t| !t.trim().is_empty())
                        .collect(),
                    topic_pattern: (!pattern.is_empty()).then_some(pattern),
                    group_id: k.group_id,
                    auto_offset_reset: k.auto_offset_reset,
                    commit_interval: k.commit_interval,
                    options: librdkafka_options("source.kafka.options", &k.options)?,
                })
            }
            other => {
                return Err(invalid(
                    "source.kind",
                    format!("unknown source `{other}` (expected generator, file, stdin or kafka)"),
                ));
            }
        };

        let d = raw.decode;
        if d.batch_size == 0 {
            return Err(invalid("decode.batch_size", "must be at least 1"));
        }
        if d.batch_bytes == 0 || d.batch_bytes > MAX_BATCH_BYTES {
            return Err(invalid(
                "decode.batch_bytes",
                "must be between 1 and 268435456 (256 MiB: a batch's string columns must stay addressable)",
            ));
        }
        if d.batch_timeout.is_zero() {
            return Err(invalid("decode.batch_timeout", "must be above zero"));
        }
        if d.max_record_bytes == 0 {
            return Err(invalid("decode.max_record_bytes", "must be at least 1"));
        }
        // Batches are cut at 256 MiB of records (a column must stay under Arrow's 2 GiB); one record must
        // fit in a batch.
        if d.max_record_bytes > 256 << 20 {
            return Err(invalid(
                "decode.max_record_bytes",
                "must be at most 268435456 (256 MiB, the most one batch holds)",
            ));
        }
        let decode = DecodeSettings {
            schema_path: (d.schema != "windows").then(|| PathBuf::from(d.schema)),
            batch_size: d.batch_size,
            batch_bytes: d.batch_bytes,
            batch_timeout: d.batch_timeout,
            adaptive: d.adaptive,
            adaptive_interval: d.adaptive_interval,
            max_record_bytes: d.max_record_bytes,
            time_range: None,
        };

        if !raw.hunts.builtin
            && raw.hunts.directories.is_empty()
            && raw.sigma.directories.is_empty()
        {
            return Err(invalid(
                "hunts.directories",
                "no hunts: hunts.builtin is false and no hunt or Sigma directory is given",
            ));
        }
        for (name, values) in &raw.sigma.placeholders {
            if values.is_empty() {
                return Err(invalid(
                    "sigma.placeholders",
                    format!("placeholder `{name}` has no value"),
                ));
            }
        }
        let sigma = SigmaSettings {
            directories: raw.sigma.directories,
            mapping: (!raw.sigma.mapping.trim().is_empty())
                .then(|| PathBuf::from(raw.sigma.mapping.trim())),
            placeholders: raw.sigma.placeholders,
            suppress: (!raw.sigma.suppress.is_zero()).then_some(raw.sigma.suppress),
            threads: match raw.sigma.threads {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
        };
        if raw.hunts.concurrency == 0 {
            return Err(invalid("hunts.concurrency", "must be at least 1"));
        }
        let hunts = HuntSettings {
            only: Vec::new(),
            builtin: raw.hunts.builtin,
            directories: raw.hunts.directories,
            concurrency: raw.hunts.concurrency,
        };

        let w = raw.window;
        if w.idle_timeout.is_zero() {
            return Err(invalid("window.idle_timeout", "must be above zero"));
        }
        if w.max_rows_per_hunt == 0 {
            return Err(invalid("window.max_rows_per_hunt", "must be at least 1"));
        }
        let window = WindowSettings {
            allowed_lateness: w.allowed_lateness,
            idle_timeout: w.idle_timeout,
            max_rows_per_hunt: w.max_rows_per_hunt,
            max_lead: w.max_lead,
            max_future: w.max_future,
        };

        let alerts = output(
            "alerts.sink",
            &raw.alerts.sink,
            raw.alerts.path,
            raw.alerts.topic,
            false,
        )?;
        let dead_letters = output(
            "dead_letters.sink",
            &raw.dead_letters.sink,
            raw.dead_letters.path,
            raw.dead_letters.topic,
            true,
        )?;
        let i = raw.incidents;
        let incidents = IncidentSettings {
            builtin: i.builtin,
            directories: i.directories,
            output: output("incidents.sink", &i.sink, i.path, i.topic, false)?,
            assignee_group: match i.assignee_group.trim() {
                "" => return Err(invalid("incidents.assignee_group", "must not be empty")),
                g => g.to_string(),
            },
            risk: [
                i.risk.informational,
                i.risk.low,
                i.risk.medium,
                i.risk.high,
                i.risk.critical,
            ],
        };
        let alert_key = match raw.alerts.key.as_str() {
            "hunt_entity" => AlertKey::HuntEntity,
            "hunt" => AlertKey::Hunt,
            "none" => AlertKey::None,
            other => {
                return Err(invalid(
                    "alerts.key",
                    format!("`{other}`: expected hunt_entity, hunt or none"),
                ));
            }
        };
        let kafka = KafkaSettings {
            brokers: raw.kafka.brokers,
            options: librdkafka_options("kafka.options", &raw.kafka.options)?,
            producer_options: librdkafka_options(
                "kafka.producer_options",
                &raw.kafka.producer_options,
            )?,
        };
        let uses_kafka = matches!(source, SourceSettings::Kafka(_))
            || matches!(alerts, OutputSettings::Kafka { .. })
            || matches!(incidents.output, OutputSettings::Kafka { .. })
            || matches!(dead_letters, OutputSettings::Kafka { .. });
        if uses_kafka && kafka.brokers.trim().is_empty() {
            return Err(invalid(
                "kafka.brokers",
                "Kafka is used but no brokers are given",
            ));
        }

        let l = raw.lake;
        if l.flush_rows == 0 {
            return Err(invalid("lake.flush_rows", "must be at least 1"));
        }
        if l.flush_interval.is_zero() {
            return Err(invalid("lake.flush_interval", "must be above zero"));
        }
        if l.read_rows == 0 {
            return Err(invalid("lake.read_rows", "must be at least 1"));
        }
        if l.row_group_rows == 0 {
            return Err(invalid("lake.row_group_rows", "must be at least 1"));
        }
        let lake = LakeSettings {
            path: l.path.trim().to_string(),
            storage: storage_options(&l.storage)?,
            flush_rows: l.flush_rows,
            flush_interval: l.flush_interval,
            retention: (!l.retention.is_zero()).then_some(l.retention),
            read_rows: l.read_rows,
            row_group_rows: l.row_group_rows,
        };

        let scale = ScaleSettings {
            mode: match raw.scale.mode.trim() {
                "local" => ScaleMode::Local,
                "repartition" => ScaleMode::Repartition,
                other => {
                    return Err(invalid(
                        "scale.mode",
                        format!("`{other}`: use local or repartition"),
                    ));
                }
            },
            topic: raw.scale.topic.trim().to_string(),
            partitions: raw.scale.partitions,
        };
        if scale.mode == ScaleMode::Repartition {
            if !matches!(source, SourceSettings::Kafka(_)) {
                return Err(invalid(
                    "scale.mode",
                    "repartition shares windowed hunts among the instances of a Kafka consumer group: it needs source.kind = kafka",
                ));
            }
            if scale.topic.is_empty() {
                return Err(invalid("scale.topic", "the repartition topic needs a name"));
            }
            if scale.partitions < 1 {
                return Err(invalid("scale.partitions", "must be at least 1"));
            }
        }

        let metrics_listen = match raw.metrics.listen.trim() {
            "" => None,
            addr => Some(addr.parse().map_err(|e| {
                invalid(
                    "metrics.listen",
                    format!("`{addr}` is not an address:port ({e})"),
                )
            })?),
        };

        Ok(Settings {
            source,
            generator,
            file,
            decode,
            hunts,
            sigma,
            window,
            alerts,
            incidents,
            dead_letters,
            alert_key,
            metrics_listen,
            log_filter: raw.log.filter,
            kafka,
            lake,
            scale,
            progress: false,
            human_output: false,
        })
    }
}

/// `[scale]`: how the instances of one consumer group share windowed hunts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSettings {
    pub mode: ScaleMode,
    /// The repartition topic.
    pub topic: String,
    /// Its partitions when ghosthunt creates it.
    pub partitions: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleMode {
    /// Every hunt evaluated where its events are read.
    Local,
    /// Windowed hunts' rows repartitioned by key through Kafka.
    Repartition,
}

/// `[lake]` (what the lake module writes and reads).
#[derive(Clone, PartialEq)]
pub struct LakeSettings {
    /// Where the tables live: a directory, a `file://` URL or an `s3://bucket/prefix` URL. Empty: no lake.
    pub path: String,
    /// Object-storage settings (`[lake.storage]`: object_store's keys, lower case; may hold secrets:
    /// never logged).
    pub storage: Vec<(String, String)>,
    /// Commit once this many rows are buffered ...
    pub flush_rows: usize,
    /// ... or this long after the first buffered row (acknowledgements to the source wait for it).
    pub flush_interval: Duration,
    /// `ghosthunt lake vacuum` first deletes event dates older than this (None: keep everything).
    pub retention: Option<Duration>,
    /// A retro-hunt reads a date a slice of files at a time, each slice's files holding about this many
    /// rows: the hunts start on one slice while the next is read, and about two slices are held. A file
    /// of more rows is read a row group at a time.
    pub read_rows: usize,
    /// Rows per Parquet row group in the files written (the live sink's and `lake optimize`'s): the
    /// unit a reader skips by statistics and a retro-hunt's smallest slice.
    pub row_group_rows: usize,
}

impl std::fmt::Debug for LakeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeSettings")
            .field("path", &self.path)
            .field(
                "storage",
                &self.storage.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("flush_rows", &self.flush_rows)
            .field("flush_interval", &self.flush_interval)
            .field("retention", &self.retention)
            .field("read_rows", &self.read_rows)
            .field("row_group_rows", &self.row_group_rows)
            .finish()
    }
}

impl Default for LakeSettings {
    fn default() -> LakeSettings {
        LakeSettings {
            path: String::new(),
            storage: Vec::new(),
            flush_rows: 500_000,
            flush_interval: Duration::from_secs(30),
            retention: None,
            read_rows: 262_144,
            row_group_rows: 131_072,
        }
    }
}

impl LakeSettings {
    pub fn enabled(&self) -> bool {
        !self.path.trim().is_empty()
    }
}

/// An event-time range `[from, to)`, ns since the epoch; an open end is unbounded (`ghosthunt hunt`,
/// `ghosthunt query`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

fn output(
    key: &'static str,
    kind: &str,
    path: PathBuf,
    topic: String,
    stderr_allowed: bool,
) -> Result<OutputSettings, SettingsError> {
    match kind {
        "stdout" => Ok(OutputSettings::Stdout),
        "stderr" if stderr_allowed => Ok(OutputSettings::Stderr),
        "file" if path.as_os_str().is_empty() => Err(invalid(key, "the file sink needs a path")),
        "file" => Ok(OutputSettings::File(path)),
        "kafka" if topic.trim().is_empty() => Err(invalid(key, "the kafka sink needs a topic")),
        "kafka" => Ok(OutputSettings::Kafka { topic }),
        other => Err(invalid(
            key,
            format!(
                "unknown sink `{other}` (expected {})",
                if stderr_allowed {
                    "file, stdout, stderr or kafka"
                } else {
                    "stdout, file or kafka"
                }
            ),
        )),
    }
}

mod kafka;
mod raw;
#[cfg(test)]
mod tests;

pub use kafka::{AlertKey, KafkaSettings, KafkaSourceSettings, librdkafka_options};
pub use raw::*;

/// `[lake.storage]` as `key = value` strings (keys in lower case, as object_store spells them).
fn storage_options(value: &serde_json::Value) -> Result<Vec<(String, String)>, SettingsError> {
    let mut out = Vec::new();
    match value {
        serde_json::Value::Null => {}
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(invalid(
                            "lake.storage",
                            format!("`{k}` must be a string, number or boolean, not {other}"),
                        ));
                    }
                };
                out.push((k.to_ascii_lowercase(), v));
            }
        }
        _ => {
            return Err(invalid(
                "lake.storage",
                "must be a table of object-storage settings",
            ));
        }
    }
    out.sort();
    Ok(out)
}
