//! The Sigma side of a configuration: the mapping, the rule set loaded and compiled over the schema,
//! and the rules a retro-hunt's `--hunt` ids keep.

use std::sync::Arc;

use super::AppError;
use crate::decode::EventSchema;
use crate::settings::Settings;
use crate::sigma::engine::SigmaEngine;
use crate::sigma::load::SigmaRefusal;
use crate::sigma::mapping::Mapping;

/// The Sigma side of a configuration: the schema with the columns the rules read, the compiled rule set
/// (`None` without Sigma directories) and every rule refused.
pub struct SigmaSetup {
    pub schema: Arc<EventSchema>,
    pub engine: Option<SigmaEngine>,
    pub refusals: Vec<SigmaRefusal>,
    /// Rule files read.
    pub files: usize,
    /// (rule id, how) for the rules that read fields some variant of their logsource cannot supply.
    pub narrowed: Vec<(String, Vec<crate::sigma::mapping::Narrowing>)>,
}

/// The configured logsource and field mapping.
pub fn sigma_mapping(settings: &Settings) -> Result<Mapping, AppError> {
    match &settings.sigma.mapping {
        None => Ok(Mapping::builtin()),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| AppError::MappingFile {
                path: path.display().to_string(),
                source,
            })?;
            Ok(Mapping::from_yaml(&text, &path.display().to_string())?)
        }
    }
}

/// Loads and compiles the configured Sigma rules on top of `schema`.
pub fn sigma(settings: &Settings, schema: Arc<EventSchema>) -> Result<SigmaSetup, AppError> {
    if settings.sigma.directories.is_empty() {
        return Ok(SigmaSetup {
            schema,
            engine: None,
            refusals: Vec::new(),
            files: 0,
            narrowed: Vec::new(),
        });
    }
    // A directory that is not there is a mistake in the configuration, not a rule to refuse: the run
    // would go on without the rules it was meant to have.
    for dir in &settings.sigma.directories {
        crate::sigma::load::rule_files(dir).map_err(|source| AppError::SigmaDirectory {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let mapping = sigma_mapping(settings)?;
    let base: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let mut loaded = crate::sigma::load::load(
        &settings.sigma.directories,
        &mapping,
        &settings.sigma.placeholders,
        &base,
        settings.sigma.threads,
    );
    keep_only(&mut loaded, &settings.hunts.only);
    let files = loaded.files;
    let extended = Arc::new(crate::sigma::compile::schema_for(
        &loaded, &mapping, &schema,
    )?);
    let narrowed = loaded
        .rules
        .iter()
        .filter(|r| !r.bound.narrowed.is_empty())
        .map(|r| (r.rule.id.clone(), r.bound.narrowed.clone()))
        .collect();
    let mut refusals = std::mem::take(&mut loaded.refusals);
    let (engine, more) =
        SigmaEngine::build(loaded, &mapping, &base, &extended, settings.sigma.threads);
    let engine = engine
        .with_lateness(settings.window.allowed_lateness)
        .with_suppression(settings.sigma.suppress)
        .with_threads(settings.sigma.threads);
    refusals.extend(more);
    Ok(SigmaSetup {
        schema: extended,
        engine: Some(engine),
        refusals,
        files,
        narrowed,
    })
}

/// A retro-hunt's `--hunt` ids that name Sigma rules: only those rules and correlations, and what the
/// kept correlations read, correlations they read included (the rules alert as they do live, unless a
/// correlation says `generate: false`). `sigma` among the ids, or none, keeps them all.
fn keep_only(loaded: &mut crate::sigma::load::Loaded, only: &[String]) {
    if only.is_empty() || only.iter().any(|id| id == "sigma") {
        return;
    }
    use crate::sigma::correlation::CorrelationRule;
    let mut wanted: std::collections::HashSet<String> = only.iter().cloned().collect();
    let named = |c: &CorrelationRule, wanted: &std::collections::HashSet<String>| {
        wanted.contains(&crate::sigma::hunts::correlation_id(c))
            || [&c.id, &c.name]
                .into_iter()
                .flatten()
                .any(|n| wanted.contains(n))
    };
    // What the wanted correlations read, until nothing more is added (a chain of correlations).
    loop {
        let before = wanted.len();
        let read: Vec<String> = loaded
            .correlations
            .iter()
            .filter(|(c, _)| named(c, &wanted))
            .flat_map(|(c, _)| c.rules.iter().cloned())
            .collect();
        wanted.extend(read);
        if wanted.len() == before {
            break;
        }
    }
    loaded.correlations.retain(|(c, _)| named(c, &wanted));
    loaded.rules.retain(|r| {
        wanted.contains(&r.rule.id) || r.rule.name.as_ref().is_some_and(|n| wanted.contains(n))
    });
}

/// The ids of the configured Sigma rules and correlations (what `hunt --hunt` may name), read quietly.
pub fn sigma_ids(
    settings: &Settings,
    schema: &EventSchema,
) -> Result<std::collections::BTreeSet<String>, AppError> {
    let mapping = sigma_mapping(settings)?;
    let base: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let loaded =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            crate::sigma::load::load(
                &settings.sigma.directories,
                &mapping,
                &settings.sigma.placeholders,
                &base,
                settings.sigma.threads,
            )
        });
    Ok(loaded
        .rules
        .iter()
        .map(|r| r.rule.id.clone())
        .chain(
            loaded
                .correlations
                .iter()
                .map(|(c, _)| crate::sigma::hunts::correlation_id(c)),
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
title: Failed logon
id: 00000000-0000-4000-8000-0000000000a1
name: failed
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4625}
    condition: selection
---
title: Other
id: 00000000-0000-4000-8000-0000000000a2
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4624}
    condition: selection
---
title: Many failures
id: 00000000-0000-4000-8000-0000000000c1
name: many
correlation:
    type: event_count
    rules: [failed]
    group-by: [IpAddress]
    timespan: 5m
    condition: {gte: 10}
---
title: Many failures, twice
id: 00000000-0000-4000-8000-0000000000c2
correlation:
    type: event_count
    rules: [many]
    group-by: [IpAddress]
    timespan: 1h
    condition: {gte: 2}
"#;

    fn loaded() -> crate::sigma::load::Loaded {
        let schema = EventSchema::windows();
        let base: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        let mut loaded = crate::sigma::load::Loaded::default();
        crate::sigma::load::add_file(
            &mut loaded,
            RULES,
            std::path::Path::new("rules.yml"),
            &Mapping::builtin(),
            &std::collections::HashMap::new(),
            &base,
        );
        assert_eq!(
            (loaded.rules.len(), loaded.correlations.len()),
            (2, 2),
            "{:?}",
            loaded.refusals
        );
        loaded
    }

    fn kept(only: &[&str]) -> (Vec<String>, Vec<String>) {
        let mut loaded = loaded();
        keep_only(
            &mut loaded,
            &only.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        (
            loaded
                .rules
                .iter()
                .map(|r| r.rule.id[34..].to_string())
                .collect(),
            loaded
                .correlations
                .iter()
                .map(|(c, _)| crate::sigma::hunts::correlation_id(c)[34..].to_string())
                .collect(),
        )
    }

    #[test]
    fn hunt_ids_keep_their_sigma_rules_and_what_their_correlations_read_down_the_chain() {
        let id = |s: &str| format!("00000000-0000-4000-8000-0000000000{s}");
        assert_eq!(kept(&[&id("a2")]), (vec!["a2".into()], vec![]));
        assert_eq!(kept(&[&id("c1")]), (vec!["a1".into()], vec!["c1".into()]));
        // A correlation of a correlation: both, and the rule the first reads.
        assert_eq!(
            kept(&[&id("c2")]),
            (vec!["a1".into()], vec!["c1".into(), "c2".into()])
        );
        // `sigma`, or no ids: all of them.
        assert_eq!(kept(&["sigma", &id("a2")]).0.len(), 2);
        assert_eq!(kept(&[]).1.len(), 2);
        // SQL hunt ids keep no Sigma rule.
        assert_eq!(kept(&["password_spray"]), (vec![], vec![]));
    }
}
