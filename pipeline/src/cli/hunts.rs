//! `ghosthunt hunts` and `ghosthunt validate`: the hunts that would run, and whether the configuration
//! and every hunt plan.

use std::fmt;

use super::CliError;
use crate::app;
use crate::hunt::{Hunt, HuntError};
use crate::query;
use crate::settings::Settings;
use crate::sigma::load::SigmaRefusal;

/// The configured SQL hunts and incident rules that plan (what `run` would run) and the ones refused.
pub struct HuntList {
    pub hunts: Vec<Hunt>,
    /// Hunts over the alerts (`[incidents]`).
    pub incident_rules: Vec<Hunt>,
    /// The Sigma rules and correlations that compiled (`[sigma] directories`).
    pub sigma_rules: Vec<Hunt>,
    pub refused: Vec<HuntError>,
    /// Every field of each hunt, instead of a table.
    pub long: bool,
}

pub async fn list(settings: &Settings, long: bool) -> Result<HuntList, CliError> {
    // Planned as `run` plans them: a hunt whose SQL does not plan (a write, a syntax error, an unknown
    // column) is refused here too, not listed as one that would run.
    let sigma = app::sigma(settings, app::schema(settings)?)?;
    let schema = sigma.schema;
    let sigma_rules: Vec<Hunt> = sigma
        .engine
        .as_ref()
        .map(|e| e.hunts().map(|h| h.as_ref().clone()).collect())
        .unwrap_or_default();
    let (hunts, mut refused) = app::hunts(settings, &schema).await;
    let (incident_rules, incident_refusals) = app::incident_rules(settings).await;
    refused.extend(incident_refusals);
    let unplanned = |p: query::plan::PlannedHunt| p.hunt.as_ref().clone();
    Ok(HuntList {
        hunts: hunts.into_iter().map(unplanned).collect(),
        incident_rules: incident_rules.into_iter().map(unplanned).collect(),
        sigma_rules,
        refused,
        long,
    })
}

impl fmt::Display for HuntList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (heading, hunts) in [
            (None, &self.hunts),
            (
                Some("Incident rules (over the alerts):"),
                &self.incident_rules,
            ),
            (
                Some("Sigma rules (sigma.directories; `ghosthunt sigma check` lists the refused):"),
                &self.sigma_rules,
            ),
        ] {
            if hunts.is_empty() {
                continue;
            }
            if let Some(h) = heading {
                writeln!(f, "\n{h}")?;
            }
            write_hunts(f, hunts, self.long)?;
        }
        Ok(())
    }
}

fn write_hunts(f: &mut fmt::Formatter<'_>, hunts: &[Hunt], long: bool) -> fmt::Result {
    if long {
        for h in hunts {
            writeln!(f, "{} — {}", h.id, h.title)?;
            writeln!(f, "  origin:      {}", h.origin)?;
            writeln!(f, "  severity:    {}", h.severity.as_str())?;
            writeln!(f, "  window:      {}", h.window)?;
            writeln!(f, "  techniques:  {}", h.attack.techniques.join(", "))?;
            writeln!(f, "  tactics:     {}", h.attack.tactics.join(", "))?;
            writeln!(f, "  hypothesis:  {}", h.hypothesis)?;
            for (i, step) in h.response.iter().enumerate() {
                writeln!(f, "  response {}:  {}", i + 1, step)?;
            }
            writeln!(f)?;
        }
        return Ok(());
    }
    writeln!(
        f,
        "{:<32} {:<9} {:<26} {:<22} TITLE",
        "ID", "SEVERITY", "WINDOW", "TECHNIQUES"
    )?;
    for h in hunts {
        writeln!(
            f,
            "{:<32} {:<9} {:<26} {:<22} {}",
            h.id,
            h.severity.as_str(),
            h.window.to_string(),
            h.attack.techniques.join(","),
            h.title
        )?;
    }
    Ok(())
}

/// What `validate` found.
pub struct Validation {
    pub schema: String,
    pub columns: usize,
    pub planned: usize,
    /// Incident rules planned over the alerts.
    pub incident_rules: usize,
    pub refused: Vec<HuntError>,
    pub sigma_rules: usize,
    pub sigma_refused: Vec<SigmaRefusal>,
    /// Windowed hunts and where their rows meet when scaled out: (id, placement).
    pub placements: Vec<(String, String)>,
    /// Settings a run could not use: Kafka clients it cannot make (a bad or unknown client option), a
    /// lake it cannot reach (a scheme not served, a path that is a file, an unknown S3 key): what and why.
    pub settings_refused: Vec<String>,
}

impl Validation {
    /// Every SQL hunt planned, no Sigma rule file broken or unreadable, and at least one hunt of any
    /// kind to run. (Sigma rules refused for what they need — a logsource the mapping lacks, a
    /// placeholder's values, a feature ghosthunt lacks — are reported, not failed: SigmaHQ's set has
    /// hundreds of them, and a rule set where some rules do not run still runs the others.)
    pub fn ok(&self) -> bool {
        self.refused.is_empty()
            && self.settings_refused.is_empty()
            && self.broken_sigma_rules() == 0
            && (self.planned > 0 || self.sigma_rules > 0)
    }

    /// Sigma refusals that are the rule file's to fix (not valid Sigma) or the files' (unreadable). A
    /// correlation refused for the rules it reads is not counted: those may be refused for their
    /// logsource, which is the mapping's to extend.
    pub fn broken_sigma_rules(&self) -> usize {
        use crate::sigma::error::{Fault, RefusalKind};
        self.sigma_refused
            .iter()
            .filter(|r| r.reason.kind() != RefusalKind::Correlation)
            .filter(|r| matches!(r.reason.kind().fault(), Fault::Author | Fault::Environment))
            .count()
    }
}

/// Loads the schema, the Sigma rules and the SQL hunts, and plans every hunt.
pub async fn validate(settings: &Settings) -> Result<Validation, CliError> {
    let setup = app::sigma(settings, app::schema(settings)?)?;
    let (planned, mut refused) = app::hunts(settings, &setup.schema).await;
    let (incident_rules, incidents_refused) = app::incident_rules(settings).await;
    refused.extend(incidents_refused);
    let names: Vec<&str> = setup
        .schema
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let mut placements: Vec<(String, String)> = planned
        .iter()
        .filter(|p| p.hunt.window.size_slide().is_some())
        .map(|p| (p.hunt.id.clone(), p.placement().describe(&names)))
        .collect();
    placements.sort();
    let mut settings_refused = kafka_clients(settings);
    if settings.lake.enabled()
        && let Err(e) = crate::lake::table::check_settings(&settings.lake)
    {
        settings_refused.push(e);
    }
    Ok(Validation {
        settings_refused,
        placements,
        schema: setup.schema.name.clone(),
        columns: setup.schema.columns.len(),
        planned: planned.len(),
        incident_rules: incident_rules.len(),
        refused,
        sigma_rules: setup.engine.as_ref().map_or(0, |e| e.rule_count()),
        sigma_refused: setup.refusals,
    })
}

/// Checks the configuration of each Kafka client the settings use, as `run` would make it, without
/// making the client (nothing connects): librdkafka reads every option then, and refuses a value it
/// cannot read or an option it does not know.
fn kafka_clients(settings: &Settings) -> Vec<String> {
    use crate::settings::{OutputSettings, SourceSettings};
    let mut refused = Vec::new();
    if let SourceSettings::Kafka(source) = &settings.source
        && let Err(e) =
            crate::source::kafka::source_config(&settings.kafka, source).create_native_config()
    {
        refused.push(format!("source.kafka: {e}"));
    }
    for (name, output) in [
        ("alerts", &settings.alerts),
        ("incidents", &settings.incidents.output),
        ("dead_letters", &settings.dead_letters),
    ] {
        if let OutputSettings::Kafka { topic } = output
            && let Err(e) =
                crate::alert::kafka::producer_config(&settings.kafka).create_native_config()
        {
            refused.push(format!("{name} (kafka topic {topic}): {e}"));
        }
    }
    refused
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Refused hunts and broken Sigma rules fail `validate` (see `ok`).
        let verdict = match self.ok() {
            true => "configuration ok",
            false => "configuration refused",
        };
        write!(
            f,
            "{verdict}; schema `{}` ({} columns); {} hunt(s) and {} incident rule(s) planned, {} refused; {} Sigma rule(s) compiled, {} refused",
            self.schema,
            self.columns,
            self.planned,
            self.incident_rules,
            self.refused.len(),
            self.sigma_rules,
            self.sigma_refused.len()
        )?;
        match self.broken_sigma_rules() {
            0 => {}
            n => write!(
                f,
                " ({n} of them not valid Sigma or unreadable: fix the files)"
            )?,
        }
        if self.planned == 0 && self.sigma_rules == 0 && self.refused.is_empty() {
            write!(
                f,
                "\nno hunt to run: the hunt directories hold no `*.sql` or `*.kql` file (their \
                 subdirectories are not read), and no Sigma rule compiled"
            )?;
        }
        if !self.placements.is_empty() {
            write!(
                f,
                "\nwhere windowed hunts' rows meet when scaled out (scale.mode = repartition):"
            )?;
            for (id, placement) in &self.placements {
                write!(f, "\n  {id:<32} {placement}")?;
            }
        }
        Ok(())
    }
}
