//! Configuration: what the user wrote, layered and checked once, and what the pipeline runs with.
//!
//! Layers, last wins: the embedded `default.toml` → `--config FILE` → environment variables
//! `GHOSTHUNT__SECTION__KEY`. [`RawConfig`] mirrors the file (unknown keys are errors that name the key);
//! [`Settings::load`] validates it into [`Settings`], whose errors name the key and where it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The embedded defaults: the embedded default run needs no file at all.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

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

/// The configuration as written (all layers merged), before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub source: RawSource,
    pub decode: RawDecode,
    pub hunts: RawHunts,
    pub window: RawWindow,
    pub alerts: RawAlerts,
    pub dead_letters: RawDeadLetters,
    pub metrics: RawMetrics,
    pub log: RawLog,
    pub kafka: RawKafka,
}

/// `[source]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// generator | file | stdin
    pub kind: String,
    pub generator: RawGenerator,
    pub file: RawFile,
    pub kafka: RawKafkaSource,
}

/// `[source.kafka]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaSource {
    pub topics: Vec<String>,
    pub topic_pattern: String,
    pub group_id: String,
    pub auto_offset_reset: String,
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Consumer-only librdkafka settings.
    pub options: serde_json::Value,
}

/// `[kafka]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    pub brokers: String,
    /// librdkafka settings for every client.
    pub options: serde_json::Value,
    /// librdkafka settings for producers.
    pub producer_options: serde_json::Value,
}

/// `[source.generator]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGenerator {
    /// Events per second; event time follows the wall clock.
    pub rate: u64,
    pub hosts: u32,
    pub users: u32,
    pub seed: u64,
    /// Event time between injected attack scenarios; zero injects none.
    #[serde(with = "humantime_serde")]
    pub attack_interval: Duration,
    /// Stop after this many events; 0 = unbounded.
    pub limit: u64,
    /// Event time runs this many times faster than the wall clock.
    pub speed: f64,
}

/// `[source.file]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub paths: Vec<String>,
    pub follow: bool,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

/// `[decode]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecode {
    pub schema: String,
    pub batch_size: usize,
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    pub max_record_bytes: usize,
}

/// `[hunts]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHunts {
    pub builtin: bool,
    pub directories: Vec<PathBuf>,
    pub concurrency: usize,
}

/// `[window]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    pub max_rows_per_hunt: usize,
}

/// `[alerts]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub sink: String,
    pub path: PathBuf,
    pub topic: String,
    pub key: String,
}

/// `[dead_letters]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadLetters {
    pub sink: String,
    pub path: PathBuf,
    pub topic: String,
}

/// `[metrics]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: String,
}

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub filter: String,
}

/// What the pipeline runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: SourceSettings,
    /// The generator's settings, whatever the source (`ghosthunt produce` uses them).
    pub generator: GeneratorSettings,
    pub decode: DecodeSettings,
    pub hunts: HuntSettings,
    pub window: WindowSettings,
    pub alerts: OutputSettings,
    pub dead_letters: OutputSettings,
    /// Kafka message key of alerts.
    pub alert_key: AlertKey,
    /// `None`: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    pub log_filter: String,
    pub kafka: KafkaSettings,
}

/// The cluster and the librdkafka settings every Kafka client shares.
#[derive(Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    /// librdkafka settings for every client (may hold secrets: never logged).
    pub options: Vec<(String, String)>,
    /// librdkafka settings for producers only.
    pub producer_options: Vec<(String, String)>,
}

impl std::fmt::Debug for KafkaSettings {
    /// Option values may be passwords: only their keys are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = |o: &Vec<(String, String)>| o.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("options", &keys(&self.options))
            .field("producer_options", &keys(&self.producer_options))
            .finish()
    }
}

/// How alerts are keyed on Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKey {
    /// Hunt id and the hunt's entity value (e.g. `password_guessing|10.1.2.50`).
    HuntEntity,
    Hunt,
    None,
}

/// `[source.kafka]`, checked.
#[derive(Clone)]
pub struct KafkaSourceSettings {
    pub topics: Vec<String>,
    /// A regular expression over topic names, instead of `topics`.
    pub topic_pattern: Option<String>,
    pub group_id: String,
    pub auto_offset_reset: String,
    pub commit_interval: Duration,
    /// Consumer-only librdkafka settings (may hold secrets: never logged).
    pub options: Vec<(String, String)>,
}

impl std::fmt::Debug for KafkaSourceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSourceSettings")
            .field("topics", &self.topics)
            .field("topic_pattern", &self.topic_pattern)
            .field("group_id", &self.group_id)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("commit_interval", &self.commit_interval)
            .field(
                "options",
                &self.options.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Flattens a TOML table of librdkafka settings into `key = value` strings. A dotted key
/// (`"security.protocol"`) arrives as nested tables and an environment key (`SECURITY_PROTOCOL`) with `_`
/// for `.`; both become `security.protocol` (librdkafka's property names have no `_`).
pub fn librdkafka_options(
    key: &'static str,
    value: &serde_json::Value,
) -> Result<Vec<(String, String)>, SettingsError> {
    fn walk(
        prefix: &str,
        value: &serde_json::Value,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let name = k.to_ascii_lowercase().replace('_', ".");
                    let full = if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}.{name}")
                    };
                    walk(&full, v, out)?;
                }
                Ok(())
            }
            serde_json::Value::String(s) => {
                out.push((prefix.to_string(), s.clone()));
                Ok(())
            }
            serde_json::Value::Number(n) => {
                out.push((prefix.to_string(), n.to_string()));
                Ok(())
            }
            serde_json::Value::Bool(b) => {
                out.push((prefix.to_string(), b.to_string()));
                Ok(())
            }
            other => Err(format!(
                "`{prefix}` must be a string, number or boolean, not {other}"
            )),
        }
    }
    let mut out = Vec::new();
    if !value.is_null() {
        if !value.is_object() {
            return Err(invalid(key, "must be a table of librdkafka settings"));
        }
        walk("", value, &mut out).map_err(|reason| invalid(key, reason))?;
    }
    out.sort();
    Ok(out)
}

/// Where events come from.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    Generator(GeneratorSettings),
    File(FileSettings),
    Stdin,
    Kafka(KafkaSourceSettings),
}

#[derive(Debug, Clone)]
pub struct GeneratorSettings {
    pub rate: u64,
    pub hosts: u32,
    pub users: u32,
    pub seed: u64,
    pub attack_interval: Duration,
    pub limit: Option<u64>,
    pub speed: f64,
}

#[derive(Debug, Clone)]
pub struct FileSettings {
    pub paths: Vec<String>,
    pub follow: bool,
    pub poll_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct DecodeSettings {
    /// `None`: the built-in Windows schema.
    pub schema_path: Option<PathBuf>,
    pub batch_size: usize,
    pub batch_timeout: Duration,
    pub max_record_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct HuntSettings {
    pub builtin: bool,
    pub directories: Vec<PathBuf>,
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct WindowSettings {
    pub allowed_lateness: Duration,
    pub idle_timeout: Duration,
    pub max_rows_per_hunt: usize,
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
        let generator = GeneratorSettings {
            rate: g.rate,
            hosts: g.hosts,
            users: g.users,
            seed: g.seed,
            attack_interval: g.attack_interval,
            limit: (g.limit > 0).then_some(g.limit),
            speed: g.speed,
        };
        let source = match raw.source.kind.as_str() {
            "generator" => SourceSettings::Generator(generator.clone()),
            "file" => {
                let f = raw.source.file;
                if f.paths.is_empty() {
                    return Err(invalid(
                        "source.file.paths",
                        "the file source needs at least one path or glob",
                    ));
                }
                if f.poll_interval.is_zero() {
                    return Err(invalid("source.file.poll_interval", "must be above zero"));
                }
                SourceSettings::File(FileSettings {
                    paths: f.paths,
                    follow: f.follow,
                    poll_interval: f.poll_interval,
                })
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
        if d.batch_timeout.is_zero() {
            return Err(invalid("decode.batch_timeout", "must be above zero"));
        }
        if d.max_record_bytes == 0 {
            return Err(invalid("decode.max_record_bytes", "must be at least 1"));
        }
        let decode = DecodeSettings {
            schema_path: (d.schema != "windows").then(|| PathBuf::from(d.schema)),
            batch_size: d.batch_size,
            batch_timeout: d.batch_timeout,
            max_record_bytes: d.max_record_bytes,
        };

        if !raw.hunts.builtin && raw.hunts.directories.is_empty() {
            return Err(invalid(
                "hunts.directories",
                "no hunts: hunts.builtin is false and no directory is given",
            ));
        }
        if raw.hunts.concurrency == 0 {
            return Err(invalid("hunts.concurrency", "must be at least 1"));
        }
        let hunts = HuntSettings {
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
            || matches!(dead_letters, OutputSettings::Kafka { .. });
        if uses_kafka && kafka.brokers.trim().is_empty() {
            return Err(invalid(
                "kafka.brokers",
                "Kafka is used but no brokers are given",
            ));
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
            decode,
            hunts,
            window,
            alerts,
            dead_letters,
            alert_key,
            metrics_listen,
            log_filter: raw.log.filter,
            kafka,
        })
    }
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

impl RawConfig {
    /// Merges the embedded defaults, the optional file and the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<RawConfig, SettingsError> {
        let env: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            // Check the file alone first, so that its own mistakes are reported against it.
            let own = Config::builder()
                .add_source(File::from(path).format(FileFormat::Toml).required(true))
                .build()
                .map_err(|source| SettingsError::Layer {
                    origin: format!("file {}", path.display()),
                    source,
                })?;
            drop(own);
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        let env_names: Vec<String> = env.keys().cloned().collect();
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("source.file.paths")
                .with_list_parse_key("hunts.directories")
                .with_list_parse_key("source.kafka.topics")
                .try_parsing(true)
                .source(Some(env)),
        );
        let origin = match (file, env_names.is_empty()) {
            (Some(p), true) => format!("(defaults + {})", p.display()),
            (Some(p), false) => format!(
                "(defaults + {} + environment {})",
                p.display(),
                env_names.join(", ")
            ),
            (None, true) => "(defaults)".to_string(),
            (None, false) => format!("(defaults + environment {})", env_names.join(", ")),
        };
        let layer = |source| SettingsError::Layer {
            origin: origin.clone(),
            source,
        };
        builder
            .build()
            .map_err(layer)?
            .try_deserialize::<RawConfig>()
            .map_err(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_need_no_file() {
        let s = Settings::load(None, Vec::new()).unwrap();
        assert!(matches!(s.source, SourceSettings::Generator(ref g) if g.rate == 2000));
        assert_eq!(s.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(s.alerts, OutputSettings::Stdout);
        assert_eq!(s.decode.batch_timeout, Duration::from_millis(200));
    }

    #[test]
    fn file_overrides_defaults_and_environment_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            "[source]\nkind = \"file\"\n[source.file]\npaths = [\"a.jsonl\"]\n[window]\nidle_timeout = \"3s\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&path),
            env(&[
                ("GHOSTHUNT__WINDOW__IDLE_TIMEOUT", "7s"),
                ("GHOSTHUNT__SOURCE__FILE__PATHS", "x.jsonl,y/*.jsonl"),
                ("UNRELATED", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(s.window.idle_timeout, Duration::from_secs(7));
        match s.source {
            SourceSettings::File(f) => assert_eq!(f.paths, vec!["x.jsonl", "y/*.jsonl"]),
            other => panic!("expected the file source, got {other:?}"),
        }
    }

    #[test]
    fn unknown_key_in_file_is_an_error_naming_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[window]\nidel_timeout = \"3s\"\n").unwrap();
        let err = Settings::load(Some(&path), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("idel_timeout"), "{err}");
        assert!(err.contains("bad.toml"), "{err}");
    }

    #[test]
    fn unknown_key_in_environment_is_an_error_naming_key() {
        let err = Settings::load(None, env(&[("GHOSTHUNT__WINDOW__IDEL", "3s")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("idel"), "{err}");
        assert!(err.contains("GHOSTHUNT__WINDOW__IDEL"), "{err}");
    }

    #[test]
    fn librdkafka_options_from_file_and_environment_become_dotted_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "[source]\nkind = \"kafka\"\n[kafka.options]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"PLAIN\"\n\"socket.keepalive.enable\" = true\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&path),
            env(&[
                ("GHOSTHUNT__KAFKA__OPTIONS__SASL_PASSWORD", "hunter2"),
                ("GHOSTHUNT__KAFKA__BROKERS", "b1:9093,b2:9093"),
            ]),
        )
        .unwrap();
        assert_eq!(s.kafka.brokers, "b1:9093,b2:9093");
        assert_eq!(
            s.kafka.options,
            vec![
                ("sasl.mechanism".to_string(), "PLAIN".to_string()),
                ("sasl.password".to_string(), "hunter2".to_string()),
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                ("socket.keepalive.enable".to_string(), "true".to_string()),
            ]
        );
        assert!(
            !format!("{s:?}").contains("hunter2"),
            "secrets never appear in Debug output"
        );
    }

    #[test]
    fn bad_duration_is_an_error() {
        let err = Settings::load(None, env(&[("GHOSTHUNT__DECODE__BATCH_TIMEOUT", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_timeout"), "{err}");
    }

    #[test]
    fn invalid_value_names_its_key() {
        let err = Settings::load(None, env(&[("GHOSTHUNT__SOURCE__KIND", "carrier-pigeon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("source.kind"), "{err}");
        let err = Settings::load(None, env(&[("GHOSTHUNT__SOURCE__KIND", "file")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("source.file.paths"), "{err}");
    }
}
