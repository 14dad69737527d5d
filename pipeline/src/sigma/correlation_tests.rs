use super::*;
use crate::sigma::correlate::{BaseRule, Correlator};
use crate::test_needs;
use serde_json::json;
use std::io::BufRead;

fn files(corpus: &std::path::Path, dir: &str, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(corpus.join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.retain(|p| p.to_string_lossy().ends_with(ext));
    v.sort();
    v
}

fn docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).expect("YAML")
}

fn with(extra: Value) -> Result<CorrelationRule, crate::sigma::error::RuleError> {
    let mut d = json!({"title": "t", "correlation": {"type": "event_count", "rules": ["a"],
        "group-by": ["User"], "timespan": "5m", "condition": {"gte": 3}}});
    extra
        .as_object()
        .unwrap()
        .iter()
        .for_each(|(k, v)| d["correlation"][k] = v.clone());
    parse_correlation(&d)
}

#[test]
fn schema_examples_parse_and_metric_types_are_refused_with_a_reason() {
    let examples = "sigma/specification/tests/schema/correlation";
    let Some(corpus) = test_needs::corpus([examples]) else {
        return;
    };
    let found = files(&corpus, examples, ".yml");
    assert_eq!(found.len(), 8);
    for p in found {
        let (name, r) = (
            p.file_stem().unwrap().to_string_lossy(),
            parse_correlation(&docs(&std::fs::read_to_string(&p).unwrap())[0]),
        );
        match name.as_ref() {
            "value_sum" | "value_avg" | "value_percentile" => {
                assert!(r.unwrap_err().to_string().contains("refused"))
            }
            _ => assert!(!r.unwrap().group_by.is_empty(), "{name}"),
        }
    }
}

#[test]
fn spec_text_examples_parse_with_their_meaning() {
    let spec = "sigma/specification/specification/sigma-correlation-rules-specification.md";
    let Some(corpus) = test_needs::corpus([spec]) else {
        return;
    };
    let spec = std::fs::read_to_string(corpus.join(spec)).unwrap();
    let mut ok = Vec::new();
    for block in spec
        .split("```")
        .skip(1)
        .step_by(2)
        .filter(|b| b.contains("timespan:"))
    {
        for mut d in docs(block.trim_start_matches("yaml").trim_start_matches("yml")) {
            if d.get("correlation").is_some() {
                d.as_object_mut()
                    .unwrap()
                    .entry("title")
                    .or_insert(json!("excerpt"));
                parse_correlation(&d)
                    .map(|r| ok.push(r))
                    .unwrap_or_else(|e| assert!(e.to_string().contains("refused"), "{e}"));
            }
        }
    }
    assert_eq!(ok.len(), 7);
    let alias = ok.iter().find(|r| !r.aliases.is_empty()).unwrap();
    assert_eq!(
        alias.fields_for("internal_error"),
        ["destination.ip", "source.ip"]
    );
    assert_eq!(
        alias.fields_for("new_network_connection"),
        ["source.ip", "destination.ip"]
    );
    let chain = ok
        .iter()
        .find(|r| r.title.starts_with("Correlation - Multiple"))
        .unwrap();
    assert_eq!(
        (&chain.kind, chain.level, chain.effective_condition()),
        (
            &Kind::TemporalOrdered,
            Some(Level::High),
            Condition::at_least(2)
        )
    );
    let vc = ok
        .iter()
        .find(|r| matches!(r.kind, Kind::ValueCount { .. }))
        .unwrap();
    assert_eq!(
        vc.fields_for("x"),
        ["ComputerName", "WorkstationName", "User"]
    );
}

#[test]
fn timespan_takes_only_positive_counts_of_s_m_h_d() {
    assert_eq!(parse_timespan(&json!("90m")), Ok(Duration::from_secs(5400)));
    for bad in [
        "1w",
        "5M",
        "5",
        "m",
        "0s",
        "1.5h",
        "-1m",
        "5 m",
        "5H",
        "99999999999999999999d",
    ] {
        assert!(parse_timespan(&json!(bad)).is_err(), "{bad}");
    }
}

#[test]
fn conditions_combine_into_ranges_and_impossible_or_malformed_ones_are_refused() {
    let c = with(json!({"condition": {"gt": 100, "lte": 200}}))
        .unwrap()
        .effective_condition();
    assert_eq!(
        [100, 101, 200, 201].map(|n| c.holds(n)),
        [false, true, true, false]
    );
    assert!(!c.is_upward_closed(None) && Condition::at_least(5).is_upward_closed(None));
    assert!(
        with(json!({"condition": {"gt": 5, "lt": 6}}))
            .unwrap_err()
            .to_string()
            .contains("never fires")
    );
    for bad in [
        json!({"gte": -1}),
        json!({"gte": 1.5}),
        json!({"above": 3}),
        json!({}),
        json!("a and b"),
    ] {
        assert!(with(json!({"condition": bad})).is_err(), "{bad}");
    }
}

#[test]
fn value_count_needs_a_field_and_temporal_kinds_default_to_all_rules_in_order() {
    assert!(
        with(json!({"type": "value_count"}))
            .unwrap_err()
            .to_string()
            .contains("field")
    );
    let vc = with(json!({"type": "value_count", "condition": {"gte": 2, "field": ["A", "B"]}}));
    assert_eq!(
        vc.unwrap().kind,
        Kind::ValueCount {
            fields: vec!["A".into(), "B".into()]
        }
    );
    assert!(
        with(json!({"condition": {"gte": 2, "field": "A"}}))
            .unwrap_err()
            .to_string()
            .contains("only value_count")
    );
    let t =
        |ty: &str, c: Value| with(json!({"type": ty, "rules": ["a", "b", "c"], "condition": c}));
    assert_eq!(
        t("temporal", Value::Null).unwrap().effective_condition(),
        Condition::at_least(3)
    );
    assert_eq!(
        t("temporal", json!({"gte": 2}))
            .unwrap()
            .effective_condition(),
        Condition::at_least(2)
    );
    assert!(
        t("temporal_ordered", json!({"gte": 2}))
            .unwrap_err()
            .to_string()
            .contains("in order")
    );
    assert!(t("temporal_ordered", json!({"eq": 3})).is_ok());
}

#[test]
fn structural_errors_name_the_attribute() {
    let cases = [
        (json!({"groupby": ["x"]}), "correlation.groupby"),
        (json!({"rules": []}), "correlation.rules"),
        (json!({"rules": ["a", "a"]}), "appears twice"),
        (json!({"type": "count"}), "correlation.type"),
        (json!({"timespan": null}), "correlation.timespan"),
        (json!({"generate": "yes"}), "generate"),
        (json!({"aliases": {"ip": ["a"]}}), "correlation.aliases.ip"),
    ];
    for (extra, want) in cases {
        assert!(
            with(extra.clone()).unwrap_err().to_string().contains(want),
            "{extra}"
        );
    }
    assert!(
        parse_correlation(&json!({"correlation": {}}))
            .unwrap_err()
            .to_string()
            .contains("title")
    );
}

/// The value of `name` in a DeepBlueCLI event: `EventData`, else `System`; numbers as text.
fn field(ev: &Value, name: &str) -> Option<String> {
    let e = &ev["Event"];
    let v = [&e["EventData"][name], &e["System"][name]]
        .into_iter()
        .find(|v| !v.is_null())?;
    Some(v.as_str().map_or_else(|| v.to_string(), str::to_string))
}

/// Hayabusa's base rules: a selection is a map of field (`|endswith` allowed) → value, all of
/// which must hold (case-insensitive; a missing field fails), or a list of maps, any of which.
fn selects(sel: &Value, ev: &Value) -> bool {
    match sel {
        Value::Array(any) => any.iter().any(|s| selects(s, ev)),
        Value::Object(all) => all.iter().all(|(k, want)| {
            let (name, modifier) = k.split_once('|').unwrap_or((k, ""));
            let want = want
                .as_str()
                .map_or_else(|| want.to_string(), str::to_string)
                .to_lowercase();
            let got = field(ev, name).map(|g| g.to_lowercase());
            match modifier {
                "" => got == Some(want),
                "endswith" => got.is_some_and(|g| g.ends_with(&want)),
                m => panic!("modifier {m} not in the test's matcher"),
            }
        }),
        o => panic!("unexpected selection {o}"),
    }
}

#[test]
fn hayabusa_rules_fire_on_the_password_samples_and_on_no_other_sample() {
    let Some(corpus) = test_needs::corpus([
        "sigma/correlation-examples/hayabusa",
        "events/deepbluecli/password-spray.jsonl.gz",
        "events/deepbluecli/smb-password-guessing-security.jsonl.gz",
    ]) else {
        return;
    };
    let (mut rules, mut bases) = (Vec::new(), Vec::new());
    for p in files(&corpus, "sigma/correlation-examples/hayabusa", ".yml") {
        for d in docs(&std::fs::read_to_string(p).unwrap()) {
            match d.get("correlation") {
                Some(_) => rules.push(parse_correlation(&d).unwrap()),
                None => bases.push(d),
            }
        }
    }
    let ids = |d: &Value| BaseRule {
        id: d["id"].as_str().unwrap().into(),
        name: d["name"].as_str().map(Into::into),
    };
    let base: Vec<BaseRule> = bases.iter().map(ids).collect();
    let mut summary = Vec::new();
    for p in files(&corpus, "events/deepbluecli", ".jsonl.gz") {
        let mut c = Correlator::with_base_rules(rules.clone(), &base).unwrap();
        let (mut fired, gz) = (
            Vec::new(),
            flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap()),
        );
        for line in std::io::BufReader::new(gz).lines() {
            let ev: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let time = ev["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"]
                .as_str()
                .unwrap();
            let t = humantime::parse_rfc3339(time)
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            let t = t.as_nanos() as i64;
            fired.extend(c.advance(t)); // the samples are in time order: the watermark follows them
            for (b, d) in base.iter().zip(&bases) {
                let det = &d["detection"];
                assert_eq!(det["condition"], "selection and not filter");
                if selects(&det["selection"], &ev) && !selects(&det["filter"], &ev) {
                    let f: Vec<_> = c.fields_for(&b.id).iter().map(|n| field(&ev, n)).collect();
                    assert!(c.observe(&b.id, t, &f));
                }
            }
        }
        fired.extend(c.flush());
        let name = p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".jsonl.gz", "");
        for f in &fired {
            let secs = (f.last - f.first) as f64 / 1e9;
            println!(
                "{name}: {} fired, count {} ({} matches in {secs:.1}s) at {}, group {:?}, values {:?}",
                rules[f.rule].title, f.count, f.events, f.time, f.group, f.values
            );
        }
        fired
            .iter()
            .for_each(|f| summary.push((name.clone(), rules[f.rule].title.clone(), f.count)));
    }
    let want = [
        ("password-spray", "PW Spray", 5),
        ("smb-password-guessing-security", "PW Guessing", 5),
    ];
    assert_eq!(
        summary,
        want.map(|(a, b, n)| (a.to_string(), b.to_string(), n))
    );
}
