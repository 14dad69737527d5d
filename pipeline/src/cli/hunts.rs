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
    pub refused: Vec<HuntError>,
    /// Every field of each hunt, instead of a table.
    pub long: bool,
}

pub async fn list(settings: &Settings, long: bool) -> Result<HuntList, CliError> {
    // Planned as `run` plans them: a hunt whose SQL does not plan (a write, a syntax error, an unknown
    // column) is refused here too, not listed as one that would run.
    let schema = app::sigma(settings, app::schema(settings)?)?.schema;
    let (hunts, mut refused) = app::hunts(settings, &schema).await;
    let (incident_rules, incident_refusals) = app::incident_rules(settings).await;
    refused.extend(incident_refusals);
    let unplanned = |p: query::plan::PlannedHunt| p.hunt.as_ref().clone();
    Ok(HuntList {
        hunts: hunts.into_iter().map(unplanned).collect(),
        incident_rules: incident_rules.into_iter().map(unplanned).collect(),
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
}

impl Validation {
    /// Every SQL hunt planned and at least one hunt of any kind to run. (Sigma refusals are reported; a
    /// rule set where some rules do not compile still runs the others.)
    pub fn ok(&self) -> bool {
        self.refused.is_empty() && (self.planned > 0 || self.sigma_rules > 0)
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
    Ok(Validation {
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

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Refused hunts fail `validate` (Sigma rules are refused by the hundred in SigmaHQ's set: not).
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
