//! The schema's JSON paths compiled once into an automaton over object keys, so that decoding walks each
//! record once and costs O(keys in the record), whatever the number of columns.
//!
//! Every path (`Event.EventData.Image`, `Event.UserData.*.SubjectUserName`) is inserted into a trie of keys;
//! the trie is then made deterministic (subset construction), because a `*` segment lets one key lead to
//! several trie nodes at once (the literal child and the wildcard child). Each state of the result knows, for
//! a key, the state the key's value is read in ([`FieldMap::next`]; `None`: nothing below is mapped, skip
//! it), and which (column, path priority) pairs end at it ([`State::terminals`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::schema::EventSchema;

/// A path ending at a state: the value there is a candidate for `column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    pub column: u32,
    /// The path's position in the column's list (0 wins over 1 …).
    pub priority: u16,
    /// The path has a `*` segment: the first match in document order wins among equals. A literal path that
    /// matches twice is a duplicate key, where the last one wins (as in `serde_json::Value`).
    pub wildcard: bool,
    /// The column takes objects and arrays as their JSON text.
    pub lenient: bool,
}

/// One state of the automaton.
#[derive(Debug, Default)]
pub struct State {
    children: HashMap<Box<str>, u32, BuildHasherDefault<KeyHasher>>,
    /// Where a key not in `children` leads (the wildcard children), if anywhere.
    other: Option<u32>,
    terminals: Box<[Terminal]>,
    lenient: bool,
}

impl State {
    pub fn terminals(&self) -> &[Terminal] {
        &self.terminals
    }

    /// Whether some path goes deeper than this state (an object here is walked).
    pub fn has_children(&self) -> bool {
        !self.children.is_empty() || self.other.is_some()
    }

    /// Whether a column ending here takes an object's JSON text.
    pub fn lenient(&self) -> bool {
        self.lenient
    }
}

/// The compiled paths of a schema.
#[derive(Debug)]
pub struct FieldMap {
    states: Vec<State>,
    /// The column that takes every scalar value of the record (see `schema::VALUES_COLUMN`).
    values: Option<u32>,
}

/// The state of the record's top-level object.
pub const ROOT: u32 = 0;

#[derive(Default)]
struct TrieNode {
    children: BTreeMap<String, usize>,
    wildcard: Option<usize>,
    terminals: Vec<Terminal>,
}

impl FieldMap {
    pub fn new(schema: &EventSchema) -> FieldMap {
        let mut trie = vec![TrieNode::default()];
        for (column, c) in schema.columns.iter().enumerate() {
            for (priority, path) in c.paths.iter().enumerate() {
                let mut node = 0;
                for key in path {
                    let next = if key == "*" {
                        trie[node].wildcard
                    } else {
                        trie[node].children.get(key).copied()
                    };
                    node = match next {
                        Some(n) => n,
                        None => {
                            trie.push(TrieNode::default());
                            let n = trie.len() - 1;
                            if key == "*" {
                                trie[node].wildcard = Some(n);
                            } else {
                                trie[node].children.insert(key.clone(), n);
                            }
                            n
                        }
                    };
                }
                trie[node].terminals.push(Terminal {
                    column: column as u32,
                    priority: u16::try_from(priority).expect("fewer than 65536 paths per column"),
                    wildcard: path.iter().any(|k| k == "*"),
                    lenient: c.lenient,
                });
            }
        }
        let mut map = FieldMap::determinize(&trie);
        map.values = schema.values_index.map(|i| i as u32);
        map
    }

    /// Subset construction: a state is a set of trie nodes at the same depth.
    fn determinize(trie: &[TrieNode]) -> FieldMap {
        let mut ids: HashMap<Vec<usize>, u32> = HashMap::new();
        let mut sets: Vec<Vec<usize>> = vec![vec![0]];
        ids.insert(vec![0], ROOT);
        let mut states = Vec::new();
        let mut intern = |set: Vec<usize>, sets: &mut Vec<Vec<usize>>| -> u32 {
            *ids.entry(set.clone()).or_insert_with(|| {
                sets.push(set);
                (sets.len() - 1) as u32
            })
        };
        let mut i = 0;
        while i < sets.len() {
            let set = sets[i].clone();
            let wildcards: BTreeSet<usize> = set.iter().filter_map(|&n| trie[n].wildcard).collect();
            let keys: BTreeSet<&String> =
                set.iter().flat_map(|&n| trie[n].children.keys()).collect();
            let mut state = State::default();
            for key in keys {
                let mut target = wildcards.clone();
                target.extend(set.iter().filter_map(|&n| trie[n].children.get(key)));
                let id = intern(target.into_iter().collect(), &mut sets);
                state.children.insert(key.as_str().into(), id);
            }
            if !wildcards.is_empty() {
                state.other = Some(intern(wildcards.into_iter().collect(), &mut sets));
            }
            let mut terminals: Vec<Terminal> = set
                .iter()
                .flat_map(|&n| trie[n].terminals.iter().copied())
                .collect();
            terminals.sort_by_key(|t| (t.column, t.priority));
            state.lenient = terminals.iter().any(|t| t.lenient);
            state.terminals = terminals.into();
            states.push(state);
            i += 1;
        }
        FieldMap {
            states,
            values: None,
        }
    }

    /// The column collecting every scalar value, if the schema has one.
    pub fn values_column(&self) -> Option<u32> {
        self.values
    }

    pub fn state(&self, id: u32) -> &State {
        &self.states[id as usize]
    }

    /// The state a key's value is read in, or `None` when no path goes through it.
    #[inline]
    pub fn next(&self, state: u32, key: &str) -> Option<u32> {
        let s = &self.states[state as usize];
        s.children.get(key).copied().or(s.other)
    }

    /// Number of states (for tests and sizing).
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// FxHash (rustc's hasher): object keys are short and trusted to be few per object, so a fast,
/// non-cryptographic hash beats SipHash here; a hostile key set can only make lookups slower.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            self.add(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
            bytes = &bytes[8..];
        }
        if bytes.len() >= 4 {
            self.add(u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as u64);
            bytes = &bytes[4..];
        }
        for &b in bytes {
            self.add(b as u64);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(columns: &str) -> EventSchema {
        let text = format!(
            "name = \"t\"\ntime_column = \"t\"\n[[columns]]\nname = \"t\"\ntype = \"timestamp\"\npaths = [\"t\"]\n{columns}"
        );
        EventSchema::parse(&text, "test").unwrap()
    }

    #[test]
    fn a_key_matching_a_literal_and_a_wildcard_reaches_both_paths() {
        let s = schema(
            "[[columns]]\nname = \"a\"\ntype = \"string\"\npaths = [\"E.*.x\", \"E.U.y\"]\n",
        );
        let map = FieldMap::new(&s);
        let e = map.next(ROOT, "E").unwrap();
        let u = map.next(e, "U").unwrap();
        let other = map.next(e, "V").unwrap();
        assert_ne!(u, other);
        assert_eq!(
            map.state(map.next(u, "x").unwrap()).terminals()[0].priority,
            0
        );
        assert_eq!(
            map.state(map.next(u, "y").unwrap()).terminals()[0].priority,
            1
        );
        assert!(map.next(other, "y").is_none());
        assert!(map.next(ROOT, "unmapped").is_none());
    }

    #[test]
    fn states_grow_with_distinct_paths_not_with_columns_times_paths() {
        let mut extra = String::new();
        for i in 0..300 {
            extra.push_str(&format!(
                "[[columns]]\nname = \"c{i}\"\ntype = \"string\"\npaths = [\"Event.EventData.F{i}\", \"F{i}\"]\n"
            ));
        }
        let map = FieldMap::new(&schema(&extra));
        // root, t, Event, EventData, 300 × (nested leaf, flat leaf)
        assert_eq!(map.len(), 4 + 600);
    }
}
