//! What a Sigma rule is as a hunt: its metadata (title, level → severity, `attack.*` tags → ATT&CK,
//! falsepositives → response steps) in the hunt model every language produces.

use std::path::PathBuf;

use crate::hunt::{Attack, Hunt, Origin, Severity, WindowSpec};
use crate::sigma::correlation::CorrelationRule;
use crate::sigma::ir::Level;
use crate::sigma::parse::attack_from_tags;

fn severity(level: Option<Level>) -> Severity {
    match level {
        Some(Level::Informational) => Severity::Informational,
        Some(Level::Low) => Severity::Low,
        None | Some(Level::Medium) => Severity::Medium,
        Some(Level::High) => Severity::High,
        Some(Level::Critical) => Severity::Critical,
    }
}

fn attack(tags: &[String]) -> Attack {
    let (techniques, tactics) = attack_from_tags(tags);
    Attack {
        techniques,
        tactics,
    }
}

fn response(falsepositives: &[String]) -> Vec<String> {
    let mut steps =
        vec!["Review the matched event (evidence) and the process, user and host it names.".into()];
    let known: Vec<&str> = falsepositives
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("unknown"))
        .collect();
    if !known.is_empty() {
        steps.push(format!(
            "Rule out the rule's known false positives: {}.",
            known.join("; ")
        ));
    }
    steps
        .push("If it is malicious, scope the host and account and start incident response.".into());
    steps
}

/// The hunt a detection rule becomes.
pub(super) fn rule_hunt(rule: &crate::sigma::ir::SigmaRule, file: PathBuf, sql: String) -> Hunt {
    Hunt {
        id: rule.id.clone(),
        title: rule.title.clone(),
        description: rule.description.trim().to_string(),
        hypothesis: if rule.description.trim().is_empty() {
            rule.title.clone()
        } else {
            rule.description.trim().to_string()
        },
        attack: attack(&rule.tags),
        severity: severity(rule.level),
        window: WindowSpec::None,
        allowed_lateness: None,
        entity: Some("host".into()),
        suppress: None,
        partition_by: Vec::new(),
        risk: None,
        response: response(&rule.falsepositives),
        references: rule.references.clone(),
        sql,
        origin: Origin::File(file),
    }
}

/// The hunt id of a correlation rule: its `id`, else its `name`, else its title.
pub fn correlation_id(c: &CorrelationRule) -> String {
    c.id.clone()
        .or_else(|| c.name.clone())
        .unwrap_or_else(|| c.title.clone())
}

pub(super) fn correlation_hunt(c: &CorrelationRule, file: PathBuf) -> Hunt {
    let id = correlation_id(c);
    Hunt {
        id,
        title: c.title.clone(),
        description: c.description.trim().to_string(),
        hypothesis: if c.description.trim().is_empty() {
            c.title.clone()
        } else {
            c.description.trim().to_string()
        },
        attack: attack(&c.tags),
        severity: severity(c.level),
        window: WindowSpec::None,
        allowed_lateness: None,
        entity: None,
        suppress: None,
        partition_by: Vec::new(),
        risk: None,
        response: response(&c.falsepositives),
        references: c.references.clone(),
        sql: format!(
            "-- Sigma correlation ({:?}) over rules {}; group by {}; timespan {}",
            c.kind,
            c.rules.join(", "),
            c.group_by.join(", "),
            humantime::format_duration(c.timespan)
        ),
        origin: Origin::File(file),
    }
}
