//! One bad hunt stays one bad hunt (design invariant 11, issue #10): an evaluator that panics is disabled,
//! counted and reported, and the other hunts go on alerting.

mod common;

use std::sync::Arc;

use common::{Step, event, hunt, plan_hunts, test_settings};
use ghosthunt::hunt::Hunt;
use ghosthunt::pipeline::{self, Components};
use ghosthunt::runtime::{Evaluator, StepInput, StepOutput, Stepping};
use ghosthunt::telemetry::{Health, Metrics};

/// An evaluator whose second step with a batch panics (a stand-in for a hunt hitting a bug).
struct Bomb {
    batches: usize,
    hunt: Arc<Hunt>,
}

impl Evaluator for Bomb {
    fn label(&self) -> &str {
        "bomb"
    }

    fn hunts(&self) -> Vec<Arc<Hunt>> {
        vec![Arc::clone(&self.hunt)]
    }

    fn step(mut self: Box<Self>, input: StepInput) -> Stepping {
        Box::pin(async move {
            if input.batch.is_some() {
                self.batches += 1;
                assert!(self.batches < 2, "the bomb goes off on its second batch");
            }
            (self as Box<dyn Evaluator>, StepOutput::default())
        })
    }

    fn fingerprint(&self) -> String {
        "bomb".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_hunt_is_disabled_and_the_others_keep_alerting() {
    common::init_logs();
    let sql = "SELECT event_time, host FROM events WHERE event_id = 4625";
    let hunts = plan_hunts(&[("failed", &hunt("failed", "none", "", sql))]).await;
    let bomb_hunt = Arc::clone(&hunts[0].hunt);
    let settings = test_settings();
    let schema = Arc::new(ghosthunt::decode::EventSchema::windows());
    let mut evaluators = ghosthunt::app::evaluators(&settings, &schema, hunts, None);
    evaluators.push(Box::new(Bomb {
        batches: 0,
        hunt: bomb_hunt,
    }));
    let metrics = Metrics::new();
    let health = Health::default();
    let alerts = ghosthunt::alert::MemorySink::default();
    let pause = || Step::Sleep(std::time::Duration::from_millis(80));
    let source = common::ScriptedSource {
        steps: vec![
            Step::Lines("a", vec![event("2026-11-30T10:00:00Z", 4625, &[])]),
            pause(),
            Step::Lines("a", vec![event("2026-11-30T10:00:01Z", 4625, &[])]),
            pause(),
            Step::Lines("a", vec![event("2026-11-30T10:00:02Z", 4625, &[])]),
        ],
        acknowledged: Default::default(),
        linger: true,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(pipeline::run(
        Components {
            settings,
            schema,
            evaluators,
            source: Box::new(source),
            alerts: Box::new(alerts.clone()),
            dead_letters: Box::new(ghosthunt::alert::MemorySink::default()),
            metrics: metrics.clone(),
            health: health.clone(),
            reloads: None,
            lake: None,
            incidents: None,
            stage: ghosthunt::pipeline::Stage::Events(None),
        },
        shutdown.clone(),
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alerts.snapshot().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (healthy, status) = health.get();
    assert!(healthy, "the pipeline runs on: {status}");
    assert!(
        status.contains("disabled after a panic: bomb"),
        "/healthz says what was disabled: {status}"
    );
    shutdown.cancel();
    let summary = task
        .await
        .unwrap()
        .expect("a panicking hunt does not stop the pipeline");
    assert_eq!(alerts.take().len(), 3, "the other hunt saw every event");
    assert_eq!(summary.disabled, vec!["bomb".to_string()]);
    assert_eq!(metrics.hunt_panics.with_label_values(&["bomb"]).get(), 1);
    assert_eq!(metrics.hunts_disabled.get(), 1);
    assert_eq!(
        metrics.hunts_loaded.get(),
        1,
        "only the working hunt is counted"
    );
}
