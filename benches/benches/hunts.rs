//! Hunts on one decoded batch: one hunt, and 1, 10 and 100 copies of it (the cost per added hunt); and
//! every bundled hunt on a batch of the built-in schema vs the same events decoded with the schema the
//! whole SigmaHQ Windows rule set extends (the SQL hunts must not get slower as Sigma adds columns); and
//! the playbook's KQL hunt (`ps_remoting_kql.kql`, over the DeviceProcessEvents view) against the same
//! hunt written by hand in SQL over `events` (a KQL hunt must cost what its SQL costs).
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
        .unwindowed_input(batch, 0, None)
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

/// The same logic as `sql/hunts/ps_remoting_kql.kql` (whose header it takes), written directly over `events` (the view's column
/// expressions inlined, `has` as the same `kql_has` function).
const PS_REMOTING_SQL: &str = r#"SELECT event_time AS "Timestamp", host AS "DeviceName",
       CASE WHEN event_id = 1 THEN reverse(split_part(reverse(user), chr(92), 1))
            ELSE coalesce(nullif(nullif(target_user_name, '-'), ''), subject_user_name) END AS "AccountName",
       reverse(split_part(reverse(image), chr(92), 1)) AS "FileName",
       command_line AS "ProcessCommandLine",
       reverse(split_part(reverse(parent_image), chr(92), 1)) AS "InitiatingProcessFileName",
       CASE WHEN event_id = 4688 THEN subject_user_name END AS "InitiatingProcessAccountName",
       string_to_array(coalesce(command_line, ''), ' ') AS "CommandLineArgs",
       event_time
FROM events
WHERE ((lower(channel) = 'microsoft-windows-sysmon/operational' AND event_id = 1)
       OR (lower(channel) = 'security' AND event_id = 4688))
  AND lower(reverse(split_part(reverse(image), chr(92), 1))) = 'powershell.exe'
  AND lower(reverse(split_part(reverse(parent_image), chr(92), 1))) IN ('explorer.exe', 'svchost.exe')
  AND (kql_has(command_line, 'Invoke-Command') OR kql_has(command_line, 'Enter-PSSession')
       OR kql_has(command_line, '-ComputerName'))
  AND array_length(string_to_array(coalesce(command_line, ''), ' ')) > 1
ORDER BY event_time DESC
"#;

fn kql_vs_sql(c: &mut Criterion) {
    let schema = Arc::new(EventSchema::windows());
    // Enough generated events for the remoting scenario to occur several times.
    let batch = generated_batch(&schema, 8 * BATCH);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let kql = query::load::builtin()
        .hunts
        .get("ps_remoting_kql")
        .expect("the bundled KQL hunt")
        .clone();
    let dir = std::env::temp_dir().join(format!("ghosthunt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let path = dir.join("ps_remoting_hand_sql.sql");
    let kql_file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/hunts/ps_remoting_kql.kql"),
    )
    .expect("the bundled KQL hunt reads");
    // The KQL hunt's `//` header as a SQL hunt's `/* … */` one.
    let header: Vec<&str> = kql_file
        .lines()
        .map_while(|l| l.strip_prefix("//"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    // A SQL hunt states its window; the KQL one has none (no `bin`, no aggregation).
    let text = format!(
        "/*\n{}\nwindow: none\n*/\n{PS_REMOTING_SQL}",
        header
            .join("\n")
            .replace("id: ps_remoting_kql", "id: ps_remoting_hand_sql")
    );
    std::fs::write(&path, text).expect("the hunt file writes");
    let sql = query::load::read_hunt(&path).expect("the hand-written hunt loads");
    let _ = std::fs::remove_dir_all(&dir);
    let planned: Vec<(&str, PlannedHunt)> = rt.block_on(async {
        vec![
            ("kql", query::plan::plan(kql, &schema).await.expect("plans")),
            (
                "hand-written sql",
                query::plan::plan(sql, &schema).await.expect("plans"),
            ),
        ]
    });
    let rows: Vec<usize> = planned
        .iter()
        .map(|(_, h)| rt.block_on(evaluate(h, &batch)))
        .collect();
    eprintln!(
        "kql_vs_sql/ps_remoting: {} events, result rows {rows:?}",
        batch.num_rows()
    );
    assert!(rows[0] > 0 && rows[0] == rows[1], "{rows:?}");
    let mut group = c.benchmark_group("kql_vs_sql/ps_remoting");
    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    group.sample_size(30);
    for (name, hunt) in &planned {
        group.bench_function(*name, |b| b.iter(|| rt.block_on(evaluate(hunt, &batch))));
    }
    group.finish();
}

criterion_group!(benches, hunts, kql_vs_sql);
criterion_main!(benches);
