//! Inputs of the criterion benches: real events from the shared corpus (both JSON shapes), the same bytes
//! as records for ghosthunt and as one buffer for arrow-json, and an arrow-json schema of the same fields.
//!
//! The corpus is found through `GHOSTHUNT_CORPUS`, else `../shared/corpus` beside the checkout; a missing
//! corpus stops the bench with a message saying so.

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
use datafusion::arrow::record_batch::RecordBatch;
use ghosthunt::decode::{Decoder, EventSchema};
use ghosthunt::generator::{EventGenerator, GeneratorConfig};
use ghosthunt::source::RawRecord;
use ghosthunt::telemetry::Metrics;

/// Records per decoded batch: the pipeline's default `decode.batch_size`.
pub const BATCH: usize = 4096;

/// The shared corpus folder, or a panic that says how to provide it.
pub fn corpus() -> PathBuf {
    let path = std::env::var_os("GHOSTHUNT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    assert!(
        path.join("events").is_dir(),
        "the benches read real events from the corpus, not found at {}: set GHOSTHUNT_CORPUS to the \
         corpus folder (the one holding events/)",
        path.display()
    );
    path
}

/// Nested EVTX-JSON events (`Event.System.*`, `Event.EventData.*`), ~1.1 KB each: the DeepBlueCLI SMB
/// password-guessing recording (Security 4625), at most `limit` lines.
pub fn nested_lines(limit: usize) -> Vec<String> {
    let path = corpus().join("events/deepbluecli/smb-password-guessing-security.jsonl.gz");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| l.expect("the corpus file reads"))
        .filter(|l| !l.trim().is_empty())
        .take(limit)
        .collect()
}

/// Flat events (`EventID`, `Channel`, Sysmon and Security fields at the top level), ~1.5–2 KB each: OTRF
/// Security-Datasets recordings (Sysmon, Security, PowerShell …), at most `limit` lines.
pub fn flat_lines(limit: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for zip in [
        "credential_access/host/psh_lsass_memory_dump_comsvcs.zip",
        "collection/host/msf_record_mic.zip",
    ] {
        let path = corpus().join("events/otrf-atomic/windows").join(zip);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut archive = zip::ZipArchive::new(file).expect("a corpus zip opens");
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).expect("a zip entry reads");
            let name = entry.name().unwrap_or_default().to_string();
            if !name.ends_with(".json") || name.contains("__MACOSX") {
                continue;
            }
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("a JSON-lines entry");
            lines.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string),
            );
        }
        if lines.len() >= limit {
            break;
        }
    }
    lines.truncate(limit);
    lines
}

/// The lines as the pipeline's records.
pub fn records(lines: &[String]) -> Vec<RawRecord> {
    RawRecord::from_lines("bench", lines.iter().map(String::as_str))
}

/// The lines as one newline-separated buffer (what arrow-json reads).
pub fn buffer(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The schema arrow-json infers from the lines: every field, nested objects as structs.
pub fn inferred_schema(lines: &[String]) -> Schema {
    let values = lines.iter().map(|l| {
        serde_json::from_str::<serde_json::Value>(l).map_err(|e| {
            datafusion::arrow::error::ArrowError::JsonError(format!("corpus line: {e}"))
        })
    });
    infer_json_schema_from_iterator(values)
        .expect("arrow-json infers a schema from the corpus lines")
}

/// The inferred schema cut down to the fields ghosthunt's schema maps (its paths and their parent
/// objects): the same fields, with arrow-json's own types (strings stay strings; objects are structs).
pub fn mapped_schema(inferred: &Schema, schema: &EventSchema) -> SchemaRef {
    let paths: Vec<Vec<String>> = schema
        .columns
        .iter()
        .flat_map(|c| c.paths.iter().cloned())
        .collect();
    Arc::new(Schema::new(project(inferred.fields(), &paths, 0)))
}

fn project(fields: &Fields, paths: &[Vec<String>], depth: usize) -> Vec<Field> {
    let mut kept = Vec::new();
    for field in fields {
        let below: Vec<Vec<String>> = paths
            .iter()
            .filter(|p| p.len() > depth && (p[depth] == *field.name() || p[depth] == "*"))
            .cloned()
            .collect();
        if below.is_empty() {
            continue;
        }
        match field.data_type() {
            DataType::Struct(children) => {
                let inner = project(children, &below, depth + 1);
                let ends_here = below.iter().any(|p| p.len() == depth + 1);
                if ends_here {
                    kept.push(field.as_ref().clone());
                } else if !inner.is_empty() {
                    kept.push(Field::new(
                        field.name(),
                        DataType::Struct(inner.into()),
                        true,
                    ));
                }
            }
            _ if below.iter().any(|p| p.len() == depth + 1) => kept.push(field.as_ref().clone()),
            _ => {}
        }
    }
    kept
}

/// Total bytes of the lines (without newlines): the throughput unit of the decode benches.
pub fn bytes(lines: &[String]) -> u64 {
    lines.iter().map(|l| l.len() as u64).sum()
}

/// Events of the seeded generator (the embedded default's mix: 50 hosts, 200 users), 2,000 per second of
/// event time from 2026-01-01, an attack scenario every second of event time.
pub fn generated_lines(events: usize) -> Vec<String> {
    let mut generator = EventGenerator::new(GeneratorConfig {
        hosts: 50,
        users: 200,
        seed: 42,
        attack_interval: std::time::Duration::from_secs(1),
        campaign_interval: std::time::Duration::ZERO,
    });
    let start: chrono::DateTime<chrono::Utc> =
        "2026-01-01T00:00:00Z".parse().expect("a valid time");
    (0..events)
        .map(|i| {
            let mut out = Vec::new();
            generator.next_event(
                start + chrono::Duration::microseconds(i as i64 * 500),
                &mut out,
            );
            String::from_utf8(out).expect("the generator writes UTF-8")
        })
        .collect()
}

/// Generated events decoded into one batch with `schema`.
pub fn generated_batch(schema: &Arc<EventSchema>, events: usize) -> RecordBatch {
    let decoder = Decoder::new(Arc::clone(schema), 1 << 20, &Metrics::new());
    let decoded = decoder.decode(0, records(&generated_lines(events)));
    assert!(
        decoded.dead_letters.is_empty(),
        "{:?}",
        decoded.dead_letters.first()
    );
    decoded.batch
}
