//! Inputs read at once, kept near one another in event time (watermark alignment).
//!
//! The watermark is the oldest active input's progress, so files read at once may cover the same hours
//! (one per host) and no event is late. But an input whose events are newer than the others' would run
//! ahead: its rows wait in the windows until the others catch up, as many as it can read. So an input
//! waits, before each read, while its newest event time (as the pipeline has decoded it) is more than
//! `lead` past the oldest of the other inputs'. The oldest input never waits. An input whose event time
//! is not known yet never waits either, and holds back every input whose time is known: it may be the
//! oldest, and one input's first reads can come well before another's (a Kafka partition fetched
//! late). Reading always goes on, as every input taking part ends (a file read once, a range of
//! offsets): one that never yields an event time holds the others until it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::{EventTimes, Input};

/// The inputs being read and the newest event time the pipeline has seen from each.
pub struct Alignment {
    lead: i64,
    newest: Mutex<HashMap<String, Option<i64>>>,
    changed: Notify,
}

/// An input taking part, until dropped.
pub struct Registration {
    alignment: Arc<Alignment>,
    name: String,
}

impl Alignment {
    pub fn new(lead: Duration) -> Arc<Alignment> {
        Arc::new(Alignment {
            lead: i64::try_from(lead.as_nanos()).unwrap_or(i64::MAX),
            newest: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        })
    }

    /// `name` is read from now on, until the registration is dropped.
    pub fn register(self: &Arc<Self>, name: &str) -> Registration {
        self.newest
            .lock()
            .expect("not poisoned")
            .insert(name.to_string(), None);
        Registration {
            alignment: Arc::clone(self),
            name: name.to_string(),
        }
    }

    /// Returns once `name` is not ahead of the others by more than the lead.
    async fn wait_turn(&self, name: &str) {
        let mut waited = false;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check: a change between the check and the wait is not missed.
            changed.as_mut().enable();
            if !self.ahead(name) {
                if waited {
                    tracing::debug!(input = %name, "Input goes on: the others have caught up.");
                }
                return;
            }
            if !waited {
                tracing::debug!(input = %name, "Input waits for older inputs to catch up in event time.");
                waited = true;
            }
            changed.await;
        }
    }

    /// Whether `name` is more than the lead past the oldest other input (or another's time is unknown).
    fn ahead(&self, name: &str) -> bool {
        let newest = self.newest.lock().expect("not poisoned");
        let Some(Some(mine)) = newest.get(name) else {
            return false;
        };
        newest
            .iter()
            .filter(|(other, _)| *other != name)
            .any(|(_, t)| t.is_none_or(|o| *mine > o.saturating_add(self.lead)))
    }
}

impl Registration {
    /// Returns once this input is not ahead of the others by more than the lead.
    pub async fn wait_turn(&self) {
        self.alignment.wait_turn(&self.name).await
    }

    /// Whether this input is ahead of the others by more than the lead now (for a reader that pauses
    /// and resumes its inputs instead of waiting).
    pub fn ahead(&self) -> bool {
        self.alignment.ahead(&self.name)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.alignment
            .newest
            .lock()
            .expect("not poisoned")
            .remove(&self.name);
        self.alignment.changed.notify_waiters();
    }
}

impl EventTimes for Alignment {
    fn observed(&self, input: &Input, newest: i64) {
        let mut times = self.newest.lock().expect("not poisoned");
        let Some(known) = times.get_mut(&input.name) else {
            return;
        };
        if known.is_none_or(|k| newest > k) {
            *known = Some(newest);
            drop(times);
            self.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::InputKind;

    const MINUTE: i64 = 60_000_000_000;

    fn input(name: &str) -> Input {
        Input {
            name: name.into(),
            kind: InputKind::Stdin,
        }
    }

    /// Whether waiting for its turn returns within a short while.
    async fn goes_on(r: &Registration) -> bool {
        tokio::time::timeout(Duration::from_millis(50), r.wait_turn())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn an_input_ahead_by_more_than_the_lead_waits_and_the_oldest_goes_on() {
        let align = Alignment::new(Duration::from_secs(60));
        let (old, new) = (align.register("old"), align.register("new"));
        align.observed(&input("old"), 0);
        align.observed(&input("new"), MINUTE);
        assert!(goes_on(&new).await, "exactly the lead ahead goes on");
        align.observed(&input("new"), 2 * MINUTE);
        assert!(!goes_on(&new).await, "more than the lead ahead waits");
        assert!(goes_on(&old).await, "the oldest never waits");
        // Woken when the oldest catches up.
        let waiting = tokio::spawn({
            let align = Arc::clone(&align);
            async move { align.wait_turn("new").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        align.observed(&input("old"), MINUTE);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken when the oldest caught up")
            .unwrap();
        drop((old, new));
    }

    #[tokio::test]
    async fn an_input_that_ends_no_longer_holds_the_others() {
        let align = Alignment::new(Duration::ZERO);
        let (old, new) = (align.register("old"), align.register("new"));
        align.observed(&input("old"), 0);
        align.observed(&input("new"), MINUTE);
        assert!(!goes_on(&new).await);
        drop(old);
        assert!(goes_on(&new).await);
    }

    #[tokio::test]
    async fn an_input_without_a_known_event_time_never_waits_and_holds_back_the_others() {
        let align = Alignment::new(Duration::ZERO);
        let (quiet, new, fresh) = (
            align.register("quiet"),
            align.register("new"),
            align.register("fresh"),
        );
        align.observed(&input("new"), MINUTE);
        assert!(!goes_on(&new).await, "the others' times are unknown");
        assert!(goes_on(&fresh).await, "an unknown time never waits");
        assert!(goes_on(&quiet).await);
        align.observed(&input("quiet"), MINUTE);
        assert!(!goes_on(&new).await, "fresh's time is still unknown");
        // Woken when the last unknown input ends.
        let waiting = tokio::spawn({
            let align = Arc::clone(&align);
            async move { align.wait_turn("new").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(fresh);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken when the unknown input ended")
            .unwrap();
        // A time older than the newest seen changes nothing; an unregistered input is ignored.
        align.observed(&input("quiet"), 0);
        align.observed(&input("gone"), -MINUTE);
        assert!(goes_on(&new).await);
        assert!(goes_on(&quiet).await);
    }
}
