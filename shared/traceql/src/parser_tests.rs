//! Parser tests: AST shapes (mostly through the canonical Tempo-style text) and error positions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::ast::{AggOp, Attribute, CmpOp, Expr, Intrinsic, SpansetExpr, SpansetOp, Stage, Static};
use crate::lexer::AttrScope;
use crate::{ParseError, parse};

fn canon(q: &str) -> String {
    match parse(q) {
        Ok(q) => q.to_string(),
        Err(e) => panic!("{q}: {e}"),
    }
}

fn err(q: &str) -> ParseError {
    match parse(q) {
        Ok(p) => panic!("{q} parsed as {p}"),
        Err(e) => e,
    }
}

fn stages(q: &str) -> Vec<Stage> {
    parse(q).unwrap().pipeline.stages
}

fn filter_expr(q: &str) -> Expr {
    match stages(q).remove(0) {
        Stage::Spanset(SpansetExpr::Filter(f)) => f.expr.unwrap(),
        other => panic!("{q}: {other:?}"),
    }
}

fn attr(scope: AttrScope, name: &str) -> Expr {
    Expr::Attr(Attribute::Attr {
        scope,
        name: name.into(),
    })
}

#[test]
fn field_expression_precedence() {
    // the expectations are Tempo's (pkg/traceql/parse_test.go)
    for (q, want) in [
        ("{ .a * .b + .c }", "{ (.a * .b) + .c }"),
        ("{ .a + .b * .c }", "{ .a + (.b * .c) }"),
        ("{ ( .a + .b ) * .c }", "{ (.a + .b) * .c }"),
        ("{ .a + .b ^ .c }", "{ .a + (.b ^ .c) }"),
        ("{ .a ^ .b ^ .c }", "{ .a ^ (.b ^ .c) }"),
        ("{ .a = .b + .c }", "{ .a = (.b + .c) }"),
        ("{ .a + .b = .c }", "{ (.a + .b) = .c }"),
        ("{ .c - -.a + .b }", "{ (.c - (-.a)) + .b }"),
        ("{ .c - -( .a + .b ) }", "{ .c - (-(.a + .b)) }"),
        ("{ .a && .b = .c }", "{ .a && (.b = .c) }"),
        ("{ .a = .b && .c }", "{ (.a = .b) && .c }"),
        ("{ .a = !.b && .c }", "{ (.a = (!.b)) && .c }"),
        ("{ .a = !( .b && .c ) }", "{ .a = (!(.b && .c)) }"),
        ("{ .a = .b || .c = .d}", "{ (.a = .b) || (.c = .d) }"),
        ("{ !.a = .b }", "{ (!.a) = .b }"),
        ("{ !(.a = .b) }", "{ !(.a = .b) }"),
        ("{ -.a = .b }", "{ (-.a) = .b }"),
        // && and || share one precedence level in Tempo and associate to the left
        ("{ .a || .b && .c }", "{ (.a || .b) && .c }"),
        ("{ .a && .b || .c }", "{ (.a && .b) || .c }"),
        (
            "{ .a =~ \"x.*\" && .b !~ `y` }",
            "{ (.a =~ `x.*`) && (.b !~ `y`) }",
        ),
    ] {
        assert_eq!(canon(q), want, "{q}");
    }
}

#[test]
fn spanset_expression_precedence() {
    for (q, want) in [
        (
            "{ true } && { false } >> { .c }",
            "({ true }) && (({ false }) >> ({ .c }))",
        ),
        (
            "{ true } >> { false } && { .c }",
            "(({ true }) >> ({ false })) && ({ .c })",
        ),
        (
            "({ true } >> { false }) && { .c }",
            "(({ true }) >> ({ false })) && ({ .c })",
        ),
        (
            "{ true } >> { false } ~ { .c }",
            "(({ true }) >> ({ false })) ~ ({ .c })",
        ),
        (
            "{ true } ~ { false } >> { .c }",
            "(({ true }) ~ ({ false })) >> ({ .c })",
        ),
        (
            "{ true } || { false } && { .c }",
            "(({ true }) || ({ false })) && ({ .c })",
        ),
    ] {
        assert_eq!(canon(q), want, "{q}");
    }
}

#[test]
fn spanset_operators() {
    for (sym, op) in [
        ("&&", SpansetOp::And),
        ("||", SpansetOp::Or),
        (">", SpansetOp::Child),
        ("<", SpansetOp::Parent),
        (">>", SpansetOp::Desc),
        ("<<", SpansetOp::Anc),
        ("~", SpansetOp::Sibling),
        ("!>", SpansetOp::NotChild),
        ("!<", SpansetOp::NotParent),
        ("!>>", SpansetOp::NotDesc),
        ("!<<", SpansetOp::NotAnc),
        ("!~", SpansetOp::NotSibling),
        ("&>", SpansetOp::UnionChild),
        ("&<", SpansetOp::UnionParent),
        ("&>>", SpansetOp::UnionDesc),
        ("&<<", SpansetOp::UnionAnc),
        ("&~", SpansetOp::UnionSibling),
    ] {
        let q = format!("{{ .a }} {sym} {{ .b }}");
        match stages(&q).remove(0) {
            Stage::Spanset(SpansetExpr::Op(got, l, r)) => {
                assert_eq!(got, op, "{q}");
                assert!(matches!(*l, SpansetExpr::Filter(_)));
                assert!(matches!(*r, SpansetExpr::Filter(_)));
            }
            other => panic!("{q}: {other:?}"),
        }
    }
}

#[test]
fn pipelines() {
    // Tempo's TestPipelineOperatorPrecedence: And(Child(p, p), p)
    match stages("({ .a } | { .b }) > ({ .a } | { .b }) && ({ .a } | { .b })").remove(0) {
        Stage::Spanset(SpansetExpr::Op(SpansetOp::And, l, r)) => {
            assert!(matches!(*l, SpansetExpr::Op(SpansetOp::Child, _, _)));
            assert!(matches!(*r, SpansetExpr::Pipeline(ref p) if p.stages.len() == 2));
        }
        other => panic!("{other:?}"),
    }
    let s = stages("{ status = error } | by(resource.service.name) | count() > 1");
    assert_eq!(s.len(), 3);
    assert!(matches!(&s[1], Stage::By(es) if es.len() == 1));
    assert_eq!(
        s[2],
        Stage::ScalarFilter {
            agg: crate::ast::Aggregate {
                op: AggOp::Count,
                expr: None
            },
            op: CmpOp::Gt,
            value: Static::Int(1)
        }
    );
    // constant folding on the value side, like Tempo's `scalar` rule
    match &stages("{ } | count() > 1 + 2 * 3")[1] {
        Stage::ScalarFilter { value, .. } => assert_eq!(*value, Static::Int(7)),
        other => panic!("{other:?}"),
    }
    match &stages("avg(duration) > 20ms")[0] {
        Stage::ScalarFilter { agg, value, .. } => {
            assert_eq!(agg.op, AggOp::Avg);
            assert_eq!(*value, Static::Duration(20_000_000));
        }
        other => panic!("{other:?}"),
    }
    // a parenthesized aggregate is still a scalar filter
    assert!(matches!(
        &stages("({ .a }) | (count()) > 2")[1],
        Stage::ScalarFilter { .. }
    ));
    // a parenthesized pipeline with a scalar filter is a spanset operand
    assert!(matches!(
        &stages("(count() > 2) && { .a }")[0],
        Stage::Spanset(SpansetExpr::Op(SpansetOp::And, l, _)) if matches!(**l, SpansetExpr::Pipeline(_))
    ));
    assert!(matches!(
        &stages("{ } | select(span.a, resource.b, status)")[1],
        Stage::Select(a) if a.len() == 3
    ));
    assert_eq!(
        canon("{ } | by(.a * 2 + 1) | coalesce()"),
        "{ true } | by((.a * 2) + 1) | coalesce()"
    );
}

#[test]
fn literals_and_fields() {
    assert_eq!(
        filter_expr("{ .a = nil }"),
        Expr::NotExists(Box::new(attr(AttrScope::None, "a")))
    );
    assert_eq!(
        filter_expr("{ nil != span.a }"),
        Expr::Exists(Box::new(attr(AttrScope::Span, "a")))
    );
    assert_eq!(
        filter_expr("{ nil = nil }"),
        Expr::Static(Static::Bool(false))
    );
    assert_eq!(
        filter_expr(r#"{ span."foo bar".baz = "a\"b\\c" }"#),
        Expr::Binary(
            crate::ast::BinOp::Eq,
            Box::new(attr(AttrScope::Span, "foo bar.baz")),
            Box::new(Expr::Static(Static::Str("a\"b\\c".into())))
        )
    );
    assert_eq!(
        canon("{ .a = 1.5m || .b = 3h || .c = 250us || .d = 2.0 || .e = 7 || .f = `r\\d` }"),
        "{ (((((.a = 1m30s) || (.b = 3h0m0s)) || (.c = 250µs)) || (.d = 2.0)) || (.e = 7)) || (.f = `r\\d`) }"
    );
    for (q, i) in [
        ("{ span:name = `x` }", Intrinsic::Name),
        ("{ span:status = error }", Intrinsic::Status),
        ("{ span:statusMessage = `x` }", Intrinsic::StatusMessage),
        ("{ span:kind = server }", Intrinsic::Kind),
        ("{ span:duration > 1s }", Intrinsic::Duration),
        ("{ span:id = `x` }", Intrinsic::SpanId),
        ("{ span:parentID = `x` }", Intrinsic::ParentId),
        ("{ trace:rootName = `x` }", Intrinsic::TraceRootName),
        ("{ trace:rootService = `x` }", Intrinsic::TraceRootService),
        ("{ trace:duration > 1s }", Intrinsic::TraceDuration),
        ("{ trace:id = `x` }", Intrinsic::TraceId),
        ("{ rootServiceName = `x` }", Intrinsic::TraceRootService),
        ("{ traceDuration > 1s }", Intrinsic::TraceDuration),
        ("{ event:name = `x` }", Intrinsic::EventName),
        (
            "{ event:timeSinceStart > 1ms }",
            Intrinsic::EventTimeSinceStart,
        ),
        ("{ link:traceID = `x` }", Intrinsic::LinkTraceId),
        ("{ link:spanID = `x` }", Intrinsic::LinkSpanId),
        (
            "{ instrumentation:name = `x` }",
            Intrinsic::InstrumentationName,
        ),
        (
            "{ instrumentation:version = `x` }",
            Intrinsic::InstrumentationVersion,
        ),
    ] {
        match filter_expr(q) {
            Expr::Binary(_, l, _) => {
                assert_eq!(*l, Expr::Attr(Attribute::Intrinsic(i)), "{q}")
            }
            other => panic!("{q}: {other:?}"),
        }
    }
    for (q, scope, name) in [
        ("{ .a.b = 1 }", AttrScope::None, "a.b"),
        (
            "{ span.http.status_code = 1 }",
            AttrScope::Span,
            "http.status_code",
        ),
        (
            "{ resource.service.name = `x` }",
            AttrScope::Resource,
            "service.name",
        ),
        (
            "{ event.exception.message = `x` }",
            AttrScope::Event,
            "exception.message",
        ),
        ("{ link.ref = `x` }", AttrScope::Link, "ref"),
        (
            "{ instrumentation.lang = `x` }",
            AttrScope::Instrumentation,
            "lang",
        ),
        ("{ span.foo-bar/baz = 1 }", AttrScope::Span, "foo-bar/baz"),
    ] {
        match filter_expr(q) {
            Expr::Binary(_, l, _) => assert_eq!(*l, attr(scope, name), "{q}"),
            other => panic!("{q}: {other:?}"),
        }
    }
    // comments are whitespace
    assert_eq!(canon("/* c */ { .a // x\n = 1 }"), "{ .a = 1 }");
}

#[test]
fn error_positions_and_messages() {
    let e = err("{ .a = }");
    assert_eq!((e.line, e.column, e.offset), (1, 8, 7));
    assert!(e.message.contains(r#"unexpected "}""#), "{}", e.message);
    assert!(
        e.message.contains("expecting a field expression"),
        "{}",
        e.message
    );

    let e = err("{\n  .a = 1 &&\n}");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.contains("expecting a field expression"));

    // columns count characters, offsets count bytes
    let e = err(r#"{ name = "éé" && }"#);
    assert_eq!((e.line, e.column, e.offset), (1, 18, 19));

    let e = err("{ .a = 1 ");
    assert_eq!(e.column, 10);
    assert!(
        e.message.contains("unexpected end of query"),
        "{}",
        e.message
    );

    let e = err("{ } | rate()");
    assert_eq!(e.column, 7);
    assert!(
        e.message.contains("rate() is not supported"),
        "{}",
        e.message
    );

    let e = err("{ } | quantile_over_time(duration, 0.9)");
    assert!(e.message.contains("not supported"));

    let e = err("{ .a = 1 } with (most_recent=true)");
    assert_eq!(e.column, 12);
    assert!(e.message.contains("hints"));

    let e = err(r#"{ .a =~ "[" }"#);
    assert_eq!(e.column, 6);
    assert!(e.message.contains("invalid regular expression"));

    let e = err("{ .a = 1 } { .b = 2 }");
    assert_eq!(e.column, 12);
    assert!(e.message.contains("spanset operator"), "{}", e.message);

    let e = err("{ 1 = \"a\" }");
    assert_eq!(e.column, 5);
    assert!(e.message.contains("same type"));

    let e = err("{ name }");
    assert_eq!(e.column, 3);
    assert!(e.message.contains("boolean"));

    let e = err("{ foo = 1 }");
    assert!(e.message.contains("unknown identifier"));

    let e = err("{ span:childCount = 0 }");
    assert!(e.message.contains("not supported"));

    let e = err("{ .a = \"x\\n\" }");
    assert!(e.message.contains("escape"));

    let e = err("");
    assert_eq!((e.line, e.column), (1, 1));
}

#[test]
fn limits() {
    // a regex whose compiled program exceeds the size limit
    let e = err(r#"{ .a =~ "((a{100}){100}){100}" }"#);
    assert!(e.message.contains("too large"), "{}", e.message);

    // deep nesting is an error, not a stack overflow
    let deep = format!("{}{{ .a }}{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(err(&deep).message.contains("nested too deeply"));
    let deep = format!("{{ {}.a{} }}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(err(&deep).message.contains("nested too deeply"));
    let deep = format!("{{ {}.a }}", "!".repeat(10_000));
    assert!(err(&deep).message.contains("nested too deeply"));
    let long = vec!["{ .a = 1 }"; 5_000].join(" && ");
    assert!(err(&long).message.contains("too complex"));
    let long = format!("{{ {} }}", vec![".a = 1"; 5_000].join(" && "));
    assert!(err(&long).message.contains("too complex"));
    // but realistic sizes are fine
    let ok = vec!["{ .a = 1 }"; 50].join(" && ");
    assert!(parse(&ok).is_ok());
    let ok = format!("{{ {} }}", vec![".a = 1"; 100].join(" || "));
    assert!(parse(&ok).is_ok());
}
