//! Unit tests of the generator: shared helpers and the per-event hunt logic here, stream properties in
//! `stream`, the shape of each scenario in `scenarios`.

mod scenarios;
mod stream;

use super::*;
use chrono::TimeZone;
use serde_json::Value;
use std::collections::BTreeMap;

/// A fixed start of event time.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 7, 40, 0).unwrap()
}

/// A config with `interval` between attacks.
fn config(seed: u64, interval: Duration) -> GeneratorConfig {
    GeneratorConfig {
        hosts: 60,
        users: 80,
        seed,
        attack_interval: interval,
        campaign_interval: Duration::ZERO,
    }
}

/// One generated event: its line, parsed form and scenario label.
struct Ev {
    line: String,
    json: Value,
    scenario: Option<Scenario>,
}

impl Ev {
    fn s(&self, key: &str) -> &str {
        self.json.get(key).and_then(Value::as_str).unwrap_or("")
    }
    fn id(&self) -> u64 {
        self.json["EventID"].as_u64().expect("EventID is a number")
    }
    fn ms(&self) -> i64 {
        DateTime::parse_from_rfc3339(self.s("@timestamp"))
            .expect("@timestamp is RFC 3339")
            .timestamp_millis()
    }
}

/// Runs `n` events with event time advancing `step_ms` per call.
fn run(cfg: GeneratorConfig, n: usize, step_ms: i64) -> (EventGenerator, Vec<Ev>) {
    let mut g = EventGenerator::new(cfg);
    let mut evs = Vec::with_capacity(n);
    let mut buf = Vec::new();
    for i in 0..n {
        buf.clear();
        g.next_event(
            t0() + chrono::Duration::milliseconds(i as i64 * step_ms),
            &mut buf,
        );
        let line = String::from_utf8(buf.clone()).expect("UTF-8");
        let json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {e}: {line}"));
        evs.push(Ev {
            line,
            json,
            scenario: g.last_scenario(),
        });
    }
    (g, evs)
}

/// The raw output of `n` events.
fn raw(cfg: GeneratorConfig, n: usize, step_ms: i64) -> Vec<u8> {
    let mut g = EventGenerator::new(cfg);
    let mut buf = Vec::new();
    for i in 0..n {
        g.next_event(
            t0() + chrono::Duration::milliseconds(i as i64 * step_ms),
            &mut buf,
        );
        buf.push(b'\n');
    }
    buf
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.to_ascii_lowercase()
        .ends_with(&suffix.to_ascii_lowercase())
}

const OFFICE: [&str; 3] = [r"\winword.exe", r"\excel.exe", r"\outlook.exe"];
const SHELLS: [&str; 5] = [
    r"\cmd.exe",
    r"\powershell.exe",
    r"\wscript.exe",
    r"\mshta.exe",
    r"\rundll32.exe",
];
const BAD_MASKS: [&str; 5] = ["0x1010", "0x1410", "0x1438", "0x143a", "0x1fffff"];

/// Per-event hunt logic, as the hunts are specified (windowed counts are checked separately).
fn hunt_match(e: &Ev) -> Option<Scenario> {
    let id = e.id();
    let image = e.s("Image").to_ascii_lowercase();
    let parent = e.s("ParentImage").to_ascii_lowercase();
    let cmd = e.s("CommandLine").to_ascii_lowercase();
    if id == 1 && image.ends_with(r"\powershell.exe") {
        if cmd.contains("invoke-command -computername")
            || cmd.contains("enter-pssession -computername")
        {
            return Some(Scenario::PsRemotingLateralMovement);
        }
        // Deliberately stricter than any real hunt: no "-e" anywhere in a noise PowerShell command line.
        if cmd.contains(" -e") {
            return Some(Scenario::EncodedPowerShell);
        }
    }
    if id == 3 && e.s("DestinationPort") == "5985" {
        return Some(Scenario::PsRemotingLateralMovement);
    }
    if id == 1 && (image.ends_with(r"\wsmprovhost.exe") || parent.ends_with(r"\wsmprovhost.exe")) {
        return Some(Scenario::PsRemotingLateralMovement);
    }
    if id == 10 && ends_with_ci(e.s("TargetImage"), r"\lsass.exe") {
        let trace = e.s("CallTrace").to_ascii_lowercase();
        if BAD_MASKS.contains(&e.s("GrantedAccess"))
            || trace.contains("dbghelp.dll")
            || trace.contains("dbgcore.dll")
            || trace.contains("unknown(")
        {
            return Some(Scenario::LsassAccess);
        }
    }
    if id == 7045 {
        let path = e.s("ImagePath").trim_start_matches('"');
        if !path.starts_with(r"C:\Program Files\") {
            return Some(Scenario::SuspiciousServiceInstall);
        }
    }
    if id == 4728 || id == 4732 {
        return Some(Scenario::PrivilegedGroupAdd);
    }
    if id == 1
        && OFFICE.iter().any(|o| parent.ends_with(o))
        && SHELLS.iter().any(|s| image.ends_with(s))
    {
        return Some(Scenario::OfficeSpawnsShell);
    }
    None
}

/// Largest number of 4625 events sharing `key` within any five-minute window.
fn max_failures_in_5min(evs: &[&Ev], key: impl Fn(&Ev) -> String) -> usize {
    let mut by_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in evs.iter().filter(|e| e.id() == 4625) {
        by_key.entry(key(e)).or_default().push(e.ms());
    }
    let mut worst = 0;
    for times in by_key.values() {
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi] - times[lo] >= 300_000 {
                lo += 1;
            }
            worst = worst.max(hi - lo + 1);
        }
    }
    worst
}
