//! The command line's bodies: each subcommand as a library function that returns a report for `main` to
//! print. [`bench`] runs the pipeline over a fixed number of events, [`produce`] writes events to a Kafka
//! topic, [`sigma`] converts, checks and times Sigma rules ([`sigma_bench`] the timing itself), [`hunts`]
//! lists and validates the configured hunts.

pub mod bench;
pub mod hunts;
pub mod kql;
pub mod lake;
pub mod produce;
pub mod sigma;
pub mod sigma_bench;

use std::path::PathBuf;

/// Why a subcommand could not do its work (the user's input or configuration, named).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no Sigma rule directory: give one, or set sigma.directories")]
    NoRuleDirectory,
    #[error(transparent)]
    Hunt(#[from] crate::hunt::HuntError),
}
