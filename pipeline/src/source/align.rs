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
//!
//! A live Kafka consumer's partitions and followed files never end, and most of the time they are read
//! as they are written, in step by themselves. There the alignment is gated
//! ([`Alignment::under_pressure`]): it holds inputs back only while a windowed hunt's state is filling
//! (half of `window.max_rows_per_hunt`, until it is back under a quarter) — a consumer catching up on a
//! backlog whose partitions run apart in event time pauses the ones ahead instead of dropping rows, and
//! an unwindowed hunt's alerts never wait on another input otherwise. Their inputs can also be idle
//! (marked by the reader: a partition caught up or its leader unreachable, a file waiting at its end):
//! an idle input holds no one back, as it no longer holds the watermark.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use tokio::sync::Notify;

use super::{EventTimes, Input};

/// The inputs being read and the newest event time the pipeline has seen from each.
pub struct Alignment {
    lead: i64,
    inputs: Mutex<Inputs>,
    changed: Notify,
    /// `Some` for a gated alignment: whether the windows are filling now.
    pressure: Option<AtomicBool>,
}

/// One input's newest event time (as decoded) and whether its reader has marked it idle.
#[derive(Default)]
struct Progress {
    newest: Option<i64>,
    idle: bool,
    /// The last time it was found ahead (held back), by its reader or by the watermark.
    held: Option<Instant>,
}

/// The inputs by name, and the oldest of those not idle, found once after each change: every input's
/// check (each partition's at a realign, each quiet input's at a watermark) compares with it, so that
/// a check of all inputs stays linear in their number.
#[derive(Default)]
struct Inputs {
    by_name: HashMap<String, Progress>,
    oldest: Option<Oldest>,
}

/// The inputs not idle: how many have no known event time, and the oldest known time. An input is
/// ahead of this oldest time exactly when it is ahead of the oldest *other* input: when it is the oldest
/// itself, it is ahead of neither.
#[derive(Clone, Copy)]
struct Oldest {
    unknown: usize,
    time: Option<i64>,
}

impl Inputs {
    fn changed(&mut self) {
        self.oldest = None;
    }

    fn oldest(&mut self) -> Oldest {
        let by_name = &self.by_name;
        *self.oldest.get_or_insert_with(|| {
            let active = by_name.values().filter(|p| !p.idle);
            let (mut unknown, mut time) = (0, None::<i64>);
            for p in active {
                match p.newest {
                    None => unknown += 1,
                    Some(t) => time = Some(time.map_or(t, |o| o.min(t))),
                }
            }
            Oldest { unknown, time }
        })
    }
}

/// An input taking part, until dropped.
pub struct Registration {
    alignment: Arc<Alignment>,
    name: String,
}

impl Alignment {
    pub fn new(lead: Duration) -> Arc<Alignment> {
        Self::build(lead, None)
    }

    /// An alignment that holds inputs back only while the windows are filling (see the module docs).
    pub fn under_pressure(lead: Duration) -> Arc<Alignment> {
        Self::build(lead, Some(AtomicBool::new(false)))
    }

    fn build(lead: Duration, pressure: Option<AtomicBool>) -> Arc<Alignment> {
        Arc::new(Alignment {
            lead: i64::try_from(lead.as_nanos()).unwrap_or(i64::MAX),
            inputs: Mutex::new(Inputs::default()),
            changed: Notify::new(),
            pressure,
        })
    }

    /// `name` is read from now on, until the registration is dropped.
    pub fn register(self: &Arc<Self>, name: &str) -> Registration {
        let mut inputs = self.inputs.lock().expect("not poisoned");
        inputs.by_name.insert(name.to_string(), Progress::default());
        inputs.changed();
        drop(inputs);
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

    /// Whether `name` is more than the lead past the oldest other input that is not idle (or such an
    /// input's time is unknown). A gated alignment holds no one back while the windows have room.
    fn ahead(&self, name: &str) -> bool {
        if self.open() {
            return false;
        }
        let mut inputs = self.inputs.lock().expect("not poisoned");
        let ahead = self.ahead_among(&mut inputs, name);
        if ahead && let Some(p) = inputs.by_name.get_mut(name) {
            p.held = Some(Instant::now());
        }
        ahead
    }

    /// A gated alignment while the windows have room: no input is held back.
    fn open(&self) -> bool {
        self.pressure
            .as_ref()
            .is_some_and(|p| !p.load(Ordering::SeqCst))
    }

    fn ahead_among(&self, inputs: &mut Inputs, name: &str) -> bool {
        let oldest = inputs.oldest();
        inputs
            .by_name
            .get(name)
            .is_some_and(|p| self.ahead_of(oldest, p))
    }

    /// Whether an input of progress `p` is more than the lead past the oldest of the others.
    fn ahead_of(&self, oldest: Oldest, p: &Progress) -> bool {
        let Some(mine) = p.newest else {
            return false;
        };
        // An input of unknown time holds every input of known time back.
        oldest.unknown > 0
            || oldest
                .time
                .is_some_and(|o| mine > o.saturating_add(self.lead))
    }

    fn set_idle(&self, name: &str, idle: bool) {
        let mut inputs = self.inputs.lock().expect("not poisoned");
        if let Some(p) = inputs.by_name.get_mut(name)
            && p.idle != idle
        {
            p.idle = idle;
            inputs.changed();
            drop(inputs);
            self.changed.notify_waiters();
        }
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

    /// Marks this input idle (it holds no one back) or not (its reader heard from it again).
    pub fn set_idle(&self, idle: bool) {
        self.alignment.set_idle(&self.name, idle)
    }

    /// Whether an event time of this input has been decoded yet.
    pub fn time_known(&self) -> bool {
        self.alignment
            .inputs
            .lock()
            .expect("not poisoned")
            .by_name
            .get(&self.name)
            .is_some_and(|p| p.newest.is_some())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inputs = self.alignment.inputs.lock().expect("not poisoned");
        inputs.by_name.remove(&self.name);
        inputs.changed();
        drop(inputs);
        self.alignment.changed.notify_waiters();
    }
}

impl EventTimes for Alignment {
    fn observed(&self, input: &Input, newest: i64) {
        let mut inputs = self.inputs.lock().expect("not poisoned");
        let Some(known) = inputs.by_name.get_mut(&input.name) else {
            return;
        };
        if known.newest.is_none_or(|k| newest > k) {
            known.newest = Some(newest);
            inputs.changed();
            drop(inputs);
            self.changed.notify_waiters();
        }
    }

    fn last_held(&self, input: &str) -> Option<Instant> {
        self.ahead(input);
        self.inputs
            .lock()
            .expect("not poisoned")
            .by_name
            .get(input)
            .and_then(|p| p.held)
    }

    fn held_back(&self) -> usize {
        if self.open() {
            return 0;
        }
        let mut inputs = self.inputs.lock().expect("not poisoned");
        let oldest = inputs.oldest();
        inputs
            .by_name
            .values()
            .filter(|p| self.ahead_of(oldest, p))
            .count()
    }

    /// The windows are filling from half of the limit on, and have room again under a quarter of it.
    fn window_rows(&self, held: usize, limit: usize) {
        let Some(pressure) = &self.pressure else {
            return;
        };
        let was = pressure.load(Ordering::SeqCst);
        // Empty windows are never filling, whatever the limit (a quarter of 1 is 0).
        let now = held > 0
            && if was {
                held.saturating_mul(4) >= limit
            } else {
                held.saturating_mul(2) >= limit
            };
        if now != was {
            pressure.store(now, Ordering::SeqCst);
            if now {
                tracing::info!(
                    held,
                    limit,
                    filling = now,
                    "Windows filling: inputs ahead in event time are held back until the others catch up."
                );
            } else {
                tracing::info!(
                    held,
                    limit,
                    filling = now,
                    "Windows have room again: no input is held back."
                );
            }
            self.changed.notify_waiters();
        }
    }
}

/// A Kafka partition taking part in an alignment, and whether it is paused for it.
pub struct InStep {
    pub aligned: Registration,
    /// Whether it is paused (`None`: not known, as for a new assignment of a partition librdkafka may
    /// still hold paused: the next [`realign`] pauses or resumes it either way).
    pub paused: Option<bool>,
}

impl InStep {
    pub fn new(aligned: Registration) -> InStep {
        InStep {
            aligned,
            paused: Some(false),
        }
    }
}

/// Pauses the partitions too far ahead of the others in event time and resumes those no longer ahead.
pub fn realign<'a, C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: impl Iterator<Item = (&'a (String, i32), &'a mut InStep)>,
) {
    let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
    let mut changed = Vec::new();
    for (key, p) in partitions {
        let ahead = p.aligned.ahead();
        if p.paused != Some(ahead) {
            let list = if ahead { &mut pause } else { &mut resume };
            list.add_partition(&key.0, key.1);
            changed.push((key, p, ahead));
        }
    }
    if changed.is_empty() {
        return;
    }
    let paused = pause.count() == 0 || consumer.pause(&pause).is_ok();
    let resumed = resume.count() == 0 || consumer.resume(&resume).is_ok();
    for (key, p, ahead) in changed {
        // librdkafka reports a partition it could not pause or resume in the list, not in the call's
        // result: such a partition keeps its state and is tried again at the next realign.
        let (list, call) = if ahead {
            (&pause, paused)
        } else {
            (&resume, resumed)
        };
        let done = call
            && list
                .find_partition(&key.0, key.1)
                .is_none_or(|e| e.error().is_ok());
        if done {
            tracing::debug!(topic = %key.0, partition = key.1, ahead, "Partition paused or resumed to keep in step by event time.");
            p.paused = Some(ahead);
        } else {
            tracing::debug!(topic = %key.0, partition = key.1, ahead, "Partition could not be paused or resumed; tried again.");
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

    #[test]
    fn a_gated_alignment_holds_inputs_back_only_while_the_windows_fill() {
        let align = Alignment::under_pressure(Duration::ZERO);
        let (old, new) = (align.register("old"), align.register("new"));
        align.observed(&input("old"), 0);
        align.observed(&input("new"), MINUTE);
        assert!(!new.ahead(), "the windows have room");
        align.window_rows(499, 1000);
        assert!(!new.ahead(), "under half of the limit");
        align.window_rows(500, 1000);
        assert!(new.ahead(), "half of the limit held");
        assert!(!old.ahead(), "the oldest never waits");
        assert_eq!(align.held_back(), 1);
        align.window_rows(250, 1000);
        assert!(new.ahead(), "still filling until under a quarter");
        align.window_rows(249, 1000);
        assert!(!new.ahead(), "room again");
        assert_eq!(align.held_back(), 0);
        align.window_rows(400, 1000);
        assert!(!new.ahead(), "not filling again before half");
        // Small limits: empty windows never fill, a quarter of 1 row is not 0.
        align.window_rows(0, 1);
        assert!(!new.ahead(), "empty windows with a limit of 1");
        align.window_rows(1, 1);
        assert!(new.ahead(), "the one row a hunt may hold");
        align.window_rows(0, 1);
        assert!(!new.ahead(), "empty again");
        align.window_rows(1, 3);
        assert!(!new.ahead(), "1 of 3 is under half");
        align.window_rows(2, 3);
        assert!(new.ahead(), "2 of 3");
        align.window_rows(1, 3);
        assert!(new.ahead(), "1 of 3 is not under a quarter");
        align.window_rows(0, 3);
        assert!(!new.ahead());
        // An ungated alignment ignores the windows.
        let plain = Alignment::new(Duration::ZERO);
        let (_old, new) = (plain.register("old"), plain.register("new"));
        plain.observed(&input("old"), 0);
        plain.observed(&input("new"), MINUTE);
        plain.window_rows(0, 1000);
        assert!(new.ahead());
        drop(old);
    }

    #[test]
    fn an_idle_input_holds_no_one_back_until_heard_from_again() {
        let align = Alignment::under_pressure(Duration::ZERO);
        align.window_rows(1000, 1000);
        let (old, new, unknown) = (
            align.register("old"),
            align.register("new"),
            align.register("unknown"),
        );
        align.observed(&input("old"), 0);
        align.observed(&input("new"), MINUTE);
        unknown.set_idle(true);
        assert!(new.ahead(), "behind the old input");
        old.set_idle(true);
        assert!(!new.ahead(), "the old input and the unknown one are idle");
        old.set_idle(false);
        assert!(new.ahead(), "the old input was heard from again");
        align.observed(&input("old"), 2 * MINUTE);
        assert!(!new.ahead(), "the oldest now");
        unknown.set_idle(false);
        assert!(
            new.ahead(),
            "an unknown time that is not idle holds it back"
        );
    }

    /// Every input's check against the oldest found once agrees with comparing it with every other
    /// input, through registrations, event times, idleness and ends in a pseudo-random order.
    #[test]
    fn each_input_s_check_agrees_with_comparing_it_with_every_other_input() {
        let align = Alignment::new(Duration::from_nanos(5));
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        // name → (registration, newest, idle), as a reference kept beside the alignment.
        let mut inputs: HashMap<String, (Registration, Option<i64>, bool)> = HashMap::new();
        for step in 0..3_000 {
            let name = format!("input-{}", next(12));
            match (next(10), inputs.contains_key(&name)) {
                (0, true) => {
                    inputs.remove(&name);
                }
                (_, false) => {
                    inputs.insert(name.clone(), (align.register(&name), None, false));
                }
                (1..=2, true) => {
                    let idle = next(2) == 0;
                    let entry = inputs.get_mut(&name).expect("present");
                    entry.0.set_idle(idle);
                    entry.2 = idle;
                }
                (_, true) => {
                    let t = next(40) as i64;
                    align.observed(&input(&name), t);
                    let entry = inputs.get_mut(&name).expect("present");
                    entry.1 = Some(entry.1.map_or(t, |n| n.max(t)));
                }
            }
            let mut expected_held = 0;
            for (name, (registration, newest, _)) in &inputs {
                let expected = newest.is_some_and(|mine| {
                    inputs
                        .iter()
                        .filter(|(other, (_, _, idle))| *other != name && !idle)
                        .any(|(_, (_, o, _))| o.is_none_or(|o| mine > o + 5))
                });
                assert_eq!(registration.ahead(), expected, "{name} at step {step}");
                expected_held += usize::from(expected);
            }
            assert_eq!(align.held_back(), expected_held, "step {step}");
        }
    }
}
