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

/// A retro-hunt's `--hunt` ids that name Sigma rules: only those rules and correlations, what the kept
/// correlations read (correlations they read included), and the correlations that keep a kept rule
/// from alerting on its own (`generate: false`, the default): live, such a rule alerts only through
/// them, so they run too and the rule stays silent, as live. `sigma` among the ids, or none, keeps
/// them all.
fn keep_only(loaded: &mut crate::sigma::load::Loaded, only: &[String]) {
    if only.is_empty() || only.iter().any(|id| id == "sigma") {
        return;
    }
    use crate::sigma::correlation::CorrelationRule;
    use std::collections::HashSet;
    // Every name a rule or a correlation goes by: its id, its `name`, and for a correlation the id
    // its hunt has.
    let names = |c: &CorrelationRule| -> Vec<String> {
        let mut names = vec![crate::sigma::hunts::correlation_id(c)];
        names.extend([&c.id, &c.name].into_iter().flatten().cloned());
        names
    };
    let rule_names = |r: &crate::sigma::load::LoadedRule| -> Vec<String> {
        std::iter::once(r.rule.id.clone())
            .chain(r.rule.name.clone())
            .collect()
    };
    let mut wanted: HashSet<String> = only.iter().cloned().collect();
    loop {
        let before = wanted.len();
        // A wanted rule or correlation is wanted by each of its names (a correlation reads either).
        for r in &loaded.rules {
            let names = rule_names(r);
            if names.iter().any(|n| wanted.contains(n)) {
                wanted.extend(names);
            }
        }
        for (c, _) in &loaded.correlations {
            let names = names(c);
            if names.iter().any(|n| wanted.contains(n)) {
                // What it reads, down a chain of correlations.
                wanted.extend(c.rules.iter().cloned());
                wanted.extend(names);
            } else if !c.generate
                && let Some(silenced) = c.rules.iter().find(|r| wanted.contains(*r))
            {
                tracing::warn!(
                    rule = %silenced,
                    correlation = %names[0],
                    "This Sigma rule alerts only through a correlation that reads it with `generate: false` (the default): the correlation runs too, as live."
                );
                wanted.extend(names);
            }
        }
        if wanted.len() == before {
            break;
        }
    }
    loaded
        .correlations
        .retain(|(c, _)| names(c).iter().any(|n| wanted.contains(n)));
    loaded
        .rules
        .retain(|r| rule_names(r).iter().any(|n| wanted.contains(n)));
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
---
title: Many logons, the logons alerting too
id: 00000000-0000-4000-8000-0000000000c3
correlation:
    type: event_count
    rules: [00000000-0000-4000-8000-0000000000a2]
    group-by: [IpAddress]
    timespan: 5m
    condition: {gte: 10}
    generate: true
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
            (2, 3),
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
    fn hunt_ids_keep_their_sigma_rules_what_their_correlations_read_and_what_silences_them() {
        let id = |s: &str| format!("00000000-0000-4000-8000-0000000000{s}");
        let chain = (vec!["a1".into()], vec!["c1".into(), "c2".into()]);
        // A rule read by a correlation with `generate: true` alerts on its own: alone.
        assert_eq!(kept(&[&id("a2")]), (vec!["a2".into()], vec![]));
        assert_eq!(kept(&[&id("c3")]), (vec!["a2".into()], vec!["c3".into()]));
        // A correlation of a correlation: both, and the rule the first reads.
        assert_eq!(kept(&[&id("c2")]), chain);
        // A rule (or correlation) read with `generate: false` alerts only through what reads it,
        // live: that runs too, up the chain, and the rule stays silent.
        assert_eq!(kept(&[&id("a1")]), chain);
        assert_eq!(kept(&["failed"]), chain);
        assert_eq!(kept(&[&id("c1")]), chain);
        // `sigma`, or no ids: all of them.
        assert_eq!(kept(&["sigma", &id("a2")]).0.len(), 2);
        assert_eq!(kept(&[]).1.len(), 3);
        // SQL hunt ids keep no Sigma rule.
        assert_eq!(kept(&["password_spray"]), (vec![], vec![]));
    }
}
