//! Hunts: parsing their files, planning them once with DataFusion, running them on a batch or a window.
//!
//! [`load`] finds hunt files (built-in and configured), [`hunt::Hunt`] is one parsed file,
//! [`plan::PlannedHunt`] is a hunt ready to run, and [`testing`] runs hunts on their sample events.

pub mod hunt;
pub mod load;
pub mod plan;
pub mod testing;

pub use hunt::{Attack, Hunt, HuntError, Origin, Severity, WindowSpec};
pub use plan::PlannedHunt;

use crate::decode::EventSchema;

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
