//! Open incidents: which (rule, entity) has one, since which window, with which alerts.
//!
//! A rule's result row for a window opens an incident for its entity, or adds to the one open for it: an
//! incident stays open while its rule's windows overlap the ones that raised it (a later window starting
//! before the newest one's end), so the hopping windows of one attack make one incident. A row naming
//! alerts the incident does not hold yet is an update; a row naming none new says nothing. Everything is
//! decided by event time (windows and the alerts' times), so a replay opens and updates the same incidents.
//!
//! Bounded: an incident keeps the details of its first [`MAX_ALERTS`] alerts (the rest are counted), and
//! remembers which alerts it has only while a window still to close could name them again. A finding
//! lists the alerts it adds (an update: its new ones, at most [`MAX_ALERTS`]), not every alert the incident
//! has, so an incident that grows one alert per window over days costs findings in proportion to its
//! alerts, not to their square.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::finding::{Activity, AlertInfo, Incident, Summary, finding, incident_id};
use crate::alert::Alert;
use crate::hunt::Hunt;

/// Alerts an incident keeps in detail, and a finding lists (it stays well under a Kafka message's 1 MB).
pub const MAX_ALERTS: usize = 500;

/// One open incident.
struct Open {
    id: String,
    rule: Arc<Hunt>,
    entity: String,
    first_window: (i64, i64),
    last_window: (i64, i64),
    /// Its first alerts by (time, id): the timeline.
    alerts: BTreeMap<(i64, String), Arc<AlertInfo>>,
    /// The alerts it has that a window still to close may name again, by (time, id).
    seen: BTreeSet<(i64, String)>,
    /// Every alert it has had.
    count: usize,
    /// The event time of its newest alert (of an alert no longer known: just before its window's end).
    newest: Option<i64>,
    /// What all its alerts whose details were known add up to.
    summary: Summary,
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
                    seen: BTreeSet::new(),
                    count: 0,
                    newest: None,
                    summary: Summary::default(),
                    result: Map::new(),
                },
            );
        }
        let o = self.open.get_mut(&key).expect("inserted or present");
        if window.1 > o.last_window.1 {
            o.last_window = window;
        }
        let mut added = Vec::new();
        // The added alerts whose details are known, by (time, id): what this finding lists.
        let mut listed = BTreeMap::new();
        for id in ids {
            // An alert no longer known is in this window: its time is before the window's end.
            let info = self.alerts.get(&id);
            let time = info.map_or(window.1 - 1, |a| a.time);
            if !o.seen.insert((time, id.clone())) {
                continue;
            }
            o.count += 1;
            o.newest = o.newest.max(Some(time));
            if let Some(info) = info {
                o.summary.add(info);
                if o.alerts.len() < MAX_ALERTS {
                    o.alerts.insert((time, id.clone()), Arc::clone(info));
                }
                listed.insert((time, id.clone()), Arc::clone(info));
            }
            added.push(id);
        }
        if activity == Activity::Update && added.is_empty() {
            return None;
        }
        // A finding lists the earliest MAX_ALERTS of what it adds (the rule's order is not time's).
        while listed.len() > MAX_ALERTS {
            listed.pop_last();
        }
        o.result = row;
        let incident = Incident {
            id: &o.id,
            rule: &o.rule,
            entity: (o.rule.entity.as_deref(), &o.entity),
            first_window: o.first_window,
            last_window: o.last_window,
            alerts: o.alerts.values().map(Arc::as_ref).collect(),
            summary: &o.summary,
            listed: listed.values().map(Arc::as_ref).collect(),
            alert_count: o.count,
            newest: o.newest,
            added: &added,
            result: &o.result,
        };
        Some(Outcome {
            finding: finding(&incident, activity, assignee_group, now_ms),
            activity,
        })
    }

    /// Event time reached `watermark` (the incident rules' input watermark). `span` is a rule's window
    /// size plus its lateness: a window of it still to close starts after `watermark − span`. Closes the
    /// incidents no such window can overlap, forgets the alerts no such window can hold (`horizon`: the
    /// longest span of all rules).
    pub fn expire(&mut self, watermark: i64, span: impl Fn(&Hunt) -> i64, horizon: i64) {
        self.open.retain(|_, o| {
            let oldest = watermark.saturating_sub(span(&o.rule));
            while o.seen.first().is_some_and(|(t, _)| *t < oldest) {
                o.seen.pop_first();
            }
            o.last_window.1 > oldest
        });
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::alert::Subject;
    use crate::hunt::{Severity, WindowSpec};

    const MINUTE: i64 = 60_000_000_000;

    fn rule() -> Arc<Hunt> {
        Arc::new(Hunt {
            severity: Severity::Critical,
            window: WindowSpec::parse("hopping 60m every 10m").unwrap(),
            entity: Some("host".into()),
            ..Hunt::sample("kill_chain")
        })
    }

    fn note(book: &mut Book, id: &str, minute: i64) {
        book.note(AlertInfo {
            id: id.into(),
            time: minute * MINUTE,
            hunt: rule(),
            subject: Arc::new(Subject::default()),
            received: Instant::now(),
            seq: 0,
        });
    }

    fn row(host: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("host".into(), Value::String(host.into()));
        m
    }

    fn observe(book: &mut Book, start: i64, ids: &[&str]) -> Option<(Activity, String, usize)> {
        book.observe(
            &rule(),
            (start * MINUTE, (start + 60) * MINUTE),
            row("WS-1"),
            ids.iter().map(|s| s.to_string()).collect(),
            "SOC",
            0,
        )
        .map(|o| {
            let doc: Value = serde_json::from_str(&o.finding.json).unwrap();
            (
                o.activity,
                o.finding.id.clone(),
                doc["finding_info_list"].as_array().unwrap().len(),
            )
        })
    }

    #[test]
    fn overlapping_windows_update_one_incident_and_repeat_nothing() {
        let mut book = Book::default();
        for (id, m) in [("a", 5), ("b", 12), ("c", 18), ("d", 40)] {
            note(&mut book, id, m);
        }
        let (activity, id, n) = observe(&mut book, -40, &["a", "b", "c"]).unwrap();
        assert_eq!((activity, n), (Activity::Create, 3));
        // The next window holds the same alerts: nothing to say.
        assert!(observe(&mut book, -30, &["a", "b", "c"]).is_none());
        // One more alert: an update of the same incident, listing the alert it adds.
        let (activity, same, n) = observe(&mut book, -10, &["a", "b", "c", "d"]).unwrap();
        assert_eq!(
            (activity, same.as_str(), n),
            (Activity::Update, id.as_str(), 1)
        );
        // Long after, a window that overlaps none of its windows opens a new incident.
        book.expire(200 * MINUTE, |_| 70 * MINUTE, 70 * MINUTE);
        assert_eq!(book.open_count(), 0);
        note(&mut book, "e", 300);
        let (activity, other, _) = observe(&mut book, 250, &["e"]).unwrap();
        assert_eq!(activity, Activity::Create);
        assert_ne!(other, id);
    }

    #[test]
    fn an_incident_lists_at_most_max_alerts_and_counts_the_rest() {
        let mut book = Book::default();
        let ids: Vec<String> = (0..MAX_ALERTS + 7).map(|i| format!("a{i:04}")).collect();
        for id in &ids {
            note(&mut book, id, 1);
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let outcome = book
            .observe(
                &rule(),
                (0, 60 * MINUTE),
                row("WS-1"),
                refs.iter().map(|s| s.to_string()).collect(),
                "SOC",
                0,
            )
            .unwrap();
        let doc: Value = serde_json::from_str(&outcome.finding.json).unwrap();
        assert_eq!(
            doc["finding_info_list"].as_array().unwrap().len(),
            MAX_ALERTS
        );
        assert_eq!(doc["unmapped"]["alert_count"], MAX_ALERTS + 7);
    }

    #[test]
    fn an_incident_growing_an_alert_per_window_lists_each_alert_once_across_its_findings() {
        // An outbreak: one new alert every ten minutes for a week, each hourly window holding the
        // last hour's alerts. One incident, updated as each window adds its new alert.
        let mut book = Book::default();
        let alerts = 6 * 24 * 7;
        let mut listed = Vec::new();
        let mut bytes = Vec::new();
        for i in 0..alerts {
            note(&mut book, &format!("a{i:05}"), i * 10);
            let start = i * 10 - 50;
            let ids: Vec<String> = (0..=i)
                .filter(|j| j * 10 >= start)
                .map(|j| format!("a{j:05}"))
                .collect();
            let outcome = book
                .observe(
                    &rule(),
                    (start * MINUTE, (start + 60) * MINUTE),
                    row("WS-1"),
                    ids,
                    "SOC",
                    0,
                )
                .expect("each window adds an alert");
            let doc: Value = serde_json::from_str(&outcome.finding.json).unwrap();
            assert_eq!(doc["unmapped"]["alert_count"], i + 1);
            assert_eq!(doc["end_time"], i * 10 * 60_000, "the newest alert's time");
            let uids: Vec<String> = doc["finding_info_list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["uid"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                serde_json::json!(uids),
                doc["unmapped"]["added_alert_ids"],
                "a finding lists what it adds"
            );
            assert_eq!(
                doc["unmapped"]["timeline"].as_array().unwrap().len(),
                uids.len()
            );
            listed.extend(uids);
            bytes.push(outcome.finding.json.len());
            book.expire((start + 60) * MINUTE, |_| 70 * MINUTE, 70 * MINUTE);
        }
        assert_eq!(book.open_count(), 1);
        // An alert older than the newest, coming late (a windowed hunt's): the incident's end stays.
        let last = alerts - 1;
        note(&mut book, "late", last * 10 - 5);
        let start = last * 10 - 50;
        let outcome = book
            .observe(
                &rule(),
                (start * MINUTE, (start + 60) * MINUTE),
                row("WS-1"),
                vec!["late".to_string()],
                "SOC",
                0,
            )
            .expect("a new alert");
        let doc: Value = serde_json::from_str(&outcome.finding.json).unwrap();
        assert_eq!(doc["end_time"], last * 10 * 60_000);
        let expected: Vec<String> = (0..alerts).map(|j| format!("a{j:05}")).collect();
        assert_eq!(listed, expected, "every alert listed once, in order");
        // The last update is no larger than the second: the findings grow with the alerts, not
        // with the incident's size.
        assert!(
            bytes[bytes.len() - 1] <= bytes[1] + 64,
            "{} then {}",
            bytes[1],
            bytes[bytes.len() - 1]
        );
    }

    #[test]
    fn an_update_past_the_first_max_alerts_still_raises_the_incidents_severity_tactics_and_users() {
        let low_rule = Arc::new(Hunt {
            severity: Severity::Low,
            ..(*rule()).clone()
        });
        let hunt = |id: &str, severity, tactic: &str| {
            let mut h = Hunt::sample(id);
            h.severity = severity;
            h.attack.tactics = vec![tactic.to_string()];
            Arc::new(h)
        };
        let failed = hunt("failed_logon", Severity::Low, "credential-access");
        let dump = hunt("lsass_dump", Severity::High, "execution");
        let mut book = Book::default();
        let add = |book: &mut Book, id: String, minute: i64, hunt: &Arc<Hunt>, user: &str| {
            book.note(AlertInfo {
                id,
                time: minute * MINUTE,
                hunt: Arc::clone(hunt),
                subject: Arc::new(Subject {
                    user: Some(user.into()),
                    ..Subject::default()
                }),
                received: Instant::now(),
                seq: 0,
            });
        };
        let ids: Vec<String> = (0..MAX_ALERTS).map(|i| format!("f{i:04}")).collect();
        for id in &ids {
            add(&mut book, id.clone(), 1, &failed, "alice");
        }
        let window = (0, 60 * MINUTE);
        let created = book
            .observe(&low_rule, window, row("WS-1"), ids.clone(), "SOC", 0)
            .unwrap();
        let doc: Value = serde_json::from_str(&created.finding.json).unwrap();
        assert_eq!(doc["severity"], "Low");
        add(&mut book, "dump".into(), 30, &dump, "bob");
        let mut more = ids;
        more.push("dump".into());
        let update = book
            .observe(&low_rule, window, row("WS-1"), more, "SOC", 0)
            .unwrap();
        let doc: Value = serde_json::from_str(&update.finding.json).unwrap();
        assert_eq!(doc["severity"], "High", "{doc:#}");
        assert_eq!(
            doc["unmapped"]["tactics"],
            serde_json::json!(["credential-access", "execution"])
        );
        assert_eq!(
            doc["unmapped"]["users"],
            serde_json::json!(["alice", "bob"])
        );
        assert_eq!(doc["end_time"], 30 * 60_000);
    }

    #[test]
    fn an_incident_forgets_alerts_no_window_to_close_can_name() {
        let mut book = Book::default();
        note(&mut book, "a", 5);
        assert!(observe(&mut book, -40, &["a"]).is_some());
        // Windows still to close start after minute 15: minute 5 cannot come again, but they may
        // still overlap the incident's window (ending at minute 20).
        book.expire(85 * MINUTE, |_| 70 * MINUTE, 70 * MINUTE);
        assert_eq!(book.open_count(), 1);
        assert!(book.open.values().all(|o| o.seen.is_empty()));
        assert!(book.alerts.is_empty());
    }
}
