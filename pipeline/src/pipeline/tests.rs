//! The pipeline's own failures, and what a reload changes beside the hunts: the decoder, and how many
//! batches are decoded at once.

use std::time::Duration;

use super::reload::same_columns;
use super::*;
use crate::alert::{Alert, MemorySink};
use crate::decode::decoders_in_flight;
use crate::settings::FileSettings;

/// A run over a file holding `text`, decoded by the pipeline's decoder as `wrap` wraps it.
async fn run_over_file(
    text: &str,
    settings: Settings,
    (evaluators, stage): (Vec<Box<dyn Evaluator>>, Stage),
    wrap: impl FnOnce(DecodeFn) -> DecodeFn,
) -> Result<Summary, PipelineError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, text).unwrap();
    let source = crate::source::FileSource::new(
        FileSettings {
            paths: vec![path.display().to_string()],
            follow: false,
            poll_interval: Duration::from_millis(50),
            max_open: 64,
        },
        1 << 20,
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let c = components(settings, Box::new(source), evaluators, stage);
    let decode = wrap(decoder_for(&c.schema, 1 << 20, &c.metrics));
    run_with_decoder(c, CancellationToken::new(), decode).await
}

/// A pipeline over `source` with the windows schema, alerts and dead letters kept in memory.
fn components(
    settings: Settings,
    source: Box<dyn crate::source::Source>,
    evaluators: Vec<Box<dyn Evaluator>>,
    stage: Stage,
) -> Components {
    Components {
        settings,
        schema: Arc::new(EventSchema::windows()),
        evaluators,
        source,
        alerts: Box::new(MemorySink::<Alert>::default()),
        dead_letters: Box::new(MemorySink::<DeadLetter>::default()),
        metrics: Metrics::new(),
        health: Health::default(),
        reloads: None,
        lake: None,
        incidents: None,
        stage,
    }
}

/// A run over one file whose decoding panics on records (not on the empty batches of announcements).
async fn run_with_broken_decoder() -> Result<Summary, PipelineError> {
    run_over_file(
        "{\"EventID\": 1}\n",
        Settings::load(None, Vec::new()).unwrap(),
        (Vec::new(), Stage::Events(None)),
        |real| {
            Arc::new(move |seq, records, threads| {
                assert!(records.is_empty(), "a bug in the decoder");
                real(seq, records, threads)
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoder_panic_ends_the_run_with_an_error_not_a_quiet_finish() {
    match run_with_broken_decoder().await {
        Err(PipelineError::Task { stage, reason }) => {
            assert_eq!(stage, "decoder");
            assert!(reason.contains("a bug in the decoder"), "{reason}");
        }
        other => panic!("expected the decoder's failure, got {other:?}"),
    }
}

#[test]
fn schemas_with_the_same_columns_need_no_new_decoder() {
    let a = EventSchema::windows();
    assert!(same_columns(&a, &EventSchema::windows()));
    let b = a
        .with_string_columns([(
            "extra_field".to_string(),
            vec!["extra_field".to_string()],
            String::new(),
        )])
        .unwrap();
    assert!(!same_columns(&a, &b));
}

/// An evaluator of no hunts whose step keeps `threads` cores busy.
struct Busy {
    label: String,
    threads: usize,
}

impl Evaluator for Busy {
    fn label(&self) -> &str {
        &self.label
    }

    fn hunts(&self) -> Vec<Arc<crate::hunt::Hunt>> {
        Vec::new()
    }

    fn step(self: Box<Self>, _input: StepInput) -> crate::runtime::Stepping {
        Box::pin(async move { (self as Box<dyn Evaluator>, StepOutput::default()) })
    }

    fn threads(&self) -> usize {
        self.threads
    }

    fn fingerprint(&self) -> String {
        format!("{}/{}", self.label, self.threads)
    }
}

fn busy(label: &str, threads: usize) -> Box<dyn Evaluator> {
    Box::new(Busy {
        label: label.to_string(),
        threads,
    })
}

#[tokio::test]
async fn a_reload_sets_the_batches_decoded_at_once_by_its_hunts() {
    let settings = Settings::load(None, Vec::new()).unwrap();
    let mut engine = Engine::new(
        &settings,
        vec![busy("sql", 1)],
        (
            Box::new(MemorySink::<Alert>::default()),
            Box::new(MemorySink::<DeadLetter>::default()),
        ),
        Arc::new(crate::source::NoAcknowledge),
        Metrics::new(),
        Health::default(),
    );
    let (in_flight, batcher_sees) = tokio::sync::watch::channel(decoders_in_flight(1));
    engine.in_flight = Some(in_flight);
    let schema = Arc::new(EventSchema::windows());
    // A rule set that splits each batch over 64 cores joins: one batch decoded at a time.
    let set = |evaluators| HuntSet {
        schema: Arc::clone(&schema),
        evaluators,
    };
    engine
        .apply(set(vec![busy("sql", 1), busy("sigma", 64)]))
        .await
        .unwrap();
    assert_eq!(*batcher_sees.borrow(), 1);
    // It leaves again: a batch per core, as at the start.
    engine.apply(set(vec![busy("sql", 1)])).await.unwrap();
    assert_eq!(*batcher_sees.borrow(), decoders_in_flight(1));
}

/// The most batches `stage` decodes at once beside a SQL hunt, over a file of eight events cut one per
/// batch, each decode taking 30 ms.
async fn most_decoded_at_once(stage: Stage) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut settings = Settings::load(None, Vec::new()).unwrap();
    settings.decode.batch_size = 1;
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counted = {
        let (now, most) = (Arc::clone(&now), Arc::clone(&most));
        move |real: DecodeFn| -> DecodeFn {
            Arc::new(move |seq, records, threads| {
                let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(at_once, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                now.fetch_sub(1, Ordering::SeqCst);
                real(seq, records, threads)
            })
        }
    };
    run_over_file(
        &"{\"EventID\": 1}\n".repeat(8),
        settings,
        (vec![busy("sql", 1)], stage),
        counted,
    )
    .await
    .unwrap();
    most.load(Ordering::SeqCst)
}

/// The repartition topic's decoder applies the senders' reports in record order: a batch decoded beside
/// the one before it would take its watermark from reports that follow rows it has not seen (issue #13's
/// kill test lost a window to this: its rows came late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repartitioned_side_decodes_one_batch_at_a_time_beside_hunts_the_events_side_decodes_more_beside()
 {
    assert_eq!(most_decoded_at_once(Stage::Repartitioned).await, 1);
    assert_eq!(
        most_decoded_at_once(Stage::Events(None)).await,
        decoders_in_flight(1).min(8)
    );
}

/// A source read to its end is whole; one stopped by the shutdown (a signal) is cut short, which a
/// retro-hunt reports (`ghosthunt hunt` exits 130 and says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_before_its_source_ends_is_cut_short_and_one_read_to_its_end_is_not() {
    let settings = Settings::load(None, Vec::new()).unwrap();
    let whole = run_over_file(
        "{\"EventID\": 1, \"@timestamp\": \"2026-01-01T00:00:00Z\"}\n",
        settings.clone(),
        (Vec::new(), Stage::Events(None)),
        |real| real,
    )
    .await
    .unwrap();
    assert!(!whole.cut_short);
    assert_eq!(whole.records, 1);

    // The generator never ends: stopped by the shutdown.
    let c = components(
        settings.clone(),
        Box::new(crate::generator::GeneratorSource::new(
            settings.generator.clone(),
        )),
        Vec::new(),
        Stage::Events(None),
    );
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
    });
    let cut = run(c, shutdown).await.unwrap();
    assert!(cut.cut_short);
}
