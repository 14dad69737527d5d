//! `ghosthunt sigma bench`: how fast the configured Sigma rule set runs on given events.
//!
//! Reads JSON-lines files (plain, `.gz`, or `.zip` archives of JSON-lines files, as the OTRF datasets come),
//! decodes them into batches of `decode.batch_size` with the schema the rules extend, then evaluates every
//! batch with the whole rule set `rounds` times. Decoding and evaluation are timed apart, so the figure for
//! the rule set is not hidden behind the decoder's.

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::decode::{Decoder, EventSchema};
use crate::sigma::engine::SigmaEngine;
use crate::source::RawRecord;
use crate::telemetry::Metrics;

/// What a benchmark run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub events: usize,
    pub bytes: usize,
    pub dead_letters: usize,
    pub batches: usize,
    pub decode_seconds: f64,
    /// Seconds of each evaluation round over all batches.
    pub rounds: Vec<f64>,
    /// Matches (rule, event) in one round.
    pub matches: usize,
    /// Rules with at least one match.
    pub rules_matched: usize,
}

impl BenchReport {
    /// Median seconds of the evaluation rounds.
    pub fn median_round(&self) -> f64 {
        let mut r = self.rounds.clone();
        r.sort_by(f64::total_cmp);
        r.get(r.len() / 2).copied().unwrap_or(0.0)
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let median = self.median_round();
        writeln!(
            f,
            "events: {} ({:.1} MB) in {} batches; {} dead letters",
            self.events,
            self.bytes as f64 / 1e6,
            self.batches,
            self.dead_letters
        )?;
        writeln!(
            f,
            "decode:   {:.2} s  {:>10.0} events/s",
            self.decode_seconds,
            self.events as f64 / self.decode_seconds
        )?;
        let rounds: Vec<String> = self.rounds.iter().map(|r| format!("{r:.2}")).collect();
        writeln!(
            f,
            "evaluate: {:.2} s  {:>10.0} events/s  (median of {} rounds: {} s)",
            median,
            self.events as f64 / median,
            self.rounds.len(),
            rounds.join(", ")
        )?;
        writeln!(
            f,
            "both:     {:.2} s  {:>10.0} events/s",
            median + self.decode_seconds,
            self.events as f64 / (median + self.decode_seconds)
        )?;
        write!(
            f,
            "matches:  {} (event, rule) pairs from {} rules",
            self.matches, self.rules_matched
        )
    }
}

/// Reads every JSON line of the files (plain, `.gz`, `.zip`).
pub fn read_lines(paths: &[PathBuf]) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    for path in paths {
        let name = path.to_string_lossy();
        if name.ends_with(".zip") {
            let mut archive = zip::ZipArchive::new(std::fs::File::open(path)?)
                .map_err(|e| std::io::Error::other(format!("{name}: {e}")))?;
            for i in 0..archive.len() {
                let mut entry = archive
                    .by_index(i)
                    .map_err(|e| std::io::Error::other(format!("{name}: {e}")))?;
                let inner = entry
                    .name()
                    .map_err(|e| std::io::Error::other(format!("{name}: {e}")))?
                    .to_string();
                if inner.contains("__MACOSX") || !inner.ends_with(".json") {
                    continue;
                }
                let mut text = String::new();
                entry.read_to_string(&mut text)?;
                lines.extend(non_empty(text.lines()));
            }
        } else if name.ends_with(".gz") {
            let reader =
                std::io::BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(path)?));
            for line in reader.lines() {
                lines.extend(non_empty(std::iter::once(line?.as_str())));
            }
        } else {
            lines.extend(non_empty(std::fs::read_to_string(path)?.lines()));
        }
    }
    Ok(lines)
}

fn non_empty<'a>(lines: impl Iterator<Item = &'a str>) -> impl Iterator<Item = String> {
    lines.filter(|l| !l.trim().is_empty()).map(str::to_string)
}

/// Decodes the lines and evaluates the rule set over them `rounds` times.
pub fn run(
    engine: &SigmaEngine,
    schema: &Arc<EventSchema>,
    lines: Vec<String>,
    batch_size: usize,
    rounds: usize,
) -> BenchReport {
    let events = lines.len();
    let bytes = lines.iter().map(String::len).sum();
    let decoder = Decoder::new(Arc::clone(schema), usize::MAX, &Metrics::new());
    let mut records = RawRecord::from_lines("bench", lines);
    let started = Instant::now();
    let mut batches = Vec::new();
    let mut dead_letters = 0;
    let mut seq = 0;
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(batch_size));
        let decoded = decoder.decode(seq, std::mem::replace(&mut records, rest));
        seq += 1;
        dead_letters += decoded.dead_letters.len();
        batches.push(decoded.batch);
    }
    let decode_seconds = started.elapsed().as_secs_f64();
    let mut report = BenchReport {
        events,
        bytes,
        dead_letters,
        batches: batches.len(),
        decode_seconds,
        rounds: Vec::new(),
        matches: 0,
        rules_matched: 0,
    };
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let mut matches = 0;
        let mut rules = std::collections::HashSet::new();
        for batch in &batches {
            for (id, rows) in engine.matching(batch) {
                matches += rows.len();
                rules.insert(id.to_string());
            }
        }
        report.rounds.push(started.elapsed().as_secs_f64());
        report.matches = matches;
        report.rules_matched = rules.len();
    }
    report
}
