//! Kafka client helpers shared by the Kafka source and the Kafka sinks: one client configuration from
//! settings, and librdkafka's log lines forwarded into ours.

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::settings::KafkaSettings;

/// Client settings shared by every Kafka client: brokers, the user's options, and our defaults.
pub fn client_config(kafka: &KafkaSettings, extra: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in kafka.options.iter().chain(extra) {
        c.set(k, v);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// Sets `key` to our default `value` unless the user's options already set it.
pub fn set_default(config: &mut ClientConfig, key: &str, value: &str) {
    if config.get(key).is_none() {
        config.set(key, value);
    }
}

/// A Kafka failure with what to do about it: the client's error (its librdkafka code kept), what we were
/// doing, and whether trying again can help (a broker that is down or busy) or not (a bad setting, an
/// unknown topic, no authorisation: the operator's to fix).
#[derive(Debug, thiserror::Error)]
#[error("kafka: {doing}: {source}{}", if *.retriable { " (transient: retrying may help)" } else { "" })]
pub struct KafkaFailure {
    pub doing: String,
    /// librdkafka's code, when the client gave one.
    pub code: Option<RDKafkaErrorCode>,
    pub retriable: bool,
    /// Boxed: errors travel in `Result`s on every path; the client's error is large.
    #[source]
    pub source: Box<KafkaError>,
}

impl KafkaFailure {
    pub fn new(doing: impl Into<String>, source: KafkaError) -> KafkaFailure {
        let code = source.rdkafka_error_code();
        KafkaFailure {
            doing: doing.into(),
            retriable: code.is_some_and(retriable),
            code,
            source: Box::new(source),
        }
    }
}

/// Codes that describe a passing state of the cluster or the network, not a mistake in what was asked.
fn retriable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        BrokerTransportFailure
            | AllBrokersDown
            | MessageTimedOut
            | OperationTimedOut
            | QueueFull
            | RequestTimedOut
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | LeaderNotAvailable
            | NotLeaderForPartition
            | NetworkException
            | CoordinatorLoadInProgress
            | CoordinatorNotAvailable
            | NotCoordinator
            | RebalanceInProgress
    )
}

/// librdkafka's own log lines, into our log.
pub fn forward_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    use RDKafkaLogLevel::*;
    match level {
        Emerg | Alert | Critical | Error => {
            tracing::error!(target: "librdkafka", facility, "{message}")
        }
        Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        Notice | Info => tracing::info!(target: "librdkafka", facility, "{message}"),
        Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}
