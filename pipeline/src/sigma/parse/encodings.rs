//! Value transformations behind the modifiers: pySigma's `windash` dash variants, `expand` placeholders,
//! UTF-16 encodings (`utf16le`/`utf16be`/`utf16`/`wide`) and `base64`/`base64offset`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::detection::{SPiece, Val, normalise, parse_sigma_string};
use super::modifiers::Modifier;
use super::{MAX_EXPANSION, ParseOptions};
use crate::sigma::error::{RefusalKind, RuleError};

const DASHES: [&str; 5] = ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"];

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// pySigma's windash: `\B[-/]\b` in each literal part → each of [`DASHES`], all combinations.
pub(super) fn windash(s: &[SPiece]) -> Result<Vec<Vec<SPiece>>, RuleError> {
    // Split literals into fixed text and dash slots.
    enum Slot {
        Fixed(SPiece),
        Dash,
    }
    let mut slots = Vec::new();
    let mut n_dash = 0u32;
    for p in s {
        match p {
            SPiece::Lit(l) => {
                let chars: Vec<char> = l.chars().collect();
                let mut acc = String::new();
                for (i, &c) in chars.iter().enumerate() {
                    let starts_word = (c == '-' || c == '/')
                        && (i == 0 || !is_word(chars[i - 1]))
                        && chars.get(i + 1).is_some_and(|&n| is_word(n));
                    if starts_word {
                        if !acc.is_empty() {
                            slots.push(Slot::Fixed(SPiece::Lit(std::mem::take(&mut acc))));
                        }
                        slots.push(Slot::Dash);
                        n_dash += 1;
                    } else {
                        acc.push(c);
                    }
                }
                if !acc.is_empty() {
                    slots.push(Slot::Fixed(SPiece::Lit(acc)));
                }
            }
            other => slots.push(Slot::Fixed(other.clone())),
        }
    }
    let count = 5usize.checked_pow(n_dash).filter(|&c| c <= MAX_EXPANSION);
    if count.is_none() {
        return Err(RefusalKind::Unsupported.error(format!(
            "windash would expand {n_dash} dashes into more than {MAX_EXPANSION} variants"
        )));
    }
    // Cartesian product, the first dash varying slowest (pySigma's order).
    let mut variants: Vec<Vec<SPiece>> = vec![Vec::new()];
    for slot in slots {
        match slot {
            Slot::Fixed(p) => variants.iter_mut().for_each(|v| v.push(p.clone())),
            Slot::Dash => {
                variants = variants
                    .into_iter()
                    .flat_map(|v| {
                        DASHES.iter().map(move |d| {
                            let mut v = v.clone();
                            v.push(SPiece::Lit(d.to_string()));
                            v
                        })
                    })
                    .collect();
            }
        }
    }
    Ok(variants.into_iter().map(normalise).collect())
}

/// `expand`: `%name%` in literal parts (not preceded by `\`) becomes a placeholder; `\%` becomes `%`.
pub(super) fn insert_placeholders(s: &[SPiece]) -> Vec<SPiece> {
    let mut out = Vec::new();
    for p in s {
        let SPiece::Lit(l) = p else {
            out.push(p.clone());
            continue;
        };
        let chars: Vec<char> = l.chars().collect();
        let mut acc: Vec<char> = Vec::new();
        let mut i = 0;
        let flush = |acc: &mut Vec<char>, out: &mut Vec<SPiece>| {
            let text: String = acc.drain(..).collect();
            if !text.is_empty() {
                out.push(SPiece::Lit(text.replace("\\%", "%")));
            }
        };
        while i < chars.len() {
            if chars[i] == '%' && (i == 0 || chars[i - 1] != '\\') {
                let mut j = i + 1;
                while j < chars.len() && is_word(chars[j]) {
                    j += 1;
                }
                if j > i + 1 && j < chars.len() && chars[j] == '%' {
                    flush(&mut acc, &mut out);
                    out.push(SPiece::Placeholder(chars[i + 1..j].iter().collect()));
                    i = j + 1;
                    continue;
                }
            }
            acc.push(chars[i]);
            i += 1;
        }
        flush(&mut acc, &mut out);
    }
    normalise(out)
}

/// Replaces every placeholder by each of its configured values (Sigma strings), all combinations.
pub(super) fn expand_placeholders(
    s: &[SPiece],
    opts: &ParseOptions,
) -> Result<Vec<Vec<SPiece>>, RuleError> {
    let mut variants: Vec<Vec<SPiece>> = vec![Vec::new()];
    for p in s {
        match p {
            SPiece::Placeholder(name) => {
                let values = opts.placeholders.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                    RefusalKind::Placeholder.error(format!("placeholder `%{name}%` has no configured values (configure it or disable the rule)"))
                })?;
                if variants.len().saturating_mul(values.len()) > MAX_EXPANSION {
                    return Err(RefusalKind::Unsupported.error(format!(
                        "placeholder expansion exceeds {MAX_EXPANSION} variants"
                    )));
                }
                variants = variants
                    .into_iter()
                    .flat_map(|v| {
                        values.iter().map(move |val| {
                            let mut v = v.clone();
                            v.extend(parse_sigma_string(val));
                            v
                        })
                    })
                    .collect();
            }
            other => variants.iter_mut().for_each(|v| v.push(other.clone())),
        }
    }
    Ok(variants.into_iter().map(normalise).collect())
}

pub(super) fn utf16_bytes(text: &str, m: Modifier) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2 + 2);
    if m == Modifier::Utf16 {
        out.extend_from_slice(&[0xFF, 0xFE]);
    }
    for unit in text.encode_utf16() {
        match m {
            Modifier::Utf16Be => out.extend_from_slice(&unit.to_be_bytes()),
            _ => out.extend_from_slice(&unit.to_le_bytes()),
        }
    }
    out
}

/// pySigma's base64offset: the value encoded after 0, 1 and 2 bytes of padding, with the characters that
/// depend on the unknown neighbouring bytes cut off.
pub fn base64_offsets(data: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END_CUT: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(data);
            let enc = B64.encode(&padded);
            let end = enc.len().saturating_sub(END_CUT[(data.len() + i) % 3]);
            enc.get(START[i]..end).unwrap_or("").to_string()
        })
        .collect()
}

pub(super) fn cased_base64(text: String) -> Val {
    Val::Str {
        s: normalise(vec![SPiece::Lit(text)]),
        cased: true,
    }
}
