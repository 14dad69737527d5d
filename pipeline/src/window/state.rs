//! One windowed hunt's state: the rows that passed its filter, bucketed by pane, until their windows close.
//!
//! Windows are aligned to the Unix epoch: a hopping window of `size` every `slide` starts at each multiple
//! of `slide` (tumbling: slide = size). Rows are stored once, in panes of gcd(size, slide); a window is the
//! panes inside it. A window is evaluated when the hunt's watermark reaches its end; a pane is dropped when no
//! open window contains it. Each pane remembers the oldest batch it holds rows of, so that the pipeline
//! acknowledges a batch only after every window containing its rows was evaluated.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

#[derive(Debug)]
struct Pane {
    batches: Vec<RecordBatch>,
    rows: usize,
    min_seq: u64,
    newest_received: Instant,
    /// Where its repartitioned rows came from (empty for rows decoded here).
    seen: HashSet<Origin>,
}

/// The source position of a repartitioned row (source input, offset): a row sent again after its sender
/// failed before committing its source offsets is recognised and kept once.
pub type Origin = (Arc<str>, u64);

/// The highest source position each source partition's rows reached among those one repartition
/// partition brought a hunt. Its reader sends a source partition's rows in position order, and a new
/// reader starts again from the last commit: a row at or below that position was brought before — a
/// replay, whose window (if closed) was judged with it, not a row arriving late.
#[derive(Debug, Default)]
pub struct Brought(HashMap<Arc<str>, u64>);

impl Brought {
    /// Whether a row from `origin` was brought before.
    pub fn before(&self, origin: &Origin) -> bool {
        self.0
            .get(&origin.0)
            .is_some_and(|&highest| origin.1 <= highest)
    }

    /// Notes the positions of rows brought. A part's rows come in runs of one source partition: one map
    /// update per run, not per row.
    pub fn note<'a>(&mut self, origins: impl IntoIterator<Item = &'a Origin>) {
        let mut run: Option<(&Arc<str>, u64)> = None;
        for (source, offset) in origins {
            match &mut run {
                Some((s, highest)) if Arc::ptr_eq(s, source) || *s == source => {
                    *highest = (*highest).max(*offset)
                }
                _ => {
                    if let Some((s, highest)) = run.replace((source, *offset)) {
                        self.raise(s, highest);
                    }
                }
            }
        }
        if let Some((s, highest)) = run {
            self.raise(s, highest);
        }
    }

    fn raise(&mut self, source: &Arc<str>, offset: u64) {
        match self.0.get_mut(source) {
            Some(highest) => *highest = (*highest).max(offset),
            None => {
                self.0.insert(Arc::clone(source), offset);
            }
        }
    }
}

/// A window ready to evaluate.
#[derive(Debug)]
pub struct ClosedWindow {
    pub start: i64,
    pub end: i64,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// When the newest row of the window was received (for end-to-end latency).
    pub newest_received: Instant,
    /// The oldest batch the window's rows came from.
    pub min_seq: u64,
}

/// What happened to the rows offered to [`WindowState::insert`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    pub stored: usize,
    /// Refused because the state was at its cap.
    pub dropped: usize,
    /// Not stored again: the pane already holds a row from the same source position.
    pub duplicates: usize,
}

/// Window state of one hunt. Times are nanoseconds since the Unix epoch.
#[derive(Debug)]
pub struct WindowState {
    size: i64,
    slide: i64,
    pane: i64,
    lateness: i64,
    /// The hunt's own watermark: the pipeline's minus the allowed lateness, never going back.
    watermark: i64,
    panes: BTreeMap<i64, Pane>,
    /// Starts of the open windows that hold at least one row.
    pending: BTreeSet<i64>,
    rows: usize,
    cap: usize,
    /// The watermark a previous owner of the rows' partition had evaluated through (see
    /// [`WindowState::starting_at`]); `i64::MIN` when there was none.
    floor: i64,
    /// Repartitioned rows: how far each source partition's rows came.
    brought: Brought,
}

/// A duration in nanoseconds, as event times are counted (saturating).
pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl WindowState {
    pub fn new(size: Duration, slide: Duration, lateness: Duration, cap: usize) -> WindowState {
        let (size, slide) = (nanos(size), nanos(slide));
        WindowState {
            size,
            slide,
            pane: gcd(size, slide),
            lateness: nanos(lateness),
            watermark: i64::MIN,
            panes: BTreeMap::new(),
            pending: BTreeSet::new(),
            rows: 0,
            cap,
            floor: i64::MIN,
            brought: Brought::default(),
        }
    }

    /// A state taking over rows whose windows up to `pipeline_watermark` (minus the lateness) another
    /// instance already evaluated: rows re-read for those windows are not counted again.
    pub fn starting_at(mut self, pipeline_watermark: i64) -> WindowState {
        self.floor = pipeline_watermark.saturating_sub(self.lateness);
        self.watermark = self.watermark.max(self.floor);
        self
    }

    /// Every window containing a row at `time` was evaluated before this state took over (see
    /// [`WindowState::starting_at`]): the row is a re-read, not a late arrival.
    pub fn evaluated_before(&self, time: i64) -> bool {
        time.div_euclid(self.slide) * self.slide + self.size <= self.floor
    }

    /// Changes the most rows it holds (for states sharing one limit).
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// A row with this event time arrives too late: the last window that would contain it has already
    /// been evaluated. (A hopping row whose earlier windows closed still counts in the open ones.)
    pub fn is_late(&self, time: i64) -> bool {
        time.div_euclid(self.slide) * self.slide + self.size <= self.watermark
    }

    /// How far each source partition's repartitioned rows came (see [`Brought`]).
    pub fn brought(&mut self) -> &mut Brought {
        &mut self.brought
    }

    /// The pane start of an event time.
    pub fn pane_of(&self, time: i64) -> i64 {
        time.div_euclid(self.pane) * self.pane
    }

    /// Stores `batch` (rows that all fall into the pane starting at `pane`; the caller groups them).
    pub fn insert(
        &mut self,
        pane: i64,
        batch: RecordBatch,
        seq: u64,
        received: Instant,
    ) -> Inserted {
        let offered = batch.num_rows();
        let room = self.cap.saturating_sub(self.rows);
        let batch = if offered > room {
            batch.slice(0, room)
        } else {
            batch
        };
        let stored = batch.num_rows();
        if stored > 0 {
            let entry = self.panes.entry(pane).or_insert_with(|| Pane {
                batches: Vec::new(),
                rows: 0,
                min_seq: seq,
                newest_received: received,
                seen: HashSet::new(),
            });
            entry.batches.push(batch);
            entry.rows += stored;
            entry.min_seq = entry.min_seq.min(seq);
            entry.newest_received = entry.newest_received.max(received);
            self.rows += stored;
            // Every still-open window containing the pane: starts at multiples of slide in
            // (pane - size, pane] whose end is beyond the watermark (closed ones are never evaluated twice).
            let mut start = pane.div_euclid(self.slide) * self.slide;
            while start > pane - self.size && start + self.size > self.watermark {
                self.pending.insert(start);
                start -= self.slide;
            }
        }
        Inserted {
            stored,
            dropped: offered - stored,
            duplicates: 0,
        }
    }

    /// [`WindowState::insert`] for repartitioned rows, `origins` giving each row's source position: rows
    /// whose position the pane already holds (or that repeat one earlier in the batch) are left out.
    pub fn insert_once(
        &mut self,
        pane: i64,
        batch: RecordBatch,
        origins: &[Origin],
        seq: u64,
        received: Instant,
    ) -> Result<Inserted, datafusion::arrow::error::ArrowError> {
        let empty = HashSet::new();
        let held = self.panes.get(&pane).map_or(&empty, |p| &p.seen);
        let mut fresh: HashSet<&Origin> = HashSet::with_capacity(origins.len());
        let keep: Vec<u32> = (0..origins.len())
            .filter(|&i| !held.contains(&origins[i]) && fresh.insert(&origins[i]))
            .map(|i| i as u32)
            .collect();
        let duplicates = origins.len() - keep.len();
        let batch = match duplicates {
            0 => batch,
            _ => take_rows(&batch, keep.clone())?,
        };
        let mut inserted = self.insert(pane, batch, seq, received);
        if let Some(p) = self.panes.get_mut(&pane) {
            p.seen.extend(
                keep[..inserted.stored]
                    .iter()
                    .map(|&i| origins[i as usize].clone()),
            );
        }
        inserted.duplicates = duplicates;
        Ok(inserted)
    }

    /// Advances the hunt's watermark to `pipeline_watermark` minus the lateness and returns the windows
    /// that closed, oldest first.
    pub fn advance(&mut self, pipeline_watermark: i64) -> Vec<ClosedWindow> {
        let wm = pipeline_watermark.saturating_sub(self.lateness);
        self.watermark = self.watermark.max(wm);
        self.close_while(|end, watermark| end <= watermark)
    }

    /// Closes every open window (end of input, or shutdown from a source that cannot replay). Rows arriving later for
    /// those windows are late.
    pub fn flush(&mut self) -> Vec<ClosedWindow> {
        let closed = self.close_while(|_, _| true);
        if let Some(last) = closed.last() {
            self.watermark = self.watermark.max(last.end);
        }
        closed
    }

    fn close_while(&mut self, should_close: impl Fn(i64, i64) -> bool) -> Vec<ClosedWindow> {
        let mut closed = Vec::new();
        while let Some(&start) = self.pending.first() {
            let end = start + self.size;
            if !should_close(end, self.watermark) {
                break;
            }
            self.pending.pop_first();
            let mut window = ClosedWindow {
                start,
                end,
                batches: Vec::new(),
                rows: 0,
                newest_received: Instant::now(),
                min_seq: u64::MAX,
            };
            let mut newest: Option<Instant> = None;
            for (_, pane) in self.panes.range(start..end) {
                window.min_seq = window.min_seq.min(pane.min_seq);
                window.batches.extend(pane.batches.iter().cloned());
                window.rows += pane.rows;
                newest = Some(newest.map_or(pane.newest_received, |n| n.max(pane.newest_received)));
            }
            if let Some(n) = newest {
                window.newest_received = n;
            }
            // Panes before the next open window are in no open window any more.
            let keep_from = self.pending.first().copied().unwrap_or(i64::MAX);
            while let Some(entry) = self.panes.first_entry() {
                if *entry.key() >= keep_from {
                    break;
                }
                self.rows -= entry.get().rows;
                entry.remove();
            }
            if window.rows > 0 {
                closed.push(window);
            }
        }
        closed
    }

    /// Oldest batch sequence still held, if any.
    pub fn min_seq(&self) -> Option<u64> {
        self.panes.values().map(|p| p.min_seq).min()
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The hunt's watermark (i64::MIN before the first advance).
    pub fn watermark(&self) -> i64 {
        self.watermark
    }
}

/// Rows `rows` of `batch`, in that order. A batch without columns keeps its row count: a hunt that reads
/// no event column (`SELECT window_start, count(*) … GROUP BY window_start`) stores its rows as a count.
pub fn take_rows(batch: &RecordBatch, rows: Vec<u32>) -> Result<RecordBatch, ArrowError> {
    if batch.num_columns() == 0 {
        return RecordBatch::try_new_with_options(
            batch.schema(),
            Vec::new(),
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        );
    }
    datafusion::arrow::compute::take_record_batch(batch, &UInt32Array::from(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    const S: i64 = 1_000_000_000;

    fn rows(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    fn put(state: &mut WindowState, time: i64, seq: u64) {
        let pane = state.pane_of(time);
        state.insert(pane, rows(&[time]), seq, Instant::now());
    }

    fn bounds(closed: &[ClosedWindow]) -> Vec<(i64, i64, usize)> {
        closed
            .iter()
            .map(|w| (w.start / S, w.end / S, w.rows))
            .collect()
    }

    #[test]
    fn tumbling_window_closes_when_watermark_reaches_its_end() {
        let mut w = WindowState::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::ZERO,
            100,
        );
        put(&mut w, 10 * S, 0);
        put(&mut w, 59 * S, 0);
        put(&mut w, 60 * S, 1);
        assert!(w.advance(59 * S).is_empty());
        assert_eq!(bounds(&w.advance(60 * S)), vec![(0, 60, 2)]);
        assert_eq!(w.rows(), 1);
        assert_eq!(w.min_seq(), Some(1));
        assert_eq!(bounds(&w.flush()), vec![(60, 120, 1)]);
        assert_eq!(w.min_seq(), None);
    }

    #[test]
    fn hopping_row_lands_in_every_window_that_covers_it() {
        let mut w = WindowState::new(
            Duration::from_secs(300),
            Duration::from_secs(60),
            Duration::ZERO,
            100,
        );
        put(&mut w, 150 * S, 0); // 2m30s: windows starting -2m, -1m, 0, 1m, 2m
        assert_eq!(
            bounds(&w.flush()),
            vec![
                (-120, 180, 1),
                (-60, 240, 1),
                (0, 300, 1),
                (60, 360, 1),
                (120, 420, 1)
            ]
        );
    }

    #[test]
    fn lateness_delays_closing_and_late_rows_are_recognised() {
        let mut w = WindowState::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_secs(5),
            100,
        );
        put(&mut w, 30 * S, 0);
        assert!(w.advance(62 * S).is_empty(), "within allowed lateness");
        assert!(!w.is_late(58 * S));
        assert_eq!(bounds(&w.advance(65 * S)), vec![(0, 60, 1)]);
        assert!(w.is_late(59 * S));
        assert!(!w.is_late(60 * S));
    }

    #[test]
    fn hopping_row_after_some_windows_closed_counts_only_in_the_open_ones() {
        let mut w = WindowState::new(
            Duration::from_secs(120),
            Duration::from_secs(60),
            Duration::ZERO,
            100,
        );
        put(&mut w, 10 * S, 0);
        assert_eq!(bounds(&w.advance(60 * S)), vec![(-60, 60, 1)]);
        assert!(!w.is_late(30 * S), "window [0, 120) is still open");
        put(&mut w, 30 * S, 1);
        assert_eq!(bounds(&w.flush()), vec![(0, 120, 2)]);
    }

    #[test]
    fn cap_drops_rows_and_says_how_many() {
        let mut w = WindowState::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::ZERO,
            3,
        );
        let got = w.insert(0, rows(&[1, 2, 3, 4, 5]), 0, Instant::now());
        assert_eq!(
            got,
            Inserted {
                stored: 3,
                dropped: 2,
                duplicates: 0
            }
        );
        assert_eq!(w.rows(), 3);
    }

    #[test]
    fn a_state_taking_over_does_not_evaluate_again_what_its_predecessor_evaluated() {
        // The previous owner committed through 2m05s with 5 s lateness: windows ending by 2m are done.
        let mut w = WindowState::new(
            Duration::from_secs(120),
            Duration::from_secs(60),
            Duration::from_secs(5),
            100,
        )
        .starting_at(125 * S);
        assert!(
            w.evaluated_before(50 * S),
            "in [-60, 60) and [0, 120): both evaluated"
        );
        assert!(!w.evaluated_before(70 * S), "also in [60, 180), still open");
        put(&mut w, 70 * S, 0);
        assert_eq!(
            bounds(&w.advance(185 * S)),
            vec![(60, 180, 1)],
            "only the open window, not [0, 120) from a part of its rows"
        );
    }

    #[test]
    fn a_position_at_or_below_the_highest_brought_of_its_source_was_brought_before() {
        let at = |s: &str, o: u64| -> Origin { (Arc::from(s), o) };
        let mut b = Brought::default();
        assert!(!b.before(&at("events[1]", 0)));
        b.note(&[at("events[1]", 7), at("events[1]", 9), at("events[2]", 3)]);
        assert!(b.before(&at("events[1]", 9)) && b.before(&at("events[1]", 2)));
        assert!(!b.before(&at("events[1]", 10)));
        assert!(!b.before(&at("events[2]", 4)) && !b.before(&at("events[3]", 0)));
        b.note(&[at("events[1]", 4)]);
        assert!(b.before(&at("events[1]", 9)), "a replay does not lower it");
    }

    #[test]
    fn a_repartitioned_row_sent_twice_is_kept_once() {
        let mut w = WindowState::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::ZERO,
            100,
        );
        let at = |o: u64| (Arc::<str>::from("events[1]"), o);
        let got = w
            .insert_once(
                0,
                rows(&[1, 2, 2]),
                &[at(7), at(8), at(8)],
                0,
                Instant::now(),
            )
            .unwrap();
        assert_eq!((got.stored, got.duplicates), (2, 1));
        let again = w
            .insert_once(0, rows(&[2, 3]), &[at(8), at(9)], 1, Instant::now())
            .unwrap();
        assert_eq!((again.stored, again.duplicates), (1, 1));
        let other = w
            .insert_once(
                0,
                rows(&[2]),
                &[(Arc::from("events[2]"), 8)],
                1,
                Instant::now(),
            )
            .unwrap();
        assert_eq!(
            other.stored, 1,
            "the same offset of another partition is another row"
        );
        assert_eq!(bounds(&w.flush()), vec![(0, 60, 4)]);
    }
}
