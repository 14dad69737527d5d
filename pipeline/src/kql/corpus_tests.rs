//! Corpus parse-rate test and a dependency-free mutation fuzz test.

use super::{parse, parse_document};
use std::collections::BTreeMap;

/// The 364 hunting queries of the shared corpus, or `None` (the test is skipped, see `test_needs`).
fn load_corpus() -> Option<Vec<String>> {
    const FILE: &str = "kql/m365d-hunting-queries.json";
    let dir = crate::test_needs::corpus([FILE])?;
    let path = dir.join(FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()));
    let queries = doc["m365d"].as_array().expect("an array under `m365d`");
    Some(
        queries
            .iter()
            .map(|q| q.as_str().expect("queries are strings").to_string())
            .collect(),
    )
}

#[test]
fn corpus_parse_rate() {
    let Some(queries) = load_corpus() else {
        return;
    };
    let mut ok = 0;
    let mut failures: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, q) in queries.iter().enumerate() {
        match parse_document(q) {
            Ok(_) => ok += 1,
            Err(e) => {
                let msg = format!("expected {}, found {}", e.expected, e.found);
                let key: String = msg.chars().take(60).collect();
                failures.entry(key).or_default().push(i);
            }
        }
    }
    let strict_ok = queries.iter().filter(|q| parse(q).is_ok()).count();
    assert!(
        strict_ok <= ok,
        "a strict parse cannot accept more than a document parse"
    );
    eprintln!(
        "corpus: {ok} of {} documents parse ({strict_ok} as one query each; the others hold several \
         queries separated by blank lines, as the Defender and Sentinel editors allow)",
        queries.len()
    );
    for (msg, idx) in &failures {
        eprintln!("  {:3} × {msg}   (queries {idx:?})", idx.len());
    }
    let needed = (queries.len() * 95).div_ceil(100);
    assert!(
        ok >= needed,
        "only {ok} of {} parse (need {needed})",
        queries.len()
    );
}

/// xorshift64* PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const FRAGMENTS: &[&str] = &[
    "|",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "@",
    ";",
    ",",
    ".",
    "..",
    "=",
    "!",
    "~",
    "<",
    ">",
    "==",
    "=~",
    "!~",
    "*",
    "-",
    "`",
    "```",
    "//",
    "\n",
    " ",
    "$left",
    "let ",
    " by ",
    " on ",
    " and ",
    " or ",
    " has ",
    " in ",
    " !in~ ",
    " between ",
    " where ",
    "summarize ",
    "project-away ",
    "join ",
    "union ",
    "datetime(",
    "dynamic(",
    "typeof(",
    "1d",
    "0x",
    "1e",
    "h\"",
    "@\"",
    "é",
    "😀",
    "\u{a0}",
    "\\",
    "kind=",
    "hint.",
    "with ",
    "to typeof(",
];

const BUILTIN: &[&str] = &[
    "DeviceProcessEvents | where FileName =~ \"powershell.exe\" | take 10",
    "let x = dynamic([1, 2, {\"a\": 'b'}]);\nT | where a in (x) and b between (1 .. 5)\n| summarize c = count() by bin(Timestamp, 5m)",
    "let f = (a:string, T:(*)) { T | where x has a };\nf('x', datatable(x:string)['a', 'b'])",
    "union kind=outer (A | project x), B* | join kind=inner (C) on $left.x == $right.y | render timechart with (title=\"t\")",
];

fn mutate(rng: &mut Rng, chars: &mut Vec<char>) {
    let len = chars.len();
    match rng.below(6) {
        0 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below(8.min(len - i));
            chars.drain(i..i + n);
        }
        1 | 2 => {
            let frag = FRAGMENTS[rng.below(FRAGMENTS.len())];
            let i = rng.below(len + 1);
            chars.splice(i..i, frag.chars());
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below(20.min(len - i));
            let dup: Vec<char> = chars[i..i + n].to_vec();
            chars.splice(i..i, dup);
        }
        4 if len > 1 => {
            let (a, b) = (rng.below(len), rng.below(len));
            chars.swap(a, b);
        }
        5 => chars.truncate(rng.below(len + 1)),
        _ => {}
    }
}

fn check_no_panic(input: &str) {
    let result = std::panic::catch_unwind(|| parse(input));
    match result {
        Err(_) => panic!("parser panicked on input {input:?}"),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let lines = input.split('\n').count();
            assert!(
                e.line >= 1 && e.column >= 1 && e.line <= lines + 1,
                "bad position {}:{} for input {input:?}",
                e.line,
                e.column
            );
            let line_text = input.split('\n').nth(e.line - 1).unwrap_or("");
            assert!(
                e.column <= line_text.chars().count() + 1,
                "column past line end: {e}"
            );
            assert!(
                input.is_char_boundary(e.offset),
                "offset inside a char: {e}"
            );
        }
    }
}

#[test]
fn fuzz_mutations_never_panic() {
    let corpus = load_corpus();
    let seeds: Vec<String> = match &corpus {
        Some(c) => c.clone(),
        None => BUILTIN.iter().map(|s| s.to_string()).collect(),
    };
    let per_seed = if corpus.is_some() { 30 } else { 2500 };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0;
    let start = std::time::Instant::now();
    for seed in seeds.iter().chain(
        BUILTIN
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter(),
    ) {
        check_no_panic(seed);
        let base: Vec<char> = seed.chars().collect();
        for _ in 0..per_seed {
            let mut chars = base.clone();
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut chars);
            }
            let s: String = chars.into_iter().collect();
            check_no_panic(&s);
            runs += 1;
        }
    }
    println!("fuzz: {runs} mutated inputs in {:?}", start.elapsed());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for (open, close) in [("(", ")"), ("dynamic([", "])"), ("f(", ")"), ("x[", "]")] {
        let q = format!("print {}1{}", open.repeat(5000), close.repeat(5000));
        let e = parse(&q).unwrap_err();
        assert!(e.expected.contains("levels of nesting"), "{e}");
    }
    let q = format!("print {}1{}", "(".repeat(50), ")".repeat(50));
    assert!(parse(&q).is_ok());
    let q = format!("print {}", "-".repeat(5000));
    assert!(parse(&q).is_err());
    let q = format!("T{}", " | where (a".repeat(3000));
    assert!(parse(&q).is_err());
}
