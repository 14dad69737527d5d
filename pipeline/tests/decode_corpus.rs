//! Real telemetry from the shared corpus decodes into the same columns whatever its JSON shape: the nested
//! EVTX-JSON shape (DeepBlueCLI samples) and the flat shape (OTRF Security-Datasets).

mod common;

use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::util::pretty::pretty_format_batches;
use ghosthunt::decode::{Decoder, EventSchema};
use ghosthunt::source::RawRecord;
use ghosthunt::telemetry::Metrics;
use serde_json::{Map, Value};

fn records(lines: &[String]) -> Vec<RawRecord> {
    RawRecord::from_lines("corpus", lines.iter().map(String::as_str))
}

/// A DeepBlueCLI sample, as the corpus holds it (rendered from EVTX to JSON lines).
fn deepbluecli(name: &str) -> String {
    format!("events/deepbluecli/{name}")
}

/// An OTRF atomic recording (a zip as published).
fn otrf(relative: &str) -> String {
    format!("events/otrf-atomic/windows/{relative}")
}

fn gz_lines(corpus: &Path, name: &str) -> Vec<String> {
    let path = corpus.join(deepbluecli(name));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(Result::unwrap)
        .collect()
}

fn zip_lines(corpus: &Path, relative: &str, limit: usize) -> Vec<String> {
    let path = corpus.join(otrf(relative));
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut lines = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        if !name.ends_with(".json") || name.contains("__MACOSX") {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .take(limit)
                .map(str::to_string),
        );
    }
    lines
}

/// What NXLog-style flattening does to an EVTX event: System fields renamed to the flat names, EventData
/// and UserData fields lifted to the top level.
fn flatten(nested: &Value) -> Value {
    let system = &nested["Event"]["System"];
    let mut flat = Map::new();
    let event_id = match &system["EventID"] {
        Value::Object(o) => o["#text"].clone(),
        v => v.clone(),
    };
    flat.insert("EventID".into(), event_id);
    flat.insert("Channel".into(), system["Channel"].clone());
    flat.insert("Hostname".into(), system["Computer"].clone());
    flat.insert(
        "SourceName".into(),
        system["Provider"]["#attributes"]["Name"].clone(),
    );
    flat.insert("RecordNumber".into(), system["EventRecordID"].clone());
    flat.insert(
        "@timestamp".into(),
        system["TimeCreated"]["#attributes"]["SystemTime"].clone(),
    );
    if let Some(data) = nested["Event"]["EventData"].as_object() {
        for (k, v) in data {
            flat.insert(k.clone(), v.clone());
        }
    }
    // UserData (e.g. 1102 LogFileCleared) holds one element whose fields are lifted the same way.
    if let Some(user_data) = nested["Event"]["UserData"].as_object() {
        for element in user_data.values().filter_map(Value::as_object) {
            for (k, v) in element {
                flat.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(flat)
}

#[test]
fn nested_and_flat_shapes_of_real_events_decode_to_the_same_columns() {
    let samples = [
        "smb-password-guessing-security.jsonl.gz",
        "metasploit-psexec-native-target-system.jsonl.gz",
        "mimikatz-privesc-hashdump.jsonl.gz",
    ];
    let Some(corpus) = common::needs::corpus(samples.map(deepbluecli)) else {
        return;
    };
    let schema = Arc::new(EventSchema::windows());
    let decoder = Decoder::new(Arc::clone(&schema), 1 << 20, &Metrics::new());
    let mut nested = Vec::new();
    for name in samples {
        nested.extend(gz_lines(&corpus, name).into_iter().take(40));
    }
    let flat: Vec<String> = nested
        .iter()
        .map(|l| flatten(&serde_json::from_str(l).unwrap()).to_string())
        .collect();
    let a = decoder.decode(0, records(&nested));
    let b = decoder.decode(1, records(&flat));
    assert!(a.dead_letters.is_empty(), "{:?}", a.dead_letters.first());
    assert!(b.dead_letters.is_empty(), "{:?}", b.dead_letters.first());
    assert_eq!(a.batch.num_rows(), nested.len());
    let differing: Vec<String> = schema
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| a.batch.column(*i).to_data() != b.batch.column(*i).to_data())
        .map(|(i, c)| {
            let show = |batch: &datafusion::arrow::record_batch::RecordBatch| {
                pretty_format_batches(&[batch.project(&[i]).unwrap().slice(0, 3)])
                    .unwrap()
                    .to_string()
            };
            format!("{}:\n{}\n{}", c.name, show(&a.batch), show(&b.batch))
        })
        .collect();
    assert!(
        differing.is_empty(),
        "columns differ between the shapes:\n{}",
        differing.join("\n")
    );
    // The columns the hunts rely on are filled from the nested shape.
    for column in [
        "event_time",
        "host",
        "channel",
        "event_id",
        "provider",
        "record_id",
    ] {
        assert_eq!(
            a.batch.column_by_name(column).unwrap().null_count(),
            0,
            "{column}"
        );
    }
    let service = a.batch.column_by_name("service_name").unwrap();
    assert!(
        service.len() > service.null_count(),
        "7045 ServiceName decodes from System events"
    );
    let user = a.batch.column_by_name("target_user_name").unwrap();
    assert!(
        user.len() > user.null_count(),
        "4625 TargetUserName decodes"
    );
}

#[test]
fn every_event_of_real_recordings_decodes() {
    let samples = [
        "password-spray.jsonl.gz",
        "psattack-security.jsonl.gz",
        "powersploit-system.jsonl.gz",
        "new-user-security.jsonl.gz",
    ];
    let zips = [
        "credential_access/host/psh_lsass_memory_dump_comsvcs.zip",
        "collection/host/msf_record_mic.zip",
    ];
    let needs = samples.map(deepbluecli).into_iter().chain(zips.map(otrf));
    let Some(corpus) = common::needs::corpus(needs) else {
        return;
    };
    let schema = Arc::new(EventSchema::windows());
    let decoder = Decoder::new(Arc::clone(&schema), 1 << 20, &Metrics::new());
    let mut total = 0;
    for name in samples {
        let lines = gz_lines(&corpus, name);
        total += lines.len();
        let d = decoder.decode(0, records(&lines));
        assert!(
            d.dead_letters.is_empty(),
            "{name}: {:?}",
            d.dead_letters.first().map(|d| &d.detail)
        );
    }
    for zip in zips {
        let lines = zip_lines(&corpus, zip, 3000);
        total += lines.len();
        let d = decoder.decode(0, records(&lines));
        assert!(
            d.dead_letters.is_empty(),
            "{zip}: {:?}",
            d.dead_letters.first().map(|d| &d.detail)
        );
        for column in ["event_time", "host", "channel", "event_id"] {
            assert_eq!(
                d.batch.column_by_name(column).unwrap().null_count(),
                0,
                "{zip}: {column}"
            );
        }
    }
    assert!(total > 3000, "read {total} events");
}
