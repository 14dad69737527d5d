//! The SigmaHQ Windows rule set (`rules/windows`, `rules-emerging-threats`, `rules-threat-hunting/windows`
//! of the corpus) on real events: decoding with the schema the set extends, evaluating every rule over
//! the decoded batch, and both — per shape of event (flat OTRF recordings, nested EVTX-JSON). Decoding is
//! where keyword rules cost (the decoder collects every value of the record for them); evaluation is
//! where the rules' automata and per-row tests run.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::record_batch::RecordBatch;
use ghosthunt::decode::{Decoder, EventSchema};
use ghosthunt::sigma::engine::SigmaEngine;
use ghosthunt::telemetry::Metrics;
use ghosthunt_benches::{BATCH, corpus, flat_lines, nested_lines, records};

fn decode_all(decoder: &Decoder, lines: &[String]) -> Vec<RecordBatch> {
    lines
        .chunks(BATCH)
        .map(|chunk| decoder.decode(0, records(chunk)).batch)
        .collect()
}

fn matches(engine: &SigmaEngine, batches: &[RecordBatch]) -> usize {
    batches
        .iter()
        .map(|b| {
            engine
                .matching(b)
                .iter()
                .map(|(_, rows)| rows.len())
                .sum::<usize>()
        })
        .sum()
}

fn sigma(c: &mut Criterion) {
    let mut settings = ghosthunt::settings::Settings::load(None, Vec::new()).expect("defaults");
    let rules = corpus().join("sigma");
    settings.sigma.directories = vec![
        rules.join("rules/windows"),
        rules.join("rules-emerging-threats"),
        rules.join("rules-threat-hunting/windows"),
    ];
    let setup =
        ghosthunt::app::sigma(&settings, Arc::new(EventSchema::windows())).expect("SigmaHQ loads");
    let engine = setup.engine.expect("rules compiled");
    let decoder = Decoder::new(Arc::clone(&setup.schema), 1 << 20, &Metrics::new());
    for (shape, lines) in [
        ("flat", flat_lines(16 * BATCH)),
        ("nested", nested_lines(4 * BATCH)),
    ] {
        let batches = decode_all(&decoder, &lines);
        eprintln!(
            "sigma/{shape}: {} rules, {} columns, {} events, {} matches",
            engine.rule_count(),
            setup.schema.columns.len(),
            lines.len(),
            matches(&engine, &batches)
        );
        let mut group = c.benchmark_group(format!("sigma/{shape}"));
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.sample_size(10);
        group.bench_function("decode", |b| b.iter(|| decode_all(&decoder, &lines)));
        group.bench_function("evaluate", |b| b.iter(|| matches(&engine, &batches)));
        group.bench_function("decode+evaluate", |b| {
            b.iter(|| matches(&engine, &decode_all(&decoder, &lines)))
        });
        group.finish();
    }
}

criterion_group!(benches, sigma);
criterion_main!(benches);
