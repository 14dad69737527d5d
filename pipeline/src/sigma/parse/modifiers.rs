//! The modifier chain of a `Field|mod1|mod2` item: modifier names, and each value modifier applied in turn
//! to a value as written (`contains`/`startswith`/`endswith`, `re` and its flags, `cidr`, `exists`,
//! `fieldref`, comparisons, `cased`, and the encodings of [`super::encodings`]).

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::detection::{SPiece, Val, normalise, parse_sigma_string, plain_text};
use super::encodings::{
    base64_offsets, cased_base64, expand_placeholders, insert_placeholders, utf16_bytes, windash,
};
use super::yaml::Yaml;
use super::{MAX_EXPANSION, ParseOptions};
use crate::sigma::error::{RefusalKind, RuleError};
use crate::sigma::ir::{Cmp, Position};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Modifier {
    Contains,
    StartsWith,
    EndsWith,
    All,
    Base64,
    Base64Offset,
    Utf16Le,
    Utf16Be,
    Utf16,
    Windash,
    Re,
    ReIgnoreCase,
    ReMultiLine,
    ReDotAll,
    Cidr,
    Exists,
    FieldRef,
    Compare(Cmp),
    Cased,
    Neq,
    Expand,
}

impl Modifier {
    pub(super) fn parse(name: &str) -> Result<Modifier, RuleError> {
        Ok(match name {
            "contains" => Modifier::Contains,
            "startswith" => Modifier::StartsWith,
            "endswith" => Modifier::EndsWith,
            "all" => Modifier::All,
            "base64" => Modifier::Base64,
            "base64offset" => Modifier::Base64Offset,
            "utf16le" | "wide" => Modifier::Utf16Le,
            "utf16be" => Modifier::Utf16Be,
            "utf16" => Modifier::Utf16,
            "windash" => Modifier::Windash,
            "re" => Modifier::Re,
            "i" | "ignorecase" => Modifier::ReIgnoreCase,
            "m" | "multiline" => Modifier::ReMultiLine,
            "s" | "dotall" => Modifier::ReDotAll,
            "cidr" => Modifier::Cidr,
            "exists" => Modifier::Exists,
            "fieldref" => Modifier::FieldRef,
            "lt" => Modifier::Compare(Cmp::Lt),
            "lte" => Modifier::Compare(Cmp::Lte),
            "gt" => Modifier::Compare(Cmp::Gt),
            "gte" => Modifier::Compare(Cmp::Gte),
            "cased" => Modifier::Cased,
            "neq" => Modifier::Neq,
            "expand" => Modifier::Expand,
            "minute" | "hour" | "day" | "week" | "month" | "year" => {
                return Err(RefusalKind::Modifier.error(format!(
                    "unsupported modifier `{name}`: time-part modifiers need the field parsed as a timestamp, which ghosthunt does not do"
                )));
            }
            "" => return Err(RefusalKind::Modifier.error("empty modifier")),
            _ => return Err(RefusalKind::Modifier.error(format!("unknown modifier `{name}`"))),
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Modifier::Contains => "contains",
            Modifier::StartsWith => "startswith",
            Modifier::EndsWith => "endswith",
            Modifier::All => "all",
            Modifier::Base64 => "base64",
            Modifier::Base64Offset => "base64offset",
            Modifier::Utf16Le => "utf16le",
            Modifier::Utf16Be => "utf16be",
            Modifier::Utf16 => "utf16",
            Modifier::Windash => "windash",
            Modifier::Re => "re",
            Modifier::ReIgnoreCase => "i",
            Modifier::ReMultiLine => "m",
            Modifier::ReDotAll => "s",
            Modifier::Cidr => "cidr",
            Modifier::Exists => "exists",
            Modifier::FieldRef => "fieldref",
            Modifier::Compare(Cmp::Lt) => "lt",
            Modifier::Compare(Cmp::Lte) => "lte",
            Modifier::Compare(Cmp::Gt) => "gt",
            Modifier::Compare(Cmp::Gte) => "gte",
            Modifier::Cased => "cased",
            Modifier::Neq => "neq",
            Modifier::Expand => "expand",
        }
    }

    /// Modifiers that change how the list of values is combined rather than a value.
    pub(super) fn is_list_level(self) -> bool {
        matches!(self, Modifier::All | Modifier::Neq)
    }
}

/// A scalar of the rule as written.
pub(super) struct Raw<'a> {
    pub(super) yaml: &'a Yaml,
}

impl Raw<'_> {
    fn text(&self) -> Option<String> {
        match self.yaml {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(_) | Yaml::Float(_) | Yaml::Bool(_) => self.yaml.scalar_text(),
            _ => None,
        }
    }

    fn number(&self) -> Option<f64> {
        match self.yaml {
            Yaml::Int(i) => Some(*i as f64),
            Yaml::Float(f) if f.is_finite() => Some(*f),
            Yaml::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    fn initial(&self) -> Val {
        match self.yaml {
            Yaml::Null => Val::Null,
            Yaml::Str(s) => Val::Str {
                s: parse_sigma_string(s),
                cased: false,
            },
            // Numbers and booleans: their text, taken literally (no wildcard meaning).
            other => Val::Str {
                s: normalise(vec![SPiece::Lit(other.scalar_text().unwrap_or_default())]),
                cased: false,
            },
        }
    }
}

fn parse_cidr(text: &str) -> Result<(IpAddr, u8), RuleError> {
    let t = text.trim();
    let (addr, prefix) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| {
        RefusalKind::Value.error(format!(
            "invalid CIDR `{text}`: `{addr}` is not an IP address"
        ))
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = match prefix {
        None => max,
        Some(p) => Some(p)
            .filter(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|&p| p <= max)
            .ok_or_else(|| {
                RefusalKind::Value.error(format!("invalid CIDR `{text}`: prefix must be 0..={max}"))
            })?,
    };
    let network = match ip {
        IpAddr::V4(v4) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    Ok((network, prefix))
}

pub(super) fn validate_regex(pattern: &str, i: bool, m: bool, s: bool) -> Result<(), RuleError> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(i)
        .multi_line(m)
        .dot_matches_new_line(s)
        .build()
        .map(|_| ())
        .map_err(|e| {
            let detail = e.to_string();
            let (kind, why) = if detail.contains("look-around") {
                (
                    RefusalKind::Unsupported,
                    "uses look-around, which the linear-time regex engine does not support",
                )
            } else if detail.contains("backreference") {
                (
                    RefusalKind::Unsupported,
                    "uses a backreference, which the linear-time regex engine does not support",
                )
            } else {
                (RefusalKind::Value, "does not compile")
            };
            let last = detail
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            kind.error(format!("regular expression `{pattern}` {why} ({last})"))
        })
}

/// Applies the value modifiers, left to right, to one value written in the rule.
pub(super) fn apply_modifiers(
    raw: &Raw,
    mods: &[Modifier],
    has_field: bool,
    opts: &ParseOptions,
) -> Result<Vec<Val>, RuleError> {
    let mut vals = vec![raw.initial()];
    for (applied, &m) in mods.iter().filter(|m| !m.is_list_level()).enumerate() {
        let first = applied == 0; // no value modifier applied before this one
        let name = m.name();
        let need_first = || -> Result<(), RuleError> {
            if first {
                Ok(())
            } else {
                Err(RefusalKind::Modifier.error(format!("`{name}` must be the first modifier")))
            }
        };
        vals = match m {
            Modifier::Re => {
                need_first()?;
                let pattern = raw
                    .text()
                    .ok_or_else(|| RefusalKind::Modifier.error("`re` needs a string value"))?;
                vec![Val::Re {
                    pattern,
                    i: false,
                    m: false,
                    s: false,
                }]
            }
            Modifier::Cidr => {
                need_first()?;
                let text = raw
                    .text()
                    .ok_or_else(|| RefusalKind::Modifier.error("`cidr` needs a string value"))?;
                let (net, prefix) = parse_cidr(&text)?;
                vec![Val::Cidr(net, prefix)]
            }
            Modifier::Exists => {
                need_first()?;
                if !has_field {
                    return Err(RefusalKind::Modifier.error("`exists` needs a field"));
                }
                match raw.yaml {
                    Yaml::Bool(b) => vec![Val::Exists(*b)],
                    _ => {
                        return Err(RefusalKind::Modifier.error("`exists` needs `true` or `false`"));
                    }
                }
            }
            Modifier::Compare(op) => {
                need_first()?;
                let n = raw.number().ok_or_else(|| {
                    RefusalKind::Value.error(format!(
                        "`{name}` needs a numeric value, not {:?}",
                        raw.yaml.text_or_kind()
                    ))
                })?;
                vec![Val::Num(op, n)]
            }
            _ => {
                let mut next = Vec::with_capacity(vals.len());
                for v in vals {
                    next.extend(apply_one(v, m, opts)?);
                }
                if next.len() > MAX_EXPANSION {
                    return Err(RefusalKind::Unsupported.error(format!(
                        "modifiers expand one value into more than {MAX_EXPANSION} variants"
                    )));
                }
                next
            }
        };
    }
    Ok(vals)
}

fn apply_one(v: Val, m: Modifier, opts: &ParseOptions) -> Result<Vec<Val>, RuleError> {
    let name = m.name();
    let wrong = |v: &Val| -> RuleError {
        RefusalKind::Modifier.error(match v {
            Val::Bytes(_, enc) => format!(
                "`{name}` cannot follow `{enc}`: UTF-16 bytes must be turned into text by `base64` or `base64offset` first"
            ),
            Val::Null => format!("`{name}` cannot apply to null"),
            Val::Re { .. } => format!("`{name}` cannot apply to a regular expression"),
            Val::Cidr(..) => format!("`{name}` cannot apply to a CIDR network"),
            Val::Num(..) => format!("`{name}` cannot apply to a numeric comparison"),
            Val::Exists(_) => format!("`{name}` cannot apply to an existence test"),
            Val::FieldRef { .. } => format!("`{name}` cannot apply to a field reference"),
            Val::Str { .. } => format!("`{name}` cannot apply to a string"),
        })
    };
    Ok(match (m, v) {
        (
            Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith,
            Val::Str { mut s, cased },
        ) => {
            if m != Modifier::EndsWith && s.last() != Some(&SPiece::Many) {
                s.push(SPiece::Many);
            }
            if m != Modifier::StartsWith && s.first() != Some(&SPiece::Many) {
                s.insert(0, SPiece::Many);
            }
            vec![Val::Str { s, cased }]
        }
        // A regular expression is matched anywhere in the value already (pySigma only pads it with `.*`).
        (Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith, v @ Val::Re { .. }) => {
            vec![v]
        }
        (
            Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith,
            Val::FieldRef {
                other,
                position,
                cased,
            },
        ) => {
            let (mut starts, mut ends) = match position {
                Position::Equals => (false, false),
                Position::StartsWith => (true, false),
                Position::EndsWith => (false, true),
                Position::Contains => (true, true),
            };
            match m {
                Modifier::Contains => (starts, ends) = (true, true),
                Modifier::StartsWith => starts = true,
                _ => ends = true,
            }
            let position = match (starts, ends) {
                (true, true) => Position::Contains,
                (true, false) => Position::StartsWith,
                (false, true) => Position::EndsWith,
                (false, false) => Position::Equals,
            };
            vec![Val::FieldRef {
                other,
                position,
                cased,
            }]
        }
        (Modifier::Base64 | Modifier::Base64Offset, v @ (Val::Str { .. } | Val::Bytes(..))) => {
            let data = match &v {
                Val::Bytes(b, _) => b.clone(),
                Val::Str { s, .. } => plain_text(s)
                    .ok_or_else(|| {
                        RefusalKind::Modifier.error(format!(
                            "`{name}` cannot encode a value with wildcards or placeholders"
                        ))
                    })?
                    .into_bytes(),
                _ => unreachable!(),
            };
            if data.is_empty() {
                return Err(RefusalKind::Value.error(format!("`{name}` of an empty value")));
            }
            if m == Modifier::Base64 {
                vec![cased_base64(B64.encode(&data))]
            } else {
                let variants: Vec<Val> = base64_offsets(&data)
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(cased_base64)
                    .collect();
                if variants.is_empty() {
                    return Err(RefusalKind::Value
                        .error("`base64offset` of a value too short to have a stable encoding"));
                }
                variants
            }
        }
        (Modifier::Utf16Le | Modifier::Utf16Be | Modifier::Utf16, Val::Str { s, .. }) => {
            let text = plain_text(&s).ok_or_else(|| {
                RefusalKind::Modifier.error(format!("`{name}` of a value with wildcards or placeholders cannot be matched (it would need `base64`, which refuses wildcards)"))
            })?;
            vec![Val::Bytes(utf16_bytes(&text, m), name)]
        }
        (Modifier::Windash, Val::Str { s, cased }) => windash(&s)?
            .into_iter()
            .map(|s| Val::Str { s, cased })
            .collect(),
        (Modifier::ReIgnoreCase, Val::Re { pattern, m, s, .. }) => vec![Val::Re {
            pattern,
            i: true,
            m,
            s,
        }],
        (Modifier::ReMultiLine, Val::Re { pattern, i, s, .. }) => vec![Val::Re {
            pattern,
            i,
            m: true,
            s,
        }],
        (Modifier::ReDotAll, Val::Re { pattern, i, m, .. }) => vec![Val::Re {
            pattern,
            i,
            m,
            s: true,
        }],
        (Modifier::ReIgnoreCase | Modifier::ReMultiLine | Modifier::ReDotAll, _) => {
            return Err(RefusalKind::Modifier
                .error(format!("`{name}` is a flag of `re` and must follow it")));
        }
        (Modifier::Cased, Val::Str { s, .. }) => vec![Val::Str { s, cased: true }],
        (
            Modifier::Cased,
            Val::FieldRef {
                other, position, ..
            },
        ) => vec![Val::FieldRef {
            other,
            position,
            cased: true,
        }],
        (Modifier::FieldRef, Val::Str { s, .. }) => {
            let other = plain_text(&s).ok_or_else(|| {
                RefusalKind::Modifier.error("`fieldref` needs a plain field name without wildcards")
            })?;
            if other.is_empty() {
                return Err(RefusalKind::Modifier.error("`fieldref` needs a field name"));
            }
            vec![Val::FieldRef {
                other,
                position: Position::Equals,
                cased: false,
            }]
        }
        (Modifier::Expand, Val::Str { s, cased }) => {
            let with = insert_placeholders(&s);
            expand_placeholders(&with, opts)?
                .into_iter()
                .map(|s| Val::Str { s, cased })
                .collect()
        }
        (_, v) => return Err(wrong(&v)),
    })
}
