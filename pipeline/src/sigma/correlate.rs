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
use crate::sigma::error::{RefusalKind, RuleError};

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
    pub fn new(
        rules: Vec<CorrelationRule>,
        base_names: &[String],
    ) -> Result<Correlator, RuleError> {
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
    pub fn with_base_rules(
        rules: Vec<CorrelationRule>,
        base: &[BaseRule],
    ) -> Result<Self, RuleError> {
        let (nb, nc) = (base.len(), rules.len());
        let mut idents: HashMap<String, usize> = HashMap::new();
        let b_ids = base.iter().map(|b| [Some(&b.id), b.name.as_ref()]);
        let c_ids = rules.iter().map(|r| [r.id.as_ref(), r.name.as_ref()]);
        for (node, ids) in b_ids.chain(c_ids).enumerate() {
            for id in ids.into_iter().flatten() {
                if idents.insert(id.clone(), node).is_some_and(|n| n != node) {
                    return Err(RefusalKind::Correlation
                        .error(format!("rule identifier '{id}' names two different rules")));
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
                let n = idents.get(x).ok_or_else(|| {
                    RefusalKind::Correlation.error(format!("{who}: unknown rule '{x}'"))
                })?;
                if nodes.contains(n) {
                    return Err(RefusalKind::Correlation.error(format!(
                        "{who}: references one rule twice (by id and by name)"
                    )));
                }
                nodes.push(*n);
            }
            for (alias, map) in &r.aliases {
                let foreign = |k: &&String| !idents.get(*k).is_some_and(|n| nodes.contains(n));
                if let Some(k) = map.keys().find(foreign) {
                    let who = who(c);
                    return Err(RefusalKind::Correlation.error(format!(
                        "{who}: alias '{alias}' maps '{k}', not a referenced rule"
                    )));
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
                return Err(RefusalKind::Correlation
                    .error(format!("{}: correlation cycle among {all}", stuck[0])));
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
                let mut index = |f: &String| -> Result<usize, RuleError> {
                    let field = r.resolve_field(f, &ids).ok_or_else(|| {
                        RefusalKind::Correlation.error(format!(
                            "{who}: alias '{f}' has no entry for referenced rule '{rule}'"
                        ))
                    })?;
                    let have = &mut fields[node];
                    match have.iter().position(|x| *x == field) {
                        Some(i) => Ok(i),
                        None if node < nb => {
                            have.push(field);
                            Ok(have.len() - 1)
                        }
                        None => Err(RefusalKind::Correlation.error(format!(
                            "{who}: '{rule}' lacks '{field}': it groups by {have:?}"
                        ))),
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

    /// The correlation rules, as given.
    pub fn rules(&self) -> &[CorrelationRule] {
        &self.rules
    }

    /// The correlations split into chains that share no state: correlations joined by chaining (one
    /// referencing another) are one chain. Indices into [`Correlator::rules`], ascending; chains ordered
    /// by their first correlation.
    pub fn chains(&self) -> Vec<Vec<usize>> {
        fn find(root: &mut [usize], mut x: usize) -> usize {
            while root[x] != x {
                root[x] = root[root[x]];
                x = root[x];
            }
            x
        }
        let nc = self.rules.len();
        let mut root: Vec<usize> = (0..nc).collect();
        for inner in 0..nc {
            for &(outer, _) in &self.consumers[self.nb + inner] {
                let (a, b) = (find(&mut root, inner), find(&mut root, outer));
                root[a.max(b)] = a.min(b);
            }
        }
        let mut chains: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for c in 0..nc {
            let r = find(&mut root, c);
            chains.entry(r).or_default().push(c);
        }
        chains.into_values().collect()
    }

    /// For a correlator holding one chain: where the group-by values of its outermost correlation are
    /// among the fields of a match of detection rule `rule` (positions in [`Correlator::fields_for`]).
    /// Matches that differ there never meet in a group of any correlation of the chain (an inner
    /// correlation groups by at least the outer one's fields), so they may be evaluated apart. `None`
    /// when the chain has no such key — several outermost correlations, or aliases that give one match
    /// different keys along different paths: all its matches must then meet in one place — or when no
    /// correlation references `rule`.
    pub fn route_key(&self, rule: &str) -> Option<Vec<usize>> {
        let node = *self.idents.get(rule).filter(|&&n| n < self.nb)?;
        self.key_positions()?.remove(&node)
    }

    /// The one correlation no other references (index in [`Correlator::rules`]); `None` if there are
    /// several.
    pub fn outermost(&self) -> Option<usize> {
        let mut outermost =
            (0..self.rules.len()).filter(|&c| self.consumers[self.nb + c].is_empty());
        let top = outermost.next()?;
        outermost.next().is_none().then_some(top)
    }

    /// Per node, the positions of the outermost correlation's group-by values in its fields.
    fn key_positions(&self) -> Option<HashMap<usize, Vec<usize>>> {
        let top = self.outermost()?;
        let mut key: HashMap<usize, Vec<usize>> = HashMap::new();
        key.insert(self.nb + top, (0..self.rules[top].group_by.len()).collect());
        // Referencing correlations come after those they reference in `order`: outermost first here.
        for &c in self.order.iter().rev() {
            let Some(mine) = key.get(&(self.nb + c)).cloned() else {
                continue;
            };
            for (pos, name) in self.rules[c].rules.iter().enumerate() {
                let node = self.idents[name];
                let group = &self.corrs[c].inputs[pos].0;
                let theirs: Vec<usize> = mine.iter().map(|&i| group[i]).collect();
                match key.get(&node) {
                    Some(k) if *k != theirs => return None,
                    Some(_) => {}
                    None => {
                        key.insert(node, theirs);
                    }
                }
            }
        }
        Some(key)
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
#[path = "correlate_tests.rs"]
mod tests;
