//! Hot reload: on SIGHUP, and when files change in the hunt directories, the Sigma rule directories or
//! beside the Sigma mapping (inotify through `notify`, debounced), load and plan the whole hunt set again
//! and hand it to the running pipeline, which switches between two batches (see `pipeline::HuntSet`).
//!
//! A reload that makes things worse is refused and the running set goes on: a hunt file or Sigma rule
//! refused now that was not refused by the running set, a mapping that does not load, or nothing left to
//! run. Refusals the running set already had (a Sigma rule for another platform, a file broken at start)
//! do not block a reload. `ghosthunt_reloads_total{result}` counts `failed` here and `ok`/`unchanged` where
//! the pipeline applies a set.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{AppError, evaluators, hunts, schema, sigma};
use crate::pipeline::HuntSet;
use crate::settings::Settings;
use crate::telemetry::Metrics;

/// How long files must be quiet before a reload: an editor's save or a `git pull` is several events.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Why a reload was refused (the running set goes on).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("{} new refusal(s): {}", .0.len(), .0.join("; "))]
    Refused(Vec<String>),
    #[error("no hunt would be left to run")]
    Empty,
}

/// What was refused when a set was loaded: each refusal as `file:line: reason` text.
pub(super) type Refusals = BTreeSet<String>;

/// A set's refusals, SQL hunts' and Sigma rules', as the text a reload compares.
pub(super) fn refusals(
    hunts: &[crate::hunt::HuntError],
    sigma: &[crate::sigma::load::SigmaRefusal],
) -> Refusals {
    hunts
        .iter()
        .map(ToString::to_string)
        .chain(sigma.iter().map(ToString::to_string))
        .collect()
}

/// Loads and plans the configured hunts as a complete set, with its refusals.
pub(super) async fn load_set(settings: &Settings) -> Result<(HuntSet, Refusals), AppError> {
    let setup = sigma(settings, schema(settings)?)?;
    let (planned, errors) = hunts(settings, &setup.schema).await;
    let refusals = refusals(&errors, &setup.refusals);
    let evaluators = evaluators(settings, &setup.schema, planned, setup.engine);
    Ok((
        HuntSet {
            schema: setup.schema,
            evaluators,
        },
        refusals,
    ))
}

/// The folders whose changes trigger a reload, and how deep to watch each.
fn watched(settings: &Settings) -> Vec<(PathBuf, RecursiveMode)> {
    let mut paths: Vec<(PathBuf, RecursiveMode)> = settings
        .hunts
        .directories
        .iter()
        .map(|d| (d.clone(), RecursiveMode::NonRecursive))
        .chain(
            settings
                .sigma
                .directories
                .iter()
                .map(|d| (d.clone(), RecursiveMode::Recursive)),
        )
        .collect();
    if let Some(parent) = settings
        .sigma
        .mapping
        .as_ref()
        .and_then(|m| m.parent())
        .filter(|p| !p.as_os_str().is_empty())
    {
        paths.push((parent.to_path_buf(), RecursiveMode::NonRecursive));
    }
    paths
}

/// Starts watching; runs until `shutdown`. `running` are the refusals of the set the pipeline started
/// with. A folder that cannot be watched is logged (SIGHUP still reloads).
pub(super) fn spawn(
    settings: Settings,
    metrics: Metrics,
    running: Refusals,
    sets: mpsc::Sender<HuntSet>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (changed_tx, mut changed) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reads (our own, when reloading) are not changes.
        if let Ok(e) = event
            && !matches!(e.kind, EventKind::Access(_))
        {
            // Full: a reload is already due, which will see this change too.
            let _ = changed_tx.try_send(());
        }
    });
    let watcher = match watcher {
        Ok(mut w) => {
            for (path, mode) in watched(&settings) {
                if let Err(e) = w.watch(&path, mode) {
                    tracing::warn!(path = %path.display(), error = %e, "Cannot watch for hunt changes; SIGHUP still reloads.");
                }
            }
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, "File watching is unavailable; SIGHUP still reloads.");
            None
        }
    };
    tokio::spawn(async move {
        let _watcher = watcher; // dropped at the end: stops watching
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP handler not installed.");
                None
            }
        };
        let mut running = running;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(()) = changed.recv() => {
                    // Debounce: wait until the files have been quiet for a moment.
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            Some(()) = changed.recv() => continue,
                            _ = tokio::time::sleep(DEBOUNCE) => break,
                        }
                    }
                }
                Some(()) = async { hangup.as_mut().expect("guarded").recv().await }, if hangup.is_some() => {
                    tracing::info!("SIGHUP: reloading hunts.");
                }
            }
            match reload(&settings, &running).await {
                Ok((set, refusals)) => {
                    if sets.send(set).await.is_err() {
                        return; // the pipeline has stopped
                    }
                    running = refusals;
                }
                Err(e) => {
                    metrics.reloads.with_label_values(&["failed"]).inc();
                    tracing::error!(error = %e, "Hunt reload refused; the running hunts go on unchanged.");
                }
            }
        }
    })
}

/// Loads the set again; refuses it if it has refusals the running set did not have, or nothing to run.
async fn reload(
    settings: &Settings,
    running: &Refusals,
) -> Result<(HuntSet, Refusals), ReloadError> {
    let (set, refusals) = load_set(settings).await?;
    let new: Vec<String> = refusals.difference(running).cloned().collect();
    if !new.is_empty() {
        return Err(ReloadError::Refused(new));
    }
    if set.evaluators.is_empty() {
        return Err(ReloadError::Empty);
    }
    Ok((set, refusals))
}
