//! JSON → Arrow decode per event shape, ghosthunt's decoder against bare arrow-json on the same bytes.
//!
//! Each group decodes one batch of corpus events (up to 4,096, the pipeline's batch size); throughput is
//! the events' bytes. Contenders:
//! - `ghosthunt`: `Decoder::decode` with the built-in Windows schema (63 columns from 117 paths), records
//!   as the source hands them over (one `Vec<u8>` each); includes the per-record bookkeeping the pipeline
//!   needs (dead letters, positions, event time per input), timestamp parsing and int coercions.
//! - `arrow-json/mapped-fields`: arrow-json's `Decoder` with the fields ghosthunt maps (inferred types cut
//!   down to the schema's paths: for the nested shape a struct `Event{System{…},EventData{…}}`), on the
//!   same bytes in one buffer, numbers coerced into string columns as ghosthunt does. Timestamps stay
//!   strings; hex and "-" stay strings where arrow-json inferred strings — arrow-json does less per field.
//! - `arrow-json/all-fields`: the same with the whole inferred schema (every field of the events).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::record_batch::RecordBatch;
use ghosthunt::decode::{Decoder, EventSchema};
use ghosthunt::telemetry::Metrics;
use ghosthunt_benches::{BATCH, buffer, bytes, inferred_schema, mapped_schema, records};
use std::sync::Arc;

fn arrow_json(schema: &SchemaRef, bytes: &[u8], rows: usize) -> RecordBatch {
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(rows)
        // Numbers and booleans into string columns, as ghosthunt does (inference made mixed fields strings).
        .with_coerce_primitive(true)
        .build_decoder()
        .expect("arrow-json builds a decoder");
    let mut at = 0;
    while at < bytes.len() {
        let read = decoder
            .decode(&bytes[at..])
            .expect("arrow-json decodes the corpus");
        if read == 0 {
            break;
        }
        at += read;
    }
    decoder
        .flush()
        .expect("arrow-json flushes")
        .expect("a batch")
}

fn shape(c: &mut Criterion, name: &str, lines: Vec<String>) {
    let schema = Arc::new(EventSchema::windows());
    let decoder = Decoder::new(Arc::clone(&schema), 1 << 20, &Metrics::new());
    let input = records(&lines);
    let joined = buffer(&lines);
    let inferred = inferred_schema(&lines);
    let mapped = mapped_schema(&inferred, &schema);
    let all: SchemaRef = Arc::new(inferred);

    // Same rows out of every contender, or the comparison means nothing.
    let ours = decoder.decode(0, input.clone());
    assert!(
        ours.dead_letters.is_empty(),
        "{:?}",
        ours.dead_letters.first()
    );
    assert_eq!(ours.batch.num_rows(), lines.len());
    assert_eq!(
        arrow_json(&mapped, &joined, lines.len()).num_rows(),
        lines.len()
    );
    assert_eq!(
        arrow_json(&all, &joined, lines.len()).num_rows(),
        lines.len()
    );
    eprintln!(
        "decode/{name}: {} events, {} bytes (mean {} B); ghosthunt {} columns, arrow-json mapped {} \
         top-level fields, all {}",
        lines.len(),
        bytes(&lines),
        bytes(&lines) / lines.len() as u64,
        ours.batch.num_columns(),
        mapped.fields().len(),
        all.fields().len()
    );

    let mut group = c.benchmark_group(format!("decode/{name}"));
    group.throughput(Throughput::Bytes(bytes(&lines)));
    group.bench_function("ghosthunt", |b| {
        b.iter_batched(
            || input.clone(),
            |records| decoder.decode(0, records),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("arrow-json/mapped-fields", |b| {
        b.iter(|| arrow_json(&mapped, &joined, lines.len()))
    });
    group.bench_function("arrow-json/all-fields", |b| {
        b.iter(|| arrow_json(&all, &joined, lines.len()))
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    shape(c, "nested", ghosthunt_benches::nested_lines(BATCH));
    shape(c, "flat", ghosthunt_benches::flat_lines(BATCH));
}

criterion_group!(benches, decode);
criterion_main!(benches);
