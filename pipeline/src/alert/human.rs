//! Alerts and incidents a person can read: what `ghosthunt run` (and `hunt`) print on a terminal instead of
//! OCSF JSON lines. One line per alert — event time, severity (in colour), hunt title, entity, the key
//! evidence — and a short block per incident: what, on whom, the tactics, its alerts in time order and the
//! first response steps.

use serde_json::Value;

use super::ocsf::Alert;
use crate::decode::json::format_time;

/// Most timeline lines an incident block shows.
const TIMELINE_LINES: usize = 8;
/// Longest evidence text on a line (characters).
const EVIDENCE_CHARS: usize = 100;

/// The text of one alert or incident (no trailing newline; an incident takes several lines).
pub fn render(alert: &Alert, color: bool) -> String {
    let doc: Value = serde_json::from_str(&alert.json).unwrap_or_default();
    match doc["class_uid"].as_u64() {
        Some(2005) => incident(&doc, color),
        _ => detection(alert, &doc, color),
    }
}

fn detection(alert: &Alert, doc: &Value, color: bool) -> String {
    let hunt = &alert.hunt;
    let subject = &alert.subject;
    let mut line = format!(
        "{}  {}  {}",
        clock(alert.event_time),
        severity(hunt.severity.as_str(), color),
        paint(&hunt.title, "1", color)
    );
    let mut who: Vec<String> = Vec::new();
    if let Some((name, value)) = &subject.entity {
        who.push(format!("{name}={value}"));
    }
    if let Some(h) = &subject.host
        && subject.entity.as_ref().is_none_or(|(_, v)| v != h)
    {
        who.push(format!("host={h}"));
    }
    if let Some(u) = &subject.user {
        who.push(format!("user={u}"));
    }
    if !who.is_empty() {
        line.push_str("  ");
        line.push_str(&who.join(" "));
    }
    if !subject.summary.is_empty() {
        line.push_str("  ");
        line.push_str(&paint(
            &shorten(&subject.summary, EVIDENCE_CHARS),
            "2",
            color,
        ));
    }
    if let Some(n) = doc["count"].as_u64() {
        line.push_str(&format!("  (update: stands for {n} alerts)"));
    }
    line
}

fn incident(doc: &Value, color: bool) -> String {
    let u = &doc["unmapped"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let activity = match doc["activity_id"].as_u64() {
        Some(2) => "updated",
        _ => "new",
    };
    let start = doc["start_time"].as_i64().unwrap_or_default() * 1_000_000;
    let end = doc["end_time"].as_i64().unwrap_or_default() * 1_000_000;
    let id = text(&doc["metadata"]["correlation_uid"]);
    let mut lines = vec![format!(
        "{}  {}  {} {}  {}  ({} alerts, {} – {})  id {}",
        clock(end),
        severity(&text(&doc["severity"]).to_ascii_lowercase(), color),
        paint("INCIDENT", "1;7", color),
        activity,
        paint(&text(&doc["message"]), "1", color),
        u["alert_count"],
        clock(start),
        clock(end),
        &id[..id.len().min(8)],
    )];
    // The rule's own chain when it has one (kill chain), else every tactic seen.
    let tactics = match u["result"]["chain"].as_array() {
        Some(chain) => chain.clone(),
        None => u["tactics"].as_array().cloned().unwrap_or_default(),
    };
    let tactics: Vec<String> = tactics.iter().map(text).collect();
    if !tactics.is_empty() {
        lines.push(format!("    tactics  {}", tactics.join(" → ")));
    }
    // An update shows what it adds.
    let added: Vec<&str> = u["added_alert_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let timeline: Vec<Value> = u["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            activity == "new" || added.contains(&e["alert_id"].as_str().unwrap_or_default())
        })
        .collect();
    let mark = if activity == "new" { " " } else { "+" };
    for entry in timeline.iter().take(TIMELINE_LINES) {
        let time = crate::decode::json::parse_timestamp(&text(&entry["time"])).unwrap_or_default();
        let mut line = format!(
            "  {mark} {}  {}  {}",
            clock(time),
            severity(&text(&entry["severity"]), color),
            text(&entry["hunt"])
        );
        let evidence = text(&entry["evidence"]);
        if !evidence.is_empty() {
            line.push_str("  ");
            line.push_str(&paint(&shorten(&evidence, EVIDENCE_CHARS), "2", color));
        }
        lines.push(line);
    }
    let shown = TIMELINE_LINES.min(timeline.len());
    let listed = match activity {
        "new" => u["alert_count"].as_u64().unwrap_or_default() as usize,
        _ => added.len(),
    };
    if listed > shown {
        lines.push(format!("    … {} more", listed - shown));
    }
    for phase in ["identify", "contain"] {
        if let Some(step) = u["response"][phase][0].as_str() {
            lines.push(format!("    {phase:<9}{}", shorten(step, 140)));
        }
    }
    lines.join("\n")
}

/// Event time as `2024-05-01 10:03:12Z`.
fn clock(nanos: i64) -> String {
    let t = format_time(nanos);
    let t = t.split('.').next().unwrap_or(&t).trim_end_matches('Z');
    format!("{}Z", t.replacen('T', " ", 1))
}

/// The severity, upper case, padded, coloured by how bad it is.
fn severity(name: &str, color: bool) -> String {
    let (code, label) = match name {
        "critical" => ("1;35", "CRITICAL"),
        "high" => ("1;31", "HIGH"),
        "medium" => ("33", "MEDIUM"),
        "low" => ("36", "LOW"),
        _ => ("2", "INFO"),
    };
    paint(&format!("{label:<8}"), code, color)
}

fn paint(text: &str, code: &str, color: bool) -> String {
    match color {
        true => format!("\x1b[{code}m{text}\x1b[0m"),
        false => text.to_string(),
    }
}

fn shorten(text: &str, chars: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::alert::Subject;
    use crate::hunt::Hunt;

    fn alert(json: &str) -> Alert {
        Alert {
            id: "a".into(),
            hunt: Arc::new(Hunt {
                title: "Encoded PowerShell".into(),
                entity: Some("host".into()),
                ..Hunt::sample("encoded_powershell")
            }),
            key: String::new(),
            json: json.into(),
            received: Instant::now(),
            event_time: 1_714_557_792_000_000_000,
            seq: 0,
            suppress_key: None,
            subject: Arc::new(Subject {
                host: Some("WS-1".into()),
                user: Some("CORP\\alice".into()),
                src_ip: None,
                entity: Some(("host".into(), "WS-1".into())),
                summary: "powershell.exe -enc SQBFAFgA".into(),
            }),
            update: false,
        }
    }

    #[test]
    fn an_alert_is_one_line_with_time_severity_title_entity_and_evidence() {
        let line = render(&alert(r#"{"class_uid": 2004}"#), false);
        assert_eq!(
            line,
            "2024-05-01 10:03:12Z  HIGH      Encoded PowerShell  host=WS-1 user=CORP\\alice  powershell.exe -enc SQBFAFgA"
        );
        let coloured = render(&alert(r#"{"class_uid": 2004}"#), true);
        assert!(coloured.contains("\x1b[1;31mHIGH"), "{coloured:?}");
    }

    #[test]
    fn an_incident_is_a_block_with_its_chain_timeline_and_first_steps() {
        let doc = serde_json::json!({
            "class_uid": 2005, "activity_id": 1, "severity": "Critical",
            "message": "Kill chain: WS-1", "start_time": 1_714_557_792_000i64, "end_time": 1_714_558_512_000i64,
            "metadata": { "correlation_uid": "14bd6b2d-0000" },
            "unmapped": {
                "alert_count": 2,
                "result": { "chain": ["execution", "credential-access"] },
                "timeline": [
                    { "time": "2024-05-01T10:03:12Z", "severity": "high", "hunt": "Encoded PowerShell", "evidence": "powershell -enc" },
                    { "time": "2024-05-01T10:15:12Z", "severity": "high", "hunt": "LSASS read", "evidence": "lsass.exe" },
                ],
                "response": { "identify": ["Read the timeline."], "contain": ["Isolate the host."] },
            },
        });
        let block = render(&alert(&doc.to_string()), false);
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines.len(), 6, "{block}");
        assert!(lines[0].contains("INCIDENT new  Kill chain: WS-1  (2 alerts, 2024-05-01 10:03:12Z – 2024-05-01 10:15:12Z)  id 14bd6b2d"), "{}", lines[0]);
        assert_eq!(lines[1], "    tactics  execution → credential-access");
        assert!(
            lines[2].contains("10:03:12Z")
                && lines[2].ends_with("Encoded PowerShell  powershell -enc")
        );
        assert_eq!(lines[4], "    identify Read the timeline.");
        assert_eq!(lines[5], "    contain  Isolate the host.");

        // An update lists what it adds.
        let mut update = doc.clone();
        update["activity_id"] = serde_json::json!(2);
        update["unmapped"]["added_alert_ids"] = serde_json::json!(["b"]);
        update["unmapped"]["timeline"][1]["alert_id"] = serde_json::json!("b");
        let block = render(&alert(&update.to_string()), false);
        let lines: Vec<&str> = block.lines().collect();
        assert!(lines[0].contains("INCIDENT updated"), "{block}");
        assert!(
            lines[2].starts_with("  + ") && lines[2].contains("LSASS read"),
            "{block}"
        );
        assert_eq!(lines.len(), 5, "{block}");
    }
}
