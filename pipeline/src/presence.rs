//! Whether a text holds any of a few literals, found with SIMD: the test run before an automaton walks a
//! value, so that a value holding none of them is not walked at all. Sigma's literal groups use it, and
//! so do the hunts' case-insensitive text tests (`lower(x) LIKE '%…%'`, KQL's `contains`, `has`,
//! `has_any` and their kin).
//!
//! `aho-corasick` gives an ASCII-case-insensitive automaton no SIMD prefilter, only one that looks for
//! up to three distinct bytes; varied literals exceed that or meet it only with frequent bytes, and the
//! automaton then walks every byte (0.7 GB/s on the machines measured). For Sigma's `Mimikatz Use`, 20
//! keywords searched in every value of every Windows event, that was half of the evaluation's time over
//! the OTRF events (1.68 s of 3.44 on one thread); with this test first, 0.23 s. This searcher (Teddy) is built
//! case-sensitive over lower-cased literals and asked about the value lower-cased, which is the same
//! answer: ASCII-case-insensitive matching folds ASCII letters only, as `make_ascii_lowercase` does.

use std::cell::RefCell;

use aho_corasick::packed;

/// The most literals, and the shortest, a [`Presence`] is built for: Teddy takes up to 64, and short
/// literals would make it stop too often to pay.
const AT_MOST: usize = 64;
const SHORTEST: usize = 3;

/// The most scratch space a thread keeps for [`Presence::holds`]: a longer value's lower-cased copy is
/// freed after use.
const KEPT: usize = 64 * 1024;

thread_local! {
    /// Each thread's scratch space for [`Presence::holds`].
    static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Presence {
    searcher: packed::Searcher,
    /// ASCII letters match in any case.
    insensitive: bool,
}

impl Presence {
    /// The test for `literals`, or `None` where it is not built: more than 64 literals, one shorter
    /// than 3 bytes, none at all, or no SIMD searcher on this CPU (Teddy needs SSSE3 or AVX2 on
    /// x86-64, or aarch64's NEON).
    pub fn new<S: AsRef<str>>(literals: &[S], insensitive: bool) -> Option<Presence> {
        if literals.is_empty()
            || literals.len() > AT_MOST
            || literals.iter().any(|t| t.as_ref().len() < SHORTEST)
        {
            return None;
        }
        let searcher = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(literals.iter().map(|t| match insensitive {
                true => t.as_ref().to_ascii_lowercase(),
                false => t.as_ref().to_string(),
            }))
            .build()?;
        Some(Presence {
            searcher,
            insensitive,
        })
    }

    /// Whether `value` holds some literal (in any ASCII case, for an insensitive test); `lower` is
    /// scratch space for the lower-cased value.
    pub fn holds_with(&self, value: &[u8], lower: &mut Vec<u8>) -> bool {
        let asked = match self.insensitive {
            true => {
                lower.clear();
                lower.extend_from_slice(value);
                lower.make_ascii_lowercase();
                lower.as_slice()
            }
            false => value,
        };
        self.searcher.find(asked).is_some()
    }

    /// [`Presence::holds_with`] with this thread's scratch space for an insensitive test.
    pub fn holds(&self, value: &[u8]) -> bool {
        if !self.insensitive {
            // Nothing lower-cased: no scratch space (an empty `Vec` does not allocate).
            return self.holds_with(value, &mut Vec::new());
        }
        LOWER.with(|lower| match lower.try_borrow_mut() {
            Ok(mut lower) => {
                let found = self.holds_with(value, &mut lower);
                if lower.capacity() > KEPT {
                    *lower = Vec::new();
                }
                found
            }
            // Asked again while this thread's space is in use (not done today): space of its own.
            Err(_) => self.holds_with(value, &mut Vec::new()),
        })
    }
}

/// Whether this CPU has a SIMD searcher (Teddy: SSSE3 on x86-64, found at run time; aarch64), so that
/// [`Presence::new`] builds one (tests).
#[cfg(test)]
pub(crate) fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("ssse3");
    #[cfg(not(target_arch = "x86_64"))]
    return cfg!(target_arch = "aarch64");
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::{AhoCorasickBuilder, MatchKind};

    /// What the automaton the test stands in front of answers: any literal, ASCII letters in any case
    /// when `insensitive`.
    fn reference(literals: &[&str], insensitive: bool) -> impl Fn(&str) -> bool {
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(insensitive)
            .match_kind(MatchKind::LeftmostFirst)
            .build(literals)
            .unwrap();
        move |value| automaton.is_match(value)
    }

    #[test]
    fn holds_answers_as_the_automaton_does_in_either_case_mode() {
        if !simd() {
            eprintln!("no SIMD searcher on this CPU: Presence::new gives None, nothing to compare");
            return;
        }
        // 40 literals: more than Slim Teddy's 32, so Fat Teddy searches.
        let many: Vec<String> = (0..40).map(|i| format!("Needle{i:02}x")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let sets: Vec<&[&str]> = vec![
            &["lsass"],
            &["-enc", "-EncodedCommand", "FromBase64String"],
            &[
                "procdump", "mimikatz", "sekurlsa", "lsadump", "MiniDump", "ÉTÉ",
            ],
            &["://", "http", "ftp"],
            // Differing only in case, and prefixes of one another with the case kept.
            &["ABC", "abc", "abcd", "ABCDE"],
            &many,
        ];
        let mut values: Vec<String> = [
            "",
            "ls",
            "C:\\Windows\\System32\\LSASS.exe",
            "powershell.exe -ENC SQBFAFgA",
            "powershell -encodedcommand x",
            "rundll32 comsvcs.dll, MiniDump 624 C:\\temp\\l.dmp full",
            "certutil -urlcache -f HTTP://x/y z",
            "été ÉTÉ",
            "notepad.exe c:\\notes.txt",
            "sekurls",
            "a\u{0130}b lSaSs",
            "xAbCd",
            "needle07X and NEEDLE39x",
        ]
        .map(String::from)
        .to_vec();
        // Each literal at every offset of a long value (the start, across 16- and 32-byte blocks, the
        // last bytes), in its case and upper-cased, and the filler alone.
        let filler = "the quick brown fox jumps over the lazy dog, 0123456789; ".repeat(4);
        for literal in sets.iter().flat_map(|s| s.iter()) {
            for at in [0, 1, 15, 16, 30, 31, 33, 63, 64, 100, filler.len()] {
                let mut v = filler[..at].to_string();
                v.push_str(literal);
                v.push_str(&filler[at..]);
                values.push(v);
                values.push(format!("{}{}", &filler[..at], literal.to_uppercase()));
            }
        }
        values.push(filler);
        for literals in sets {
            for insensitive in [true, false] {
                let presence = Presence::new(literals, insensitive).expect("a SIMD searcher");
                let reference = reference(literals, insensitive);
                let mut scratch = Vec::new();
                for value in &values {
                    let expected = reference(value);
                    assert_eq!(
                        presence.holds(value.as_bytes()),
                        expected,
                        "{value:?} against {literals:?}, insensitive {insensitive}"
                    );
                    assert_eq!(
                        presence.holds_with(value.as_bytes(), &mut scratch),
                        expected
                    );
                }
            }
        }
    }

    #[test]
    fn a_thread_keeps_its_scratch_for_short_values_and_frees_it_after_a_long_one() {
        let Some(presence) = Presence::new(&["needle"], true) else {
            return;
        };
        let capacity = || LOWER.with(|l| l.borrow().capacity());
        assert!(presence.holds(b"a NEEDLE in a short value"));
        let short = capacity();
        assert!(short > 0);
        let mut long = "x".repeat(1 << 20);
        long.push_str("Needle");
        assert!(presence.holds(long.as_bytes()));
        assert_eq!(capacity(), 0);
        assert!(!presence.holds(b"nothing here"));
        assert!((1..=KEPT).contains(&capacity()));
    }

    #[test]
    fn no_test_for_short_literals_too_many_or_none() {
        assert!(Presence::new(&["ab", "abcdef"], true).is_none());
        assert!(Presence::new::<&str>(&[], true).is_none());
        let many: Vec<String> = (0..65).map(|i| format!("literal{i}")).collect();
        assert!(Presence::new(&many, false).is_none());
        if simd() {
            assert!(Presence::new(&many[..64], false).is_some());
        }
    }
}
