//! Properties of the whole stream: determinism, event format, event time, scheduling, noise, small configs.

use super::super::catalog::{EXPLORER, LSASS, POWERSHELL, WINWORD};
use super::*;
use rand::Rng;
use std::collections::BTreeSet;

#[test]
fn same_seed_gives_identical_stream() {
    let a = raw(config(42, Duration::from_secs(30)), 60_000, 7);
    let b = raw(config(42, Duration::from_secs(30)), 60_000, 7);
    assert!(a == b, "two runs with the same seed differ");
}

#[test]
fn different_seeds_give_different_streams() {
    let a = raw(config(1, Duration::from_secs(30)), 2_000, 7);
    let b = raw(config(2, Duration::from_secs(30)), 2_000, 7);
    assert_ne!(a, b);
}

#[test]
fn events_are_flat_json_objects_with_time_host_channel_and_id() {
    let (_, evs) = run(config(3, Duration::from_secs(20)), 30_000, 13);
    let providers: BTreeMap<&str, &str> = [
        (
            "Microsoft-Windows-Sysmon/Operational",
            "Microsoft-Windows-Sysmon",
        ),
        ("Security", "Microsoft-Windows-Security-Auditing"),
        ("System", "Service Control Manager"),
        (
            "Microsoft-Windows-PowerShell/Operational",
            "Microsoft-Windows-PowerShell",
        ),
    ]
    .into_iter()
    .collect();
    for e in &evs {
        assert!(
            !e.line.contains('\n'),
            "line break inside an event: {}",
            e.line
        );
        let obj = e.json.as_object().expect("an object");
        let ts = e.s("@timestamp");
        assert_eq!(
            ts.len(),
            24,
            "timestamp {ts} is not YYYY-MM-DDTHH:MM:SS.mmmZ"
        );
        assert!(
            ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
            "timestamp {ts}"
        );
        assert!(
            e.line.starts_with("{\"@timestamp\":"),
            "timestamp first: {}",
            e.line
        );
        assert!(
            e.json["EventID"].is_u64(),
            "EventID is a number: {}",
            e.line
        );
        let channel = e.s("Channel");
        assert_eq!(
            providers.get(channel),
            Some(&e.s("SourceName")),
            "channel/provider: {}",
            e.line
        );
        assert!(
            e.s("Hostname").ends_with(".corp.example"),
            "host: {}",
            e.line
        );
        for (k, v) in obj {
            match k.as_str() {
                "EventID" | "RecordNumber" => assert!(v.is_u64(), "{k} is a number"),
                _ => assert!(v.is_string(), "{k} is not a string in {}", e.line),
            }
        }
        // Integer columns of the schema must hold decimal strings (or 0x hex, which the decoder also
        // reads, for Security process ids), or the event is a dead letter.
        for k in [
            "ProcessId",
            "ParentProcessId",
            "LogonType",
            "IpPort",
            "SourcePort",
            "DestinationPort",
        ] {
            if let Some(v) = obj.get(k) {
                let s = v.as_str().unwrap();
                let decimal = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                let hex = s.len() > 2
                    && s.starts_with("0x")
                    && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
                    && e.s("Channel") == "Security";
                assert!(decimal || hex, "{k}={s} in {}", e.line);
            }
        }
    }
    let ids: BTreeSet<u64> = evs.iter().map(Ev::id).collect();
    for id in [1, 3, 10, 11, 22, 4104, 4624, 4625] {
        assert!(ids.contains(&id), "no event {id} in {ids:?}");
    }
}

#[test]
fn only_the_fields_of_each_event_id_appear() {
    let (_, evs) = run(config(4, Duration::from_secs(20)), 30_000, 13);
    for e in &evs {
        let has = |k: &str| e.json.get(k).is_some();
        match e.id() {
            1 => assert!(
                has("CommandLine") && has("ParentImage") && !has("TargetUserName"),
                "{}",
                e.line
            ),
            3 => assert!(has("DestinationPort") && !has("CommandLine"), "{}", e.line),
            10 => assert!(has("GrantedAccess") && !has("Image"), "{}", e.line),
            4624 | 4625 => {
                assert!(
                    has("LogonType") && has("IpAddress") && !has("Image"),
                    "{}",
                    e.line
                );
                assert!(
                    e.s("ProcessId").starts_with("0x"),
                    "Security writes hex pids: {}",
                    e.line
                );
            }
            4104 => assert!(has("ScriptBlockText") && !has("User"), "{}", e.line),
            7045 => assert!(
                has("ImagePath") && e.s("AccountName") == "LocalSystem",
                "{}",
                e.line
            ),
            _ => {}
        }
    }
}

#[test]
fn event_times_never_go_backwards() {
    let mut g = EventGenerator::new(config(5, Duration::from_secs(10)));
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut now = t0();
    let mut last = i64::MIN;
    let mut buf = Vec::new();
    for _ in 0..40_000 {
        // Mostly forward, sometimes backward, sometimes a big jump.
        let step = match rng.random_range(0..100) {
            0..10 => -rng.random_range(0..5_000i64),
            10..11 => rng.random_range(0..600_000i64),
            _ => rng.random_range(0..40i64),
        };
        now += chrono::Duration::milliseconds(step);
        buf.clear();
        g.next_event(now, &mut buf);
        let v: Value = serde_json::from_slice(&buf).unwrap();
        let ts = DateTime::parse_from_rfc3339(v["@timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        assert!(ts >= last, "time went back from {last} to {ts}");
        last = ts;
    }
}

#[test]
fn scenario_events_get_their_offset_after_now_not_the_call_time() {
    // Event time jumps 20 s per call: a 30–90 s guessing burst must still keep its own spacing.
    let (_, evs) = run(config(11, Duration::from_secs(600)), 8 * 30 + 30, 20_000);
    for s in Scenario::ALL {
        let times: Vec<i64> = evs
            .iter()
            .filter(|e| e.scenario == Some(s))
            .map(Ev::ms)
            .collect();
        assert!(!times.is_empty(), "{} missing", s.name());
    }
    let guess: Vec<i64> = evs
        .iter()
        .filter(|e| e.scenario == Some(Scenario::PasswordGuessing))
        .map(Ev::ms)
        .collect();
    let span = guess.last().unwrap() - guess[0];
    assert!((30_000..=90_000).contains(&span), "guessing span {span} ms");
    let distinct: BTreeSet<i64> = guess.iter().copied().collect();
    assert!(
        distinct.len() > 10,
        "guessing events collapsed onto call times: {guess:?}"
    );
}

#[test]
fn every_scenario_is_injected_within_eight_intervals() {
    let interval = Duration::from_secs(60);
    let (g, evs) = run(config(6, interval), 8 * 60 * 20 + 1, 50);
    for (s, n) in g.injected() {
        assert_eq!(*n, 1, "{} injected {n} times", s.name());
    }
    let seen: BTreeSet<&str> = evs
        .iter()
        .filter_map(|e| e.scenario)
        .map(|s| s.name())
        .collect();
    // The last scenario started at the very last event; it has written at least its first event.
    assert_eq!(seen.len(), 8, "scenarios seen: {seen:?}");
    // Nothing before the first interval.
    let first = evs.iter().find(|e| e.scenario.is_some()).unwrap();
    assert_eq!(first.ms() - t0().timestamp_millis(), 60_000);
}

#[test]
fn scenarios_rotate_through_all_kinds_in_a_seeded_order() {
    let order = |seed| {
        let (_, evs) = run(config(seed, Duration::from_secs(60)), 16 * 60 * 10 + 1, 100);
        let mut starts = Vec::new();
        for e in &evs {
            if let Some(s) = e.scenario
                && starts.last() != Some(&s)
                && !starts[starts.len().saturating_sub(3)..].contains(&s)
            {
                starts.push(s);
            }
        }
        starts
    };
    let a = order(8);
    assert!(a.len() >= 16, "{a:?}");
    assert_eq!(a[..8], a[8..16], "second round differs from the first");
    assert_eq!(
        a[..8]
            .iter()
            .map(|s| s.name())
            .collect::<BTreeSet<_>>()
            .len(),
        8
    );
    let others: Vec<Vec<Scenario>> = (20..24).map(order).collect();
    assert!(
        others.iter().any(|o| o[..8] != a[..8]),
        "order does not depend on the seed"
    );
}

#[test]
fn zero_interval_injects_nothing() {
    let (g, evs) = run(config(9, Duration::ZERO), 50_000, 100);
    assert!(evs.iter().all(|e| e.scenario.is_none()));
    assert!(g.injected().iter().all(|(_, n)| *n == 0));
    assert_eq!(
        g.injected().iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        Scenario::ALL.to_vec()
    );
}

#[test]
fn noise_never_matches_any_hunt() {
    let (_, evs) = run(config(10, Duration::ZERO), 120_000, 25);
    for e in &evs {
        assert_eq!(hunt_match(e), None, "noise matches a hunt: {}", e.line);
    }
    // The benign look-alikes are there.
    assert!(
        evs.iter()
            .any(|e| e.id() == 10 && e.s("TargetImage") == LSASS)
    );
    assert!(
        evs.iter()
            .any(|e| e.id() == 1 && e.s("Image") == POWERSHELL.path)
    );
    assert!(evs.iter().any(|e| e.id() == 1
        && e.s("Image") == WINWORD.path
        && e.s("ParentImage") == EXPLORER.path));
    assert!(evs.iter().any(|e| e.id() == 7045));
    for port in ["443", "80", "445", "53"] {
        assert!(
            evs.iter()
                .any(|e| e.id() == 3 && e.s("DestinationPort") == port),
            "no port {port}"
        );
    }
    for t in ["2", "3", "10"] {
        assert!(
            evs.iter().any(|e| e.id() == 4624 && e.s("LogonType") == t),
            "no logon type {t}"
        );
    }
}

#[test]
fn noise_has_no_failed_logon_bursts() {
    // 20 ms per event for 50 minutes of event time: a typo is drawn every few seconds, far more
    // often than the limits let through.
    let (_, evs) = run(config(12, Duration::ZERO), 150_000, 20);
    let all: Vec<&Ev> = evs.iter().collect();
    let failures = all.iter().filter(|e| e.id() == 4625).count();
    assert!(failures >= 10, "only {failures} noise failed logons");
    assert!(max_failures_in_5min(&all, |e| e.s("IpAddress").to_string()) < 3);
    assert!(max_failures_in_5min(&all, |e| e.s("TargetUserName").to_string()) < 3);
    assert!(max_failures_in_5min(&all, |e| e.s("Hostname").to_string()) < 3);
    assert!(max_failures_in_5min(&all, |_| String::new()) <= 5);
}

#[test]
fn hunt_matches_come_only_from_their_scenario() {
    let (_, evs) = run(config(13, Duration::from_secs(45)), 120_000, 20);
    let mut matched = BTreeSet::new();
    for e in &evs {
        if let Some(s) = hunt_match(e) {
            assert_eq!(
                e.scenario,
                Some(s),
                "{} matched by an event of {:?}: {}",
                s.name(),
                e.scenario,
                e.line
            );
            matched.insert(s.name());
        }
    }
    assert_eq!(matched.len(), 6, "per-event hunts matched: {matched:?}");
    // Failed logons in bursts come only from the two password scenarios.
    let noise: Vec<&Ev> = evs.iter().filter(|e| e.scenario.is_none()).collect();
    assert!(max_failures_in_5min(&noise, |e| e.s("IpAddress").to_string()) < 3);
}

#[test]
fn tiny_configs_are_raised_to_a_working_domain() {
    let cfg = GeneratorConfig {
        hosts: 0,
        users: 0,
        seed: 1,
        attack_interval: Duration::from_secs(5),
        campaign_interval: Duration::ZERO,
    };
    let (g, evs) = run(cfg, 20_000, 50);
    assert!(
        g.injected().iter().all(|(_, n)| *n >= 1),
        "{:?}",
        g.injected()
    );
    let hosts: BTreeSet<&str> = evs.iter().map(|e| e.s("Hostname")).collect();
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    // A spray still reaches 15 distinct accounts with only two real users.
    let spray: BTreeSet<&str> = evs
        .iter()
        .filter(|e| e.scenario == Some(Scenario::PasswordSpray))
        .map(|e| e.s("TargetUserName"))
        .collect();
    assert!(spray.len() >= 15, "{spray:?}");
}

#[test]
fn users_and_hosts_have_realistic_distinct_names() {
    let g = EventGenerator::new(GeneratorConfig {
        hosts: 500,
        users: 5000,
        seed: 3,
        attack_interval: Duration::ZERO,
        campaign_interval: Duration::ZERO,
    });
    let names: BTreeSet<&str> = g.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names.len(), 5000);
    assert!(
        g.users
            .iter()
            .all(|u| u.name.contains('.') && u.name == u.name.to_lowercase())
    );
    let hosts: BTreeSet<&str> = g.hosts.iter().map(|h| h.fqdn.as_str()).collect();
    assert_eq!(hosts.len(), 500);
    assert!(hosts.contains("SRV-DC01.corp.example") && hosts.contains("SRV-FILE01.corp.example"));
    assert!(hosts.contains("WS-0007.corp.example"));
    let ips: BTreeSet<&str> = g.hosts.iter().map(|h| h.ip.as_str()).collect();
    assert_eq!(ips.len(), 500);
}

#[test]
fn next_event_appends_without_clearing() {
    let mut g = EventGenerator::new(config(1, Duration::ZERO));
    let mut buf = b"previous\n".to_vec();
    g.next_event(t0(), &mut buf);
    assert!(buf.starts_with(b"previous\n{\"@timestamp\":\"2026-11-28T07:40:00.000Z\""));
    assert!(buf.ends_with(b"}"));
}

#[test]
fn scenario_names_are_distinct_snake_case() {
    let names: BTreeSet<&str> = Scenario::ALL.iter().map(Scenario::name).collect();
    assert_eq!(names.len(), 8);
    assert!(
        names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
    assert_eq!(Scenario::PasswordGuessing.name(), "password_guessing");
}
