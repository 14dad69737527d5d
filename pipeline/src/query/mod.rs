//! Hunts: parsing their files, planning them once with DataFusion, running them on a batch or a window.
//!
//! [`load`] finds hunt files (built-in and configured), [`file`] parses one into a [`crate::hunt::Hunt`],
//! [`plan::PlannedHunt`] is a hunt ready to run, and [`udf`] holds the functions hunts may call beyond
//! DataFusion's own ([`udf_json`]: KQL's dynamic values; [`udf_match`]: text matching); [`rewrite`] runs
//! case-insensitive comparisons without lower-casing columns.

pub mod file;
pub mod load;
pub mod partition;
pub mod plan;
pub mod rewrite;
pub mod run;
pub mod selective;
pub mod texts;
pub mod udf;
pub mod udf_chain;
pub mod udf_json;
pub mod udf_match;

pub use partition::Placement;
pub use plan::PlannedHunt;
pub use run::SqlEvaluator;

use crate::decode::EventSchema;
use crate::hunt::{Hunt, HuntError};

/// Plans every hunt; a hunt that fails to plan is reported and left out.
pub async fn plan_all(
    hunts: impl IntoIterator<Item = Hunt>,
    schema: &EventSchema,
) -> (Vec<PlannedHunt>, Vec<HuntError>) {
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for hunt in hunts {
        match plan::plan(hunt, schema).await {
            Ok(p) => planned.push(p),
            Err(e) => errors.push(e),
        }
    }
    (planned, errors)
}
