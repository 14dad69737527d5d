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

    /// [`Presence::holds_with`] with this thread's scratch space.
    pub fn holds(&self, value: &[u8]) -> bool {
        thread_local! {
            static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        LOWER.with(|lower| match lower.try_borrow_mut() {
            Ok(mut lower) => self.holds_with(value, &mut lower),
            // Asked again while this thread's space is in use (not done today): space of its own.
            Err(_) => self.holds_with(value, &mut Vec::new()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an ASCII-case-insensitive (or sensitive) search for any of `literals` answers: the
    /// reference the SIMD test must agree with.
    fn reference(value: &str, literals: &[&str], insensitive: bool) -> bool {
        literals.iter().any(|l| match insensitive {
            true => value
                .as_bytes()
                .windows(l.len())
                .any(|w| w.eq_ignore_ascii_case(l.as_bytes())),
            false => value.contains(l),
        })
    }

    #[test]
    fn holds_answers_as_a_search_for_any_literal_in_either_case_mode() {
        let sets: [&[&str]; 4] = [
            &["lsass"],
            &["-enc", "-EncodedCommand", "FromBase64String"],
            &[
                "procdump", "mimikatz", "sekurlsa", "lsadump", "MiniDump", "ÉTÉ",
            ],
            &["://", "http", "ftp"],
        ];
        let values = [
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
        ];
        for literals in sets {
            for insensitive in [true, false] {
                let presence =
                    Presence::new(literals, insensitive).expect("Teddy on the CI machine");
                for value in values {
                    assert_eq!(
                        presence.holds(value.as_bytes()),
                        reference(value, literals, insensitive),
                        "{value:?} against {literals:?}, insensitive {insensitive}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_test_for_short_literals_too_many_or_none() {
        assert!(Presence::new(&["ab", "abcdef"], true).is_none());
        assert!(Presence::new::<&str>(&[], true).is_none());
        let many: Vec<String> = (0..65).map(|i| format!("literal{i}")).collect();
        assert!(Presence::new(&many, false).is_none());
        assert!(Presence::new(&many[..64], false).is_some());
    }
}
