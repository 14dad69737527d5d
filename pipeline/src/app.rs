//! From settings to a running pipeline: load the schema and hunts, open the sinks, serve metrics, run.
//!
//! `ghosthunt run` calls [`run`]; tests call it too, with `metrics.listen` on port 0 and a shutdown token.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::alert::kafka::{KafkaAlertSink, KafkaDeadLetterSink};
use crate::alert::{AlertSink, DeadLetterSink, LineWriter};
use crate::decode::EventSchema;
use crate::pipeline::{self, Components, Summary};
use crate::query::{self, HuntError, PlannedHunt};
use crate::settings::{OutputSettings, Settings};
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
    let (planned, mut errors) = query::plan_all(loaded.hunts.into_values(), schema).await;
    let mut all = loaded.errors;
    all.append(&mut errors);
    (planned, all)
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
    let schema = schema(&settings)?;
    let (planned, errors) = hunts(&settings, &schema).await;
    for e in &errors {
        tracing::error!(error = %e, "Hunt refused; the others keep running.");
    }
    if planned.is_empty() {
        return Err(AppError::NoHunts(errors));
    }
    for p in &planned {
        tracing::info!(hunt = %p.hunt.id, window = %p.hunt.window, severity = p.hunt.severity.as_str(), "Hunt planned.");
    }
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
    let source = crate::source::build(&settings, &handles.metrics, &handles.health)?;
    let alerts: Box<dyn AlertSink> = match &settings.alerts {
        OutputSettings::Kafka { topic } => Box::new(KafkaAlertSink::new(
            &settings.kafka,
            topic,
            settings.alert_key,
            &handles.metrics,
        )?),
        other => Box::new(LineWriter::open(other).await?),
    };
    let dead_letters: Box<dyn DeadLetterSink> = match &settings.dead_letters {
        OutputSettings::Kafka { topic } => Box::new(KafkaDeadLetterSink::new(
            &settings.kafka,
            topic,
            &handles.metrics,
        )?),
        other => Box::new(LineWriter::open(other).await?),
    };
    let result = pipeline::run(
        Components {
            settings,
            schema,
            hunts: planned,
            source,
            alerts,
            dead_letters,
            metrics: handles.metrics.clone(),
            health: handles.health.clone(),
        },
        shutdown,
    )
    .await;
    server_stop.cancel();
    if let Some(task) = server {
        let _ = task.await;
    }
    Ok(result?)
}
