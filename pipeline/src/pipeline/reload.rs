//! Hot reload inside the running pipeline: a new hunt set switches in between two batches, at once when it
//! reads the columns batches are decoded with, else at the first batch of the decoder made for its schema.

use std::time::Instant;

use super::{Engine, HuntSet, PipelineError, Slot, decoder_for, decoders_beside, step_slots};
use crate::decode::EventSchema;
use crate::runtime::StepInput;

impl Engine {
    /// A new hunt set from a reload: at once when it reads the columns batches are decoded with, else
    /// after the batcher has switched to its schema (batches already decoded finish with the old set).
    pub(super) async fn on_reload(&mut self, set: HuntSet) -> Result<(), PipelineError> {
        if same_columns(&self.schema, &set.schema) {
            self.pending = None;
            return self.apply(set).await;
        }
        let Some(decoders) = &self.decoders else {
            return self.apply(set).await;
        };
        self.generation += 1;
        let decode = decoder_for(&set.schema, self.max_record_bytes, &self.metrics);
        decoders.send_replace((self.generation, decode));
        self.pending = Some((self.generation, set));
        Ok(())
    }

    /// Switches to `set` between two batches. Evaluators the running set already has (same fingerprint)
    /// keep running with their state; the others start empty; running ones the set no longer has are
    /// drained (their open windows evaluated, their alerts delivered) and dropped.
    pub(super) async fn apply(&mut self, set: HuntSet) -> Result<(), PipelineError> {
        let mut old = std::mem::take(&mut self.slots);
        let mut fingerprints: Vec<Option<String>> = old
            .iter()
            .map(|s| s.evaluator.as_ref().map(|e| e.fingerprint()))
            .collect();
        let (mut kept, mut added) = (0usize, Vec::new());
        for evaluator in set.evaluators {
            let fingerprint = evaluator.fingerprint();
            match fingerprints
                .iter()
                .position(|f| f.as_deref() == Some(fingerprint.as_str()))
            {
                Some(i) => {
                    fingerprints.remove(i);
                    self.slots.push(old.remove(i));
                    kept += 1;
                }
                None => {
                    added.push(evaluator.label().to_string());
                    self.slots.push(Slot::new(evaluator));
                }
            }
        }
        self.schema = set.schema;
        if let Some((stage, _)) = &mut self.incidents {
            let hunts: Vec<_> = self
                .slots
                .iter()
                .filter_map(|s| s.evaluator.as_ref())
                .flat_map(|e| e.hunts())
                .collect();
            stage.set_hunts(&hunts);
        }
        let removed: Vec<String> = old.iter().map(|s| s.label.clone()).collect();
        if !old.is_empty() {
            let watermark = self.tracker.watermark(Instant::now());
            let input = StepInput {
                batch: None,
                watermark,
                flush: true,
            };
            let (outputs, panicked) = step_slots(&mut old, input, &self.limit).await;
            for (label, reason) in panicked {
                tracing::error!(hunt = %label, panic = %reason, "Hunt panicked while draining after a reload.");
                self.metrics.hunt_panics.with_label_values(&[&label]).inc();
            }
            self.finish_step(outputs, Vec::new(), watermark, false)
                .await?;
        }
        self.count_hunts();
        if let Some(in_flight) = &self.in_flight {
            let n = decoders_beside(self.slots.iter().filter_map(|s| s.evaluator.as_deref()));
            if in_flight.send_replace(n) != n {
                tracing::debug!(
                    batches = n,
                    "Batches decoded at once, for the reloaded hunts."
                );
            }
        }
        // Hunts disabled after a panic are back if the set has them (they start empty).
        self.metrics.hunts_disabled.set(0);
        self.health.ready("running");
        let result = if added.is_empty() && removed.is_empty() {
            "unchanged"
        } else {
            "ok"
        };
        self.metrics.reloads.with_label_values(&[result]).inc();
        tracing::info!(
            kept,
            added = %added.join(", "),
            removed_or_changed = %removed.join(", "),
            "Hunts reloaded."
        );
        Ok(())
    }
}

/// Whether two schemas decode to the same columns (names and types, in order).
pub(super) fn same_columns(a: &EventSchema, b: &EventSchema) -> bool {
    a.arrow().fields() == b.arrow().fields()
}
