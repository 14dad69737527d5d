use super::*;
use crate::sigma::correlation::parse_correlation;

const S: i64 = 1_000_000_000;
const COUNT: &str =
    "{type: event_count, rules: [a], group-by: [U], timespan: 1m, condition: {gte: 3}}";
const VALUES: &str =
    "{type: value_count, rules: [a], group-by: [H], timespan: 5m, condition: {gte: 3, field: U}}";
const TEMPORAL: &str = "{type: temporal, rules: [a, b, c], group-by: [H], timespan: 5m}";
const ORDERED: &str = "{type: temporal_ordered, rules: [a, b, c], group-by: [H], timespan: 5m}";

/// `corrs`: "{correlation section}" or "name: {…}"; the detection rules are a, b and c.
fn engine(corrs: &[&str]) -> Result<Correlator, crate::sigma::error::RuleError> {
    let doc = |c: &&str| {
        let (name, body) = c
            .split_once(": {")
            .filter(|_| !c.starts_with('{'))
            .unwrap_or(("~", c));
        let y = format!(
            "title: t {name}\nname: {name}\ncorrelation: {{{}",
            body.trim_start_matches('{')
        );
        parse_correlation(&serde_saphyr::from_str(&y).unwrap()).unwrap()
    };
    let bases = ["a", "b", "c"].map(String::from);
    Correlator::new(corrs.iter().map(doc).collect(), &bases)
}

/// Feeds "rule@seconds:field,field …" ("~": missing) in order, then flushes;
/// returns (rule, time s, first s, count) per firing.
fn run(c: &mut Correlator, events: &str) -> Vec<(usize, i64, i64, u64)> {
    for e in events.split_whitespace() {
        let (rule, rest) = e.split_once('@').unwrap();
        let (t, fields) = rest.split_once(':').unwrap_or((rest, ""));
        let f: Vec<_> = fields
            .split(',')
            .map(|v| Some(v.to_string()).filter(|v| v != "~"))
            .collect();
        assert!(c.observe(rule, (t.parse::<f64>().unwrap() * 1e9) as i64, &f));
    }
    c.flush()
        .iter()
        .map(|f| (f.rule, f.time / S, f.first / S, f.count))
        .collect()
}

fn fire(corrs: &[&str], events: &str) -> Vec<(usize, i64, i64, u64)> {
    run(&mut engine(corrs).unwrap(), events)
}

#[test]
fn event_count_fires_once_per_burst_again_after_draining_and_per_group() {
    let bob = "a@0:b a@10:b a@20:b a@30:b a@50:b a@70:b a@200:b a@210:b a@220:b";
    assert_eq!(fire(&[COUNT], bob), [(0, 20, 0, 3), (0, 220, 200, 3)]);
    let mixed = "a@0:b a@1:e a@2:~ a@3:b a@4:e a@5:~ a@6:~";
    assert_eq!(
        fire(&[COUNT], mixed),
        [(0, 6, 2, 3)],
        "only the missing-U group reaches 3"
    );
}

#[test]
fn burst_straddling_a_fixed_minute_boundary_fires_and_windows_are_shorter_than_timespan() {
    // A tumbling window cut at 00:01:00 sees 2 then 3 of these; a sliding one sees all 5.
    let five = COUNT.replace("gte: 3", "gte: 5");
    assert_eq!(
        fire(&[&five], "a@50:x a@55:x a@60:x a@65:x a@70:x"),
        [(0, 70, 50, 5)]
    );
    let two = COUNT.replace("gte: 3", "gte: 2");
    assert_eq!(fire(&[&two], "a@0:x a@60:x"), []);
    assert_eq!(fire(&[&two], "a@0:x a@59.999999999:x"), [(0, 59, 0, 2)]);
}

#[test]
fn value_count_counts_distinct_values_not_repeats() {
    assert_eq!(
        fire(&[VALUES], "a@0:h,u1 a@1:h,u2 a@2:h,u1 a@3:h,~ a@4:h2,u3"),
        []
    );
    let mut c = engine(&[VALUES]).unwrap();
    assert_eq!(c.fields_for("a"), ["H", "U"]);
    for (t, u) in [(0, "u2"), (1, "u2"), (2, "u0"), (3, "u1")] {
        c.observe("a", t * S, &[Some("h".into()), Some(u.into())]);
    }
    let f = &c.flush()[0];
    assert_eq!(
        (f.count, f.events, f.time, f.values.clone().unwrap()),
        (3, 4, 3 * S, ["u0", "u1", "u2"].map(String::from).to_vec())
    );
}

#[test]
fn temporal_fires_in_any_order_and_ordered_needs_the_listed_order_at_increasing_times() {
    assert_eq!(fire(&[TEMPORAL], "c@0:h a@10:h b@20:h"), [(0, 20, 0, 3)]);
    assert_eq!(
        fire(&[TEMPORAL], "c@0:h a@10:h b@300:h"),
        [],
        "not within 5m"
    );
    assert_eq!(
        fire(&[TEMPORAL], "c@0:h a@10:h b@20:h2"),
        [],
        "not in one group"
    );
    assert_eq!(
        fire(&[ORDERED], "a@0:h c@5:h b@10:h c@20:h"),
        [(0, 20, 0, 3)]
    );
    assert_eq!(fire(&[ORDERED], "c@0:h b@10:h a@20:h"), [], "reverse order");
    assert_eq!(
        fire(&[ORDERED], "a@0:h b@10:h c@10:h"),
        [],
        "a tie is not an order"
    );
    assert_eq!(
        fire(&[ORDERED], "a@0:h b@10:h c@300:h"),
        [],
        "not within 5m"
    );
}

#[test]
fn lt_is_judged_once_the_data_anchored_window_has_ended() {
    let mut c = engine(&[&COUNT.replace("gte", "lt")]).unwrap();
    for (t, u) in [
        (0, "sparse"),
        (30, "sparse"),
        (0, "busy"),
        (10, "busy"),
        (20, "busy"),
    ] {
        c.observe("a", t * S, &[Some(u.into())]);
    }
    assert_eq!(c.advance(60 * S - 1), [], "[0s, 60s) is still open");
    let f = &c.advance(60 * S);
    assert_eq!(
        (f.len(), f[0].group[0].1.as_deref(), f[0].count, f[0].time),
        (1, Some("sparse"), 2, 60 * S - 1)
    );
    assert_eq!(
        run(&mut c, "a@70:sparse"),
        [(0, 129, 70, 1)],
        "70s opened a new window"
    );
}

#[test]
fn chained_rules_fire_on_the_spec_example_and_hide_the_intermediate_step() {
    let outer = "{type: temporal_ordered, rules: [many, b], group-by: [U], timespan: 10m}";
    let inner = COUNT.replace("gte: 3", "gte: 10").replace("1m", "10m");
    let inner = format!("many: {inner}");
    let fails: String = (0..12).map(|i| format!("a@{}:bob ", i * 10)).collect();
    let mut c = engine(&[outer, &inner]).unwrap();
    assert!(
        !c.emits_alone("a") && !c.emits_alone("many") && !c.emits_alone("b") && c.emits_alone("c")
    );
    let f = run(&mut c, &format!("{fails} b@200:bob b@201:eve"));
    assert_eq!(
        f,
        [(1, 90, 0, 10), (0, 200, 110, 2)],
        "the chain starts at the newest match"
    );
    assert_eq!(
        fire(&[outer, &inner], &format!("b@0:bob {fails}")),
        [(1, 90, 0, 10)]
    );
}

#[test]
fn aliases_group_different_fields_of_different_rules() {
    let r = "{type: temporal, rules: [a, b], group-by: [in], timespan: 10s, aliases: {in: {a: dst, b: src}}}";
    let mut c = engine(&[r]).unwrap();
    assert_eq!([c.fields_for("a"), c.fields_for("b")], [["dst"], ["src"]]);
    assert_eq!(
        run(&mut c, "a@0:10.0.0.5 b@1:1.2.3.4 b@2:10.0.0.5"),
        [(0, 2, 0, 2)]
    );
}

#[test]
fn arrival_order_and_watermark_steps_do_not_change_the_firings() {
    let (mut ev, mut x) = (Vec::new(), 7u64);
    for i in 0..600i64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let f = [
            ["u1", "u2", "u3", "u4"][(x >> 40) as usize % 4],
            ["h1", "h2"][(x >> 50) as usize % 2],
        ];
        ev.push((
            ["a", "b", "c"][(x >> 33) as usize % 3],
            i * 7 * S + (x >> 20) as i64 % (9 * S),
            f,
        ));
    }
    let mk = || engine(&[&COUNT.replace("[U]", "[H]"), VALUES, TEMPORAL, ORDERED]).unwrap();
    let fields = |c: &Correlator, r: &str, f: [&str; 2]| -> Vec<Option<String>> {
        c.fields_for(r)
            .iter()
            .map(|n| Some(f[(n == "H") as usize].to_string()))
            .collect()
    };
    let mut whole = mk();
    ev.iter()
        .rev()
        .for_each(|(r, t, f)| assert!(whole.observe(r, *t, &fields(&whole, r, *f))));
    let expected = whole.flush();
    assert!(
        (0..4).all(|r| expected.iter().any(|f| f.rule == r)),
        "every rule fires"
    );
    ev.sort_by_key(|e| e.1);
    let (mut step, mut got) = (mk(), Vec::new());
    for (r, t, f) in &ev {
        got.extend(step.advance(*t));
        assert!(step.observe(r, *t, &fields(&step, r, *f)));
    }
    got.extend(step.flush());
    assert_eq!(got, expected);
}

#[test]
fn late_matches_are_refused_and_state_stays_bounded_under_a_sustained_stream() {
    let (mut c, mut fired, mut peak) = (engine(&[COUNT]).unwrap(), Vec::new(), 0);
    for t in 0..3600 {
        assert!(c.observe("a", t * S, &[Some("bob".into())]));
        fired.extend(c.advance(t * S).iter().map(|f| f.time / S));
        peak = peak.max(c.state_size());
    }
    assert_eq!(fired, [2], "a sustained stream fires once");
    assert!(
        peak <= 62,
        "a 1m window at 1/s holds ~60 matches, not {peak}"
    );
    assert!(!c.observe("a", 10 * S, &[Some("bob".into())]) && c.late_matches() == 1);
    assert!(c.advance(7200 * S).is_empty() && c.state_size() == 0);
}

#[test]
fn construction_names_the_rule_for_unknown_references_cycles_and_alias_gaps() {
    let err = |c: &[&str]| engine(c).err().unwrap();
    assert!(
        err(&[&TEMPORAL.replace("c]", "zz]")])
            .to_string()
            .contains("unknown rule 'zz'")
    );
    let x = COUNT.replace("[a]", "[ry]");
    let y = COUNT.replace("[a]", "[rx]");
    let e = err(&[&format!("rx: {x}"), &format!("ry: {y}")]);
    assert!(
        e.to_string()
            .contains("cycle among correlation 'rx', correlation 'ry'"),
        "{e}"
    );
    let gap =
        "{type: temporal, rules: [a, b], group-by: [ip], timespan: 1m, aliases: {ip: {a: src}}}";
    assert!(
        err(&[gap])
            .to_string()
            .contains("alias 'ip' has no entry for referenced rule 'b'")
    );
    let outer = COUNT.replace("[a]", "[rx]").replace("[U]", "[H]");
    assert!(
        err(&[&outer, &format!("rx: {COUNT}")])
            .to_string()
            .contains("'rx' lacks 'H'")
    );
    let base = [BaseRule {
        id: "uuid-1".into(),
        name: Some("a".into()),
    }];
    let c = Correlator::with_base_rules(engine(&[COUNT]).unwrap().rules, &base).unwrap();
    assert_eq!(c.fields_for("uuid-1"), ["U"]);
}

#[test]
fn chains_split_independent_correlations_and_keys_follow_the_outermost_group_by() {
    let outer = "{type: temporal_ordered, rules: [many, b], group-by: [U], timespan: 10m}";
    let inner = "many: {type: event_count, rules: [a], group-by: [U, H], timespan: 10m, condition: {gte: 3}}";
    let alone = "{type: value_count, rules: [c], group-by: [H], timespan: 5m, condition: {gte: 3, field: U}}";
    let all = engine(&[outer, inner, alone]).unwrap();
    assert_eq!(all.chains(), [vec![0, 1], vec![2]]);
    assert_eq!(
        all.route_key("a"),
        None,
        "two outermost correlations: no one key"
    );
    assert_eq!(all.outermost(), None);

    let chain = engine(&[inner, outer]).unwrap();
    assert_eq!(chain.outermost(), Some(1));
    assert_eq!(chain.fields_for("a"), ["U", "H"]);
    assert_eq!(
        chain.route_key("a"),
        Some(vec![0]),
        "a's matches keyed by U only"
    );
    assert_eq!(chain.route_key("b"), Some(vec![0]));
    assert_eq!(chain.route_key("c"), None, "not referenced");

    let aliased = "{type: temporal, rules: [a, b], group-by: [ip], timespan: 10s, aliases: {ip: {a: dst, b: src}}}";
    let c = engine(&[aliased]).unwrap();
    assert_eq!(
        [c.route_key("a"), c.route_key("b")],
        [Some(vec![0]), Some(vec![0])]
    );
    assert_eq!([c.fields_for("a"), c.fields_for("b")], [["dst"], ["src"]]);

    // One rule reached along two paths with different keys (an alias on one of them) has none.
    let top = "{type: temporal, rules: [inner2, a], group-by: [ip], timespan: 10m, aliases: {ip: {inner2: ip, a: src}}}";
    let inner2 = "inner2: {type: event_count, rules: [a], group-by: [ip], timespan: 10m, condition: {gte: 2}}";
    let c = engine(&[top, inner2]).unwrap();
    assert_eq!(c.route_key("a"), None);
}
