//! Alerts: what the evaluators detected → OCSF Detection Findings with deterministic ids (built here and
//! nowhere else), and the sinks that take them (and the dead letters) out of the pipeline.

pub mod human;
pub mod kafka;
pub mod ocsf;
pub mod sink;
pub mod suppress;

pub use crate::runtime::AlertTime;
pub use ocsf::{Alert, Subject, build, build_alerts};
pub use sink::{AlertSink, DeadLetterSink, HumanWriter, LineWriter, MemorySink, SinkError};
pub use suppress::Suppressor;
