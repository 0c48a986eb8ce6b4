//! What a trace must contain for a query to match it, in terms storage can check without
//! building spans: which span fields are compared with which literals, and how many spans must
//! pass. The condition is necessary, not sufficient — every trace the query matches satisfies
//! it, some that satisfy it do not match — so a reader may skip whatever fails it and must still
//! evaluate the query on what passes. Anything the condition cannot express becomes `Always`.

use regex::Regex;

use crate::ast::{
    AggOp, Attribute, BinOp, CmpOp, Expr, Intrinsic, Pipeline, SpansetExpr, SpansetOp, Stage,
    Static, Status,
};
use crate::lexer::AttrScope;

/// A condition on a whole trace.
#[derive(Debug, Clone)]
pub enum TraceCondition {
    /// Every trace passes.
    Always,
    /// Every part holds.
    All(Vec<TraceCondition>),
    /// At least one part holds.
    Any(Vec<TraceCondition>),
    /// At least `at_least` spans of the trace pass `filter`.
    Spans {
        /// The condition on one span.
        filter: SpanCondition,
        /// How many spans must pass (at least 1).
        at_least: u32,
    },
}

/// A condition on one span.
#[derive(Debug, Clone)]
pub enum SpanCondition {
    /// Every span passes.
    Always,
    /// No span passes.
    Never,
    /// Every part holds.
    All(Vec<SpanCondition>),
    /// At least one part holds.
    Any(Vec<SpanCondition>),
    /// `field op value`; false where the field is missing or of another type.
    Compare {
        /// The field compared.
        field: Field,
        /// The comparison.
        op: CompareOp,
        /// The literal compared with.
        value: Literal,
    },
    /// The field is a string matching (or, negated, not matching) `regex`.
    Regex {
        /// The field matched.
        field: Field,
        /// The compiled pattern, as the query's evaluator uses it.
        regex: Regex,
        /// `!~`.
        negate: bool,
    },
    /// The field is set, whatever its type.
    Exists(Field),
}

/// A span field a condition reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The span name.
    Name,
    /// The status code (OTLP numbering: unset 0, ok 1, error 2).
    Status,
    /// The status message.
    StatusMessage,
    /// The span kind (OTLP numbering).
    Kind,
    /// The duration in nanoseconds.
    Duration,
    /// The instrumentation scope's name.
    ScopeName,
    /// The instrumentation scope's version.
    ScopeVersion,
    /// A span attribute (`span.key`).
    SpanAttribute(String),
    /// A resource attribute (`resource.key`).
    ResourceAttribute(String),
    /// A span attribute, or else a resource attribute (`.key`).
    AnyAttribute(String),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareOp {
    /// The same comparison with its operands swapped (`3 < x` is `x > 3`).
    pub fn flipped(self) -> Self {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Le => CompareOp::Ge,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Ge => CompareOp::Le,
            op => op,
        }
    }
}

/// A literal a field is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float (compares numerically with integers).
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    /// A status code (OTLP numbering).
    Status(i32),
    /// A span kind (OTLP numbering).
    Kind(i32),
}

impl crate::Query {
    /// A condition every trace this query matches satisfies.
    pub fn condition(&self) -> TraceCondition {
        simplify(pipeline_condition(&self.pipeline))
    }
}

fn pipeline_condition(p: &Pipeline) -> TraceCondition {
    let mut parts = Vec::new();
    // Indices into `parts` of filters that every span of the current spansets passed: a
    // `count()` stage then says how many such spans the trace has at least.
    let mut current: Vec<usize> = Vec::new();
    for stage in &p.stages {
        match stage {
            Stage::Spanset(se) => {
                let c = spanset_condition(se);
                if matches!(se, SpansetExpr::Filter(_)) {
                    current.push(parts.len());
                } else {
                    current.clear();
                }
                parts.push(c);
            }
            Stage::ScalarFilter {
                agg,
                op,
                value: Static::Int(n),
            } if agg.op == AggOp::Count => {
                let least = match op {
                    CmpOp::Gt => n.saturating_add(1),
                    CmpOp::Gte | CmpOp::Eq => *n,
                    _ => 1,
                };
                let least = u32::try_from(least.max(1)).unwrap_or(u32::MAX);
                for &i in &current {
                    if let TraceCondition::Spans { at_least, .. } = &mut parts[i] {
                        *at_least = (*at_least).max(least);
                    }
                }
            }
            // by(), select(), coalesce() and other aggregates keep spans that already passed.
            _ => {}
        }
    }
    TraceCondition::All(parts)
}

fn spanset_condition(se: &SpansetExpr) -> TraceCondition {
    match se {
        SpansetExpr::Filter(f) => TraceCondition::Spans {
            filter: f
                .expr
                .as_ref()
                .map_or(SpanCondition::Always, span_condition),
            at_least: 1,
        },
        SpansetExpr::Pipeline(p) => pipeline_condition(p),
        SpansetExpr::Op(op, l, r) => {
            let (l, r) = (spanset_condition(l), spanset_condition(r));
            use SpansetOp::*;
            match op {
                Or => TraceCondition::Any(vec![l, r]),
                // Negated structural operators return right-hand spans that lack the relation.
                NotChild | NotParent | NotDesc | NotAnc | NotSibling => r,
                // `&&`, the structural operators and their union forms need both sides.
                And | Child | Parent | Desc | Anc | Sibling | UnionChild | UnionParent
                | UnionDesc | UnionAnc | UnionSibling => TraceCondition::All(vec![l, r]),
            }
        }
    }
}

fn span_condition(e: &Expr) -> SpanCondition {
    match e {
        Expr::Static(Static::Bool(b)) => {
            if *b {
                SpanCondition::Always
            } else {
                SpanCondition::Never
            }
        }
        Expr::Binary(BinOp::And, l, r) => {
            SpanCondition::All(vec![span_condition(l), span_condition(r)])
        }
        Expr::Binary(BinOp::Or, l, r) => {
            SpanCondition::Any(vec![span_condition(l), span_condition(r)])
        }
        Expr::Binary(op, l, r) => {
            let Some(cmp) = compare_op(*op) else {
                return SpanCondition::Always;
            };
            let (attr, lit, cmp) = match (l.as_ref(), r.as_ref()) {
                (Expr::Attr(a), other) => (a, other, cmp),
                (other, Expr::Attr(a)) => (a, other, cmp.flipped()),
                _ => return SpanCondition::Always,
            };
            match (field(attr), literal(lit)) {
                (Some(field), Some(value)) => SpanCondition::Compare {
                    field,
                    op: cmp,
                    value,
                },
                _ => SpanCondition::Always,
            }
        }
        Expr::Regex {
            lhs, re, negate, ..
        } => match lhs.as_ref() {
            Expr::Attr(a) => match field(a) {
                Some(field) => SpanCondition::Regex {
                    field,
                    regex: re.clone(),
                    negate: *negate,
                },
                None => SpanCondition::Always,
            },
            _ => SpanCondition::Always,
        },
        Expr::Exists(inner) => match inner.as_ref() {
            Expr::Attr(a) => field(a).map_or(SpanCondition::Always, SpanCondition::Exists),
            _ => SpanCondition::Always,
        },
        _ => SpanCondition::Always,
    }
}

fn compare_op(op: BinOp) -> Option<CompareOp> {
    Some(match op {
        BinOp::Eq => CompareOp::Eq,
        BinOp::Neq => CompareOp::Ne,
        BinOp::Lt => CompareOp::Lt,
        BinOp::Lte => CompareOp::Le,
        BinOp::Gt => CompareOp::Gt,
        BinOp::Gte => CompareOp::Ge,
        _ => return None,
    })
}

/// The field of a span-level attribute reference; trace-level intrinsics, ids, events and links
/// are left to the evaluator.
fn field(a: &Attribute) -> Option<Field> {
    Some(match a {
        Attribute::Intrinsic(i) => match i {
            Intrinsic::Name => Field::Name,
            Intrinsic::Status => Field::Status,
            Intrinsic::StatusMessage => Field::StatusMessage,
            Intrinsic::Kind => Field::Kind,
            Intrinsic::Duration => Field::Duration,
            Intrinsic::InstrumentationName => Field::ScopeName,
            Intrinsic::InstrumentationVersion => Field::ScopeVersion,
            _ => return None,
        },
        Attribute::Attr { scope, name } => match scope {
            AttrScope::Span => Field::SpanAttribute(name.clone()),
            AttrScope::Resource => Field::ResourceAttribute(name.clone()),
            AttrScope::None => Field::AnyAttribute(name.clone()),
            _ => return None,
        },
    })
}

fn literal(e: &Expr) -> Option<Literal> {
    Some(match e {
        Expr::Static(s) => match s {
            Static::Int(i) => Literal::Int(*i),
            Static::Float(f) => Literal::Float(*f),
            Static::Str(s) => Literal::Str(s.clone()),
            Static::Bool(b) => Literal::Bool(*b),
            Static::Duration(d) => Literal::Duration(*d),
            Static::Status(s) => Literal::Status(match s {
                Status::Unset => 0,
                Status::Ok => 1,
                Status::Error => 2,
            }),
            Static::Kind(k) => Literal::Kind(*k as i32),
        },
        Expr::Neg(inner) => match literal(inner)? {
            Literal::Int(i) => Literal::Int(i.checked_neg()?),
            Literal::Float(f) => Literal::Float(-f),
            Literal::Duration(d) => Literal::Duration(d.checked_neg()?),
            _ => return None,
        },
        _ => return None,
    })
}

/// Folds `Always`/`Never` and single-part groups away.
fn simplify(c: TraceCondition) -> TraceCondition {
    match c {
        TraceCondition::All(parts) => {
            let mut parts: Vec<_> = parts
                .into_iter()
                .map(simplify)
                .filter(|p| !matches!(p, TraceCondition::Always))
                .collect();
            match parts.len() {
                0 => TraceCondition::Always,
                1 => parts.remove(0),
                _ => TraceCondition::All(parts),
            }
        }
        TraceCondition::Any(parts) => {
            let parts: Vec<_> = parts.into_iter().map(simplify).collect();
            if parts.iter().any(|p| matches!(p, TraceCondition::Always)) {
                TraceCondition::Always
            } else {
                TraceCondition::Any(parts)
            }
        }
        TraceCondition::Spans { filter, at_least } => match simplify_span(filter) {
            // Any span passes: the trace has at least one span, but maybe not `at_least`.
            SpanCondition::Always if at_least <= 1 => TraceCondition::Always,
            filter => TraceCondition::Spans { filter, at_least },
        },
        c => c,
    }
}

fn simplify_span(c: SpanCondition) -> SpanCondition {
    match c {
        SpanCondition::All(parts) => {
            let mut parts: Vec<_> = parts
                .into_iter()
                .map(simplify_span)
                .filter(|p| !matches!(p, SpanCondition::Always))
                .collect();
            if parts.iter().any(|p| matches!(p, SpanCondition::Never)) {
                return SpanCondition::Never;
            }
            match parts.len() {
                0 => SpanCondition::Always,
                1 => parts.remove(0),
                _ => SpanCondition::All(parts),
            }
        }
        SpanCondition::Any(parts) => {
            let mut parts: Vec<_> = parts
                .into_iter()
                .map(simplify_span)
                .filter(|p| !matches!(p, SpanCondition::Never))
                .collect();
            if parts.iter().any(|p| matches!(p, SpanCondition::Always)) {
                return SpanCondition::Always;
            }
            match parts.len() {
                0 => SpanCondition::Never,
                1 => parts.remove(0),
                _ => SpanCondition::Any(parts),
            }
        }
        c => c,
    }
}
