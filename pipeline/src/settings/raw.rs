//! The configuration as written: every layer merged, unknown keys refused, nothing checked yet.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use super::{DEFAULT_TOML, ENV_PREFIX, SettingsError};

/// The configuration as written (all layers merged), before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub source: RawSource,
    pub decode: RawDecode,
    pub hunts: RawHunts,
    pub sigma: RawSigma,
    pub window: RawWindow,
    pub alerts: RawAlerts,
    pub incidents: RawIncidents,
    pub dead_letters: RawDeadLetters,
    pub metrics: RawMetrics,
    pub log: RawLog,
    pub kafka: RawKafka,
    pub lake: RawLake,
    pub scale: RawScale,
}

/// `[scale]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScale {
    pub mode: String,
    pub topic: String,
    pub partitions: i32,
}

/// `[lake]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLake {
    pub path: String,
    #[serde(default)]
    pub storage: serde_json::Value,
    pub flush_rows: usize,
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    pub read_rows: usize,
    pub row_group_rows: usize,
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
    /// Event time between multi-stage campaigns on one workstation; zero runs none.
    #[serde(with = "humantime_serde")]
    pub campaign_interval: Duration,
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
    pub max_open: usize,
}

/// `[decode]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecode {
    pub schema: String,
    pub batch_size: usize,
    pub batch_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    pub adaptive: bool,
    #[serde(with = "humantime_serde")]
    pub adaptive_interval: Duration,
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

/// `[sigma]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigma {
    pub directories: Vec<PathBuf>,
    pub mapping: String,
    #[serde(default)]
    pub placeholders: std::collections::HashMap<String, Vec<String>>,
    #[serde(with = "humantime_serde")]
    pub suppress: Duration,
    pub threads: usize,
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
    #[serde(with = "humantime_serde")]
    pub max_lead: Duration,
    #[serde(with = "humantime_serde")]
    pub max_future: Duration,
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

/// `[incidents]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIncidents {
    pub builtin: bool,
    pub directories: Vec<PathBuf>,
    pub sink: String,
    pub path: PathBuf,
    pub topic: String,
    pub assignee_group: String,
    pub risk: RawRisk,
}

/// `[incidents.risk]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRisk {
    pub informational: u32,
    pub low: u32,
    pub medium: u32,
    pub high: u32,
    pub critical: u32,
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
                .with_list_parse_key("sigma.directories")
                .with_list_parse_key("incidents.directories")
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
