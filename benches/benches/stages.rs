//! The stages around the hunts: window buffering and close, and alert encoding.
//!
//! - `window/buffer_and_close`: a hopping 5m-every-1m window state (password_guessing's) takes 64 batches of
//!   4,096 generated events (131 s of event time, each batch split by pane as the pipeline's step does),
//!   then the watermark passes every window and they close. All rows are stored — the worst case of a
//!   hunt without a row filter; with one, the pipeline stores only the passing rows.
//! - `alert/encode`: 256 result rows (8 columns of real event fields) → OCSF Detection Findings with
//!   deterministic ids, as `build_alerts` does for every hunt result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{AsArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::arrow::record_batch::RecordBatch;
use ghosthunt::alert::{AlertTime, build_alerts};
use ghosthunt::decode::EventSchema;
use ghosthunt::window::WindowState;
use ghosthunt_benches::{BATCH, generated_batch};

/// Splits a batch by pane, as the pipeline's step does before `insert`.
fn by_pane(state: &WindowState, batch: &RecordBatch, time_index: usize) -> Vec<(i64, RecordBatch)> {
    let times = batch
        .column(time_index)
        .as_primitive::<TimestampNanosecondType>();
    let mut panes: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (row, t) in times.values().iter().enumerate() {
        panes.entry(state.pane_of(*t)).or_default().push(row as u32);
    }
    panes
        .into_iter()
        .map(|(pane, rows)| {
            let taken = take_record_batch(batch, &UInt32Array::from(rows)).expect("rows exist");
            (pane, taken)
        })
        .collect()
}

fn window(c: &mut Criterion) {
    let schema = Arc::new(EventSchema::windows());
    let all = generated_batch(&schema, 64 * BATCH);
    // The columns password_guessing keeps.
    let used: Vec<usize> = [
        "event_time",
        "host",
        "event_id",
        "ip_address",
        "target_user_name",
    ]
    .iter()
    .map(|n| schema.arrow().index_of(n).expect("a column"))
    .collect();
    let projected = all.project(&used).expect("columns exist");
    let batches: Vec<RecordBatch> = (0..64).map(|i| projected.slice(i * BATCH, BATCH)).collect();
    let new_state = || {
        WindowState::new(
            Duration::from_secs(300),
            Duration::from_secs(60),
            Duration::from_secs(5),
            10_000_000,
        )
    };
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(projected.num_rows() as u64));
    group.bench_function("buffer_and_close", |b| {
        b.iter_batched(
            new_state,
            |mut state| {
                let received = Instant::now();
                for (seq, batch) in batches.iter().enumerate() {
                    for (pane, rows) in by_pane(&state, batch, 0) {
                        state.insert(pane, rows, seq as u64, received);
                    }
                }
                let closed = state.flush();
                closed.iter().map(|w| w.rows).sum::<usize>()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn alerts(c: &mut Criterion) {
    let schema = Arc::new(EventSchema::windows());
    let batch = generated_batch(&schema, 256);
    let columns: Vec<usize> = [
        "event_time",
        "host",
        "event_id",
        "user",
        "image",
        "command_line",
        "parent_image",
        "process_id",
    ]
    .iter()
    .map(|n| schema.arrow().index_of(n).expect("a column"))
    .collect();
    let rows = batch.project(&columns).expect("columns exist");
    let hunt = Arc::new(
        ghosthunt::query::load::builtin()
            .hunts
            .get("encoded_powershell")
            .expect("a bundled hunt")
            .clone(),
    );
    let time = AlertTime {
        window: None,
        rows: (0, 0),
        received: Instant::now(),
    };
    let mut group = c.benchmark_group("alert");
    group.throughput(Throughput::Elements(rows.num_rows() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| build_alerts(&hunt, std::slice::from_ref(&rows), time))
    });
    group.finish();
}

criterion_group!(benches, window, alerts);
criterion_main!(benches);
