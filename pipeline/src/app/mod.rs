//! From settings to a running pipeline: load the schema and hunts, open the sinks, serve metrics, run.
//!
//! `ghosthunt run` calls [`run`]; tests call it too, with `metrics.listen` on port 0 and a shutdown token.
//! [`reload`] watches the hunt files while it runs.

pub mod reload;
mod sigma_setup;

pub use sigma_setup::{SigmaSetup, sigma, sigma_ids, sigma_mapping};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::alert::kafka::{KafkaAlertSink, KafkaDeadLetterSink};
use crate::alert::{AlertSink, DeadLetterSink, HumanWriter, LineWriter};
use crate::decode::EventSchema;
use crate::generator::GeneratorSource;
use crate::hunt::{Hunt, HuntError};
use crate::incident::IncidentStage;
use crate::lake::LakeSink;
use crate::lake::read::{LakeSource, ReadMode};
use crate::pipeline::{self, Components, Stage, Summary};
use crate::query::{self, PlannedHunt, SqlEvaluator};
use crate::runtime::Evaluator;
use crate::settings::{OutputSettings, ScaleMode, Settings, SourceSettings};
use crate::sigma::engine::SigmaEngine;
use crate::source::kafka::KafkaSource;
use crate::source::progress::WithProgress;
use crate::source::{FileSource, Source, StdinSource};
use crate::telemetry::{self, Health, Metrics};

/// Something that keeps the pipeline from starting or finishing.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Schema(#[from] crate::decode::schema::SchemaError),
    #[error("no hunt could be loaded ({} refused)", .0.len())]
    NoHunts(Vec<HuntError>),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Sink(#[from] crate::alert::SinkError),
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pipeline(#[from] pipeline::PipelineError),
    #[error(transparent)]
    Mapping(#[from] crate::sigma::mapping::MappingError),
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
    #[error("sigma.directories: `{path}` cannot be read: {source}")]
    SigmaDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sigma.mapping {path}: {source}")]
    MappingFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The configured schema.
pub fn schema(settings: &Settings) -> Result<Arc<EventSchema>, AppError> {
    Ok(Arc::new(match &settings.decode.schema_path {
        Some(path) => EventSchema::load(path)?,
        None => EventSchema::windows(),
    }))
}

/// Loads and plans the configured hunts: the planned ones and every refusal (file, line, reason).
pub async fn hunts(
    settings: &Settings,
    schema: &EventSchema,
) -> (Vec<PlannedHunt>, Vec<HuntError>) {
    let loaded = query::load::load(settings.hunts.builtin, &settings.hunts.directories);
    let only = &settings.hunts.only;
    let (planned, mut errors) = query::plan_all(
        loaded
            .hunts
            .into_values()
            .filter(|h| only.is_empty() || only.contains(&h.id)),
        schema,
    )
    .await;
    let mut all = loaded.errors;
    all.append(&mut errors);
    // Incident rules have their own directories: one here would run over the events' watermark.
    let (planned, misplaced): (Vec<_>, Vec<_>) = planned
        .into_iter()
        .partition(|p| p.input == query::plan::Input::Events);
    all.extend(
        misplaced.into_iter().map(|p| HuntError {
            origin: p.hunt.origin.to_string(),
            line: p.hunt.sql_line(),
            reason:
                "selects FROM alerts: an incident rule, which belongs in [incidents] directories"
                    .into(),
        }),
    );
    (planned, all)
}

/// Loads, plans and checks the configured incident rules: the usable ones and every refusal.
pub async fn incident_rules(settings: &Settings) -> (Vec<PlannedHunt>, Vec<HuntError>) {
    let i = &settings.incidents;
    let loaded = query::load::load_incidents(i.builtin, &i.directories);
    let (planned, mut errors) =
        query::plan_all(loaded.hunts.into_values(), &EventSchema::alerts()).await;
    let mut all = loaded.errors;
    all.append(&mut errors);
    let mut usable = Vec::with_capacity(planned.len());
    for p in planned {
        match crate::incident::check_rule(&p) {
            Ok(()) => usable.push(p),
            Err(e) => all.push(e),
        }
    }
    (usable, all)
}

/// The incident stage over the alerts of `hunts`; `None` without incident rules.
pub async fn incident_stage(
    settings: &Settings,
    metrics: &Metrics,
    hunts: Vec<Arc<Hunt>>,
) -> Option<IncidentStage> {
    let (rules, refused) = incident_rules(settings).await;
    for e in &refused {
        tracing::error!(error = %e, "Incident rule refused; the others keep running.");
    }
    if rules.is_empty() {
        return None;
    }
    for r in &rules {
        tracing::info!(rule = %r.hunt.id, window = %r.hunt.window, "Incident rule planned.");
    }
    Some(IncidentStage::new(rules, &hunts, settings, metrics))
}

/// The files the pipeline writes: its alerts, dead letters and incidents, when they go to files.
fn written_files(settings: &Settings) -> Vec<std::path::PathBuf> {
    [
        &settings.alerts,
        &settings.dead_letters,
        &settings.incidents.output,
    ]
    .into_iter()
    .filter_map(|o| match o {
        crate::settings::OutputSettings::File(path) => Some(path.clone()),
        _ => None,
    })
    .collect()
}

/// Builds the configured source. `decode.max_record_bytes` bounds line reading (longer lines are passed
/// on truncated to that size plus one byte, so the decoder dead-letters them as oversized).
pub fn build_source(
    settings: &Settings,
    metrics: &Metrics,
    health: &Health,
) -> Result<Box<dyn Source>, crate::source::SourceError> {
    let max_record_bytes = settings.decode.max_record_bytes;
    // History read once (`ghosthunt hunt`) shows its progress: the lake by itself (by event time),
    // files (by bytes) and Kafka (by records) through `WithProgress`.
    Ok(match &settings.source {
        SourceSettings::Generator(g) => Box::new(GeneratorSource::new(g.clone())),
        SourceSettings::File(f) if settings.progress => {
            let source = FileSource::new(f.clone(), max_record_bytes, settings.window.max_lead)?
                .with_idle_timeout(settings.window.idle_timeout)
                .without(&written_files(settings));
            let bytes = source
                .matched(!f.follow)?
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            let size = source.size();
            Box::new(WithProgress::new(Box::new(source), Some(bytes), size))
        }
        SourceSettings::File(f) => Box::new(
            FileSource::new(f.clone(), max_record_bytes, settings.window.max_lead)?
                .with_idle_timeout(settings.window.idle_timeout)
                .without(&written_files(settings)),
        ),
        SourceSettings::Stdin => Box::new(StdinSource::new(max_record_bytes)),
        SourceSettings::Kafka(k) => Box::new(
            KafkaSource::new(&settings.kafka, k.clone(), metrics, health)?
                .with_alignment(settings.window.max_lead, settings.window.idle_timeout),
        ),
        SourceSettings::KafkaHistory(k, range) => {
            let source = crate::source::kafka_range::KafkaRangeSource::new(
                &settings.kafka,
                k.clone(),
                *range,
                settings.window.max_lead,
            )?;
            if settings.progress {
                let size = source.size();
                Box::new(WithProgress::new(Box::new(source), None, size))
            } else {
                Box::new(source)
            }
        }
        // Every column: the hunts' needs are known in `run` (see `lake_source`).
        SourceSettings::Lake(range) => Box::new(LakeSource::new(
            &settings.lake,
            schema(settings).map_err(|e| crate::source::SourceError::Lake(e.to_string()))?,
            *range,
            ReadMode::Raw,
        )),
    })
}

/// The hunts as the runtime's evaluators: each SQL hunt one (with its window state), the Sigma rule set one.
pub fn evaluators(
    settings: &Settings,
    schema: &EventSchema,
    hunts: Vec<PlannedHunt>,
    sigma: Option<SigmaEngine>,
) -> Vec<Box<dyn Evaluator>> {
    let w = &settings.window;
    let mut evaluators: Vec<Box<dyn Evaluator>> = hunts
        .into_iter()
        .map(|p| {
            Box::new(SqlEvaluator::new(
                p,
                schema.time_index,
                w.allowed_lateness,
                w.max_rows_per_hunt,
            )) as Box<dyn Evaluator>
        })
        .collect();
    if let Some(engine) = sigma {
        evaluators.push(Box::new(engine));
    }
    evaluators
}

/// Hooks for callers that want to see inside a running pipeline.
#[derive(Default, Clone)]
pub struct Handles {
    pub metrics: Metrics,
    pub health: Health,
    /// Filled with the bound metrics address once it listens.
    pub metrics_addr: Arc<std::sync::Mutex<Option<SocketAddr>>>,
}

/// Runs the pipeline described by `settings` until its source ends or `shutdown` is cancelled.
pub async fn run(
    settings: Settings,
    handles: Handles,
    shutdown: CancellationToken,
) -> Result<Summary, AppError> {
    let setup = sigma(&settings, schema(&settings)?)?;
    let schema = setup.schema;
    let (planned, errors) = hunts(&settings, &schema).await;
    for e in &errors {
        tracing::error!(error = %e, "Hunt refused; the others keep running.");
    }
    for r in &setup.refusals {
        tracing::warn!(refusal = %r, "Sigma rule refused; the others keep running.");
    }
    if let Some(engine) = &setup.engine {
        tracing::info!(
            files = setup.files,
            rules = engine.rule_count(),
            refused = setup.refusals.len(),
            columns = schema.columns.len(),
            "Sigma rules compiled."
        );
    }
    let sigma_rules = setup.engine.as_ref().map_or(0, SigmaEngine::rule_count);
    if planned.is_empty() && sigma_rules == 0 {
        return Err(AppError::NoHunts(errors));
    }
    for p in &planned {
        tracing::info!(hunt = %p.hunt.id, window = %p.hunt.window, severity = p.hunt.severity.as_str(), "Hunt planned.");
    }
    let refusals = reload::refusals(&errors, &setup.refusals);
    let server_stop = CancellationToken::new();
    let server = match settings.metrics_listen {
        Some(addr) => {
            let (bound, task) = telemetry::serve(
                addr,
                handles.metrics.clone(),
                handles.health.clone(),
                server_stop.clone(),
            )
            .await
            .map_err(|source| AppError::Metrics { addr, source })?;
            *handles.metrics_addr.lock().expect("address lock") = Some(bound);
            tracing::info!(address = %bound, "Serving /metrics and /healthz.");
            Some(task)
        }
        None => None,
    };
    let retro = matches!(settings.source, SourceSettings::Lake(_));
    let source = match &settings.source {
        SourceSettings::Lake(range) => Box::new(LakeSource::new(
            &settings.lake,
            Arc::clone(&schema),
            *range,
            lake_read_mode(&schema, &settings, &planned, setup.engine.is_some())?,
        )),
        _ => build_source(&settings, &handles.metrics, &handles.health)?,
    };
    // The lake takes the live stream; a retro-hunt reads it and writes nothing back.
    let lake = match settings.lake.enabled() && !retro {
        true => Some(LakeSink::open(&settings.lake, &*self::schema(&settings)?).await?),
        false => None,
    };
    let alerts = alert_sink(&settings, &handles.metrics).await?;
    let dead_letters = dead_letter_sink(&settings, &handles.metrics).await?;
    if settings.scale.mode == ScaleMode::Repartition {
        if settings.incidents.builtin || !settings.incidents.directories.is_empty() {
            tracing::warn!(
                "Incident rules are not evaluated with scale.mode = repartition: each instance sees only its share of the alerts. Alerts are not affected; set incidents.builtin = false to silence this."
            );
        }
        let result = run_scaled_out(
            settings,
            &handles,
            (schema, planned, setup.engine),
            (source, alerts, dead_letters, lake),
            shutdown,
        )
        .await;
        server_stop.cancel();
        if let Some(task) = server {
            let _ = task.await;
        }
        return result;
    }
    let evaluators = evaluators(&settings, &schema, planned, setup.engine);
    let hunts: Vec<Arc<Hunt>> = evaluators.iter().flat_map(|e| e.hunts()).collect();
    let incidents = match incident_stage(&settings, &handles.metrics, hunts).await {
        Some(stage) => Some((
            stage,
            output_sink(&settings.incidents.output, &settings, &handles.metrics).await?,
        )),
        None => None,
    };
    let reload_stop = CancellationToken::new();
    // A retro-hunt runs the hunts as they were at its start.
    let (reloads, reloader) = if retro {
        (None, None)
    } else {
        let (sets_tx, reloads) = tokio::sync::mpsc::channel(1);
        let reloader = reload::spawn(
            settings.clone(),
            handles.metrics.clone(),
            reload::Running::new(refusals, &evaluators),
            sets_tx,
            reload_stop.clone(),
        );
        (Some(reloads), Some(reloader))
    };
    let result = pipeline::run(
        Components {
            settings,
            schema,
            evaluators,
            source,
            alerts,
            dead_letters,
            metrics: handles.metrics.clone(),
            health: handles.health.clone(),
            reloads,
            lake,
            incidents,
            stage: Stage::Events(None),
        },
        shutdown,
    )
    .await;
    reload_stop.cancel();
    if let Some(reloader) = reloader {
        let _ = reloader.await;
    }
    server_stop.cancel();
    if let Some(task) = server {
        let _ = task.await;
    }
    Ok(result?)
}

/// The configured alert sink.
async fn alert_sink(
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Box<dyn AlertSink>, AppError> {
    output_sink(&settings.alerts, settings, metrics).await
}

/// A sink of findings (alerts or incidents) to `output`.
async fn output_sink(
    output: &OutputSettings,
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Box<dyn AlertSink>, AppError> {
    Ok(match output {
        OutputSettings::Stdout if settings.human_output => Box::new(HumanWriter::stdout().await?),
        OutputSettings::Kafka { topic } => Box::new(KafkaAlertSink::new(
            &settings.kafka,
            topic,
            settings.alert_key,
            metrics,
        )?),
        other => Box::new(LineWriter::open(other).await?),
    })
}

/// The configured dead-letter sink.
async fn dead_letter_sink(
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Box<dyn DeadLetterSink>, AppError> {
    Ok(match &settings.dead_letters {
        OutputSettings::Kafka { topic } => {
            Box::new(KafkaDeadLetterSink::new(&settings.kafka, topic, metrics)?)
        }
        other => Box::new(LineWriter::open(other).await?),
    })
}

/// A pipeline's source and where its output goes.
type Ends = (
    Box<dyn Source>,
    Box<dyn AlertSink>,
    Box<dyn DeadLetterSink>,
    Option<LakeSink>,
);

/// `scale.mode = "repartition"`: the events pipeline (every hunt but the repartitioned ones, which it
/// sends on) and the repartitioned pipeline (those hunts, for the keys this instance owns), side by side
/// and sharing the sinks. Either failing stops both. Hunt files are read once: hot reload is off.
async fn run_scaled_out(
    settings: Settings,
    handles: &Handles,
    (schema, planned, sigma): (Arc<EventSchema>, Vec<PlannedHunt>, Option<SigmaEngine>),
    (source, alerts, dead_letters, lake): Ends,
    shutdown: CancellationToken,
) -> Result<Summary, AppError> {
    let SourceSettings::Kafka(events) = &settings.source else {
        unreachable!("settings refuse scale.mode = repartition without a Kafka source");
    };
    let (local, routed) = crate::scale::split(planned);
    let (sigma, correlations) = match sigma {
        Some(engine) => {
            let (engine, chains) = engine.route_correlations();
            (Some(engine), chains)
        }
        None => (None, Vec::new()),
    };
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let routed_ids = routed
        .iter()
        .map(|p| p.hunt.id.clone())
        .chain(correlations.iter().map(|c| c.id().to_string()));
    for c in &correlations {
        tracing::info!(hunt = %c.id(), placement = %c.placement(), "Sigma correlation repartitioned.");
    }
    for id in routed_ids {
        // The series exist from the start (at 0), so that rates over them do too.
        let m = &handles.metrics;
        for counter in [
            &m.repartition_rows,
            &m.repartition_bytes,
            &m.repartition_duplicates,
        ] {
            counter.with_label_values(&[&id]).inc_by(0);
        }
    }
    for p in &routed {
        tracing::info!(hunt = %p.hunt.id, placement = %p.placement().describe(&names), "Hunt repartitioned.");
    }
    let topic = &settings.scale.topic;
    let partitions = crate::scale::ensure_topic(&settings.kafka, topic, settings.scale.partitions)
        .await
        .map_err(|failure| crate::alert::SinkError::Kafka {
            topic: topic.clone(),
            failure,
        })?;
    let instance = crate::scale::instance_id();
    tracing::info!(%topic, partitions, %instance, "Scaled out: windowed hunts' rows go through the repartition topic.");
    let w = &settings.window;
    let repartitioner = crate::scale::Repartitioner::new(
        routed.clone(),
        schema.time_index,
        crate::alert::kafka::KafkaWriter::new(&settings.kafka, topic, &handles.metrics)?,
        (topic, partitions),
        instance,
        (w.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
        &handles.metrics,
    );
    // Every source partition holds the watermark of the repartitioned hunts until a reader reports it.
    let sources = crate::scale::source_partitions(
        &settings.kafka,
        &events.topics,
        events.topic_pattern.as_deref(),
    )
    .await
    .map_err(|failure| crate::alert::SinkError::Kafka {
        topic: topic.clone(),
        failure,
    })?;
    // What the previous owner of each repartition partition had evaluated through (commit metadata).
    let committed = crate::source::kafka::Assignments::default();
    let inbox = crate::scale::Inbox::new(
        routed
            .iter()
            .map(|p| (p.hunt.id.clone(), p.fingerprint()))
            .chain(
                correlations
                    .iter()
                    .map(|c| (c.id().to_string(), c.fingerprint().to_string())),
            )
            .collect(),
        datafusion::arrow::record_batch::RecordBatch::new_empty(Arc::clone(schema.arrow())),
        Arc::clone(&committed),
        sources,
        &handles.metrics,
    );
    let receiving = crate::settings::KafkaSourceSettings {
        topics: vec![topic.clone()],
        topic_pattern: None,
        group_id: format!("{}-repartition", events.group_id),
        // Rows on the topic were acknowledged at their source: none may be skipped.
        auto_offset_reset: "earliest".to_string(),
        commit_interval: events.commit_interval,
        options: events.options.clone(),
    };
    let routed_source = KafkaSource::new(
        &settings.kafka,
        receiving,
        &handles.metrics,
        &handles.health,
    )?
    .with_committed_watermarks(&settings.kafka, committed)?;
    let mut routed_evaluators: Vec<Box<dyn Evaluator>> = routed
        .into_iter()
        .map(|p| {
            Box::new(
                SqlEvaluator::new(
                    p,
                    schema.time_index,
                    w.allowed_lateness,
                    w.max_rows_per_hunt,
                )
                .routed(),
            ) as Box<dyn Evaluator>
        })
        .collect();
    routed_evaluators.extend(
        correlations
            .into_iter()
            .map(|c| Box::new(c) as Box<dyn Evaluator>),
    );
    let alerts = crate::scale::SharedAlerts(Arc::new(tokio::sync::Mutex::new(alerts)));
    let dead_letters =
        crate::scale::SharedDeadLetters(Arc::new(tokio::sync::Mutex::new(dead_letters)));
    // The repartitioned side's alerts go to the lake's alerts table through a writer of their own,
    // committed before the repartition records behind them are acknowledged.
    let routed_lake = match lake.is_some() {
        true => Some(LakeSink::open(&settings.lake, &*self::schema(&settings)?).await?),
        false => None,
    };
    let stop = shutdown.child_token();
    let events_side = Components {
        settings: settings.clone(),
        schema: Arc::clone(&schema),
        evaluators: evaluators(&settings, &schema, local, sigma),
        source,
        alerts: Box::new(alerts.clone()),
        dead_letters: Box::new(dead_letters.clone()),
        metrics: handles.metrics.clone(),
        health: handles.health.clone(),
        reloads: None,
        lake,
        incidents: None,
        stage: Stage::Events(Some(Box::new(repartitioner))),
    };
    let routed_side = Components {
        settings,
        schema,
        evaluators: routed_evaluators,
        source: Box::new(routed_source),
        alerts: Box::new(alerts),
        dead_letters: Box::new(dead_letters),
        metrics: handles.metrics.clone(),
        health: handles.health.clone(),
        reloads: None,
        lake: routed_lake,
        incidents: None,
        stage: Stage::Repartitioned,
    };
    let stopping = |result: Result<Summary, pipeline::PipelineError>| {
        if result.is_err() {
            stop.cancel();
        }
        result
    };
    let (events_result, routed_result) = tokio::join!(
        async { stopping(pipeline::run(events_side, stop.clone()).await) },
        async {
            stopping(pipeline::run_with_decoder(routed_side, stop.clone(), inbox.decoder()).await)
        },
    );
    let mut summary = events_result?;
    let routed = routed_result?;
    summary.alerts += routed.alerts;
    summary.dead_letters += routed.dead_letters;
    summary.disabled.extend(routed.disabled);
    summary.failures.extend(routed.failures);
    Ok(summary)
}

/// How a retro-hunt reads the lake: only the columns the hunts read, already decoded, and only the rows
/// some hunt can use, when the table has those columns; otherwise the records, decoded again (Sigma rules
/// read fields beyond the schema).
pub fn lake_read_mode(
    schema: &EventSchema,
    settings: &Settings,
    planned: &[PlannedHunt],
    sigma: bool,
) -> Result<ReadMode, AppError> {
    let stored = crate::lake::table::events_schema(&*self::schema(settings)?);
    let mut used = std::collections::BTreeSet::new();
    for p in planned {
        used.extend(p.used_columns().iter().copied());
    }
    let columns: Vec<String> = used
        .into_iter()
        .map(|i| schema.columns[i].name.clone())
        .collect();
    let all_stored = columns.iter().all(|c| stored.field_with_name(c).is_ok());
    if sigma || !all_stored {
        return Ok(ReadMode::Raw);
    }
    // A hunt without a row filter needs every row.
    let filters: Option<Vec<datafusion::logical_expr::Expr>> =
        planned.iter().map(|p| p.row_filter().cloned()).collect();
    let filter = filters.and_then(|f| crate::lake::scan::scan_filter(&f));
    // Each SQL and KQL hunt's own filter, answered in the scan for the rows it keeps.
    let hunts = planned
        .iter()
        .filter_map(|p| Some((p.hunt.id.clone(), p.row_filter()?.clone())))
        .collect();
    Ok(ReadMode::Columns {
        columns,
        filter,
        hunts,
    })
}
