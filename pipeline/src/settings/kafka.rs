//! Kafka settings: the cluster, librdkafka options (secrets never shown) and the source's group settings.

use std::time::Duration;

use super::{SettingsError, invalid};

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
