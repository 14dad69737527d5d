//! Alert suppression, as SIEMs offer it: after a hunt alerts for a key (its `suppress.by` columns, or its
//! entity), further alerts of that hunt for that key within the suppression period are counted, not
//! emitted. When the period ends, the alert that was emitted is sent again as an OCSF *Update* (same
//! finding uid) whose `count` says how many alerts it stands for, itself included.
//!
//! Everything is decided by event time — the alerts' own times and the watermark — never by the wall
//! clock, so a replay of the same events suppresses the same alerts. The batch behind an open period's
//! alert is not acknowledged before the period ends ([`Suppressor::min_seq`]): after a crash the period is
//! rebuilt from the same events, and the same alerts appear.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::ocsf::Alert;
use crate::decode::json::format_time;

/// An open suppression period: the alert that was emitted and what it has stood for since.
struct Open {
    alert: Alert,
    /// Event time (ns) at which the period ends.
    until: i64,
    /// Alerts it stands for, itself included.
    count: u64,
    /// Event time of the newest of them.
    last: i64,
}

/// Suppression state of every hunt with a `suppress` period.
#[derive(Default)]
pub struct Suppressor {
    /// (hunt id, key) → open period. Ordered, so closing order (and output) is deterministic.
    open: BTreeMap<(String, String), Open>,
}

/// What one call let through.
#[derive(Default)]
pub struct Admitted {
    /// Alerts to deliver: new ones and the updates of periods that ended.
    pub alerts: Vec<Alert>,
    /// Alerts held back, by hunt id (for `ghosthunt_alerts_suppressed_total`).
    pub suppressed: BTreeMap<String, u64>,
}

impl Suppressor {
    /// Lets through the alerts of hunts without suppression and, for the others, the first of each key
    /// in a period; counts the rest. Alerts are taken in event-time order (ties by id).
    pub fn admit(&mut self, mut alerts: Vec<Alert>) -> Admitted {
        let mut out = Admitted::default();
        if alerts.iter().all(|a| a.suppress_key.is_none()) {
            out.alerts = alerts;
            return out;
        }
        alerts.sort_by(|a, b| (a.event_time, &a.id).cmp(&(b.event_time, &b.id)));
        for alert in alerts {
            let (Some(key), Some(period)) = (
                alert.suppress_key.clone(),
                alert.hunt.suppress.as_ref().map(|s| s.period),
            ) else {
                out.alerts.push(alert);
                continue;
            };
            let slot = (alert.hunt.id.clone(), key);
            if let Some(open) = self.open.get_mut(&slot)
                && alert.event_time < open.until
            {
                open.count += 1;
                open.last = open.last.max(alert.event_time);
                *out.suppressed.entry(alert.hunt.id.clone()).or_default() += 1;
                continue;
            }
            // A new period: the one before it (if any) has ended by event time.
            if let Some(ended) = self.open.remove(&slot) {
                out.alerts.extend(ended.close());
            }
            let until = alert
                .event_time
                .saturating_add(period.as_nanos().min(i64::MAX as u128) as i64);
            self.open.insert(
                slot,
                Open {
                    last: alert.event_time,
                    alert: alert.clone(),
                    until,
                    count: 1,
                },
            );
            out.alerts.push(alert);
        }
        out
    }

    /// Event time has reached `watermark` (`None`: end of input, close everything): the periods that
    /// ended are closed, each giving the update of its alert when it stood for more than itself.
    pub fn advance(&mut self, watermark: Option<i64>) -> Vec<Alert> {
        let ended: Vec<(String, String)> = self
            .open
            .iter()
            .filter(|(_, o)| watermark.is_none_or(|w| o.until <= w))
            .map(|(k, _)| k.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|k| self.open.remove(&k))
            .filter_map(Open::close)
            .collect()
    }

    /// The oldest batch behind an open period's alert: not to be acknowledged yet.
    pub fn min_seq(&self) -> Option<u64> {
        self.open.values().map(|o| o.alert.seq).min()
    }

    /// Open periods (for tests and the state gauge).
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

impl Open {
    /// The update of the period's alert, if it stood for others too.
    fn close(self) -> Option<Alert> {
        (self.count > 1).then(|| update(&self.alert, self.count, self.last, self.until))
    }
}

/// The alert again as an OCSF Update of the same finding: `count`, the period's end time, and the
/// suppression in `unmapped`.
fn update(alert: &Alert, count: u64, last: i64, until: i64) -> Alert {
    let mut doc: Value = serde_json::from_str(&alert.json).expect("alerts are valid JSON");
    doc["activity_id"] = json!(2);
    doc["activity_name"] = json!("Update");
    doc["type_uid"] = json!(200402);
    doc["type_name"] = json!("Detection Finding: Update");
    doc["count"] = json!(count);
    doc["end_time"] = json!(last.div_euclid(1_000_000));
    let period = alert.hunt.suppress.as_ref().map(|s| s.period);
    doc["unmapped"]["suppression"] = json!({
        "count": count,
        "period": period.map(|p| humantime::format_duration(p).to_string()),
        "last_event_time": format_time(last),
        "until": format_time(until),
    });
    Alert {
        id: alert.id.clone(),
        hunt: Arc::clone(&alert.hunt),
        key: alert.key.clone(),
        json: doc.to_string(),
        received: alert.received,
        event_time: last,
        seq: alert.seq,
        suppress_key: alert.suppress_key.clone(),
        subject: Arc::clone(&alert.subject),
        update: true,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::hunt::{Hunt, Suppression};

    const MINUTE: i64 = 60_000_000_000;

    fn hunt(suppress: Option<Duration>) -> Arc<Hunt> {
        Arc::new(Hunt {
            entity: Some("host".into()),
            suppress: suppress.map(|period| Suppression {
                period,
                by: Vec::new(),
            }),
            ..Hunt::sample("h")
        })
    }

    fn alert(hunt: &Arc<Hunt>, host: &str, minute: i64) -> Alert {
        Alert {
            id: format!("{host}-{minute}"),
            hunt: Arc::clone(hunt),
            key: format!("h|{host}"),
            json: json!({ "activity_id": 1, "unmapped": {} }).to_string(),
            received: Instant::now(),
            event_time: minute * MINUTE,
            seq: minute as u64,
            suppress_key: hunt.suppress.as_ref().map(|_| host.to_string()),
            subject: Default::default(),
            update: false,
        }
    }

    #[test]
    fn one_alert_per_key_and_period_then_an_update_with_the_count() {
        let h = hunt(Some(Duration::from_secs(3600)));
        let mut s = Suppressor::default();
        let burst: Vec<Alert> = (0..10).map(|m| alert(&h, "ws1", m)).collect();
        let admitted = s.admit(burst);
        assert_eq!(admitted.alerts.len(), 1);
        assert_eq!(admitted.suppressed["h"], 9);
        assert_eq!(s.min_seq(), Some(0), "the first alert's batch is held");
        assert!(
            s.advance(Some(59 * MINUTE)).is_empty(),
            "the period is open"
        );
        let updates = s.advance(Some(60 * MINUTE));
        assert_eq!(updates.len(), 1);
        let doc: Value = serde_json::from_str(&updates[0].json).unwrap();
        assert_eq!(doc["count"], 10);
        assert_eq!(doc["activity_id"], 2);
        assert_eq!(updates[0].id, admitted.alerts[0].id, "the same finding");
        assert_eq!(s.min_seq(), None);
    }

    #[test]
    fn keys_are_apart_and_a_later_alert_opens_a_new_period() {
        let h = hunt(Some(Duration::from_secs(600)));
        let mut s = Suppressor::default();
        let a = s.admit(vec![
            alert(&h, "ws1", 0),
            alert(&h, "ws2", 1),
            alert(&h, "ws1", 2),
        ]);
        assert_eq!(a.alerts.len(), 2);
        // ws1 at minute 12 is past its period (0 + 10 min): a new alert, and the old period's update.
        let b = s.admit(vec![alert(&h, "ws1", 12)]);
        assert_eq!(
            b.alerts.len(),
            2,
            "the update of the first period, then the new alert"
        );
        assert_eq!(b.alerts[1].id, "ws1-12");
        // A period that stood for only its own alert ends without an update.
        assert!(s.advance(None).is_empty());
    }

    #[test]
    fn hunts_without_suppression_pass_untouched() {
        let h = hunt(None);
        let mut s = Suppressor::default();
        let a = s.admit((0..3).map(|m| alert(&h, "ws1", m)).collect());
        assert_eq!(a.alerts.len(), 3);
        assert!(s.is_empty());
    }
}
