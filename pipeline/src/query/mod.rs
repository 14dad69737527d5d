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

use std::sync::Arc;

use crate::decode::EventSchema;
use crate::hunt::{Hunt, HuntError};

/// Plans every hunt; a hunt that fails to plan is reported and left out. The hunts are planned at once,
/// each on a task of its own (the runtime's workers share them), and come out in their order.
pub async fn plan_all(
    hunts: impl IntoIterator<Item = Hunt>,
    schema: &EventSchema,
) -> (Vec<PlannedHunt>, Vec<HuntError>) {
    let schema = Arc::new(schema.clone());
    let tasks: Vec<_> = hunts
        .into_iter()
        .map(|hunt| {
            let schema = Arc::clone(&schema);
            tokio::spawn(async move { plan::plan(hunt, &schema).await })
        })
        .collect();
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(p)) => planned.push(p),
            Ok(Err(e)) => errors.push(e),
            // A panic while planning goes on here, as it did when the hunts were planned in turn.
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("planning a hunt: {e}"),
            },
        }
    }
    (planned, errors)
}
