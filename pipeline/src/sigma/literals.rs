//! A column's Sigma literals, and the Aho-Corasick automata that find them in its values (see
//! `super::eval`, which compiles the rules and evaluates batches with these).

use std::collections::{BTreeSet, HashMap};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use datafusion::arrow::array::{Array, StringArray};

use super::bits::Bits;
use crate::presence::Presence;

/// What a literal must do relative to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Equals = 0,
    Contains = 1,
    StartsWith = 2,
    EndsWith = 3,
}

/// The literals of one column, for one case mode.
#[derive(Default)]
pub(super) struct Literals {
    /// Distinct literal texts (lower-cased for the case-insensitive automaton).
    texts: Vec<String>,
    index: HashMap<String, usize>,
    /// Per literal and kind, the slot its bits go to.
    slots: Vec<[Option<usize>; 4]>,
    /// Per literal, the logsource conditions (`RuleSet::whens`) of the rules that test it; `None`: read
    /// on every row (a condition tests it, or a rule without one).
    scopes: Vec<Option<BTreeSet<usize>>>,
    /// The automata over the literals, built once every rule is compiled.
    pub(super) groups: Vec<Group>,
}

/// An automaton over some of a column's literals, and the rows it scans.
pub(super) struct Group {
    automaton: AhoCorasick,
    /// Whether a value holds any of the literals, found with SIMD (see [`Presence`]): a value without
    /// any is not scanned by the automaton.
    pub(super) presence: Option<Presence>,
    /// Per pattern of the automaton, its literal's slots.
    slots: Vec<[Option<usize>; 4]>,
    /// The rows of these logsource conditions are scanned; `None`: every row.
    pub(super) whens: Option<Vec<usize>>,
}

impl Literals {
    /// The slot of literal `text` (lower-cased already in a case-insensitive set) at position `kind`, a
    /// new one counted in `slot_count` the first time; `under`: the logsource condition of the rule that
    /// tests it, `None` for every row.
    pub(super) fn add(
        &mut self,
        text: String,
        kind: Kind,
        under: Option<usize>,
        slot_count: &mut usize,
    ) -> usize {
        let id = *self.index.entry(text.clone()).or_insert_with(|| {
            self.texts.push(text);
            self.slots.push([None; 4]);
            self.scopes.push(Some(BTreeSet::new()));
            self.texts.len() - 1
        });
        match (under, &mut self.scopes[id]) {
            (Some(when), Some(whens)) => {
                whens.insert(when);
            }
            (None, scope) => *scope = None,
            (Some(_), None) => {}
        }
        *self.slots[id][kind as usize].get_or_insert_with(|| {
            *slot_count += 1;
            *slot_count - 1
        })
    }

    /// How many distinct literals (the work of building its automata).
    pub(super) fn len(&self) -> usize {
        self.texts.len()
    }

    /// The slot of literal `text` at position `kind`, if a rule tests it (tests).
    #[cfg(test)]
    pub(super) fn slot(&self, text: &str, kind: Kind) -> Option<usize> {
        self.slots[*self.index.get(text)?][kind as usize]
    }

    /// Builds the automata over the literals, once every rule is compiled: one over those read on every
    /// row, one over the others, scanning the union of their rules' conditions.
    pub(super) fn build(&mut self, column: &str, insensitive: bool) {
        // The literals read on every row, and the others with the union of their conditions.
        let mut everywhere = Vec::new();
        let mut scoped = Vec::new();
        let mut scoped_whens = BTreeSet::new();
        for (id, scope) in self.scopes.iter().enumerate() {
            match scope {
                Some(whens) => {
                    scoped.push(id);
                    scoped_whens.extend(whens);
                }
                None => everywhere.push(id),
            }
        }
        for (ids, whens) in [
            (everywhere, None),
            (scoped, Some(scoped_whens.into_iter().collect::<Vec<_>>())),
        ] {
            if ids.is_empty() {
                continue;
            }
            let texts: Vec<&str> = ids.iter().map(|&id| self.texts[id].as_str()).collect();
            let automaton = literal_automaton(&texts, insensitive);
            let presence = Presence::new(&texts, insensitive);
            tracing::debug!(
                column = %column,
                insensitive,
                literals = texts.len(),
                conditions = whens.as_ref().map(Vec::len),
                kind = ?automaton.kind(),
                presence = presence.is_some(),
                bytes = automaton.memory_usage(),
                "Sigma literal automaton built."
            );
            self.groups.push(Group {
                presence,
                automaton,
                slots: ids.iter().map(|&id| self.slots[id]).collect(),
                whens,
            });
        }
    }
}

impl Group {
    /// Scans the values of `strings` with the automaton, on the rows of `scope` (`None`: every row),
    /// setting the bits of the slots its literals match.
    pub(super) fn scan(
        &self,
        strings: &StringArray,
        out: &mut [Option<Bits>],
        scope: Option<&Bits>,
    ) {
        let rows = strings.len();
        let mut lower = Vec::new();
        let mut scan_row = |row: usize| {
            if strings.is_null(row) {
                return;
            }
            let value = strings.value(row);
            if let Some(presence) = &self.presence
                && !presence.holds_with(value.as_bytes(), &mut lower)
            {
                return;
            }
            let len = value.len();
            let mut set = |slot: usize| {
                out[slot].get_or_insert_with(|| Bits::zeros(rows)).set(row);
            };
            for m in self.automaton.find_overlapping_iter(value) {
                let s = &self.slots[m.pattern().as_usize()];
                if let Some(slot) = s[Kind::Contains as usize] {
                    set(slot);
                }
                let (start, end) = (m.start() == 0, m.end() == len);
                if start && let Some(slot) = s[Kind::StartsWith as usize] {
                    set(slot);
                }
                if end && let Some(slot) = s[Kind::EndsWith as usize] {
                    set(slot);
                }
                if start
                    && end
                    && let Some(slot) = s[Kind::Equals as usize]
                {
                    set(slot);
                }
            }
        };
        match scope {
            None => (0..rows).for_each(&mut scan_row),
            Some(scope) => scope.ones_iter().for_each(&mut scan_row),
        }
    }
}

/// The most memory a literal automaton (one [`Group`]) may take as a full DFA; a larger one is built as a
/// contiguous NFA instead. SigmaHQ Windows set over the OTRF events (`sigma bench`, 2 threads, medians of
/// 3 rounds), measured when a column had one automaton per case: DFAs everywhere 252k events/s; budget 16
/// MB 261k (74 MB less); 4 MB 243k (114 MB less); 1 MB 236k (136 MB less).
const DFA_BUDGET: usize = 4 << 20;

/// One automaton over `texts`. A full DFA where it is small: measured on the SigmaHQ Windows set over
/// OTRF events, evaluation runs at 175k events/s with DFAs everywhere against 131k with contiguous NFAs
/// everywhere; but most of the DFAs' memory is in a few columns with thousands of literals (command_line
/// alone: 80 MB of 166), where an NFA costs little: see `DFA_BUDGET`.
fn literal_automaton(texts: &[&str], insensitive: bool) -> AhoCorasick {
    let build = |kind| {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(insensitive)
            .match_kind(MatchKind::Standard)
            .kind(Some(kind))
            .build(texts)
            .expect("literal automata are built from plain strings")
    };
    if dfa_at_least(texts, insensitive) > DFA_BUDGET {
        return build(AhoCorasickKind::ContiguousNFA);
    }
    let automaton = build(AhoCorasickKind::DFA);
    match automaton.memory_usage() > DFA_BUDGET {
        true => build(AhoCorasickKind::ContiguousNFA),
        false => automaton,
    }
}

/// At least the memory a full DFA over `texts` takes, found without building it: a state per distinct
/// prefix of the literals (the trie's nodes), each a row of 4-byte state ids, one per byte class rounded
/// up to a power of two (a byte a literal holds, in both cases when `insensitive`, is a class of its own,
/// and every other byte at least one more). Literals differing only in case share their trie states in a
/// case-insensitive automaton, so they are counted once here, ASCII-lower-cased. A DFA over the large
/// columns' literals (hashes, images) took
/// tens of MB to build only to be dropped for exceeding `DFA_BUDGET`: a third of the time to load the
/// SigmaHQ Windows rules.
fn dfa_at_least(texts: &[&str], insensitive: bool) -> usize {
    let mut sorted: Vec<Vec<u8>> = texts
        .iter()
        .map(|t| match insensitive {
            true => t.as_bytes().to_ascii_lowercase(),
            false => t.as_bytes().to_vec(),
        })
        .collect();
    sorted.sort_unstable();
    let mut states = 1usize;
    let mut previous: &[u8] = &[];
    for text in &sorted {
        let shared = previous
            .iter()
            .zip(text)
            .take_while(|(a, b)| a == b)
            .count();
        states += text.len() - shared;
        previous = text;
    }
    let mut used = [false; 256];
    for &b in sorted.iter().flatten() {
        used[usize::from(b)] = true;
        if insensitive {
            used[usize::from(b.to_ascii_uppercase())] = true;
        }
    }
    let classes = used.iter().filter(|&&u| u).count() + 1;
    states
        .saturating_mul(classes.next_power_of_two())
        .saturating_mul(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dfa_estimate_stays_below_the_built_dfa_and_spares_building_what_the_budget_refuses() {
        // Hex digests, as the `Hashes` rules hold: pseudo-random, deterministic.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let hashes: Vec<String> = (0..600)
            .map(|_| {
                (0..4)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        format!("{x:016x}")
                    })
                    .collect()
            })
            .collect();
        let sets: Vec<Vec<&str>> = vec![
            vec!["whoami", "cmd.exe", "/all"],
            vec![
                r"\powershell.exe",
                r"\pwsh.exe",
                "-enc",
                "-encodedcommand",
                "Invoke-Expression",
            ],
            // Differing only in case: one trie path in a case-insensitive automaton.
            vec![
                "Invoke-Expression",
                "INVOKE-EXPRESSION",
                "invoke-expression",
            ],
            hashes.iter().map(String::as_str).collect(),
        ];
        for texts in &sets {
            for insensitive in [true, false] {
                let built = AhoCorasickBuilder::new()
                    .ascii_case_insensitive(insensitive)
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(texts)
                    .unwrap();
                let estimate = dfa_at_least(texts, insensitive);
                assert!(
                    estimate <= built.memory_usage(),
                    "{} literals, insensitive {insensitive}: estimate {estimate} > built {}",
                    texts.len(),
                    built.memory_usage()
                );
            }
        }
        let hashes = &sets[3];
        assert!(dfa_at_least(hashes, true) > DFA_BUDGET);
        assert_eq!(
            literal_automaton(hashes, true).kind(),
            AhoCorasickKind::ContiguousNFA
        );
        assert_eq!(
            literal_automaton(&sets[0], true).kind(),
            AhoCorasickKind::DFA
        );
    }
}
