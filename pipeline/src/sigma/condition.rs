//! The Sigma `condition` grammar: a tokenizer and a precedence-climbing parser, then resolution of
//! search identifiers into the compiled [`Expr`].
//!
//! Grammar (the Sigma rules specification, "Condition"; operator precedence from least to most binding:
//! `or`, `and`, `not`, `x of …`, parentheses):
//!
//! ```text
//! or    := and ("or" and)*
//! and   := not ("and" not)*
//! not   := "not" not | atom
//! atom  := "(" or ")" | quant "of" target | identifier
//! quant := "1" | "any" | "all" | <positive integer>
//! target:= "them" | identifier pattern with `*` wildcards
//! ```
//!
//! Keywords are lower-case, as in the specification and pySigma. `1 of` and `all of` are the spec's; `any of`
//! is pySigma's synonym of `1 of`; `N of` (N > 1, "at least N") is accepted as an extension and expanded
//! into an OR of ANDs of combinations (refused beyond [`MAX_COMBINATIONS`]). `them` and patterns not
//! starting with `_` skip identifiers starting with `_` (the spec's convention). The deprecated aggregation
//! syntax (`… | count() by x > 5`) is refused: it belongs to correlation rules now.

use crate::sigma::error::{RefusalKind, RuleError};
use crate::sigma::ir::Expr;

/// Deepest nesting of parentheses / `not` accepted (guards the recursive parser's stack).
pub const MAX_DEPTH: usize = 128;
/// Largest number of identifier combinations an `N of` selector may expand into.
pub const MAX_COMBINATIONS: usize = 256;

/// How many of the matched identifiers must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// `1 of` / `any of`.
    Any,
    /// `all of`.
    All,
    /// `N of` with N ≥ 2: at least N.
    AtLeast(usize),
}

/// A parsed condition, before identifiers are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Ident(String),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// `quantifier of pattern`; `pattern` is `None` for `them`.
    Of {
        quantifier: Quantifier,
        pattern: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    Word(String),
}

fn tokenize(s: &str) -> Result<Vec<(usize, Tok)>, RuleError> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            out.push((i, Tok::LParen));
            chars.next();
        } else if c == ')' {
            out.push((i, Tok::RParen));
            chars.next();
        } else if c == '|' {
            return Err(RefusalKind::Unsupported.error(format!(
                "the aggregation syntax `{}` is deprecated (Sigma 2 replaced it by correlation rules) and not supported",
                s[i..].trim()
            )));
        } else if is_word_char(c) {
            let mut w = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if !is_word_char(c) {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push((i, Tok::Word(w)));
        } else {
            return Err(RefusalKind::Condition.error(format!(
                "unexpected character {c:?} at offset {i} in condition"
            )));
        }
    }
    Ok(out)
}

/// Identifier characters: pySigma's (`alphanums + "_-"`, plus `*` for patterns), and `.` which some
/// third-party rules use in identifier names.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '*' | '.')
}

fn is_keyword(w: &str) -> bool {
    matches!(w, "and" | "or" | "not" | "of")
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn describe_here(&self) -> String {
        match self.toks.get(self.pos) {
            Some((i, Tok::Word(w))) => format!("`{w}` at offset {i}"),
            Some((i, Tok::LParen)) => format!("`(` at offset {i}"),
            Some((i, Tok::RParen)) => format!("`)` at offset {i}"),
            None => "end of condition".to_string(),
        }
    }

    fn enter(&mut self) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(RefusalKind::Condition
                .error(format!("condition nests deeper than {MAX_DEPTH} levels")))
        } else {
            Ok(())
        }
    }

    fn or(&mut self) -> Result<Cond, RuleError> {
        self.enter()?;
        let mut items = vec![self.and()?];
        while self.peek_word("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self) -> Result<Cond, RuleError> {
        let mut items = vec![self.not()?];
        while self.peek_word("and") {
            self.pos += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Cond::And(items)
        })
    }

    fn not(&mut self) -> Result<Cond, RuleError> {
        if self.peek_word("not") {
            self.pos += 1;
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            Ok(Cond::Not(Box::new(inner)))
        } else {
            self.atom()
        }
    }

    fn atom(&mut self) -> Result<Cond, RuleError> {
        match self.toks.get(self.pos).cloned() {
            Some((_, Tok::LParen)) => {
                self.pos += 1;
                let inner = self.or()?;
                match self.peek() {
                    Some(Tok::RParen) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(RefusalKind::Condition
                        .error(format!("expected `)` but found {}", self.describe_here()))),
                }
            }
            Some((_, Tok::Word(w))) => {
                // A quantifier followed by `of` is a selector; otherwise the word is an identifier
                // (so an identifier may be named `all` or `1` as long as `of` does not follow).
                let next_is_of =
                    matches!(self.toks.get(self.pos + 1), Some((_, Tok::Word(x))) if x == "of");
                if next_is_of {
                    let quantifier = parse_quantifier(&w)?;
                    self.pos += 2;
                    let target = match self.toks.get(self.pos).cloned() {
                        Some((_, Tok::Word(t))) if !is_keyword(&t) => t,
                        _ => {
                            return Err(RefusalKind::Condition.error(format!(
                                "expected an identifier pattern or `them` after `{w} of`, found {}",
                                self.describe_here()
                            )));
                        }
                    };
                    self.pos += 1;
                    let pattern = if target == "them" { None } else { Some(target) };
                    return Ok(Cond::Of {
                        quantifier,
                        pattern,
                    });
                }
                if is_keyword(&w) {
                    return Err(RefusalKind::Condition.error(format!(
                        "expected an identifier but found {}",
                        self.describe_here()
                    )));
                }
                if w.contains('*') {
                    return Err(RefusalKind::Condition.error(format!(
                        "wildcard identifier `{w}` is only allowed after `1 of` / `all of`"
                    )));
                }
                self.pos += 1;
                Ok(Cond::Ident(w))
            }
            _ => Err(RefusalKind::Condition.error(format!(
                "expected an identifier, `not`, `(` or a selector but found {}",
                self.describe_here()
            ))),
        }
    }
}

fn parse_quantifier(w: &str) -> Result<Quantifier, RuleError> {
    match w {
        "1" | "any" => Ok(Quantifier::Any),
        "all" => Ok(Quantifier::All),
        _ => match w.parse::<usize>() {
            Ok(0) => Err(RefusalKind::Condition.error("`0 of` is not a valid quantifier")),
            Ok(n) => Ok(Quantifier::AtLeast(n)),
            Err(_) => Err(RefusalKind::Condition.error(format!(
                "invalid quantifier `{w}` before `of` (expected 1, any, all or a number)"
            ))),
        },
    }
}

/// Parses one condition string.
pub fn parse_condition(s: &str) -> Result<Cond, RuleError> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(RefusalKind::Condition.error("empty condition"));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let c = p.or()?;
    if p.pos != p.toks.len() {
        return Err(
            RefusalKind::Condition.error(format!("unexpected {} in condition", p.describe_here()))
        );
    }
    Ok(c)
}

/// `*`-glob match of an identifier pattern over a whole identifier.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic iterative wildcard matching with backtracking to the last `*`.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The identifiers a selector refers to, in definition order.
fn select<'a>(pattern: Option<&str>, idents: &'a [(String, Expr)]) -> Vec<&'a (String, Expr)> {
    idents
        .iter()
        .filter(|(name, _)| match pattern {
            None => !name.starts_with('_'),
            Some(p) => glob_match(p, name) && (p.starts_with('_') || !name.starts_with('_')),
        })
        .collect()
}

fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        out.push(idx.clone());
        // advance to the next combination in lexicographic order
        let mut i = k;
        while i > 0 {
            i -= 1;
            if idx[i] != i + n - k {
                idx[i] += 1;
                for j in i + 1..k {
                    idx[j] = idx[j - 1] + 1;
                }
                break;
            }
            if i == 0 {
                return out;
            }
        }
        if k == 0 {
            return out;
        }
    }
}

fn binomial(n: usize, k: usize) -> usize {
    let mut r: u128 = 1;
    for i in 0..k.min(n - k) {
        r = r * (n - i) as u128 / (i + 1) as u128;
        if r > usize::MAX as u128 {
            return usize::MAX;
        }
    }
    r as usize
}

/// Replaces identifiers and selectors by the search identifiers' expressions (`idents`, in definition
/// order). Fails on an undefined identifier or a selector matching nothing.
pub fn resolve(cond: &Cond, idents: &[(String, Expr)]) -> Result<Expr, RuleError> {
    Ok(match cond {
        Cond::Ident(name) => match idents.iter().find(|(n, _)| n == name) {
            Some((_, e)) => e.clone(),
            None => {
                return Err(RefusalKind::Condition.error(format!(
                    "condition references `{name}`, which is not a search identifier of the detection"
                )));
            }
        },
        Cond::Not(c) => Expr::Not(Box::new(resolve(c, idents)?)),
        Cond::And(v) => Expr::And(
            v.iter()
                .map(|c| resolve(c, idents))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(v) => Expr::Or(
            v.iter()
                .map(|c| resolve(c, idents))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Of {
            quantifier,
            pattern,
        } => {
            let chosen = select(pattern.as_deref(), idents);
            let what = pattern.as_deref().unwrap_or("them");
            if chosen.is_empty() {
                return Err(RefusalKind::Condition
                    .error(format!("`of {what}` matches no search identifier")));
            }
            let exprs: Vec<Expr> = chosen.iter().map(|(_, e)| e.clone()).collect();
            match quantifier {
                Quantifier::Any => Expr::Or(exprs),
                Quantifier::All => Expr::And(exprs),
                Quantifier::AtLeast(k) => {
                    let n = exprs.len();
                    if *k > n {
                        return Err(RefusalKind::Condition.error(format!(
                            "`{k} of {what}` asks for more identifiers than the {n} it matches"
                        )));
                    }
                    if binomial(n, *k) > MAX_COMBINATIONS {
                        return Err(RefusalKind::Condition.error(format!(
                            "`{k} of {what}` expands into more than {MAX_COMBINATIONS} combinations"
                        )));
                    }
                    Expr::Or(
                        combinations(n, *k)
                            .into_iter()
                            .map(|c| Expr::And(c.into_iter().map(|i| exprs[i].clone()).collect()))
                            .collect(),
                    )
                }
            }
        }
    })
}

#[cfg(test)]
#[path = "condition_tests.rs"]
mod tests;
