//! An incident as an OCSF Incident Finding (class 2005): its alerts (`finding_info_list`), a timeline, the
//! tactics, hosts and users seen, and the response steps of its hunts merged and ordered by phase.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::alert::{Alert, Subject};
use crate::decode::json::format_time;
use crate::hunt::{Hunt, Severity};

/// The OCSF version incident findings follow (as alerts).
use crate::alert::ocsf::OCSF_VERSION;

/// An alert as an incident remembers it.
#[derive(Debug, Clone)]
pub struct AlertInfo {
    pub id: String,
    /// Event time (ns).
    pub time: i64,
    pub hunt: Arc<Hunt>,
    pub subject: Arc<Subject>,
    pub received: Instant,
    pub seq: u64,
}

impl AlertInfo {
    pub fn of(alert: &Alert) -> AlertInfo {
        AlertInfo {
            id: alert.id.clone(),
            time: alert.event_time,
            hunt: Arc::clone(&alert.hunt),
            subject: Arc::clone(&alert.subject),
            received: alert.received,
            seq: alert.seq,
        }
    }
}

/// Whether a finding opens an incident or adds to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Create,
    Update,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Create => "create",
            Activity::Update => "update",
        }
    }
    fn ocsf(self) -> (u8, &'static str) {
        match self {
            Activity::Create => (1, "Create"),
            Activity::Update => (2, "Update"),
        }
    }
}

/// The incident response phases response steps are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Identify,
    Contain,
    Eradicate,
    Recover,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Identify,
        Phase::Contain,
        Phase::Eradicate,
        Phase::Recover,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Identify => "identify",
            Phase::Contain => "contain",
            Phase::Eradicate => "eradicate",
            Phase::Recover => "recover",
        }
    }
}

/// The phase of a response step, and its text: a step written `Contain: …` says its phase; otherwise its
/// first word decides (isolate, block, disable, revoke … contain; remove, delete, kill … eradicate;
/// restore, re-enable, rebuild … recover; anything else — search, check, decode, review — identifies).
pub fn phase_of(step: &str) -> (Phase, &str) {
    let step = step.trim();
    if let Some((head, rest)) = step.split_once(':') {
        let named = Phase::ALL
            .into_iter()
            .find(|p| head.trim().eq_ignore_ascii_case(p.as_str()));
        if let Some(p) = named {
            return (p, rest.trim());
        }
    }
    // A condition first ("If malicious, isolate …"): the verb after it says what to do.
    let lead = step.split_whitespace().next().unwrap_or_default();
    let action = match ["if", "when", "once", "after"]
        .iter()
        .any(|w| lead.eq_ignore_ascii_case(w))
    {
        true => step.split_once(", ").map_or(step, |(_, rest)| rest),
        false => step,
    };
    let first: String = action
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_matches(|c: char| !c.is_ascii_alphabetic() && c != '-')
        .to_ascii_lowercase();
    let phase = match first.as_str() {
        "isolate" | "contain" | "block" | "disable" | "revoke" | "quarantine" | "suspend"
        | "lock" | "segment" | "cut" | "stop" => Phase::Contain,
        "remove" | "delete" | "uninstall" | "kill" | "terminate" | "eradicate" | "purge"
        | "clean" | "wipe" => Phase::Eradicate,
        "restore" | "recover" | "re-enable" | "reenable" | "rebuild" | "reimage" | "re-image"
        | "return" | "reconnect" | "rotate" => Phase::Recover,
        _ => Phase::Identify,
    };
    (phase, step)
}

/// The deterministic id of an incident: its rule, its entity and the start of the first window that
/// raised it (UUID-shaped, like alert ids).
pub fn incident_id(rule: &str, entity: &str, window_start: i64) -> String {
    let mut h = Sha256::new();
    h.update(b"incident\0");
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(entity.as_bytes());
    h.update([0]);
    h.update(window_start.to_be_bytes());
    crate::alert::ocsf::uuid_shaped(&h.finalize())
}

/// What an incident's alerts add up to, over all of them (not only the ones kept in detail): the
/// hunts that raised them in the order they first did, their hosts and users (the first
/// [`super::book::MAX_ALERTS`] of each), the earliest alert's time.
#[derive(Debug, Default)]
pub struct Summary {
    pub hunts: Vec<Arc<Hunt>>,
    pub hosts: BTreeSet<String>,
    pub users: BTreeSet<String>,
    pub first: Option<i64>,
}

impl Summary {
    pub fn add(&mut self, alert: &AlertInfo) {
        if !self.hunts.iter().any(|h| h.id == alert.hunt.id) {
            self.hunts.push(Arc::clone(&alert.hunt));
        }
        for (set, value) in [
            (&mut self.hosts, &alert.subject.host),
            (&mut self.users, &alert.subject.user),
        ] {
            if let Some(v) = value
                && set.len() < super::book::MAX_ALERTS
                && !set.contains(v)
            {
                set.insert(v.clone());
            }
        }
        self.first = Some(self.first.map_or(alert.time, |t| t.min(alert.time)));
    }
}

/// What a finding is built from: the incident as it stands.
pub struct Incident<'a> {
    pub id: &'a str,
    pub rule: &'a Arc<Hunt>,
    /// The rule's entity column and value.
    pub entity: (Option<&'a str>, &'a str),
    /// The first window that raised it, and the newest window that added to it.
    pub first_window: (i64, i64),
    pub last_window: (i64, i64),
    /// Its alerts, in time order (the first [`super::book::MAX_ALERTS`]).
    pub alerts: Vec<&'a AlertInfo>,
    /// What all its alerts add up to: severity, times, ATT&CK, hosts, users, response.
    pub summary: &'a Summary,
    /// The alerts this finding lists (`finding_info_list`, the timeline), in time order: those it adds
    /// whose details are known — a new incident's first alerts, an update's new ones.
    pub listed: Vec<&'a AlertInfo>,
    /// How many alerts it has: `alerts`, those beyond the cap, and ids the rule named that were no
    /// longer known.
    pub alert_count: usize,
    /// The alerts this finding adds (all of them when it creates the incident).
    pub added: &'a [String],
    /// The event time of its newest alert, of all it has had.
    pub newest: Option<i64>,
    /// The rule's newest result row.
    pub result: &'a Map<String, Value>,
}

/// OCSF priority captions by priority id − 1.
const PRIORITIES: [&str; 4] = ["Low", "Medium", "High", "Critical"];

/// The most alerts an incident's timeline lists (the finding still counts them all).
const TIMELINE_MAX: usize = 200;

/// The Incident Finding of `incident` (`activity`: its creation or an update), ready for a sink.
pub fn finding(
    incident: &Incident<'_>,
    activity: Activity,
    assignee_group: &str,
    now_ms: i64,
) -> Alert {
    let rule = incident.rule;
    let alerts = &incident.alerts;
    let summary = incident.summary;
    let hunts = &summary.hunts;
    // The incident is as severe as its rule says, or as its most severe alert.
    let severity = hunts
        .iter()
        .map(|h| h.severity)
        .chain([rule.severity])
        .max_by_key(|s| s.ocsf_id())
        .unwrap_or(Severity::Medium);
    let first = summary.first.unwrap_or(incident.first_window.0);
    // The newest of all its alerts (an alert no longer known counts too).
    let last = incident.newest.unwrap_or(incident.last_window.1);
    let mut tactics: Vec<&str> = Vec::new();
    let mut techniques: BTreeSet<&str> = BTreeSet::new();
    // Each technique with the tactics of the hunts that name it.
    let mut attack: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for h in hunts {
        for t in &h.attack.tactics {
            if !tactics.contains(&t.as_str()) {
                tactics.push(t);
            }
        }
        techniques.extend(h.attack.techniques.iter().map(String::as_str));
        for t in &h.attack.techniques {
            let entry = attack.entry(t).or_default();
            for tactic in &h.attack.tactics {
                if !entry.contains(&tactic.as_str()) {
                    entry.push(tactic);
                }
            }
        }
    }
    let (hosts, users) = (&summary.hosts, &summary.users);
    let timeline: Vec<Value> = incident
        .listed
        .iter()
        .take(TIMELINE_MAX)
        .map(|a| {
            json!({
                "time": format_time(a.time),
                "alert_id": a.id,
                "hunt_id": a.hunt.id,
                "hunt": a.hunt.title,
                "severity": a.hunt.severity.as_str(),
                "technique": a.hunt.attack.techniques.first(),
                "host": a.subject.host,
                "user": a.subject.user,
                "evidence": a.subject.summary,
            })
        })
        .collect();
    let finding_infos: Vec<Value> = incident
        .listed
        .iter()
        .map(|a| {
            json!({
                "uid": a.id,
                "title": a.hunt.title,
                "analytic": { "uid": a.hunt.id, "name": a.hunt.title, "type_id": 1, "type": "Rule" },
                "first_seen_time": a.time.div_euclid(1_000_000),
                "attacks": attacks(&a.hunt),
            })
        })
        .collect();
    // The hunts' response steps, each once, grouped by phase in the order the hunts first alerted.
    let mut response = Map::new();
    let mut lines = Vec::new();
    for phase in Phase::ALL {
        let mut steps: Vec<String> = Vec::new();
        // The rule's own steps first: they are about the incident as a whole.
        for response in std::iter::once(&rule.response).chain(hunts.iter().map(|h| &h.response)) {
            for step in response {
                let (p, text) = phase_of(step);
                if p == phase && !steps.iter().any(|s| s == text) {
                    steps.push(text.to_string());
                }
            }
        }
        if !steps.is_empty() {
            lines.push(format!("{}:", capitalised(phase.as_str())));
            lines.extend(steps.iter().map(|s| format!("- {s}")));
            response.insert(phase.as_str().into(), json!(steps));
        }
    }
    let (entity_name, entity) = incident.entity;
    let (activity_id, activity_name) = activity.ocsf();
    // OCSF priority 1 Low … 4 Critical: informational and low alerts are both low.
    let priority = severity.ocsf_id().saturating_sub(1).clamp(1, 4);
    let title = match entity {
        "" => rule.title.clone(),
        e => format!("{}: {e}", rule.title),
    };
    let doc = json!({
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2005,
        "class_name": "Incident Finding",
        "type_uid": 200500 + u32::from(activity_id),
        "type_name": format!("Incident Finding: {activity_name}"),
        "severity_id": severity.ocsf_id(),
        "severity": severity.caption(),
        "priority_id": priority,
        "priority": PRIORITIES[usize::from(priority) - 1],
        "status_id": 1,
        "status": "New",
        "time": now_ms,
        "start_time": first.div_euclid(1_000_000),
        "end_time": last.div_euclid(1_000_000),
        "message": title,
        "desc": rule.description,
        "assignee_group": { "name": assignee_group },
        "finding_info_list": finding_infos,
        "attacks": attack.iter().map(|(t, tactics)| attack_entry(t, tactics)).collect::<Vec<_>>(),
        "remediation": { "desc": lines.join("\n") },
        "metadata": {
            "version": OCSF_VERSION,
            "correlation_uid": incident.id,
            "product": { "name": "ghosthunt", "vendor_name": "ghosthunt", "version": env!("CARGO_PKG_VERSION") },
        },
        "unmapped": {
            "incident_uid": incident.id,
            "rule_id": rule.id,
            "hypothesis": rule.hypothesis,
            "entity": { "name": entity_name, "value": entity },
            "window_start": format_time(incident.first_window.0),
            "window_end": format_time(incident.last_window.1),
            "alert_count": incident.alert_count,
            "added_alert_ids": incident.added,
            "tactics": tactics,
            "techniques": techniques,
            "hosts": hosts,
            "users": users,
            "timeline": timeline,
            "response": response,
            "result": incident.result,
        },
    });
    let oldest = alerts.iter().map(|a| a.seq).min().unwrap_or(0);
    let received = alerts
        .iter()
        .map(|a| a.received)
        .max()
        .unwrap_or_else(Instant::now);
    Alert {
        id: incident.id.to_string(),
        hunt: Arc::clone(rule),
        key: match entity {
            "" => rule.id.clone(),
            e => format!("{}|{e}", rule.id),
        },
        json: doc.to_string(),
        received,
        event_time: last,
        seq: oldest,
        suppress_key: None,
        subject: Arc::new(Subject {
            host: hosts.first().map(|h| h.to_string()),
            user: users.first().map(|u| u.to_string()),
            src_ip: None,
            entity: entity_name.map(|n| (n.to_string(), entity.to_string())),
            summary: title,
        }),
        update: activity == Activity::Update,
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// A hunt's ATT&CK entries, as alerts carry them.
fn attacks(hunt: &Hunt) -> Vec<Value> {
    let tactics: Vec<&str> = hunt.attack.tactics.iter().map(String::as_str).collect();
    hunt.attack
        .techniques
        .iter()
        .map(|t| attack_entry(t, &tactics))
        .collect()
}

/// One OCSF `attack`: a technique and tactics.
fn attack_entry(technique: &str, tactics: &[&str]) -> Value {
    json!({
        "technique": {
            "uid": technique,
            "src_url": format!("https://attack.mitre.org/techniques/{}/", technique.replace('.', "/")),
        },
        "tactics": tactics.iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_steps_fall_into_phases_by_their_first_word_or_their_label() {
        assert_eq!(phase_of("Isolate the host.").0, Phase::Contain);
        assert_eq!(phase_of("  Revoke the user's sessions").0, Phase::Contain);
        assert_eq!(
            phase_of("Remove the service and its binary.").0,
            Phase::Eradicate
        );
        assert_eq!(phase_of("Re-enable logging.").0, Phase::Recover);
        assert_eq!(phase_of("Decode the command.").0, Phase::Identify);
        assert_eq!(
            phase_of("Eradicate: rebuild the host from a known-good image"),
            (Phase::Eradicate, "rebuild the host from a known-good image")
        );
        // After a condition, the verb that follows it.
        assert_eq!(
            phase_of("If malicious, isolate the host and kill the process tree.").0,
            Phase::Contain
        );
        // A colon that names no phase is part of the text.
        assert_eq!(
            phase_of("Check: the parent"),
            (Phase::Identify, "Check: the parent")
        );
    }

    #[test]
    fn incident_ids_are_deterministic_and_differ_by_rule_entity_and_window() {
        let a = incident_id("kill_chain", "WS-1", 0);
        assert_eq!(a, incident_id("kill_chain", "WS-1", 0));
        assert_ne!(a, incident_id("kill_chain", "WS-2", 0));
        assert_ne!(a, incident_id("host_risk", "WS-1", 0));
        assert_ne!(a, incident_id("kill_chain", "WS-1", 600));
        assert_eq!(a.len(), 36);
    }
}
