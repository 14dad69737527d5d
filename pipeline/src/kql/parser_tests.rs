use super::super::ast::*;
use super::{parse, parse_document};

fn q(text: &str) -> Query {
    parse(text).unwrap_or_else(|e| panic!("{e}\nin: {text}"))
}

/// The last statement as a tabular expression.
fn tab(text: &str) -> TabularExpr {
    match q(text).statements.pop() {
        Some(Statement::Query(t)) => t,
        other => panic!("not a query statement: {other:?}"),
    }
}

fn ops(text: &str) -> Vec<Operator> {
    tab(text).operators
}

/// Parses `T | where <e>` and returns the predicate.
fn expr(e: &str) -> Expr {
    match ops(&format!("T | where {e}")).remove(0) {
        Operator::Where { predicate, .. } => predicate,
        o => panic!("{o:?}"),
    }
}

/// Compact S-expression rendering for structural assertions.
fn sx(e: &Expr) -> String {
    match e {
        Expr::Literal { value, .. } => match value {
            Literal::String(s) => format!("{s:?}"),
            Literal::Long(Some(v)) => v.to_string(),
            Literal::Bool(Some(b)) => b.to_string(),
            Literal::Timespan(Some(n)) => format!("{n}ns"),
            other => format!("{other:?}"),
        },
        Expr::Name(id) => id.name.clone(),
        Expr::Star(_) => "*".into(),
        Expr::Unary { op, operand, .. } => format!("({op:?} {})", sx(operand)),
        Expr::Binary {
            op, left, right, ..
        } => format!("({} {} {})", op.as_str(), sx(left), sx(right)),
        Expr::Between {
            expr,
            low,
            high,
            negated,
            ..
        } => format!(
            "({}between {} {} {})",
            if *negated { "!" } else { "" },
            sx(expr),
            sx(low),
            sx(high)
        ),
        Expr::InList {
            expr, op, items, ..
        } => format!(
            "({} {} [{}])",
            op.as_str(),
            sx(expr),
            items.iter().map(sx).collect::<Vec<_>>().join(", ")
        ),
        Expr::Member { target, name, .. } => format!("{}.{}", sx(target), name.name),
        Expr::Index { target, index, .. } => format!("{}[{}]", sx(target), sx(index)),
        Expr::Call(c) => format!(
            "{}{}({})",
            c.target
                .as_ref()
                .map(|t| format!("{}.", sx(t)))
                .unwrap_or_default(),
            c.name.name,
            c.args.iter().map(sx).collect::<Vec<_>>().join(", ")
        ),
        Expr::NamedArg { name, value, .. } => format!("{}={}", name.name, sx(value)),
        Expr::TypeOf { text, .. } => format!("typeof({text})"),
        Expr::Tabular(t) => format!("<tabular {} ops>", t.operators.len()),
    }
}

fn lit(e: &str) -> Literal {
    match expr(e) {
        Expr::Literal { value, .. } => value,
        other => panic!("not a literal: {other:?}"),
    }
}

#[test]
fn literals() {
    const S: i64 = 1_000_000_000;
    assert_eq!(lit("42"), Literal::Long(Some(42)));
    assert_eq!(lit("-42"), Literal::Long(Some(-42)));
    assert_eq!(lit("1.5"), Literal::Real(Some(1.5)));
    assert_eq!(lit("true"), Literal::Bool(Some(true)));
    assert_eq!(lit("False"), Literal::Bool(Some(false)));
    assert_eq!(lit("5m"), Literal::Timespan(Some(300 * S)));
    assert_eq!(lit("-1d"), Literal::Timespan(Some(-86_400 * S)));
    assert_eq!(lit("timespan(1d)"), Literal::Timespan(Some(86_400 * S)));
    assert_eq!(lit("time(01:30:00)"), Literal::Timespan(Some(5_400 * S)));
    assert_eq!(
        lit("timespan(2.00:00:01.5)"),
        Literal::Timespan(Some(172_801 * S + S / 2))
    );
    assert_eq!(
        lit("datetime(2020-01-01)"),
        Literal::DateTime(Some("2020-01-01".into()))
    );
    assert_eq!(
        lit("datetime(2020-01-01T10:00:00Z)"),
        Literal::DateTime(Some("2020-01-01T10:00:00Z".into()))
    );
    assert_eq!(lit("datetime(null)"), Literal::DateTime(None));
    assert_eq!(lit("bool(true)"), Literal::Bool(Some(true)));
    assert_eq!(lit("int(null)"), Literal::Int(None));
    assert_eq!(lit("long(1)"), Literal::Long(Some(1)));
    assert!(matches!(lit("real(nan)"), Literal::Real(Some(v)) if v.is_nan()));
    assert_eq!(lit("real(-inf)"), Literal::Real(Some(f64::NEG_INFINITY)));
    assert_eq!(
        lit("guid(74be27de-1e4e-49d9-b579-fe0b331d3642)"),
        Literal::Guid(Some("74be27de-1e4e-49d9-b579-fe0b331d3642".into()))
    );
    assert_eq!(sx(&expr("typeof(string)")), "typeof(string)");
    assert!(parse("T | where x == long(abc)").is_err());
    assert!(parse("T | where x == timespan(zzz)").is_err());
}

#[test]
fn string_forms() {
    assert_eq!(lit(r#""a\tb""#), Literal::String("a\tb".into()));
    assert_eq!(lit(r"'single'"), Literal::String("single".into()));
    assert_eq!(
        lit(r#"@"C:\Windows""#),
        Literal::String("C:\\Windows".into())
    );
    assert_eq!(
        lit(r#"h"obfuscated""#),
        Literal::String("obfuscated".into())
    );
    assert_eq!(lit(r#""a" 'b' @"c""#), Literal::String("abc".into()));
    assert_eq!(
        lit("```multi\nline```"),
        Literal::String("multi\nline".into())
    );
}

#[test]
fn dynamic_literals() {
    let Literal::Dynamic(d) =
        lit(r#"dynamic([1, "a", {"k": [true, null]}, -2.5, datetime(2020-01-01)])"#)
    else {
        panic!()
    };
    let DynamicValue::Array(items) = *d else {
        panic!()
    };
    assert_eq!(items.len(), 5);
    assert_eq!(items[0], DynamicValue::Scalar(Literal::Long(Some(1))));
    assert_eq!(
        items[2],
        DynamicValue::Object(vec![(
            "k".into(),
            DynamicValue::Array(vec![
                DynamicValue::Scalar(Literal::Bool(Some(true))),
                DynamicValue::Null
            ])
        )])
    );
    assert_eq!(items[3], DynamicValue::Scalar(Literal::Real(Some(-2.5))));
    assert_eq!(
        lit("dynamic(null)"),
        Literal::Dynamic(Box::new(DynamicValue::Null))
    );
    assert!(parse("T | where x in (dynamic([a + 1]))").is_err());
}

#[test]
fn precedence() {
    assert_eq!(sx(&expr("a or b and c")), "(or a (and b c))");
    assert_eq!(sx(&expr("a and b or c")), "(or (and a b) c)");
    assert_eq!(
        sx(&expr(r#"x == 1 and y has "z""#)),
        r#"(and (== x 1) (has y "z"))"#
    );
    assert_eq!(sx(&expr("a + b * c - d")), "(- (+ a (* b c)) d)");
    assert_eq!(sx(&expr("a < b + 1")), "(< a (+ b 1))");
    // Kql.g4: string operators bind tighter than `==` and arithmetic.
    assert_eq!(
        sx(&expr(r#"a has "x" == true"#)),
        r#"(== (has a "x") true)"#
    );
    assert_eq!(
        sx(&expr(r#"a =~ "x" or b !contains_cs "y""#)),
        r#"(or (=~ a "x") (!contains_cs b "y"))"#
    );
    assert_eq!(
        sx(&expr(r#"a matches regex "[0-9]+""#)),
        r#"(matches regex a "[0-9]+")"#
    );
    assert_eq!(sx(&expr("not(a) and -x > 1")), "(and not(a) (> (Neg x) 1))");
    assert_eq!(sx(&expr("(a or b) and c")), "(and (or a b) c)");
    assert_eq!(sx(&expr("a <> b")), "(!= a b)");
    assert_eq!(sx(&expr(r#"* has "x""#)), r#"(has * "x")"#);
}

#[test]
fn between_and_lists() {
    assert_eq!(sx(&expr("x between (1 .. 10)")), "(between x 1 10)");
    assert_eq!(
        sx(&expr("t !between (ago(1d)..now())")),
        "(!between t ago(86400000000000ns) now())"
    );
    assert_eq!(sx(&expr(r#"a in~ ("x", 'y')"#)), r#"(in~ a ["x", "y"])"#);
    assert_eq!(sx(&expr("a !in~ (L)")), "(!in~ a [L])");
    assert_eq!(sx(&expr("a !in (1, 2) and b")), "(and (!in a [1, 2]) b)");
    assert_eq!(sx(&expr("a has_any (List)")), "(has_any a [List])");
    assert_eq!(
        sx(&expr(r#"a has_all ("p", "q")"#)),
        r#"(has_all a ["p", "q"])"#
    );
    // A tabular subquery is distinguishable from a list of scalars.
    assert_eq!(
        sx(&expr("a in ((T | project X))")),
        "(in a [<tabular 1 ops>])"
    );
    assert_eq!(
        sx(&expr("a in (T | project X)")),
        "(in a [<tabular 1 ops>])"
    );
    assert!(parse("T | where a in b").is_err());
}

#[test]
fn postfix_access_and_calls() {
    assert_eq!(sx(&expr("parse_json(x).a.b[0]")), "parse_json(x).a.b[0]");
    assert_eq!(sx(&expr(r#"d["k"].['sp ace']"#)), r#"d["k"].sp ace"#);
    assert_eq!(sx(&expr("arg_max(Timestamp, *)")), "arg_max(Timestamp, *)");
    assert_eq!(sx(&expr("make_set(x, 100)")), "make_set(x, 100)");
    assert_eq!(sx(&expr("count()")), "count()");
    assert_eq!(
        sx(&expr("column_ifexists('c', '')")),
        r#"column_ifexists("c", "")"#
    );
    assert_eq!(sx(&expr("bag_pack('a', 1)")), r#"bag_pack("a", 1)"#);
    assert_eq!(
        sx(&expr("x > toscalar(T | count)")),
        "(> x toscalar(<tabular 1 ops>))"
    );
    assert_eq!(sx(&expr("f(kind = 'x')")), r#"f(kind="x")"#);
    assert_eq!(sx(&expr("['weird name'] == Type")), "(== weird name Type)");
}

#[test]
fn let_statements() {
    let query = q(
        "let n = 5;\nlet s = dynamic(['a', 'b']);\nlet t = T | where x > n;\n\
         let m = materialize(T | take 1);\nlet f = (a:string, b:long = 3, R:(*)) { R | where c == a };\n\
         let v = view () { T };\nlet u = U;\nf('x', 1, t)",
    );
    let lets: Vec<&LetStatement> = query
        .statements
        .iter()
        .filter_map(|s| match s {
            Statement::Let(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(lets.len(), 7);
    assert!(matches!(
        lets[0].value,
        LetValue::Expr(Expr::Literal { .. })
    ));
    assert!(matches!(
        lets[1].value,
        LetValue::Expr(Expr::Literal {
            value: Literal::Dynamic(_),
            ..
        })
    ));
    assert!(matches!(&lets[2].value, LetValue::Tabular(t) if t.operators.len() == 1));
    assert!(matches!(
        &lets[3].value,
        LetValue::Tabular(TabularExpr {
            source: Source::Materialize { .. },
            ..
        })
    ));
    let LetValue::Function(f) = &lets[4].value else {
        panic!()
    };
    assert_eq!(f.params.len(), 3);
    assert!(matches!(&f.params[0].ty, ParamType::Scalar(t) if t.name == "string"));
    assert!(f.params[1].default.is_some());
    assert_eq!(f.params[2].ty, ParamType::Tabular(None));
    assert!(matches!(&f.result, Expr::Tabular(_)));
    assert!(matches!(&lets[5].value, LetValue::Function(f) if f.is_view));
    // A bare name: table or scalar is for the symbol table to decide.
    assert!(matches!(&lets[6].value, LetValue::Expr(Expr::Name(_))));
    let Some(Statement::Query(t)) = query.statements.last() else {
        panic!()
    };
    assert!(matches!(&t.source, Source::Call(c) if c.name.name == "f"));
    // Function body with inner lets and a scalar result.
    let query = q("let g = (x:long) { let y = x * 2; y + 1 };\nprint g(1)");
    let Statement::Let(LetStatement {
        value: LetValue::Function(f),
        ..
    }) = &query.statements[0]
    else {
        panic!()
    };
    assert_eq!(f.body.len(), 1);
    assert_eq!(sx(&f.result), "(+ y 1)");
}

#[test]
fn join_and_lookup() {
    let o = ops(
        "A | join kind=leftouter hint.strategy=shuffle (B | where x) on $left.Id == $right.Id2, Name\n\
         | lookup kind=inner C on K",
    );
    let Operator::Join(j) = &o[0] else { panic!() };
    assert_eq!(j.kind.as_deref(), Some("leftouter"));
    assert_eq!(j.params.len(), 2);
    assert_eq!(j.params[1].name, "hint.strategy");
    assert_eq!(j.right.operators.len(), 1);
    assert_eq!(j.on.len(), 2);
    assert_eq!(sx(&j.on[0]), "(== $left.Id $right.Id2)");
    assert_eq!(sx(&j.on[1]), "Name");
    let Operator::Lookup(l) = &o[1] else { panic!() };
    assert!(matches!(&l.right.source, Source::Name(n) if n.name == "C"));
    // `kind=inner(T)`: the parenthesis belongs to the right side.
    let o = ops("A | join kind=inner(B) on X");
    assert!(matches!(&o[0], Operator::Join(j) if j.kind.as_deref() == Some("inner")));
}

#[test]
fn summarize_forms() {
    let o = ops(
        "T | summarize hint.shufflekey=D Count = count(), dcount(U), (Ts, Id) = arg_max(Ts, Id) \
         by bin(Timestamp, 5m), DeviceName | summarize by X | summarize count()",
    );
    let Operator::Summarize(s) = &o[0] else {
        panic!()
    };
    assert_eq!(s.params[0].name, "hint.shufflekey");
    assert_eq!(s.aggregates.len(), 3);
    assert_eq!(
        s.aggregates[0].name().map(|n| n.name.as_str()),
        Some("Count")
    );
    assert!(s.aggregates[1].names.is_empty());
    assert_eq!(s.aggregates[2].names.len(), 2);
    assert_eq!(sx(&s.by[0].expr), "bin(Timestamp, 300000000000ns)");
    let Operator::Summarize(s) = &o[1] else {
        panic!()
    };
    assert!(s.aggregates.is_empty() && s.by.len() == 1);
    let Operator::Summarize(s) = &o[2] else {
        panic!()
    };
    assert!(s.by.is_empty() && s.aggregates.len() == 1);
}

#[test]
fn top_sort_take_distinct_count() {
    let o = ops(
        "T | top 10 by Timestamp desc nulls last | sort by a asc, b | order by c \
         | take 5 | limit 3 | distinct a, b | distinct * | count",
    );
    let Operator::Top { count, by, .. } = &o[0] else {
        panic!()
    };
    assert_eq!(sx(count), "10");
    assert_eq!(
        (by.order, by.nulls),
        (Some(SortOrder::Desc), Some(NullsOrder::Last))
    );
    let Operator::Sort { keys, .. } = &o[1] else {
        panic!()
    };
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0].order, keys[1].order), (Some(SortOrder::Asc), None));
    assert!(matches!(&o[2], Operator::Sort { .. }));
    assert!(matches!(&o[3], Operator::Take { .. }) && matches!(&o[4], Operator::Take { .. }));
    assert!(matches!(&o[5], Operator::Distinct { columns, star: false, .. } if columns.len() == 2));
    assert!(matches!(&o[6], Operator::Distinct { star: true, .. }));
    assert!(matches!(&o[7], Operator::Count { as_name: None, .. }));
}

#[test]
fn project_family() {
    let o = ops(
        "T | project a, B = b + 1, ['c d'] | project-away Init*, x | project-keep y* \
         | project-rename New = Old, N2 = O2 | project-reorder z asc, * | extend Type = 1, Count = 2",
    );
    let Operator::Project { columns, .. } = &o[0] else {
        panic!()
    };
    assert_eq!(columns.len(), 3);
    assert_eq!(columns[1].name().map(|n| n.name.as_str()), Some("B"));
    assert!(matches!(&columns[2].expr, Expr::Name(n) if n.name == "c d"));
    let Operator::ProjectAway { columns, .. } = &o[1] else {
        panic!()
    };
    assert_eq!(columns[0].text, "Init*");
    assert!(columns[0].has_wildcard() && !columns[1].has_wildcard());
    assert!(matches!(&o[2], Operator::ProjectKeep { columns, .. } if columns[0].text == "y*"));
    let Operator::ProjectRename { renames, .. } = &o[3] else {
        panic!()
    };
    assert_eq!(
        (
            renames[1].new_name.name.as_str(),
            renames[1].old_name.name.as_str()
        ),
        ("N2", "O2")
    );
    let Operator::ProjectReorder { columns, .. } = &o[4] else {
        panic!()
    };
    assert_eq!(columns[0].order, Some(SortOrder::Asc));
    assert_eq!(columns[1].column.text, "*");
    assert_eq!(o[5].name(), "extend");
}

#[test]
fn union_forms() {
    let t = tab("union kind=outer withsource=Src T1, Device*Events, (T3 | where x)");
    let Source::Union(u) = &t.source else {
        panic!()
    };
    assert_eq!(u.params.len(), 2);
    assert_eq!(u.tables.len(), 3);
    assert!(matches!(&u.tables[1], UnionTable::Wildcard(p) if p.text == "Device*Events"));
    assert!(matches!(&u.tables[2], UnionTable::Tabular(t) if t.operators.len() == 1));
    let o = ops("A | union B, C | where y");
    assert!(matches!(&o[0], Operator::Union(u) if u.tables.len() == 2));
    assert_eq!(o[1].name(), "where");
}

#[test]
fn sources() {
    let t = tab("datatable(a:string, b:long)['x', 1, 'y', 2,] | count");
    let Source::Datatable(d) = &t.source else {
        panic!()
    };
    assert_eq!((d.schema.len(), d.values.len()), (2, 4));
    let t = tab(
        "externaldata(r:string)[@'https://x/y.csv'] with (format='csv', ignoreFirstRecord=true)",
    );
    let Source::ExternalData(e) = &t.source else {
        panic!()
    };
    assert_eq!(e.properties.len(), 2);
    assert!(matches!(
        tab("range x from 1 to 10 step 1").source,
        Source::Range(_)
    ));
    assert!(matches!(tab("print a = 1, 2").source, Source::Print { .. }));
    assert!(matches!(
        tab("(T | take 1) | count").source,
        Source::Paren(_)
    ));
    assert!(matches!(
        tab("search \"x\" | take 1").source,
        Source::Other(_)
    ));
    assert!(matches!(tab("find where x == 1").source, Source::Other(_)));
    assert!(matches!(tab("evaluate f(1)").source, Source::Evaluate(_)));
    assert!(matches!(
        tab("cluster('c').database('d').T | take 1").source,
        Source::Path(_)
    ));
}

#[test]
fn other_operators() {
    let o = ops(
        "T | mv-expand a to typeof(string), b limit 10 | parse kind=regex x with * \"k=\" v:long \",\" * \
         | make-series c = count() default = 0 on Timestamp in range(ago(1d), now(), 1h) by D \
         | render timechart with (title='t', ycolumns=a, b) | invoke f(1) | as X | serialize n = 1 \
         | evaluate bag_unpack(x) | sample 5 | sample-distinct 3 of c | getschema \
         | mv-apply x to typeof(long) on (top 1 by x) | fork (take 1) (count) | top-nested 3 of a by count() \
         | partition by k (take 1) | scan with (step s: x == 1;) | facet by a | reduce by b | top-hitters 2 of x",
    );
    let names: Vec<&str> = o.iter().map(|o| o.name()).collect();
    assert_eq!(
        names,
        [
            "mv-expand",
            "parse",
            "make-series",
            "render",
            "invoke",
            "as",
            "serialize",
            "evaluate",
            "sample",
            "sample-distinct",
            "getschema",
            "mv-apply",
            "fork",
            "top-nested",
            "partition",
            "scan",
            "facet",
            "reduce",
            "top-hitters"
        ]
    );
    let Operator::MvExpand(m) = &o[0] else {
        panic!()
    };
    assert_eq!(m.columns[0].to_type.as_deref(), Some("string"));
    assert!(m.limit.is_some());
    let Operator::Parse(p) = &o[1] else { panic!() };
    assert_eq!(p.pattern.len(), 5);
    assert!(
        matches!(&p.pattern[2], ParsePatternPart::Column { ty: Some(t), .. } if t.name == "long")
    );
    let Operator::MakeSeries(m) = &o[2] else {
        panic!()
    };
    assert!(m.aggregates[0].default.is_some());
    assert!(matches!(m.range, MakeSeriesRange::InRange { .. }));
    let Operator::Render(r) = &o[3] else { panic!() };
    assert_eq!(r.chart.name, "timechart");
    assert_eq!(r.properties[1].values.len(), 2);
    let Operator::Other(mv) = &o[11] else {
        panic!()
    };
    assert_eq!(mv.name_span.end - mv.name_span.start, "mv-apply".len());
}

#[test]
fn comments_and_multiline() {
    let text = "T // trailing comment\n| where a == 1 // another\n// whole line\n| take 1 // end";
    assert_eq!(ops(text).len(), 2);
    let text = "T | where x =~ \"a\" or y =~ \"b\" // comment, but can be abused\n| where z has \"//not a comment\"";
    let o = ops(text);
    let Operator::Where { predicate, .. } = &o[1] else {
        panic!()
    };
    assert_eq!(sx(predicate), r#"(has z "//not a comment")"#);
}

#[test]
fn brief_powershell_query() {
    let text = r#"DeviceProcessEvents | where FileName =~ "powershell.exe" | where InitiatingProcessFileName =~ "explorer.exe" or InitiatingProcessFileName =~ "svchost.exe" // Common legitimate parent processes, but can be abused
| where ProcessCommandLine has_any ("Invoke-Command", "Enter-PSSession", "-ComputerName") | extend CommandLineArgs = split(ProcessCommandLine, ' ') | where array_length(CommandLineArgs) > 1 | project Timestamp, DeviceName, AccountName, FileName, ProcessCommandLine, InitiatingProcessFileName, InitiatingProcessAccountName, CommandLineArgs | order by Timestamp desc
"#;
    let t = tab(text);
    assert!(matches!(&t.source, Source::Name(n) if n.name == "DeviceProcessEvents"));
    let names: Vec<&str> = t.operators.iter().map(|o| o.name()).collect();
    assert_eq!(
        names,
        [
            "where", "where", "where", "extend", "where", "project", "sort"
        ]
    );
    let Operator::Where { predicate, .. } = &t.operators[2] else {
        panic!()
    };
    assert_eq!(
        sx(predicate),
        r#"(has_any ProcessCommandLine ["Invoke-Command", "Enter-PSSession", "-ComputerName"])"#
    );
    let Operator::Project { columns, .. } = &t.operators[5] else {
        panic!()
    };
    assert_eq!(columns.len(), 8);
    let Operator::Sort { keys, span, .. } = &t.operators[6] else {
        panic!()
    };
    assert_eq!(keys[0].order, Some(SortOrder::Desc));
    assert_eq!(&text[span.start..span.end], "order by Timestamp desc");
    let (line, col) = super::super::line_col(text, span.start);
    assert_eq!(line, 2);
    assert!(col > 1);
}

#[test]
fn statements_set_and_refusals() {
    let query = q("set notruncation;\nset x = 5;\nT");
    assert!(matches!(
        &query.statements[0],
        Statement::Set { value: None, .. }
    ));
    assert!(matches!(
        &query.statements[1],
        Statement::Set { value: Some(_), .. }
    ));
    let e = parse("declare query_parameters(x:string);\nT").unwrap_err();
    assert!(e.expected.contains("not supported"), "{e}");
    for text in [
        ".show tables",
        "  // comment\n  .drop table T",
        "let x = 1;\n.show x",
    ] {
        let e = parse(text).unwrap_err();
        assert!(
            e.to_string()
                .contains("control commands are not part of the query language"),
            "{e}"
        );
    }
    let e = parse("  // c\n  .show tables").unwrap_err();
    assert_eq!((e.line, e.column), (2, 3));
}

#[test]
fn errors_have_positions() {
    let e = parse("T\n| where").unwrap_err();
    assert_eq!((e.line, e.column, e.found.as_str()), (2, 8, "end of input"));
    let e = parse("T\n| frobnicate x").unwrap_err();
    assert_eq!((e.line, e.column), (2, 3));
    assert_eq!(
        e.to_string(),
        "line 2:3: expected a query operator, found `frobnicate`"
    );
    let e = parse("T | where f(a, b").unwrap_err();
    assert!(e.expected.contains("`)`"), "{e}");
    let e = parse("T | project a b").unwrap_err();
    assert_eq!((e.column, e.found.as_str()), (15, "`b`"));
    assert!(parse("").is_err());
    assert!(parse("// only a comment").is_err());
    assert!(parse("1 + 2").is_err());
    let e = parse("T | where é").unwrap_err();
    assert_eq!(e.column, 11);
}

#[test]
fn document_mode_splits_on_blank_lines() {
    let text = "let a = 1;\nT | where x > a\n\nU\n| take 1\n\nlet b = 2;\n\nV";
    assert!(parse(text).is_err());
    let query = parse_document(text).unwrap();
    let queries = query
        .statements
        .iter()
        .filter(|s| matches!(s, Statement::Query(_)))
        .count();
    assert_eq!(queries, 3);
    // A blank line inside a statement that continues is just whitespace.
    assert_eq!(parse("T\n\n| take 1").unwrap().statements.len(), 1);
    // A comment-only line is not blank.
    assert!(parse_document("T\n// c\nU").is_err());
}
