//! The stateful engine for Sigma correlation rules, in event time.
//!
//! [`Correlator::observe`] buffers base-rule matches in any order; [`Correlator::advance`] processes
//! every buffered *instant* (distinct event time, ns) below the watermark in ascending order, so
//! firings depend only on the matches, never on arrival order or on where `advance` cut the stream.
//!
//! Per group (the `group-by` values after alias resolution; a missing field is its own `None`):
//! - **Measure**: event_count counts matches; value_count counts distinct values (tuples) of its
//!   field, a match lacking one adding none; temporal counts distinct referenced rules matched;
//!   temporal_ordered is all-or-nothing: matches of rules 1, 2, …, n at strictly increasing times
//!   (matches at the same instant are not ordered).
//! - **Upward-closed conditions** (once met, still met as the measure grows: `gt`, `gte`, temporal
//!   defaults) use **windows that slide with the events**: at instant t the window is
//!   (t − timespan, t], wherever clock boundaries fall. The rule *matches* at t when the condition
//!   holds on it, and *fires* when it matches but did not hold on (t − timespan, t): on the rising
//!   edge. A sustained attack fires once; after its window drained below the condition, a new
//!   burst fires again. Matches at the same instant are taken together.
//! - **Other conditions** (`lt`, `lte`, `eq`, `neq`, ranges): a window ending at each event would
//!   look sparse at every burst's tail, so windows are **anchored to the group's data**: a match
//!   outside any open window opens [a, a + timespan); when the watermark passes its end the window
//!   is judged once and fires at a + timespan − 1 ns. A group with no match is never seen.
//! - **Chaining**: a correlation feeds those referencing it a match at every instant it *matches*
//!   (not only when it fires), with its group-by values as fields; inner rules are evaluated first
//!   within an instant. The outer group-by (after aliases) must be among the inner group-by.
//! - **Output**: every firing is returned; `Firing::output` is false when a correlation referencing
//!   the rule has `generate: false` (the default): an intermediate step, not an alert.
//! - **Late** matches (below a watermark already passed) are refused by `observe` and counted.
//! - **Bounded**: after each `advance`, matches that left every window are dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::sigma::correlation::{Condition, CorrelationRule, Kind};

/// A detection rule a correlation may reference, by id or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRule {
    pub id: String,
    pub name: Option<String>,
}

/// A correlation rule fired for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// Index of the `CorrelationRule` given to `Correlator::new`.
    pub rule: usize,
    /// `(group-by field, value)` in `group-by` order.
    pub group: Vec<(String, Option<String>)>,
    /// Event time (ns) of the firing: the newest match (sliding) or the window's last ns (anchored).
    /// A rule fires at most once per group and instant: (rule, group, time) identifies a firing.
    pub time: i64,
    /// Oldest and newest match in the window (temporal_ordered: of the ordered chain).
    pub first: i64,
    pub last: i64,
    /// The measure that met the condition (matches, distinct values or distinct rules).
    pub count: u64,
    /// Matches in the window.
    pub events: u64,
    /// value_count: the distinct values, sorted (several fields: a JSON array per tuple).
    pub values: Option<Vec<String>>,
    /// False when a correlation referencing this one has `generate: false`.
    pub output: bool,
}

type Key = Vec<Option<String>>;
/// A match routed to a correlation: (position in its `rules`, group key, counted value).
type Match = (usize, Key, Option<String>);

struct Entry {
    time: i64,
    pos: usize,
    value: Option<String>,
}

#[derive(Default)]
struct Group {
    entries: VecDeque<Entry>,
    per_rule: Vec<u64>,
    values: BTreeMap<String, u64>,
    /// Anchored windows: whether a window is open (its timer is set).
    open: bool,
}

struct Corr {
    span: i64,
    cond: Condition,
    kind: Kind,
    sliding: bool,
    /// Per referenced rule: indices of the group-by and value fields in that rule's fields.
    inputs: Vec<(Vec<usize>, Vec<usize>)>,
    groups: HashMap<Key, Group>,
}

/// All correlation rules of a rule set, chained, with their state. Nodes `0..nb` are detection
/// rules; node `nb + c` is correlation `c`.
pub struct Correlator {
    rules: Vec<CorrelationRule>,
    corrs: Vec<Corr>,
    /// Correlations, referenced ones before those referencing them.
    order: Vec<usize>,
    nb: usize,
    idents: HashMap<String, usize>,
    /// Per node: the fields of its matches (detection: what `observe` takes; correlation: group-by).
    fields: Vec<Vec<String>>,
    /// Per node: (correlation, position in its `rules`) it feeds.
    consumers: Vec<Vec<(usize, usize)>>,
    /// Per node: whether it may alert on its own.
    alone: Vec<bool>,
    pending: BTreeMap<i64, Vec<(usize, Key)>>,
    timers: BTreeMap<i64, Vec<(usize, Key)>>,
    watermark: i64,
    late: u64,
}

impl Correlator {
    /// `base_names`: ids or names of the detection rules that exist, each string one rule.
    pub fn new(rules: Vec<CorrelationRule>, base_names: &[String]) -> Result<Correlator, String> {
        let base: Vec<_> = base_names
            .iter()
            .map(|n| BaseRule {
                id: n.clone(),
                name: None,
            })
            .collect();
        Correlator::with_base_rules(rules, &base)
    }

    /// Resolves references by id or name, aliases and chaining. Errors name the rule: unknown or
    /// ambiguous references, cycles, aliases missing a referenced rule, group-by a chained
    /// correlation does not provide.
    pub fn with_base_rules(rules: Vec<CorrelationRule>, base: &[BaseRule]) -> Result<Self, String> {
        let (nb, nc) = (base.len(), rules.len());
        let mut idents: HashMap<String, usize> = HashMap::new();
        let b_ids = base.iter().map(|b| [Some(&b.id), b.name.as_ref()]);
        let c_ids = rules.iter().map(|r| [r.id.as_ref(), r.name.as_ref()]);
        for (node, ids) in b_ids.chain(c_ids).enumerate() {
            for id in ids.into_iter().flatten() {
                if idents.insert(id.clone(), node).is_some_and(|n| n != node) {
                    return Err(format!("rule identifier '{id}' names two different rules"));
                }
            }
        }
        let who = |c: usize| {
            let r = &rules[c];
            format!("correlation '{}'", r.name.as_ref().unwrap_or(&r.title))
        };
        let mut refs: Vec<Vec<usize>> = Vec::new();
        for (c, r) in rules.iter().enumerate() {
            let mut nodes = Vec::new();
            for x in &r.rules {
                let who = who(c);
                let n = idents
                    .get(x)
                    .ok_or_else(|| format!("{who}: unknown rule '{x}'"))?;
                if nodes.contains(n) {
                    return Err(format!(
                        "{who}: references one rule twice (by id and by name)"
                    ));
                }
                nodes.push(*n);
            }
            for (alias, map) in &r.aliases {
                let foreign = |k: &&String| !idents.get(*k).is_some_and(|n| nodes.contains(n));
                if let Some(k) = map.keys().find(foreign) {
                    let who = who(c);
                    return Err(format!(
                        "{who}: alias '{alias}' maps '{k}', not a referenced rule"
                    ));
                }
            }
            refs.push(nodes);
        }
        // Evaluation order: repeatedly place the correlations whose references are all placed.
        let (mut order, mut placed) = (Vec::new(), vec![false; nc]);
        while order.len() < nc {
            let ready: Vec<usize> = (0..nc)
                .filter(|&c| !placed[c] && refs[c].iter().all(|&n| n < nb || placed[n - nb]))
                .collect();
            if ready.is_empty() {
                let stuck: Vec<String> = (0..nc).filter(|&c| !placed[c]).map(who).collect();
                let all = stuck.join(", ");
                return Err(format!("{}: correlation cycle among {all}", stuck[0]));
            }
            ready.iter().for_each(|&c| placed[c] = true);
            order.extend(ready);
        }

        let mut fields: Vec<Vec<String>> = vec![Vec::new(); nb];
        fields.extend(rules.iter().map(|r| r.group_by.clone()));
        let (mut consumers, mut alone) = (vec![Vec::new(); nb + nc], vec![true; nb + nc]);
        let mut corrs = Vec::new();
        for (c, r) in rules.iter().enumerate() {
            let mut inputs = Vec::new();
            for (pos, &node) in refs[c].iter().enumerate() {
                let ids = idents.iter().filter(|e| *e.1 == node);
                let ids: Vec<&str> = ids.map(|e| e.0.as_str()).collect();
                let (rule, who) = (&r.rules[pos], who(c));
                let mut index = |f: &String| -> Result<usize, String> {
                    let field = r.resolve_field(f, &ids).ok_or_else(|| {
                        format!("{who}: alias '{f}' has no entry for referenced rule '{rule}'")
                    })?;
                    let have = &mut fields[node];
                    match have.iter().position(|x| *x == field) {
                        Some(i) => Ok(i),
                        None if node < nb => {
                            have.push(field);
                            Ok(have.len() - 1)
                        }
                        None => Err(format!(
                            "{who}: '{rule}' lacks '{field}': it groups by {have:?}"
                        )),
                    }
                };
                let group: Result<Vec<_>, _> = r.group_by.iter().map(&mut index).collect();
                let value: Result<Vec<_>, _> = r.value_fields().iter().map(&mut index).collect();
                inputs.push((group?, value?));
                consumers[node].push((c, pos));
                alone[node] &= r.generate;
            }
            let (cond, kind) = (r.effective_condition(), r.kind.clone());
            let sliding = cond.is_upward_closed(r.max_count());
            let span = r.timespan.as_nanos() as i64;
            let groups = HashMap::new();
            corrs.push(Corr {
                span,
                cond,
                kind,
                sliding,
                inputs,
                groups,
            });
        }
        Ok(Correlator {
            rules,
            corrs,
            order,
            nb,
            idents,
            fields,
            consumers,
            alone,
            pending: BTreeMap::new(),
            timers: BTreeMap::new(),
            watermark: i64::MIN,
            late: 0,
        })
    }

    /// The fields `observe` expects for a match of detection rule `rule` (id or name): group-by and
    /// value fields of every correlation referencing it, aliases resolved. Empty if unreferenced.
    pub fn fields_for(&self, rule: &str) -> Vec<String> {
        let node = self.idents.get(rule).filter(|&&n| n < self.nb);
        node.map_or(Vec::new(), |&n| self.fields[n].clone())
    }

    /// Whether some correlation references detection rule `rule` (id or name).
    pub fn references(&self, rule: &str) -> bool {
        self.idents
            .get(rule)
            .is_some_and(|&n| n < self.nb && !self.consumers[n].is_empty())
    }

    /// Whether detection or correlation rule `rule` (id or name) should alert on its own: false when
    /// a correlation referencing it has `generate: false`.
    pub fn emits_alone(&self, rule: &str) -> bool {
        self.idents.get(rule).is_none_or(|&n| self.alone[n])
    }

    /// Detection rule `rule` (id or name) matched an event at `time` (ns since the epoch) with
    /// `fields` aligned with [`Correlator::fields_for`]; buffered until the watermark passes `time`.
    /// Returns false, counting it, for a late match (below a watermark already passed): the caller
    /// dead-letters the event. Rules no correlation references, and correlation rules (chaining is
    /// internal), are ignored.
    pub fn observe(&mut self, rule: &str, time: i64, fields: &[Option<String>]) -> bool {
        if time < self.watermark {
            self.late += 1;
            return false;
        }
        let node = self.idents.get(rule).copied();
        if let Some(n) = node.filter(|&n| n < self.nb && !self.consumers[n].is_empty()) {
            let mut f = fields.to_vec();
            f.resize(self.fields[n].len(), None);
            self.pending.entry(time).or_default().push((n, f));
        }
        true
    }

    /// Event time reached `watermark`: processes every instant below it in time order and returns
    /// the firings ordered by (time, rule, group).
    pub fn advance(&mut self, watermark: i64) -> Vec<Firing> {
        let mut out = Vec::new();
        while let Some(t) = self.next_instant().filter(|&t| t < watermark) {
            self.instant(t, &mut out);
        }
        self.watermark = self.watermark.max(watermark);
        for c in self.corrs.iter_mut().filter(|c| c.sliding) {
            let limit = self.watermark.saturating_sub(c.span);
            c.groups.retain(|_, g| {
                g.drain_until(limit);
                !g.entries.is_empty()
            });
        }
        out
    }

    /// End of input: processes everything and judges every open window (for `lt`, as if nothing
    /// more could come: not for a restartable shutdown).
    pub fn flush(&mut self) -> Vec<Firing> {
        let mut out = self.advance(i64::MAX);
        while let Some(t) = self.next_instant() {
            self.instant(t, &mut out);
        }
        out
    }

    /// Buffered matches plus, per group, its held matches and one for the group itself.
    pub fn state_size(&self) -> usize {
        let groups = self.corrs.iter().flat_map(|c| c.groups.values());
        self.pending.values().map(Vec::len).sum::<usize>()
            + groups.map(|g| g.entries.len() + 1).sum::<usize>()
    }

    /// Matches refused by `observe` as late.
    pub fn late_matches(&self) -> u64 {
        self.late
    }

    fn next_instant(&self) -> Option<i64> {
        let (a, b) = (self.pending.keys().next(), self.timers.keys().next());
        a.into_iter().chain(b).min().copied()
    }

    /// Processes instant `t`: new matches, then each correlation in order (its inbox complete).
    fn instant(&mut self, t: i64, out: &mut Vec<Firing>) {
        let mut inbox: Vec<Vec<Match>> = vec![Vec::new(); self.corrs.len()];
        for (node, fields) in self.pending.remove(&t).unwrap_or_default() {
            self.feed(node, &fields, &mut inbox);
        }
        let mut due: Vec<Vec<Key>> = vec![Vec::new(); self.corrs.len()];
        for (c, key) in self.timers.remove(&t).unwrap_or_default() {
            due[c].push(key);
        }
        let start = out.len();
        for i in 0..self.order.len() {
            let c = self.order[i];
            let (corr, n) = (&mut self.corrs[c], self.rules[c].rules.len());
            let mut matched: Vec<(Key, Option<Firing>)> = Vec::new();
            let mut before: BTreeMap<Key, u64> = BTreeMap::new();
            for (pos, key, value) in std::mem::take(&mut inbox[c]) {
                let g = corr.groups.entry(key.clone());
                let g = g.or_insert_with(|| Group::new(n));
                if corr.sliding && !before.contains_key(&key) {
                    g.drain_until(t - corr.span);
                    before.insert(key.clone(), g.measure(&corr.kind));
                } else if !corr.sliding && !g.open {
                    g.open = true;
                    let end = t.saturating_add(corr.span - 1);
                    self.timers.entry(end).or_default().push((c, key));
                }
                g.push(Entry {
                    time: t,
                    pos,
                    value,
                });
            }
            for (key, pre) in before {
                let (g, now) = (&corr.groups[&key], corr.groups[&key].measure(&corr.kind));
                if corr.cond.holds(now) {
                    let fire = !corr.cond.holds(pre);
                    matched.push((key, fire.then(|| g.firing(c, t, now, &corr.kind))));
                }
            }
            due[c].sort();
            for key in std::mem::take(&mut due[c]) {
                let g = corr
                    .groups
                    .remove(&key)
                    .expect("an open window has a group");
                let now = g.measure(&corr.kind);
                if corr.cond.holds(now) {
                    matched.push((key, Some(g.firing(c, t, now, &corr.kind))));
                }
            }
            for (key, fire) in matched {
                self.feed(self.nb + c, &key, &mut inbox);
                if let Some(mut f) = fire {
                    f.output = self.alone[self.nb + c];
                    f.group = self.rules[c].group_by.iter().cloned().zip(key).collect();
                    out.push(f);
                }
            }
        }
        out[start..].sort_by(|a, b| (a.rule, &a.group).cmp(&(b.rule, &b.group)));
    }

    /// Routes a match of `node` to the inboxes of the correlations it feeds.
    fn feed(&self, node: usize, fields: &[Option<String>], inbox: &mut [Vec<Match>]) {
        for &(c, pos) in &self.consumers[node] {
            let (group, value) = &self.corrs[c].inputs[pos];
            let key = group.iter().map(|&i| fields[i].clone()).collect();
            let vals: Option<Vec<String>> = value.iter().map(|&i| fields[i].clone()).collect();
            let value = match vals {
                Some(mut v) if v.len() == 1 => v.pop(),
                Some(v) if v.len() > 1 => serde_json::to_string(&v).ok(),
                _ => None,
            };
            inbox[c].push((pos, key, value));
        }
    }
}

impl Group {
    fn new(n_rules: usize) -> Group {
        let per_rule = vec![0; n_rules];
        Group {
            per_rule,
            ..Group::default()
        }
    }

    fn push(&mut self, e: Entry) {
        self.per_rule[e.pos] += 1;
        if let Some(v) = &e.value {
            *self.values.entry(v.clone()).or_default() += 1;
        }
        self.entries.push_back(e);
    }

    /// Removes matches at or before `limit`.
    fn drain_until(&mut self, limit: i64) {
        while let Some(e) = self.entries.pop_front_if(|e| e.time <= limit) {
            self.per_rule[e.pos] -= 1;
            if let Some(v) = e.value
                && let Some(n) = self.values.get_mut(&v)
            {
                *n -= 1;
                if *n == 0 {
                    self.values.remove(&v);
                }
            }
        }
    }

    /// temporal_ordered: the latest-starting chain rule 1 < … < rule n (strictly increasing times),
    /// found greedily from the newest match backwards; `(start, end)`.
    fn ordered_chain(&self) -> Option<(i64, i64)> {
        let (mut want, mut bound, mut end) = (self.per_rule.len(), i64::MAX, None);
        for e in self.entries.iter().rev() {
            if e.pos + 1 == want && e.time < bound {
                (want, bound) = (e.pos, e.time);
                end.get_or_insert(e.time);
                if want == 0 {
                    return end.map(|end| (bound, end));
                }
            }
        }
        None
    }

    fn n_rules(&self) -> u64 {
        self.per_rule.len() as u64
    }

    fn measure(&self, kind: &Kind) -> u64 {
        match kind {
            Kind::EventCount => self.entries.len() as u64,
            Kind::ValueCount { .. } => self.values.len() as u64,
            Kind::Temporal => self.per_rule.iter().filter(|&&n| n > 0).count() as u64,
            Kind::TemporalOrdered => self.ordered_chain().map_or(0, |_| self.n_rules()),
        }
    }

    fn firing(&self, rule: usize, time: i64, count: u64, kind: &Kind) -> Firing {
        let span = match kind {
            Kind::TemporalOrdered => self.ordered_chain(),
            _ => self
                .entries
                .front()
                .zip(self.entries.back())
                .map(|(a, b)| (a.time, b.time)),
        };
        let (first, last) = span.unwrap_or((time, time));
        let values = matches!(kind, Kind::ValueCount { .. }).then(|| self.values.keys());
        let values = values.map(|v| v.cloned().collect());
        let (events, group, output) = (self.entries.len() as u64, Vec::new(), true);
        Firing {
            rule,
            group,
            time,
            first,
            last,
            count,
            events,
            values,
            output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::correlation::parse_correlation;

    const S: i64 = 1_000_000_000;
    const COUNT: &str =
        "{type: event_count, rules: [a], group-by: [U], timespan: 1m, condition: {gte: 3}}";
    const VALUES: &str = "{type: value_count, rules: [a], group-by: [H], timespan: 5m, condition: {gte: 3, field: U}}";
    const TEMPORAL: &str = "{type: temporal, rules: [a, b, c], group-by: [H], timespan: 5m}";
    const ORDERED: &str = "{type: temporal_ordered, rules: [a, b, c], group-by: [H], timespan: 5m}";

    /// `corrs`: "{correlation section}" or "name: {…}"; the detection rules are a, b and c.
    fn engine(corrs: &[&str]) -> Result<Correlator, String> {
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
            !c.emits_alone("a")
                && !c.emits_alone("many")
                && !c.emits_alone("b")
                && c.emits_alone("c")
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
        assert!(err(&[&TEMPORAL.replace("c]", "zz]")]).contains("unknown rule 'zz'"));
        let x = COUNT.replace("[a]", "[ry]");
        let y = COUNT.replace("[a]", "[rx]");
        let e = err(&[&format!("rx: {x}"), &format!("ry: {y}")]);
        assert!(
            e.contains("cycle among correlation 'rx', correlation 'ry'"),
            "{e}"
        );
        let gap = "{type: temporal, rules: [a, b], group-by: [ip], timespan: 1m, aliases: {ip: {a: src}}}";
        assert!(err(&[gap]).contains("alias 'ip' has no entry for referenced rule 'b'"));
        let outer = COUNT.replace("[a]", "[rx]").replace("[U]", "[H]");
        assert!(err(&[&outer, &format!("rx: {COUNT}")]).contains("'rx' lacks 'H'"));
        let base = [BaseRule {
            id: "uuid-1".into(),
            name: Some("a".into()),
        }];
        let c = Correlator::with_base_rules(engine(&[COUNT]).unwrap().rules, &base).unwrap();
        assert_eq!(c.fields_for("uuid-1"), ["U"]);
    }
}
