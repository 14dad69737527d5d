//! Tokenizer for KQL (follows KqlTokens.g4).
//!
//! Words are all lexed as [`TokenKind::Ident`]; the parser decides from
//! context whether a word is a keyword. Negated string operators (`!has`,
//! `!in~`, ...) and `in~` are single identifier tokens. Hyphenated operator
//! names (`project-away`) are three tokens that the parser joins when they
//! are adjacent.

use super::ast::Span;
use super::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    Ident(String),
    Str(String),
    Long(i64),
    Real(f64),
    /// Nanoseconds.
    Timespan(i64),
    /// `name(raw)` literals whose content is not tokenized:
    /// `datetime(...)`, `guid(...)`, `typeof(...)`, `int(...)`, `bool(...)`...
    TypedLit {
        ty: String,
        content: String,
    },
    Pipe,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Semi,
    Colon,
    Dot,
    DotDot,
    Assign,
    EqEq,
    NotEq,
    LtGt,
    Lt,
    Le,
    Gt,
    Ge,
    EqTilde,
    BangTilde,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    Question,
    FatArrow,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Words that become `!word` tokens when directly preceded by `!`.
const NEGATABLE: &[&str] = &[
    "has",
    "has_cs",
    "hasprefix",
    "hasprefix_cs",
    "hassuffix",
    "hassuffix_cs",
    "contains",
    "contains_cs",
    "startswith",
    "startswith_cs",
    "endswith",
    "endswith_cs",
    "in",
    "between",
];

/// Words followed by `(goo)` that form a single literal token.
const TYPED_LITERALS: &[&str] = &[
    "bool", "boolean", "int", "int32", "long", "int64", "real", "double", "decimal", "datetime",
    "date", "time", "timespan", "guid", "uuid", "uniqueid", "typeof",
];

/// Timespan unit suffixes and their length in nanoseconds.
fn timespan_unit(word: &str) -> Option<i128> {
    const NS: i128 = 1;
    const US: i128 = 1_000;
    const MS: i128 = 1_000_000;
    const S: i128 = 1_000_000_000;
    Some(match word {
        "d" | "day" | "days" => 86_400 * S,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600 * S,
        "m" | "min" | "minute" | "minutes" => 60 * S,
        "s" | "sec" | "second" | "seconds" => S,
        "ms" | "milli" | "millis" | "millisec" | "millisecond" | "milliseconds" => MS,
        "micro" | "micros" | "microsec" | "microsecond" | "microseconds" => US,
        "nano" | "nanos" | "nanosec" | "nanosecond" | "nanoseconds" => NS,
        "tick" | "ticks" => 100,
        _ => return None,
    })
}

/// Converts `digits[.digits]` × unit into nanoseconds, `None` on overflow.
pub(super) fn timespan_nanos(number: &str, unit: &str) -> Option<i64> {
    let unit = timespan_unit(unit)?;
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i128 = int_part.parse().ok()?;
    let mut total = whole.checked_mul(unit)?;
    // Fraction: only the first 18 digits matter at nanosecond precision.
    let frac = frac_part.get(..frac_part.len().min(18)).unwrap_or("");
    if !frac.is_empty() {
        let num: i128 = frac.parse().ok()?;
        let den = 10i128.checked_pow(frac.len() as u32)?;
        total = total.checked_add(num.checked_mul(unit)? / den)?;
    }
    i64::try_from(total).ok()
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | ' ' | '\r' | '\n' | '\u{c}' | '\u{a0}' | '\u{1680}' | '\u{180e}' | '\u{2000}'
            ..='\u{200b}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

/// Short description of a source character for error messages.
fn describe_char(c: char) -> String {
    if c == '\n' {
        "end of line".into()
    } else {
        format!("character `{}`", c.escape_debug())
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

/// Tokenizes `src`. Comments and whitespace are dropped; the result always
/// ends with an `Eof` token.
pub fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer {
        src,
        pos: 0,
        tokens: Vec::new(),
    };
    lx.run()?;
    let end = src.len();
    lx.tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span::new(end, end),
    });
    Ok(lx.tokens)
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn err(&self, at: usize, expected: &str, found: String) -> ParseError {
        ParseError::at(self.src, at, expected, found)
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            span: Span::new(start, self.pos),
        });
    }

    /// Advances over characters while `f` holds; returns the consumed text.
    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    fn run(&mut self) -> Result<(), ParseError> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            if is_space(c) {
                self.pos += c.len_utf8();
                continue;
            }
            if self.rest().starts_with("//") {
                self.take_while(|c| !matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'));
                continue;
            }
            // h"..." / H'...' / h@"..." obfuscated strings.
            if (c == 'h' || c == 'H') && self.string_starts_at(1) {
                self.pos += 1;
                let s = self.lex_string(start)?;
                self.push(TokenKind::Str(s), start);
                continue;
            }
            if self.string_starts_at(0) {
                let s = self.lex_string(start)?;
                self.push(TokenKind::Str(s), start);
                continue;
            }
            if c.is_ascii_digit() {
                self.lex_number(start)?;
                continue;
            }
            if is_ident_start(c) || (c == '$' && self.peek_at(1).is_some_and(is_ident_start)) {
                self.pos += 1;
                let word = format!("{c}{}", self.take_while(is_ident_char));
                self.lex_word(word, start)?;
                continue;
            }
            self.lex_punct(c, start)?;
        }
        Ok(())
    }

    /// Does a string literal start `skip` characters ahead?
    fn string_starts_at(&self, skip: usize) -> bool {
        let rest = self.rest().get(skip..).unwrap_or("");
        rest.starts_with('"')
            || rest.starts_with('\'')
            || rest.starts_with("@\"")
            || rest.starts_with("@'")
            || rest.starts_with("```")
            || rest.starts_with("~~~")
    }

    fn lex_word(&mut self, mut word: String, start: usize) -> Result<(), ParseError> {
        if word == "in" && self.peek() == Some('~') {
            self.pos += 1;
            word.push('~');
        }
        if TYPED_LITERALS.contains(&word.as_str()) {
            let save = self.pos;
            self.take_while(|c| c == ' ' || c == '\t');
            if self.peek() == Some('(') {
                let open = self.pos;
                self.pos += 1;
                let content = self.take_while(|c| c != ')').to_string();
                if self.peek() != Some(')') {
                    return Err(self.err(
                        open,
                        &format!("`)` closing the `{word}(` literal"),
                        "end of input".into(),
                    ));
                }
                self.pos += 1;
                self.push(TokenKind::TypedLit { ty: word, content }, start);
                return Ok(());
            }
            self.pos = save;
        }
        self.push(TokenKind::Ident(word), start);
        Ok(())
    }

    fn lex_string(&mut self, start: usize) -> Result<String, ParseError> {
        let rest = self.rest();
        if rest.starts_with("```") || rest.starts_with("~~~") {
            let delim = rest.get(..3).unwrap_or("```");
            let body = rest.get(3..).unwrap_or("");
            return match body.find(delim) {
                Some(i) => {
                    let s = body.get(..i).unwrap_or("").to_string();
                    self.pos += 3 + i + 3;
                    Ok(s)
                }
                None => Err(self.err(
                    start,
                    &format!("closing `{delim}` for the multi-line string started here"),
                    "end of input".into(),
                )),
            };
        }
        let verbatim = rest.starts_with('@');
        if verbatim {
            self.pos += 1;
        }
        let quote = self.peek().unwrap_or('"');
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.unterminated(start, quote, "end of input"));
            };
            if c == '\n' || c == '\r' {
                return Err(self.unterminated(start, quote, "end of line"));
            }
            self.pos += c.len_utf8();
            if c == quote {
                if verbatim && self.peek() == Some(quote) {
                    self.pos += 1;
                    out.push(quote);
                    continue;
                }
                return Ok(out);
            }
            if c == '\\' && !verbatim {
                self.lex_escape(&mut out);
            } else {
                out.push(c);
            }
        }
    }

    fn unterminated(&self, start: usize, quote: char, found: &str) -> ParseError {
        self.err(
            start,
            &format!("closing `{quote}` for the string literal started here"),
            found.into(),
        )
    }

    /// Handles the character(s) after a backslash. Unknown escapes are kept
    /// verbatim (backslash included) rather than rejected.
    fn lex_escape(&mut self, out: &mut String) {
        let Some(c) = self.peek() else {
            out.push('\\');
            return;
        };
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\\' | '"' | '\'' => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            self.pos += 1;
            out.push(s);
            return;
        }
        let (radix, max_len, skip) = match c {
            'x' => (16, 2, 1),
            'u' => (16, 4, 1),
            'U' => (16, 8, 1),
            '0'..='7' => (8, 3, 0),
            _ => {
                out.push('\\');
                return;
            }
        };
        let digits: String = self
            .rest()
            .chars()
            .skip(skip)
            .take(max_len)
            .take_while(|d| d.is_digit(radix))
            .collect();
        let value = u32::from_str_radix(&digits, radix).ok();
        match value.and_then(char::from_u32) {
            Some(ch) if !digits.is_empty() => {
                self.pos += skip + digits.len();
                out.push(ch);
            }
            _ => out.push('\\'),
        }
    }

    fn lex_number(&mut self, start: usize) -> Result<(), ParseError> {
        let rest = self.rest();
        if (rest.starts_with("0x") || rest.starts_with("0X"))
            && rest[2..].starts_with(|c: char| c.is_ascii_hexdigit())
        {
            self.pos += 2;
            let hex = self.take_while(|c| c.is_ascii_hexdigit());
            let v = u64::from_str_radix(hex, 16)
                .map_err(|_| self.err(start, "a 64-bit integer", format!("`0x{hex}`")))?;
            self.push(TokenKind::Long(v as i64), start);
            return Ok(());
        }
        self.take_while(|c| c.is_ascii_digit());
        let mut is_real = false;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.take_while(|c| c.is_ascii_digit());
            is_real = true;
        }
        let number = self.src.get(start..self.pos).unwrap_or("");
        // Timespan suffix?
        let save = self.pos;
        let suffix = self.take_while(is_ident_char);
        if timespan_unit(suffix).is_some() {
            let nanos = timespan_nanos(number, suffix).ok_or_else(|| {
                self.err(start, "a timespan in range", format!("`{number}{suffix}`"))
            })?;
            self.push(TokenKind::Timespan(nanos), start);
            return Ok(());
        }
        self.pos = save;
        // Exponent?
        let mut chars = self.rest().chars();
        if matches!(chars.next(), Some('e' | 'E')) {
            let mut n = chars.next();
            let mut len = 1;
            if matches!(n, Some('+' | '-')) {
                n = chars.next();
                len += 1;
            }
            if n.is_some_and(|c| c.is_ascii_digit()) {
                self.pos += len;
                self.take_while(|c| c.is_ascii_digit());
                is_real = true;
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        if self.peek().is_some_and(is_ident_char) {
            if self.pos == save && !is_real {
                // Identifiers may start with digits (`1stColumn`).
                let word = format!("{text}{}", self.take_while(is_ident_char));
                self.push(TokenKind::Ident(word), start);
                return Ok(());
            }
            let bad = self.take_while(is_ident_char);
            return Err(self.err(start, "a number or timespan", format!("`{text}{bad}`")));
        }
        if is_real {
            let v: f64 = text
                .parse()
                .map_err(|_| self.err(start, "a real number", format!("`{text}`")))?;
            self.push(TokenKind::Real(v), start);
        } else {
            let v: i64 = text
                .parse()
                .map_err(|_| self.err(start, "a 64-bit integer", format!("`{text}`")))?;
            self.push(TokenKind::Long(v), start);
        }
        Ok(())
    }

    fn lex_punct(&mut self, c: char, start: usize) -> Result<(), ParseError> {
        use TokenKind::*;
        let next = self.peek_at(1);
        let (kind, len) = match (c, next) {
            ('|', _) => (Pipe, 1),
            ('(', _) => (LParen, 1),
            (')', _) => (RParen, 1),
            ('[', _) => (LBracket, 1),
            (']', _) => (RBracket, 1),
            ('{', _) => (LBrace, 1),
            ('}', _) => (RBrace, 1),
            (',', _) => (Comma, 1),
            (';', _) => (Semi, 1),
            (':', _) => (Colon, 1),
            ('.', Some('.')) => (DotDot, 2),
            ('.', _) => (Dot, 1),
            ('=', Some('=')) => (EqEq, 2),
            ('=', Some('~')) => (EqTilde, 2),
            ('=', Some('>')) => (FatArrow, 2),
            ('=', _) => (Assign, 1),
            ('!', Some('=')) => (NotEq, 2),
            ('!', Some('~')) => (BangTilde, 2),
            ('!', Some(n)) if is_ident_start(n) => {
                let word: String = self.rest()[1..]
                    .chars()
                    .take_while(|&c| is_ident_char(c))
                    .collect();
                if NEGATABLE.contains(&word.as_str()) {
                    self.pos += 1 + word.len();
                    let mut w = format!("!{word}");
                    if word == "in" && self.peek() == Some('~') {
                        self.pos += 1;
                        w.push('~');
                    }
                    self.push(Ident(w), start);
                    return Ok(());
                }
                (Bang, 1)
            }
            ('!', _) => (Bang, 1),
            ('<', Some('=')) => (Le, 2),
            ('<', Some('>')) => (LtGt, 2),
            ('<', _) => (Lt, 1),
            ('>', Some('=')) => (Ge, 2),
            ('>', _) => (Gt, 1),
            ('+', _) => (Plus, 1),
            ('-', _) => (Minus, 1),
            ('*', _) => (Star, 1),
            ('/', _) => (Slash, 1),
            ('%', _) => (Percent, 1),
            ('?', _) => (Question, 1),
            _ => {
                return Err(self.err(start, "a token", describe_char(c)));
            }
        };
        self.pos += len;
        self.push(kind, start);
        Ok(())
    }
}

#[cfg(test)]
#[path = "lexer_tests.rs"]
mod tests;
