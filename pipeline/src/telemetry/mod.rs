//! Telemetry: the metrics (names in one place), the HTTP endpoint that serves `/metrics` and `/healthz`,
//! and the probe that asks `/healthz` (`ghosthunt healthcheck`).

pub mod metrics;
pub mod probe;
pub mod server;

pub use metrics::Metrics;
pub use server::{Health, serve};
