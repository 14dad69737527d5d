//! Positioned parse errors and offset → line:column conversion.

use thiserror::Error;

/// An error produced by the KQL lexer or parser.
///
/// `line` and `column` are 1-based; `column` counts characters (not bytes)
/// from the start of the line. `offset` is the byte offset into the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}:{column}: expected {expected}, found {found}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
    pub expected: String,
    pub found: String,
}

impl ParseError {
    /// Builds an error located at byte `offset` of `text`.
    pub fn at(
        text: &str,
        offset: usize,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        let (line, column) = line_col(text, offset);
        ParseError {
            line,
            column,
            offset: offset.min(text.len()),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

/// Converts a byte offset into a 1-based `(line, column)` pair.
///
/// Offsets past the end are clamped to the end of the text; offsets inside a
/// multi-byte character are rounded down to the character start. Lines are
/// separated by `\n` (a preceding `\r` is counted as part of the line).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while off > 0 && !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = text.get(..off).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_basics() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 2), (1, 3));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 5), (2, 3));
        assert_eq!(line_col(t, 6), (2, 3)); // inside 'é' → rounded down
        assert_eq!(line_col(t, 8), (3, 1));
        assert_eq!(line_col(t, 100), (3, 2));
        assert_eq!(line_col("", 5), (1, 1));
    }

    #[test]
    fn display_format() {
        let e = ParseError::at("a\n  b", 4, "`)`", "identifier `b`");
        assert_eq!(
            e.to_string(),
            "line 2:3: expected `)`, found identifier `b`"
        );
    }
}
