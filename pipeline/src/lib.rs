//! # ghosthunt
//!
//! Continuous threat hunts over security event streams: JSON events → Arrow → DataFusion → OCSF alerts.
//!
//! # Layout
//! At the bottom, imported by every stage and importing none: [`hunt`] (the hunt model every language
//! produces), [`settings`] (configuration layered from defaults, file and environment, validated once) and
//! [`telemetry`] (metric names in one place, the `/metrics` + `/healthz` endpoint). Then the modules follow
//! the data, in order:
//! - [`source`]: bytes in (files, stdin, Kafka) and where positions are acknowledged; [`kafka`]: the
//!   client helpers the Kafka source and sinks share.
//! - [`decode`]: bytes → Arrow record batches with a schema defined as data; dead letters.
//! - [`window`]: event time, watermarks, and each windowed hunt's buffered rows.
//! - [`runtime`]: the one evaluator trait every kind of hunt runs as, and the detections it reports.
//! - [`query`]: SQL hunts — their files, planning once with DataFusion, evaluating a batch or a window.
//! - [`sigma`]: Sigma YAML rules → hunts, evaluated together on each batch; correlation rules.
//! - [`kql`]: the Kusto Query Language front end (lexer, parser, syntax tree with positions), the
//!   Defender / Sentinel tables as views over `events` (`pipeline/kql/tables.yml`), and the translation
//!   of a query (a `.kql` hunt file) to the SQL hunt it stands for.
//! - [`alert`]: detections → OCSF Detection Findings with deterministic ids (built only here); the sinks.
//! - [`pipeline`]: the wiring of one run; [`app`]: from settings to a running pipeline; [`testing`]: hunts
//!   run on their sample events (`ghosthunt test`).
//!
//! Beside the flow: [`generator`], the built-in event source of the embedded default; [`cli`], the bodies
//! of the other subcommands (`bench`, `produce`, `sigma bench`, `kql convert|check`).

pub mod alert;
pub mod app;
pub mod cli;
pub mod decode;
pub mod generator;
pub mod hunt;
pub mod incident;
pub mod kafka;
pub mod kql;
pub mod lake;
pub mod parallel;
pub mod pipeline;
pub mod presence;
pub mod query;
pub mod runtime;
pub mod scale;
pub mod settings;
pub mod sigma;
pub mod source;
pub mod telemetry;
pub mod testing;
pub mod window;

/// The shared corpus and installed programs for tests: missing, the test skips (or fails under
/// `GHOSTHUNT_REQUIRE_ALL=1`). The integration tests include the same file.
#[cfg(test)]
pub(crate) mod test_needs;
