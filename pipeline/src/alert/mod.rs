//! Alerts: result rows → OCSF Detection Findings with deterministic ids, and the sinks that take them
//! (and the dead letters) out of the pipeline.

pub mod kafka;
pub mod ocsf;
pub mod sink;

pub use ocsf::{Alert, AlertTime, build_alerts};
pub use sink::{AlertSink, DeadLetterSink, LineWriter, MemorySink, SinkError};
