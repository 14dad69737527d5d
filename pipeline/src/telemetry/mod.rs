//! Telemetry: the metrics (names in one place) and the HTTP endpoint that serves `/metrics` and `/healthz`.

pub mod metrics;
pub mod server;

pub use metrics::Metrics;
pub use server::{Health, serve};
