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
}

/// `[source]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// generator | file | stdin
    pub kind: String,
    pub generator: RawGenerator,
    pub file: RawFile,
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
}

/// `[dead_letters]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadLetters {
    pub sink: String,
    pub path: PathBuf,
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
    pub decode: DecodeSettings,
    pub hunts: HuntSettings,
    pub window: WindowSettings,
    pub alerts: OutputSettings,
    pub dead_letters: OutputSettings,
    /// `None`: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    pub log_filter: String,
}

/// Where events come from.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    Generator(GeneratorSettings),
    File(FileSettings),
    Stdin,
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
        let source = match raw.source.kind.as_str() {
            "generator" => {
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
                SourceSettings::Generator(GeneratorSettings {
                    rate: g.rate,
                    hosts: g.hosts,
                    users: g.users,
                    seed: g.seed,
                    attack_interval: g.attack_interval,
                    limit: (g.limit > 0).then_some(g.limit),
                    speed: g.speed,
                })
            }
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
            other => {
                return Err(invalid(
                    "source.kind",
                    format!("unknown source `{other}` (expected generator, file or stdin)"),
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

        let alerts = output("alerts.sink", &raw.alerts.sink, raw.alerts.path, false)?;
        let dead_letters = output(
            "dead_letters.sink",
            &raw.dead_letters.sink,
            raw.dead_letters.path,
            true,
        )?;

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
            decode,
            hunts,
            window,
            alerts,
            dead_letters,
            metrics_listen,
            log_filter: raw.log.filter,
        })
    }
}

fn output(
    key: &'static str,
    kind: &str,
    path: PathBuf,
    stderr_allowed: bool,
) -> Result<OutputSettings, SettingsError> {
    match kind {
        "stdout" => Ok(OutputSettings::Stdout),
        "stderr" if stderr_allowed => Ok(OutputSettings::Stderr),
        "file" if path.as_os_str().is_empty() => Err(invalid(key, "the file sink needs a path")),
        "file" => Ok(OutputSettings::File(path)),
        other => Err(invalid(
            key,
            format!(
                "unknown sink `{other}` (expected {})",
                if stderr_allowed {
                    "file, stdout or stderr"
                } else {
                    "stdout or file"
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
