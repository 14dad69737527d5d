//! # ghosthunt
//!
//! Continuous threat hunts over security event streams: JSON events → Arrow → DataFusion → OCSF alerts.
//!
//! # Layout
//! The modules follow the data, in order:
//! - [`source`]: bytes in (generator, files, stdin) and where positions are acknowledged.
//! - [`decode`]: bytes → Arrow record batches with a schema defined as data; dead letters.
//! - [`window`]: event time, watermarks, and each windowed hunt's buffered rows.
//! - [`query`]: hunts — their files, planning once with DataFusion, running on a batch or window, testing.
//! - [`sigma`]: Sigma YAML rules → hunts, evaluated together on each batch; correlation rules.
//! - [`alert`]: result rows → OCSF Detection Findings with deterministic ids; the sinks.
//! - [`telemetry`]: metric names in one place and the `/metrics` + `/healthz` endpoint.
//! - [`settings`]: configuration layered from defaults, file and environment, validated once.
//! - [`pipeline`]: the wiring of one run; [`app`]: from settings to a running pipeline;
//!   [`produce`]: events into a Kafka topic (`ghosthunt produce`); [`bench`]: the pipeline over a fixed
//!   number of events into a null sink, measured (`ghosthunt bench`).

pub mod alert;
pub mod app;
pub mod bench;
pub mod decode;
pub mod pipeline;
pub mod produce;
pub mod query;
pub mod settings;
pub mod sigma;
pub mod source;
pub mod telemetry;
pub mod window;

/// The shared corpus and installed programs for tests: missing, the test skips (or fails under
/// `GHOSTHUNT_REQUIRE_ALL=1`). The integration tests include the same file.
#[cfg(test)]
pub(crate) mod test_needs;
