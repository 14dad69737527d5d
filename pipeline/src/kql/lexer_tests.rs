use super::*;

fn kinds(s: &str) -> Vec<TokenKind> {
    tokenize(s)
        .unwrap()
        .into_iter()
        .map(|t| t.kind)
        .filter(|k| *k != TokenKind::Eof)
        .collect()
}

fn one(s: &str) -> TokenKind {
    let k = kinds(s);
    assert_eq!(k.len(), 1, "{s:?} → {k:?}");
    k.into_iter().next().unwrap()
}

fn str_of(s: &str) -> String {
    match one(s) {
        TokenKind::Str(v) => v,
        k => panic!("{s:?} → {k:?}"),
    }
}

#[test]
fn strings() {
    assert_eq!(str_of(r#""a\"b\\c\n""#), "a\"b\\c\n");
    assert_eq!(str_of(r"'it\'s'"), "it's");
    assert_eq!(str_of(r#"@"C:\dir\""x""#), "C:\\dir\\\"x");
    assert_eq!(str_of(r"@'a''b'"), "a'b");
    assert_eq!(str_of(r#"h"secret""#), "secret");
    assert_eq!(str_of(r"H'secret'"), "secret");
    assert_eq!(str_of(r#"h@"c:\x""#), "c:\\x");
    assert_eq!(str_of("```line1\nline2```"), "line1\nline2");
    assert_eq!(str_of(r#""\u0041\x42""#), "AB");
    assert_eq!(str_of(r#""\d+""#), "\\d+"); // unknown escape kept
    assert_eq!(str_of("\"é\""), "é");
}

#[test]
fn unterminated_strings_report_position() {
    let e = tokenize("T\n| where x == \"abc\n| take 1").unwrap_err();
    assert_eq!((e.line, e.column), (2, 14));
    assert!(e.to_string().contains("closing `\"`"), "{e}");
    assert_eq!(e.found, "end of line");
    let e = tokenize("print 'abc").unwrap_err();
    assert_eq!((e.line, e.column), (1, 7));
    let e = tokenize("print ```abc").unwrap_err();
    assert_eq!((e.line, e.column), (1, 7));
}

#[test]
fn numbers_and_timespans() {
    const S: i64 = 1_000_000_000;
    assert_eq!(one("42"), TokenKind::Long(42));
    assert_eq!(one("0x1F"), TokenKind::Long(31));
    assert_eq!(one("1.5"), TokenKind::Real(1.5));
    assert_eq!(one("1e3"), TokenKind::Real(1000.0));
    assert_eq!(one("5m"), TokenKind::Timespan(300 * S));
    assert_eq!(one("1d"), TokenKind::Timespan(86_400 * S));
    assert_eq!(one("30s"), TokenKind::Timespan(30 * S));
    assert_eq!(one("100ms"), TokenKind::Timespan(100_000_000));
    assert_eq!(one("2h"), TokenKind::Timespan(7_200 * S));
    assert_eq!(one("1.5h"), TokenKind::Timespan(5_400 * S));
    assert_eq!(one("10tick"), TokenKind::Timespan(1_000));
    assert_eq!(one("7days"), TokenKind::Timespan(7 * 86_400 * S));
    assert_eq!(one("3minutes"), TokenKind::Timespan(180 * S));
    assert_eq!(one("2hrs"), TokenKind::Timespan(7_200 * S));
    assert_eq!(one("5microseconds"), TokenKind::Timespan(5_000));
    assert_eq!(one("1stColumn"), TokenKind::Ident("1stColumn".into()));
    assert!(tokenize("99999999999999999999").is_err());
    assert!(tokenize("1.5abc").is_err());
    assert!(tokenize("999999999999d").is_err()); // overflow
    // `1..5` is 1, `..`, 5
    assert_eq!(
        kinds("1..5"),
        vec![TokenKind::Long(1), TokenKind::DotDot, TokenKind::Long(5)]
    );
}

#[test]
fn operators_and_words() {
    use TokenKind::*;
    assert_eq!(
        kinds("a !has b !in~ c in~ d !between e != f !~ g =~ h <> i"),
        vec![
            Ident("a".into()),
            Ident("!has".into()),
            Ident("b".into()),
            Ident("!in~".into()),
            Ident("c".into()),
            Ident("in~".into()),
            Ident("d".into()),
            Ident("!between".into()),
            Ident("e".into()),
            NotEq,
            Ident("f".into()),
            BangTilde,
            Ident("g".into()),
            EqTilde,
            Ident("h".into()),
            LtGt,
            Ident("i".into()),
        ]
    );
    assert_eq!(
        kinds("$left.x project-away"),
        vec![
            Ident("$left".into()),
            Dot,
            Ident("x".into()),
            Ident("project".into()),
            Minus,
            Ident("away".into())
        ]
    );
}

#[test]
fn typed_literals_and_comments() {
    use TokenKind::*;
    assert_eq!(
        kinds("datetime(2020-01-01T10:00:00Z) // c\n guid (abc) typeof(string)"),
        vec![
            TypedLit {
                ty: "datetime".into(),
                content: "2020-01-01T10:00:00Z".into()
            },
            TypedLit {
                ty: "guid".into(),
                content: "abc".into()
            },
            TypedLit {
                ty: "typeof".into(),
                content: "string".into()
            },
        ]
    );
    // Type names not followed by `(` stay identifiers.
    assert_eq!(
        kinds("x:datetime"),
        vec![Ident("x".into()), Colon, Ident("datetime".into())]
    );
    assert!(tokenize("datetime(2020").is_err());
}

#[test]
fn bad_characters() {
    let e = tokenize("T | where x == #").unwrap_err();
    assert_eq!((e.line, e.column), (1, 16));
    assert!(tokenize("@").is_err());
    assert!(tokenize("a \u{a0} b").is_ok());
}
