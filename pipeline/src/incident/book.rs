//! Open incidents: which (rule, entity) has one, since which window, with which alerts.
//!
//! A rule's result row for a window opens an incident for its entity, or adds to the one open for it: an
//! incident stays open while its rule's windows overlap the ones that raised it (a later window starting
//! before the newest one's end), so the hopping windows of one attack make one incident. A row naming
//! alerts the incident does not hold yet is an update; a row naming none new says nothing. Everything is
//! decided by event time (windows and the alerts' times), so a replay opens and updates the same incidents.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::finding::{Activity, AlertInfo, Incident, finding, incident_id};
use crate::alert::Alert;
use crate::hunt::Hunt;

/// One open incident.
struct Open {
    id: String,
    rule: Arc<Hunt>,
    entity: String,
    first_window: (i64, i64),
    last_window: (i64, i64),
    /// Its alerts by (time, id): the timeline.
    alerts: BTreeMap<(i64, String), Arc<AlertInfo>>,
    ids: BTreeSet<String>,
    unknown: BTreeSet<String>,
    result: Map<String, Value>,
}

/// What a rule's result row did.
pub struct Outcome {
    pub finding: Alert,
    pub activity: Activity,
}

/// Every open incident, and the recent alerts their rules may name.
#[derive(Default)]
pub struct Book {
    /// (rule id, entity value) → the incident open for it.
    open: BTreeMap<(String, String), Open>,
    /// Alerts by id, for as long as an open window of some rule may hold them.
    alerts: HashMap<String, Arc<AlertInfo>>,
    /// The same alerts by event time, to forget them in order.
    by_time: BTreeSet<(i64, String)>,
}

impl Book {
    /// Remembers an alert the rules may name.
    pub fn note(&mut self, alert: AlertInfo) {
        self.by_time.insert((alert.time, alert.id.clone()));
        self.alerts.insert(alert.id.clone(), Arc::new(alert));
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.alerts.is_empty()
    }

    /// A result row of `rule` for `window`: opens an incident, adds alerts to one, or (no new alerts)
    /// nothing. `ids` are the alerts the row groups (its `alert_ids`).
    pub fn observe(
        &mut self,
        rule: &Arc<Hunt>,
        window: (i64, i64),
        row: Map<String, Value>,
        ids: Vec<String>,
        assignee_group: &str,
        now_ms: i64,
    ) -> Option<Outcome> {
        let entity = rule
            .entity
            .as_ref()
            .and_then(|e| row.get(e))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        let key = (rule.id.clone(), entity);
        let activity = match self.open.get(&key) {
            Some(o) if window.0 < o.last_window.1 => Activity::Update,
            _ => Activity::Create,
        };
        if activity == Activity::Create {
            self.open.insert(
                key.clone(),
                Open {
                    id: incident_id(&rule.id, &key.1, window.0),
                    rule: Arc::clone(rule),
                    entity: key.1.clone(),
                    first_window: window,
                    last_window: window,
                    alerts: BTreeMap::new(),
                    ids: BTreeSet::new(),
                    unknown: BTreeSet::new(),
                    result: Map::new(),
                },
            );
        }
        let o = self.open.get_mut(&key).expect("inserted or present");
        if window.1 > o.last_window.1 {
            o.last_window = window;
        }
        let mut added = Vec::new();
        for id in ids {
            if o.ids.contains(&id) || o.unknown.contains(&id) {
                continue;
            }
            added.push(id.clone());
            match self.alerts.get(&id) {
                Some(info) => {
                    o.alerts.insert((info.time, id.clone()), Arc::clone(info));
                    o.ids.insert(id);
                }
                None => {
                    o.unknown.insert(id);
                }
            }
        }
        if activity == Activity::Update && added.is_empty() {
            return None;
        }
        o.result = row;
        let incident = Incident {
            id: &o.id,
            rule: &o.rule,
            entity: (o.rule.entity.as_deref(), &o.entity),
            first_window: o.first_window,
            last_window: o.last_window,
            alerts: o.alerts.values().map(Arc::as_ref).collect(),
            unknown: o.unknown.len(),
            added: &added,
            result: &o.result,
        };
        Some(Outcome {
            finding: finding(&incident, activity, assignee_group, now_ms),
            activity,
        })
    }

    /// Event time reached `watermark` (the incident rules' input watermark): closes the incidents no
    /// later window of their rule can overlap (`size`: the rule's window size, ns) and forgets alerts older
    /// than every open window (`horizon`: the longest rule window).
    pub fn expire(&mut self, watermark: i64, size: impl Fn(&Hunt) -> i64, horizon: i64) {
        // A window still to close ends after the watermark, so it starts after watermark − size.
        self.open
            .retain(|_, o| o.last_window.1 > watermark.saturating_sub(size(&o.rule)));
        let oldest = watermark.saturating_sub(horizon);
        while let Some((time, _)) = self.by_time.first() {
            if *time >= oldest {
                break;
            }
            let (_, id) = self.by_time.pop_first().expect("first exists");
            self.alerts.remove(&id);
        }
    }

    /// Forgets everything (end of input).
    pub fn clear(&mut self) {
        self.open.clear();
        self.alerts.clear();
        self.by_time.clear();
    }
}
