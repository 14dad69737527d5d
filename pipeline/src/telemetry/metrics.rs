//! Every metric ghosthunt exports: names in one place, each incremented where the thing happens.
//!
//! Each pipeline owns a [`Metrics`] with its own registry (tests run several pipelines in one process).
//! Stage-specific views ([`DecodeMetrics`], [`HuntMetrics`] …) keep call sites to one line. Counts are per
//! batch, not per event, on the hot path.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Metric names (the README lists them with their meaning).
pub mod names {
    pub const EVENTS_RECEIVED: &str = "ghosthunt_events_received_total";
    pub const BYTES_RECEIVED: &str = "ghosthunt_received_bytes_total";
    pub const DECODE_FAILURES: &str = "ghosthunt_decode_failures_total";
    pub const BATCHES: &str = "ghosthunt_batches_total";
    pub const BATCH_ROWS: &str = "ghosthunt_batch_rows";
    pub const LATE_RECORDS: &str = "ghosthunt_late_records_total";
    pub const DEAD_LETTERS: &str = "ghosthunt_dead_letters_total";
    pub const ALERTS: &str = "ghosthunt_alerts_total";
    pub const HUNT_EVALUATION: &str = "ghosthunt_hunt_evaluation_seconds";
    pub const HUNT_ERRORS: &str = "ghosthunt_hunt_errors_total";
    pub const HUNT_PANICS: &str = "ghosthunt_hunt_panics_total";
    pub const HUNTS_DISABLED: &str = "ghosthunt_hunts_disabled";
    pub const RELOADS: &str = "ghosthunt_reloads_total";
    pub const ALERTS_SUPPRESSED: &str = "ghosthunt_alerts_suppressed_total";
    pub const END_TO_END_LATENCY: &str = "ghosthunt_end_to_end_latency_seconds";
    pub const EVENT_TIME_LAG: &str = "ghosthunt_event_time_lag_seconds";
    pub const WATERMARK_LAG: &str = "ghosthunt_watermark_lag_seconds";
    pub const WINDOW_ROWS: &str = "ghosthunt_window_rows";
    pub const WINDOW_ROWS_LIMIT: &str = "ghosthunt_window_rows_limit";
    pub const INPUTS_HELD_BACK: &str = "ghosthunt_inputs_held_back";
    pub const WINDOW_ROWS_DROPPED: &str = "ghosthunt_window_rows_dropped_total";
    pub const WINDOWS_CLOSED: &str = "ghosthunt_windows_closed_total";
    pub const UNACKNOWLEDGED_BATCHES: &str = "ghosthunt_unacknowledged_batches";
    pub const ACKNOWLEDGED_EVENTS: &str = "ghosthunt_acknowledged_events_total";
    pub const HUNTS_LOADED: &str = "ghosthunt_hunts_loaded";
    pub const BUILD_INFO: &str = "ghosthunt_build_info";
    pub const KAFKA_CONSUMER_LAG: &str = "ghosthunt_kafka_consumer_lag";
    pub const KAFKA_REBALANCES: &str = "ghosthunt_kafka_rebalances_total";
    pub const KAFKA_COMMITS: &str = "ghosthunt_kafka_commits_total";
    pub const KAFKA_PRODUCE_LATENCY: &str = "ghosthunt_kafka_produce_latency_seconds";
    pub const KAFKA_DELIVERY_ERRORS: &str = "ghosthunt_kafka_delivery_errors_total";
    pub const LAKE_ROWS: &str = "ghosthunt_lake_rows_total";
    pub const LAKE_COMMIT: &str = "ghosthunt_lake_commit_seconds";
    pub const LAKE_SKIPPED_ROWS: &str = "ghosthunt_lake_skipped_rows_total";
    pub const REPARTITION_ROWS: &str = "ghosthunt_repartition_rows_total";
    pub const REPARTITION_BYTES: &str = "ghosthunt_repartition_bytes_total";
    pub const REPARTITION_DUPLICATES: &str = "ghosthunt_repartition_duplicates_total";
    pub const REPARTITION_WATERMARK_LAG: &str = "ghosthunt_repartition_watermark_lag_seconds";
    pub const INCIDENTS: &str = "ghosthunt_incidents_total";
    pub const INCIDENTS_OPEN: &str = "ghosthunt_incidents_open";
    pub const ENTITY_RISK: &str = "ghosthunt_entity_risk";

    /// Every name above (the README's metrics table is checked against it).
    pub const ALL: &[&str] = &[
        EVENTS_RECEIVED,
        BYTES_RECEIVED,
        DECODE_FAILURES,
        BATCHES,
        BATCH_ROWS,
        LATE_RECORDS,
        DEAD_LETTERS,
        ALERTS,
        HUNT_EVALUATION,
        HUNT_ERRORS,
        HUNT_PANICS,
        HUNTS_DISABLED,
        RELOADS,
        ALERTS_SUPPRESSED,
        END_TO_END_LATENCY,
        EVENT_TIME_LAG,
        WATERMARK_LAG,
        WINDOW_ROWS,
        WINDOW_ROWS_LIMIT,
        INPUTS_HELD_BACK,
        WINDOW_ROWS_DROPPED,
        WINDOWS_CLOSED,
        UNACKNOWLEDGED_BATCHES,
        ACKNOWLEDGED_EVENTS,
        HUNTS_LOADED,
        BUILD_INFO,
        KAFKA_CONSUMER_LAG,
        KAFKA_REBALANCES,
        KAFKA_COMMITS,
        KAFKA_PRODUCE_LATENCY,
        KAFKA_DELIVERY_ERRORS,
        LAKE_ROWS,
        LAKE_COMMIT,
        LAKE_SKIPPED_ROWS,
        REPARTITION_ROWS,
        REPARTITION_BYTES,
        REPARTITION_DUPLICATES,
        REPARTITION_WATERMARK_LAG,
        INCIDENTS,
        INCIDENTS_OPEN,
        ENTITY_RISK,
    ];
}

/// Latency buckets from a millisecond (unwindowed hunts) to an hour (long windows).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Hunt evaluation buckets: 50 µs to 10 s.
const EVALUATION_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Risk buckets: a few low-severity alerts to a host that lit up.
const RISK_BUCKETS: &[f64] = &[10.0, 25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0];

/// All of one pipeline's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub events_received: IntCounter,
    pub bytes_received: IntCounter,
    pub decode_failures: IntCounterVec,
    pub batches: IntCounter,
    pub batch_rows: Histogram,
    pub late_records: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub alerts: IntCounterVec,
    pub hunt_evaluation: HistogramVec,
    pub hunt_errors: IntCounterVec,
    pub hunt_panics: IntCounterVec,
    pub hunts_disabled: IntGauge,
    pub reloads: IntCounterVec,
    pub alerts_suppressed: IntCounterVec,
    pub end_to_end_latency: HistogramVec,
    pub event_time_lag: HistogramVec,
    pub watermark_lag: Gauge,
    pub window_rows: IntGaugeVec,
    pub window_rows_limit: IntGauge,
    pub inputs_held_back: IntGauge,
    pub window_rows_dropped: IntCounterVec,
    pub windows_closed: IntCounterVec,
    pub unacknowledged_batches: IntGauge,
    pub acknowledged_events: IntCounter,
    pub hunts_loaded: IntGauge,
    pub kafka_consumer_lag: IntGaugeVec,
    pub kafka_rebalances: IntCounter,
    pub kafka_commits: IntCounterVec,
    pub kafka_produce_latency: HistogramVec,
    pub kafka_delivery_errors: IntCounterVec,
    pub lake_rows: IntCounterVec,
    pub lake_commit: Histogram,
    pub lake_skipped_rows: IntCounter,
    pub repartition_rows: IntCounterVec,
    pub repartition_bytes: IntCounterVec,
    pub repartition_duplicates: IntCounterVec,
    pub repartition_watermark_lag: GaugeVec,
    pub incidents: IntCounterVec,
    pub incidents_open: IntGauge,
    pub entity_risk: Histogram,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        use names::*;
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("process collector registers once");
        let build = IntGaugeVec::new(
            Opts::new(
                BUILD_INFO,
                "Always 1; the version label says which ghosthunt runs.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        r.register(Box::new(build)).expect("registered once");

        let batch_rows = Histogram::with_opts(
            HistogramOpts::new(BATCH_ROWS, "Rows per decoded micro-batch.").buckets(vec![
                1.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(batch_rows.clone()))
            .expect("registered once");
        let watermark_lag = Gauge::new(
            WATERMARK_LAG,
            "Wall clock minus the event-time watermark, in seconds.",
        )
        .expect("valid metric");
        r.register(Box::new(watermark_lag.clone()))
            .expect("registered once");
        let window_rows = IntGaugeVec::new(
            Opts::new(WINDOW_ROWS, "Rows held in window state, by hunt."),
            &["hunt"],
        )
        .expect("valid metric");
        r.register(Box::new(window_rows.clone()))
            .expect("registered once");

        let kafka_consumer_lag = IntGaugeVec::new(
            Opts::new(KAFKA_CONSUMER_LAG, "Messages between the partition's high watermark and the committed offset, for the partitions this instance owns (librdkafka statistics), by topic and partition."),
            &["topic", "partition"],
        )
        .expect("valid metric");
        r.register(Box::new(kafka_consumer_lag.clone()))
            .expect("registered once");

        Metrics {
            kafka_consumer_lag,
            kafka_rebalances: counter(
                &r,
                KAFKA_REBALANCES,
                "Consumer group rebalances (assignments and revocations).",
            ),
            kafka_commits: counter_vec(
                &r,
                KAFKA_COMMITS,
                "Offset commits, by result (ok, error).",
                &["result"],
            ),
            kafka_produce_latency: histogram_vec(
                &r,
                KAFKA_PRODUCE_LATENCY,
                "From handing a record to the producer to its delivery report, by topic.",
                &["topic"],
                LATENCY_BUCKETS,
            ),
            kafka_delivery_errors: counter_vec(
                &r,
                KAFKA_DELIVERY_ERRORS,
                "Failed deliveries (retried), by topic and librdkafka error code.",
                &["topic", "code"],
            ),
            events_received: counter(&r, EVENTS_RECEIVED, "Records received from the source."),
            bytes_received: counter(&r, BYTES_RECEIVED, "Bytes received from the source."),
            decode_failures: counter_vec(
                &r,
                DECODE_FAILURES,
                "Records that could not be decoded, by reason.",
                &["reason"],
            ),
            batches: counter(&r, BATCHES, "Micro-batches decoded."),
            batch_rows,
            late_records: counter_vec(
                &r,
                LATE_RECORDS,
                "Records that arrived after their hunt's window closed, by hunt.",
                &["hunt"],
            ),
            dead_letters: counter_vec(
                &r,
                DEAD_LETTERS,
                "Records written to the dead-letter output, by reason.",
                &["reason"],
            ),
            alerts: counter_vec(
                &r,
                ALERTS,
                "Alerts acknowledged by the sink, by hunt and severity.",
                &["hunt", "severity"],
            ),
            hunt_evaluation: histogram_vec(
                &r,
                HUNT_EVALUATION,
                "Time to evaluate a hunt on one batch or window, by hunt.",
                &["hunt"],
                EVALUATION_BUCKETS,
            ),
            hunt_errors: counter_vec(
                &r,
                HUNT_ERRORS,
                "Hunt evaluations that failed, by hunt.",
                &["hunt"],
            ),
            hunt_panics: counter_vec(
                &r,
                HUNT_PANICS,
                "Hunt evaluators that panicked and were disabled (the others go on), by hunt.",
                &["hunt"],
            ),
            hunts_disabled: int_gauge(
                &r,
                HUNTS_DISABLED,
                "Hunt evaluators disabled after a panic, until the next reload or restart.",
            ),
            reloads: counter_vec(
                &r,
                RELOADS,
                "Hunt set reloads, by result (ok, failed, unchanged).",
                &["result"],
            ),
            alerts_suppressed: counter_vec(
                &r,
                ALERTS_SUPPRESSED,
                "Alerts not emitted because an alert for the same hunt and key was emitted within the \
                 hunt's suppression period, by hunt.",
                &["hunt"],
            ),
            end_to_end_latency: histogram_vec(
                &r,
                END_TO_END_LATENCY,
                "From receiving an event to its alert being acknowledged by the sink, by window kind.",
                &["window"],
                LATENCY_BUCKETS,
            ),
            event_time_lag: histogram_vec(
                &r,
                EVENT_TIME_LAG,
                "From an alert's event time (its window end, or its newest event) to its acknowledgement, by window kind.",
                &["window"],
                LATENCY_BUCKETS,
            ),
            watermark_lag,
            window_rows,
            window_rows_limit: int_gauge(
                &r,
                WINDOW_ROWS_LIMIT,
                "Most rows one windowed hunt may hold (window.max_rows_per_hunt).",
            ),
            inputs_held_back: int_gauge(
                &r,
                INPUTS_HELD_BACK,
                "Inputs held back now, ahead of the others in event time (Kafka partitions paused, files waiting their turn).",
            ),
            window_rows_dropped: counter_vec(
                &r,
                WINDOW_ROWS_DROPPED,
                "Rows refused because a hunt's window state was full, by hunt.",
                &["hunt"],
            ),
            windows_closed: counter_vec(
                &r,
                WINDOWS_CLOSED,
                "Windows closed and evaluated, by hunt.",
                &["hunt"],
            ),
            unacknowledged_batches: int_gauge(
                &r,
                UNACKNOWLEDGED_BATCHES,
                "Batches received but not yet acknowledged to the source.",
            ),
            acknowledged_events: counter(
                &r,
                ACKNOWLEDGED_EVENTS,
                "Records acknowledged to the source (fully processed).",
            ),
            hunts_loaded: int_gauge(&r, HUNTS_LOADED, "Hunts planned and running."),
            lake_rows: counter_vec(
                &r,
                LAKE_ROWS,
                "Rows committed to the lake, by table (events, alerts).",
                &["table"],
            ),
            lake_commit: histogram(
                &r,
                LAKE_COMMIT,
                "Time to commit the lake's buffered files (both tables).",
                EVALUATION_BUCKETS,
            ),
            lake_skipped_rows: counter(
                &r,
                LAKE_SKIPPED_ROWS,
                "Replayed rows not written again because the events table already held them.",
            ),
            repartition_rows: counter_vec(
                &r,
                REPARTITION_ROWS,
                "Rows of windowed hunts sent to the repartition topic (scale.mode = repartition), by hunt.",
                &["hunt"],
            ),
            repartition_bytes: counter_vec(
                &r,
                REPARTITION_BYTES,
                "Bytes of those rows as sent (Arrow IPC, before Kafka compression), by hunt.",
                &["hunt"],
            ),
            repartition_duplicates: counter_vec(
                &r,
                REPARTITION_DUPLICATES,
                "Repartitioned rows received again (same source position) and kept once, by hunt.",
                &["hunt"],
            ),
            repartition_watermark_lag: {
                let g = GaugeVec::new(
                    Opts::new(
                        REPARTITION_WATERMARK_LAG,
                        "Wall clock minus the watermark of a repartition partition this instance owns (the least over the instances sending to it), and which instance holds it there.",
                    ),
                    &["partition", "held_by"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            incidents: counter_vec(
                &r,
                INCIDENTS,
                "Incident Findings sent, by incident rule and activity (create: a new incident; update: \
                 more alerts for an open one).",
                &["rule", "activity"],
            ),
            incidents_open: int_gauge(
                &r,
                INCIDENTS_OPEN,
                "Incidents still open: a later window of their rule may add alerts to them.",
            ),
            entity_risk: histogram(
                &r,
                ENTITY_RISK,
                "Risk an entity reached in an incident rule's window (the `risk` column of incident rule \
                 results), observed when the rule raises or updates an incident.",
                RISK_BUCKETS,
            ),
            registry: r,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// The decoder's view.
    pub fn decode(&self) -> DecodeMetrics {
        DecodeMetrics(self.clone())
    }

    /// The Kafka consumer's lag, for one consumer (it keeps that consumer's assignment).
    pub fn consumer_lag(&self) -> ConsumerLagMetrics {
        ConsumerLagMetrics {
            gauge: self.kafka_consumer_lag.clone(),
            owned: Mutex::new(HashSet::new()),
        }
    }
}

/// The consumer-lag gauge, limited to the partitions this instance owns. librdkafka's statistics go on
/// reporting a partition after a rebalance handed it to another instance of the group; exported, that
/// stale value would count the partition twice in a sum over the group (issue #5).
pub struct ConsumerLagMetrics {
    gauge: IntGaugeVec,
    owned: Mutex<HashSet<(String, i32)>>,
}

impl ConsumerLagMetrics {
    /// Partitions assigned to this instance (a whole assignment, or an incremental one).
    pub fn assigned<'a>(&self, partitions: impl IntoIterator<Item = (&'a str, i32)>) {
        let mut owned = self.owned.lock().expect("lag lock");
        owned.extend(partitions.into_iter().map(|(t, p)| (t.to_string(), p)));
    }

    /// Partitions taken away from this instance: their series go.
    pub fn revoked<'a>(&self, partitions: impl IntoIterator<Item = (&'a str, i32)>) {
        let mut owned = self.owned.lock().expect("lag lock");
        for (topic, partition) in partitions {
            owned.remove(&(topic.to_string(), partition));
            // Absent when no statistics came since the assignment: nothing to remove then.
            let _ = self
                .gauge
                .remove_label_values(&[topic, &partition.to_string()]);
        }
    }

    /// One partition's lag from the statistics: set for an owned partition whose lag is known (librdkafka
    /// says -1 before the group's first commit), otherwise its series goes.
    pub fn observe(&self, topic: &str, partition: i32, lag: i64) {
        let owned = self.owned.lock().expect("lag lock");
        let labels = [topic, &partition.to_string()];
        if lag >= 0 && owned.contains(&(topic.to_string(), partition)) {
            self.gauge.with_label_values(&labels).set(lag);
        } else {
            let _ = self.gauge.remove_label_values(&labels);
        }
    }
}

/// What the decoder counts.
pub struct DecodeMetrics(Metrics);

impl DecodeMetrics {
    /// A record refused by the decoder; `reason` is the dead-letter reason's label.
    pub fn failure(&self, reason: &str) {
        self.0.decode_failures.with_label_values(&[reason]).inc();
    }

    pub fn batch(&self, records: usize, bytes: usize, rows: usize) {
        self.0.events_received.inc_by(records as u64);
        self.0.bytes_received.inc_by(bytes as u64);
        self.0.batches.inc();
        self.0.batch_rows.observe(rows as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag_series(m: &Metrics) -> Vec<String> {
        m.render()
            .lines()
            .filter(|l| l.starts_with(names::KAFKA_CONSUMER_LAG))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn consumer_lag_is_exported_only_for_owned_partitions_with_a_known_lag() {
        let m = Metrics::new();
        let lag = m.consumer_lag();
        lag.assigned([("ev", 0), ("ev", 1), ("ev", 2)]);
        lag.observe("ev", 0, 10);
        lag.observe("ev", 1, 20);
        lag.observe("ev", 2, -1);
        lag.observe("ev", 3, 99);
        assert_eq!(
            lag_series(&m),
            [
                r#"ghosthunt_kafka_consumer_lag{partition="0",topic="ev"} 10"#,
                r#"ghosthunt_kafka_consumer_lag{partition="1",topic="ev"} 20"#,
            ]
        );

        // A rebalance hands partition 1 to another instance; librdkafka keeps reporting it.
        lag.revoked([("ev", 0), ("ev", 1), ("ev", 2)]);
        assert!(lag_series(&m).is_empty(), "{:?}", lag_series(&m));
        lag.assigned([("ev", 0), ("ev", 2)]);
        lag.observe("ev", 0, 5);
        lag.observe("ev", 1, 20);
        lag.observe("ev", 2, 7);
        assert_eq!(
            lag_series(&m),
            [
                r#"ghosthunt_kafka_consumer_lag{partition="0",topic="ev"} 5"#,
                r#"ghosthunt_kafka_consumer_lag{partition="2",topic="ev"} 7"#,
            ]
        );
    }
}
