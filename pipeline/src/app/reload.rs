//! Hot reload: on SIGHUP, and when files change in the hunt directories, the Sigma rule directories or
//! beside the Sigma mapping (inotify through `notify`, debounced), load and plan the whole hunt set again
//! and hand it to the running pipeline, which switches between two batches (see `pipeline::HuntSet`).
//!
//! A reload that makes things worse is refused and the running set goes on: a hunt file or Sigma rule
//! broken now that was not broken in the running set, a rule the running set runs that would stop
//! running, a mapping that does not load, or nothing left to run. A rule that is valid but not for this
//! deployment — its logsource or fields not in the mapping, a placeholder without values, Sigma that
//! ghosthunt does not run — does not hold the others back: it is logged and left out, as at start (a
//! checkout of the Sigma repository holds web, Linux and cloud rules beside the Windows ones). Refusals
//! the running set already had do not block a reload either. `ghosthunt_reloads_total{result}` counts
//! `failed` here and `ok`/`unchanged` where the pipeline applies a set.

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

/// A hunt file or Sigma rule a set did not load, as a reload weighs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Refusal {
    /// `file:line: reason`.
    text: String,
    /// The Sigma rule it is (its id).
    rule: Option<String>,
    /// The file or rule is broken (its author's move, or the file system's), rather than valid but
    /// not for this deployment (the mapping's, the settings' or ghosthunt's move).
    broken: bool,
}

/// What was refused when a set was loaded.
pub(super) type Refusals = BTreeSet<Refusal>;

/// A set's refusals, SQL hunts' and Sigma rules'.
pub(super) fn refusals(
    hunts: &[crate::hunt::HuntError],
    sigma: &[crate::sigma::load::SigmaRefusal],
) -> Refusals {
    use crate::sigma::error::Fault;
    hunts
        .iter()
        .map(|e| Refusal {
            text: e.to_string(),
            rule: None,
            broken: true,
        })
        .chain(sigma.iter().map(|r| Refusal {
            text: r.to_string(),
            rule: r.id.clone(),
            broken: matches!(r.kind().fault(), Fault::Author | Fault::Environment),
        }))
        .collect()
}

/// The running set, as a reload is weighed against it: what it refused, and the ids of the hunts it
/// runs (a Sigma rule's hunt has the rule's id).
pub(super) struct Running {
    refusals: Refusals,
    hunts: BTreeSet<String>,
}

impl Running {
    pub(super) fn new(
        refusals: Refusals,
        evaluators: &[Box<dyn crate::runtime::Evaluator>],
    ) -> Running {
        let hunts = evaluators
            .iter()
            .flat_map(|e| e.hunts())
            .map(|h| h.id.clone())
            .collect();
        Running { refusals, hunts }
    }
}

/// The refusals of a new set that hold a reload back: not refused by the running set, and either broken
/// or a rule the running set runs. The others are returned second: rules left out.
fn weigh<'a>(refusals: &'a Refusals, running: &Running) -> (Vec<&'a Refusal>, Vec<&'a Refusal>) {
    refusals
        .iter()
        .filter(|r| !running.refusals.contains(*r))
        .partition(|r| r.broken || r.rule.as_ref().is_some_and(|id| running.hunts.contains(id)))
}

/// Loads and plans the configured hunts as a complete set, with its refusals.
async fn load_set(settings: &Settings) -> Result<(HuntSet, Refusals), AppError> {
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

/// Starts watching; runs until `shutdown`. `running` is the set the pipeline started with. A folder that cannot be watched is logged (SIGHUP still reloads).
pub(super) fn spawn(
    settings: Settings,
    metrics: Metrics,
    running: Running,
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
                    let next = Running::new(refusals, &set.evaluators);
                    if sets.send(set).await.is_err() {
                        return; // the pipeline has stopped
                    }
                    running = next;
                }
                Err(e) => {
                    metrics.reloads.with_label_values(&["failed"]).inc();
                    tracing::error!(error = %e, "Hunt reload refused; the running hunts go on unchanged.");
                }
            }
        }
    })
}

/// Loads the set again; refuses it if a new refusal holds it back ([`weigh`]), or nothing is left to run.
async fn reload(
    settings: &Settings,
    running: &Running,
) -> Result<(HuntSet, Refusals), ReloadError> {
    let (set, refusals) = load_set(settings).await?;
    let (blocking, left_out) = weigh(&refusals, running);
    if !blocking.is_empty() {
        return Err(ReloadError::Refused(
            blocking.into_iter().map(|r| r.text.clone()).collect(),
        ));
    }
    for r in left_out {
        tracing::warn!(refusal = %r.text, "Sigma rule refused; the others keep running.");
    }
    if set.evaluators.is_empty() {
        return Err(ReloadError::Empty);
    }
    Ok((set, refusals))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::error::RefusalKind;
    use crate::sigma::load::SigmaRefusal;

    fn refused(file: &str, id: &str, kind: RefusalKind) -> SigmaRefusal {
        SigmaRefusal {
            file: file.into(),
            title: Some(file.to_string()),
            id: Some(id.to_string()),
            reason: kind.error("a reason"),
        }
    }

    #[test]
    fn rules_not_for_this_deployment_are_left_out_and_broken_ones_or_running_ones_hold_a_reload_back()
     {
        let running = Running {
            refusals: refusals(&[], &[refused("old_web.yml", "w0", RefusalKind::Logsource)]),
            hunts: ["r1".to_string()].into(),
        };
        let new = refusals(
            &[],
            &[
                // Already refused by the running set.
                refused("old_web.yml", "w0", RefusalKind::Logsource),
                // New, valid, not for this deployment.
                refused("web.yml", "w1", RefusalKind::Logsource),
                refused("cloud.yml", "c1", RefusalKind::Field),
                refused("cdc.yml", "p1", RefusalKind::Placeholder),
                refused("filter.yml", "f1", RefusalKind::Unsupported),
                // New and broken.
                refused("typo.yml", "t1", RefusalKind::Condition),
                // Running now, and no longer loadable here: it would stop.
                refused("edited.yml", "r1", RefusalKind::Logsource),
            ],
        );
        let (blocking, left_out) = weigh(&new, &running);
        let files = |rs: Vec<&Refusal>| {
            let mut v: Vec<String> = rs
                .iter()
                .map(|r| r.text.split(':').next().unwrap().to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(files(blocking), ["edited.yml", "typo.yml"]);
        assert_eq!(
            files(left_out),
            ["cdc.yml", "cloud.yml", "filter.yml", "web.yml"]
        );
        // A broken SQL hunt file always holds it back.
        let sql = crate::hunt::HuntError {
            origin: "hunts/x.sql".into(),
            line: 3,
            reason: "a syntax error".into(),
        };
        let broken = refusals(&[sql], &[]);
        let (blocking, _) = weigh(&broken, &running);
        assert_eq!(blocking.len(), 1);
    }
}
