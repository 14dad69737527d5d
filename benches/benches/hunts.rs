//! Hunts on one decoded batch: one hunt, and 1, 10 and 100 copies of it (the cost per added hunt); and
//! every bundled hunt on a batch of the built-in schema vs the same events decoded with the schema the
//! whole SigmaHQ Windows rule set extends (the SQL hunts must not get slower as Sigma adds columns).
//!
//! The batch is 4,096 events of the seeded generator (the embedded default's event mix, attacks included)
//! decoded with the built-in schema. Evaluating an unwindowed hunt is what the pipeline's step does
//! (`PlannedHunt::unwindowed_input`, then `run`): the hunt's row filter over the batch (DataFusion's physical
//! expression), the passing rows of the columns it reads as its table, the planned plan re-run on them. Copies have distinct ids and are evaluated one after the
//! other on one thread, so the per-hunt slope is CPU time, not concurrency.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::record_batch::RecordBatch;
use ghosthunt::decode::EventSchema;
use ghosthunt::query::{self, PlannedHunt};
use ghosthunt_benches::{BATCH, generated_batch};

async fn copies(id: &str, n: usize, schema: &EventSchema) -> Vec<PlannedHunt> {
    let loaded = query::load::builtin();
    let original = loaded.hunts.get(id).expect("a bundled hunt").clone();
    let mut planned = Vec::new();
    for i in 0..n {
        let mut hunt = original.clone();
        hunt.id = format!("{id}_{i}");
        planned.push(
            query::plan::plan(hunt, schema)
                .await
                .expect("the hunt plans"),
        );
    }
    planned
}

/// The pipeline's unwindowed step without the alert encoding: filter, table, plan (event time is column 0).
async fn evaluate(hunt: &PlannedHunt, batch: &RecordBatch) -> usize {
    let Some(selected) = hunt
        .unwindowed_input(batch, 0)
        .expect("the filter evaluates")
    else {
        return 0;
    };
    let results = hunt.run(vec![selected.table]).await.expect("the hunt runs");
    results.iter().map(RecordBatch::num_rows).sum()
}

/// Every hunt's step on the batch, one after the other; the result rows in all.
async fn evaluate_all(planned: &[PlannedHunt], batch: &RecordBatch) -> usize {
    let mut rows = 0;
    for hunt in planned {
        rows += evaluate(hunt, batch).await;
    }
    rows
}

fn hunts(c: &mut Criterion) {
    let schema = Arc::new(EventSchema::windows());
    let batch = generated_batch(&schema, BATCH);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");

    let mut group = c.benchmark_group("hunt/one_batch");
    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    for id in [
        "lsass_memory_access",
        "encoded_powershell",
        "office_spawns_shell",
    ] {
        let hunt = rt.block_on(copies(id, 1, &schema)).remove(0);
        let rows = rt.block_on(evaluate(&hunt, &batch));
        eprintln!(
            "hunt/one_batch/{id}: {rows} result rows on {} events",
            batch.num_rows()
        );
        group.bench_function(id, |b| b.iter(|| rt.block_on(evaluate(&hunt, &batch))));
    }
    group.finish();

    let mut group = c.benchmark_group("hunts/scaling");
    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    group.sample_size(20);
    for n in [1, 10, 100] {
        let planned = rt.block_on(copies("lsass_memory_access", n, &schema));
        group.bench_function(format!("lsass_memory_access x{n}"), |b| {
            b.iter(|| rt.block_on(evaluate_all(&planned, &batch)))
        });
    }
    group.finish();

    // The same events under the built-in schema and under the one SigmaHQ's Windows rules extend
    // (~160 more columns); every bundled hunt's batch step on each.
    let mut settings = ghosthunt::settings::Settings::load(None, Vec::new()).expect("defaults");
    settings.sigma.directories = vec![ghosthunt_benches::corpus().join("sigma/rules/windows")];
    let wide = ghosthunt::app::sigma(&settings, Arc::clone(&schema))
        .expect("SigmaHQ loads")
        .schema;
    let mut group = c.benchmark_group("sql_hunts/schema_width");
    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    group.sample_size(30);
    for (name, schema) in [("builtin", Arc::clone(&schema)), ("sigmahq", wide)] {
        let batch = generated_batch(&schema, BATCH);
        let planned: Vec<PlannedHunt> = rt.block_on(async {
            let mut planned = Vec::new();
            for hunt in query::load::builtin().hunts.into_values() {
                planned.push(
                    query::plan::plan(hunt, &schema)
                        .await
                        .expect("the hunt plans"),
                );
            }
            planned
        });
        eprintln!(
            "sql_hunts/schema_width/{name}: {} hunts, {} columns",
            planned.len(),
            schema.columns.len()
        );
        group.bench_function(format!("{name} ({} columns)", schema.columns.len()), |b| {
            b.iter(|| rt.block_on(evaluate_all(&planned, &batch)))
        });
    }
    group.finish();
}

criterion_group!(benches, hunts);
criterion_main!(benches);
