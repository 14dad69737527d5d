//! The event-time watermark: the minimum over active inputs of their newest event time.
//!
//! An input that has sent nothing for `idle_timeout` stops holding the watermark back. When every input is
//! idle, event time is taken to go on at the wall clock's pace: the watermark is the newest event time
//! seen plus the time since the last record, so the last window of a quiet stream closes once the quiet
//! has lasted as long as the event time it still lacked, and the events that end the quiet of a live
//! stream (stamped about now) find their windows still open. The watermark never goes backwards. Each
//! hunt subtracts its own allowed lateness from it. An input the source holds back, ahead of the others in
//! event time (`source::align`), sends nothing while it waits, yet it is not idle: it keeps holding the
//! watermark at its newest event time, or the watermark could pass rows it has not sent yet.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::nanos;
use crate::source::{EventTimes, Input};

#[derive(Debug, Clone, Copy)]
struct Progress {
    newest: Option<i64>,
    last_seen: Instant,
}

/// Where event time stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// Nothing has been seen yet.
    Unknown,
    /// Every event time below this (ns since the epoch) is considered complete.
    At(i64),
    /// No input has sent anything for the idle timeout; the watermark goes on at the wall clock's pace.
    AllIdle(i64),
}

/// One input's progress as [`WatermarkTracker::inputs`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProgress {
    pub input: String,
    /// Its newest event time (`None`: no event yet).
    pub newest: Option<i64>,
    /// `Some` when it is idle: the time since its last record.
    pub quiet: Option<Duration>,
}

/// Tracks per-input progress.
pub struct WatermarkTracker {
    inputs: HashMap<String, Progress>,
    idle_timeout: Duration,
    /// The source's alignment, asked whether a quiet input is only being held back.
    holding: Option<Arc<dyn EventTimes>>,
    current: Option<i64>,
    /// When the last record of any input came, and the newest event time of any (inputs that stopped
    /// included).
    last_record: Option<Instant>,
    newest_any: Option<i64>,
}

impl WatermarkTracker {
    pub fn new(idle_timeout: Duration) -> WatermarkTracker {
        WatermarkTracker {
            inputs: HashMap::new(),
            idle_timeout,
            holding: None,
            current: None,
            last_record: None,
            newest_any: None,
        }
    }

    /// Asks `times` whether a quiet input is held back by the source rather than idle.
    pub fn held_back_by(&mut self, times: Option<Arc<dyn EventTimes>>) {
        self.holding = times;
    }

    /// Whether `name`, whose last record came at `last_seen`, is idle at `now`: quiet for the idle
    /// timeout, not counting the time the source held it back (it is not idle while held, nor until a
    /// whole idle timeout after it was let go: its first rows may be on their way, and a hold that
    /// began and ended between two looks must not count as quiet).
    fn idle(&self, name: &str, last_seen: Instant, now: Instant) -> bool {
        if now.saturating_duration_since(last_seen) < self.idle_timeout {
            return false;
        }
        let since = self
            .holding
            .as_ref()
            .and_then(|h| h.last_held(name))
            .map_or(last_seen, |held| held.max(last_seen));
        now.saturating_duration_since(since) >= self.idle_timeout
    }

    /// Records that `input` sent records at `now`, the newest with event time `newest` (if any decoded).
    pub fn observe(&mut self, input: &Input, newest: Option<i64>, now: Instant) {
        let p = self.inputs.entry(input.name.clone()).or_insert(Progress {
            newest: None,
            last_seen: now,
        });
        p.last_seen = p.last_seen.max(now);
        self.last_record = Some(self.last_record.map_or(now, |l| l.max(now)));
        if let Some(t) = newest {
            self.newest_any = self.newest_any.max(Some(t));
            p.newest = Some(p.newest.map_or(t, |n| n.max(t)));
        }
    }

    /// An input begins: until its first event (or its idle timeout) it holds the watermark where it is.
    pub fn start(&mut self, input: &Input, now: Instant) {
        self.inputs.entry(input.name.clone()).or_insert(Progress {
            newest: None,
            last_seen: now,
        });
    }

    /// An input ended: it no longer holds the watermark back.
    pub fn stop(&mut self, input: &Input) {
        self.inputs.remove(&input.name);
    }

    /// Each input's newest event time and, when it is idle at `now`, how long it has been quiet (what a
    /// scaled-out instance tells the instances evaluating its windowed hunts' rows).
    pub fn inputs(&self, now: Instant) -> Vec<InputProgress> {
        let mut inputs: Vec<InputProgress> = self
            .inputs
            .iter()
            .map(|(name, p)| {
                let quiet = now.saturating_duration_since(p.last_seen);
                InputProgress {
                    input: name.clone(),
                    newest: p.newest,
                    quiet: self.idle(name, p.last_seen, now).then_some(quiet),
                }
            })
            .collect();
        inputs.sort_by(|a, b| a.input.cmp(&b.input));
        inputs
    }

    /// The watermark at `now`.
    pub fn watermark(&mut self, now: Instant) -> Watermark {
        let mut any_active = false;
        let mut min: Option<i64> = None;
        let active = self
            .inputs
            .iter()
            .filter(|(name, p)| !self.idle(name, p.last_seen, now))
            .map(|(_, p)| p);
        for p in active {
            any_active = true;
            if let Some(t) = p.newest {
                min = Some(min.map_or(t, |m| m.min(t)));
            } else {
                // An active input with no event time yet holds everything back.
                return self.current.map_or(Watermark::Unknown, Watermark::At);
            }
        }
        if !any_active {
            // Event time goes on at the wall clock's pace from the newest event time seen, since the
            // last record (or since an input was last held back: its wait was no quiet).
            let held = self.holding.as_ref().and_then(|h| {
                self.inputs
                    .keys()
                    .filter_map(|name| h.last_held(name))
                    .max()
            });
            let since = self.last_record.max(held);
            let paced = self.newest_any.map(|n| {
                let quiet = since.map_or(Duration::ZERO, |l| now.saturating_duration_since(l));
                n.saturating_add(nanos(quiet))
            });
            return match paced.max(self.current) {
                Some(t) => {
                    self.current = Some(self.current.map_or(t, |c| c.max(t)));
                    Watermark::AllIdle(self.current.expect("just set"))
                }
                None => Watermark::Unknown,
            };
        }
        if let Some(m) = min {
            self.current = Some(self.current.map_or(m, |c| c.max(m)));
        }
        self.current.map_or(Watermark::Unknown, Watermark::At)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::InputKind;

    fn input(name: &str) -> Input {
        Input {
            name: name.into(),
            kind: InputKind::Stdin,
        }
    }

    #[test]
    fn watermark_is_the_minimum_over_active_inputs_and_never_goes_back() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::from_secs(10));
        w.observe(&input("a"), Some(100), t0);
        w.observe(&input("b"), Some(50), t0);
        assert_eq!(w.watermark(t0), Watermark::At(50));
        w.observe(&input("b"), Some(200), t0);
        assert_eq!(w.watermark(t0), Watermark::At(100));
        w.observe(&input("a"), Some(90), t0);
        assert_eq!(w.watermark(t0), Watermark::At(100));
    }

    #[test]
    fn started_input_holds_back_until_its_first_event_and_stopped_input_releases() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::from_secs(10));
        w.observe(&input("a"), Some(100), t0);
        assert_eq!(w.watermark(t0), Watermark::At(100));
        w.start(&input("b"), t0);
        w.observe(&input("a"), Some(200), t0);
        assert_eq!(
            w.watermark(t0),
            Watermark::At(100),
            "b has not sent anything yet"
        );
        w.observe(&input("b"), Some(150), t0);
        assert_eq!(w.watermark(t0), Watermark::At(150));
        w.stop(&input("b"));
        assert_eq!(w.watermark(t0), Watermark::At(200));
    }

    #[test]
    fn quiet_input_stops_holding_the_watermark_back() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::from_secs(10));
        w.observe(&input("slow"), Some(10), t0);
        w.observe(&input("busy"), Some(500), t0);
        assert_eq!(w.watermark(t0), Watermark::At(10));
        let later = t0 + Duration::from_secs(11);
        w.observe(&input("busy"), Some(600), later);
        assert_eq!(w.watermark(later), Watermark::At(600));
        let quiet = later + Duration::from_secs(11);
        assert_eq!(
            w.watermark(quiet),
            Watermark::AllIdle(600 + 11_000_000_000),
            "every input quiet: event time goes on from the newest event at the wall clock's pace, \
             since the last record"
        );
        assert_eq!(
            w.watermark(quiet + Duration::from_secs(5)),
            Watermark::AllIdle(600 + 16_000_000_000)
        );
        w.stop(&input("slow"));
        w.stop(&input("busy"));
        assert_eq!(
            w.watermark(quiet + Duration::from_secs(7)),
            Watermark::AllIdle(600 + 18_000_000_000),
            "with no input left, from the last record of any"
        );
        w.observe(&input("busy"), Some(700), quiet + Duration::from_secs(8));
        assert_eq!(
            w.watermark(quiet + Duration::from_secs(8)),
            Watermark::At(600 + 18_000_000_000),
            "never back"
        );
    }

    /// When each input was last held back, as the source's alignment tells it (set by the test).
    struct Holds(std::sync::Mutex<HashMap<&'static str, Instant>>);

    impl Holds {
        fn held(&self, input: &'static str, at: Instant) {
            self.0.lock().unwrap().insert(input, at);
        }
    }

    impl EventTimes for Holds {
        fn observed(&self, _input: &Input, _newest: i64) {}
        fn last_held(&self, input: &str) -> Option<Instant> {
            self.0.lock().unwrap().get(input).copied()
        }
    }

    #[test]
    fn an_input_the_source_holds_back_is_not_idle_until_an_idle_timeout_after_it_was_let_go() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = WatermarkTracker::new(s(10));
        let holds = Arc::new(Holds(std::sync::Mutex::new(HashMap::new())));
        w.held_back_by(Some(holds.clone()));
        w.observe(&input("oldest"), Some(100), t0);
        w.observe(&input("ahead"), Some(200), t0);
        w.observe(&input("quiet"), Some(50), t0);
        // Held back from t0 on; the oldest jumps past it 11 s later.
        holds.held("ahead", t0 + s(11));
        w.observe(&input("oldest"), Some(1_000), t0 + s(11));
        assert_eq!(
            w.watermark(t0 + s(11)),
            Watermark::At(200),
            "held at the held-back input's newest time; the quiet one is idle"
        );
        let progress = w.inputs(t0 + s(11));
        assert_eq!(progress[0].input, "ahead");
        assert_eq!(progress[0].quiet, None, "held back, so not reported idle");
        assert!(progress[2].quiet.is_some());
        // Let go at 12 s, between two looks: its wait was no quiet of its own, so it holds the
        // watermark until an idle timeout after that (its first rows are on their way), even with
        // every other input quiet; then all are idle, paced from when it was let go.
        holds.held("ahead", t0 + s(12));
        assert_eq!(w.watermark(t0 + s(21)), Watermark::At(200));
        assert_eq!(w.inputs(t0 + s(21))[0].quiet, None);
        assert_eq!(
            w.watermark(t0 + s(22)),
            Watermark::AllIdle(1_000 + 10_000_000_000),
            "paced from the newest event since it was let go"
        );
    }
}
