//! Evaluation of a parsed query over the spans of one trace.

use std::borrow::Cow;
use std::collections::HashMap;

use tempest_traces::{Event, KeyValue, Link, Span};

use crate::ast::{
    AggOp, Aggregate, Attribute, CmpOp, Expr, Filter, Intrinsic, Pipeline, SpansetExpr, SpansetOp,
    Stage, Static, Status,
};
use crate::lexer::AttrScope;
use crate::value::{GroupKey, Value, binary_op, regex_match};

/// Per-trace facts: start order, the parent/child tree, root span, trace duration.
pub(crate) struct TraceCtx<'a> {
    pub spans: &'a [Span],
    /// Span indices in start-time order.
    pub order: Vec<usize>,
    parent: Vec<Option<usize>>,
    is_root: Vec<bool>,
    /// Parents before children; spans caught in parent cycles are left out.
    topo: Vec<usize>,
    root: Option<usize>,
    trace_duration: i64,
}

fn real_parent(s: &Span) -> Option<[u8; 8]> {
    s.parent_span_id.filter(|p| *p != [0u8; 8])
}

fn nanos_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl<'a> TraceCtx<'a> {
    pub(crate) fn new(spans: &'a [Span]) -> Self {
        let n = spans.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (spans[i].start_unix_nano, i));
        let mut by_id: HashMap<[u8; 8], usize> = HashMap::with_capacity(n);
        for (i, s) in spans.iter().enumerate() {
            by_id.entry(s.span_id).or_insert(i);
        }
        let parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                real_parent(s)
                    .and_then(|p| by_id.get(&p).copied())
                    .filter(|&p| p != i)
            })
            .collect();
        let is_root: Vec<bool> = spans.iter().map(|s| real_parent(s).is_none()).collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &i in &order {
            if let Some(p) = parent[i] {
                children[p].push(i);
            }
        }
        let mut topo: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| parent[i].is_none())
            .collect();
        let mut k = 0;
        while k < topo.len() {
            let i = topo[k];
            topo.extend_from_slice(&children[i]);
            k += 1;
        }
        let root = order.iter().copied().find(|&i| is_root[i]);
        let min_start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
        let max_end = spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
        TraceCtx {
            spans,
            order,
            parent,
            is_root,
            topo,
            root,
            trace_duration: nanos_i64(max_end.saturating_sub(min_start)),
        }
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn mask(&self, sets: &[Set]) -> Vec<bool> {
        let mut m = vec![false; self.len()];
        for s in sets {
            for &i in &s.spans {
                m[i] = true;
            }
        }
        m
    }

    fn spans_of(&self, m: &[bool]) -> Vec<usize> {
        self.order.iter().copied().filter(|&i| m[i]).collect()
    }

    fn has_parent_in(&self, m: &[bool]) -> Vec<bool> {
        self.parent
            .iter()
            .map(|p| p.is_some_and(|p| m[p]))
            .collect()
    }

    fn has_child_in(&self, m: &[bool]) -> Vec<bool> {
        let mut out = vec![false; self.len()];
        for (i, p) in self.parent.iter().enumerate() {
            if let (true, Some(p)) = (m[i], p) {
                out[*p] = true;
            }
        }
        out
    }

    fn has_ancestor_in(&self, m: &[bool]) -> Vec<bool> {
        let mut out = vec![false; self.len()];
        for &i in &self.topo {
            if let Some(p) = self.parent[i] {
                out[i] = m[p] || out[p];
            }
        }
        out
    }

    fn has_descendant_in(&self, m: &[bool]) -> Vec<bool> {
        let mut out = vec![false; self.len()];
        for &i in self.topo.iter().rev() {
            if let (true, Some(p)) = (m[i] || out[i], self.parent[i]) {
                out[p] = true;
            }
        }
        out
    }

    /// Siblings share a parent; root spans are siblings of each other (as in Tempo, whose
    /// roots share the nested-set parent -1); spans whose parent is missing have none.
    fn has_sibling_in(&self, m: &[bool]) -> Vec<bool> {
        let n = self.len();
        let group = |i: usize| -> Option<usize> {
            match self.parent[i] {
                Some(p) => Some(p),
                None if self.is_root[i] => Some(n),
                None => None,
            }
        };
        let mut counts = vec![0usize; n + 1];
        for (i, _) in m.iter().enumerate().filter(|(_, in_m)| **in_m) {
            if let Some(g) = group(i) {
                counts[g] += 1;
            }
        }
        (0..n)
            .map(|i| group(i).is_some_and(|g| counts[g] > usize::from(m[i])))
            .collect()
    }
}

/// A spanset while evaluating: span indices in start order, and spanset attributes.
#[derive(Debug, Clone)]
pub(crate) struct Set {
    pub spans: Vec<usize>,
    pub attrs: Vec<KeyValue>,
}

/// The span an expression is evaluated against, with the event/link in scope.
#[derive(Clone, Copy)]
struct SpanRef<'a> {
    ctx: &'a TraceCtx<'a>,
    span: &'a Span,
    event: Option<&'a Event>,
    link: Option<&'a Link>,
}

fn find<'a>(attrs: &'a [KeyValue], name: &str) -> Option<Value<'a>> {
    attrs
        .iter()
        .find(|kv| kv.key == name)
        .map(|kv| Value::from_any(&kv.value))
}

fn lookup<'a>(a: &'a Attribute, s: SpanRef<'a>) -> Value<'a> {
    let span = s.span;
    let v = match a {
        Attribute::Attr { scope, name } => match scope {
            AttrScope::Span => find(&span.attributes, name),
            AttrScope::Resource => find(&span.resource.attributes, name),
            AttrScope::None => find(&span.attributes, name)
                .filter(|v| !v.is_nil())
                .or_else(|| find(&span.resource.attributes, name)),
            AttrScope::Event => s.event.and_then(|e| find(&e.attributes, name)),
            AttrScope::Link => s.link.and_then(|l| find(&l.attributes, name)),
            AttrScope::Instrumentation => find(&span.scope.attributes, name),
            AttrScope::Parent => None,
        },
        Attribute::Intrinsic(i) => Some(match i {
            Intrinsic::Name => Value::Str(Cow::Borrowed(&span.name)),
            Intrinsic::Status => Value::Status(Status::from_code(span.status_code)),
            Intrinsic::StatusMessage => Value::Str(Cow::Borrowed(&span.status_message)),
            Intrinsic::Kind => Value::Kind(span.kind),
            Intrinsic::Duration => Value::Duration(nanos_i64(span.duration_nano())),
            Intrinsic::SpanId => Value::Str(Cow::Owned(tempest_core::hex::encode(&span.span_id))),
            Intrinsic::ParentId => match real_parent(span) {
                Some(p) => Value::Str(Cow::Owned(tempest_core::hex::encode(&p))),
                None => Value::Nil,
            },
            Intrinsic::TraceId => Value::Str(Cow::Owned(tempest_core::hex::encode(&span.trace_id))),
            Intrinsic::TraceRootName => match s.ctx.root {
                Some(r) => Value::Str(Cow::Borrowed(&s.ctx.spans[r].name)),
                None => Value::Nil,
            },
            Intrinsic::TraceRootService => {
                match s
                    .ctx
                    .root
                    .and_then(|r| s.ctx.spans[r].resource.service_name())
                {
                    Some(n) => Value::Str(Cow::Borrowed(n)),
                    None => Value::Nil,
                }
            }
            Intrinsic::TraceDuration => Value::Duration(s.ctx.trace_duration),
            Intrinsic::EventName => match s.event {
                Some(e) => Value::Str(Cow::Borrowed(&e.name)),
                None => Value::Nil,
            },
            Intrinsic::EventTimeSinceStart => match s.event {
                Some(e) => {
                    let d = i128::from(e.time_unix_nano) - i128::from(span.start_unix_nano);
                    Value::Duration(i64::try_from(d).unwrap_or(if d < 0 {
                        i64::MIN
                    } else {
                        i64::MAX
                    }))
                }
                None => Value::Nil,
            },
            Intrinsic::LinkTraceId => match s.link {
                Some(l) => Value::Str(Cow::Owned(tempest_core::hex::encode(&l.trace_id))),
                None => Value::Nil,
            },
            Intrinsic::LinkSpanId => match s.link {
                Some(l) => Value::Str(Cow::Owned(tempest_core::hex::encode(&l.span_id))),
                None => Value::Nil,
            },
            Intrinsic::InstrumentationName if !span.scope.name.is_empty() => {
                Value::Str(Cow::Borrowed(&span.scope.name))
            }
            Intrinsic::InstrumentationVersion if !span.scope.version.is_empty() => {
                Value::Str(Cow::Borrowed(&span.scope.version))
            }
            Intrinsic::InstrumentationName | Intrinsic::InstrumentationVersion => Value::Nil,
        }),
    };
    v.unwrap_or(Value::Nil)
}

fn eval_expr<'a>(e: &'a Expr, s: SpanRef<'a>) -> Value<'a> {
    match e {
        Expr::Static(st) => Value::from_static(st),
        Expr::Attr(a) => lookup(a, s),
        Expr::Binary(op, l, r) => {
            let lv = eval_expr(l, s);
            match (op, &lv) {
                (crate::ast::BinOp::And, Value::Bool(false)) => return Value::Bool(false),
                (crate::ast::BinOp::Or, Value::Bool(true)) => return Value::Bool(true),
                _ => {}
            }
            let rv = eval_expr(r, s);
            binary_op(*op, &lv, &rv)
        }
        Expr::Regex {
            lhs, re, negate, ..
        } => Value::Bool(regex_match(re, *negate, &eval_expr(lhs, s))),
        Expr::Not(e) => match eval_expr(e, s) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Nil,
        },
        Expr::Neg(e) => match eval_expr(e, s) {
            Value::Int(i) => Value::Int(i.wrapping_neg()),
            Value::Float(f) => Value::Float(-f),
            Value::Duration(d) => Value::Duration(d.wrapping_neg()),
            _ => Value::Nil,
        },
        Expr::Exists(e) => Value::Bool(!eval_expr(e, s).is_nil()),
        Expr::NotExists(e) => Value::Bool(eval_expr(e, s).is_nil()),
    }
}

/// `Some(x)` for every element, or a single `None` when there are none.
fn each_or_none<T>(xs: &[T]) -> impl Iterator<Item = Option<&T>> {
    xs.iter().map(Some).chain(xs.is_empty().then_some(None))
}

fn filter_matches(f: &Filter, ctx: &TraceCtx<'_>, i: usize) -> bool {
    let Some(e) = &f.expr else {
        return true;
    };
    let span = &ctx.spans[i];
    let events: &[Event] = if f.uses_events { &span.events } else { &[] };
    let links: &[Link] = if f.uses_links { &span.links } else { &[] };
    for event in each_or_none(events) {
        for link in each_or_none(links) {
            let s = SpanRef {
                ctx,
                span,
                event,
                link,
            };
            if eval_expr(e, s) == Value::Bool(true) {
                return true;
            }
        }
    }
    false
}

/// The span with its first event and link in scope (for `by()` and aggregates).
fn first_ref<'a>(ctx: &'a TraceCtx<'a>, i: usize) -> SpanRef<'a> {
    let span = &ctx.spans[i];
    SpanRef {
        ctx,
        span,
        event: span.events.first(),
        link: span.links.first(),
    }
}

pub(crate) fn eval_pipeline(p: &Pipeline, ctx: &TraceCtx<'_>, input: Vec<Set>) -> Vec<Set> {
    let mut cur = input;
    for stage in &p.stages {
        cur = eval_stage(stage, ctx, cur);
        if cur.is_empty() {
            break;
        }
    }
    cur
}

fn eval_stage(stage: &Stage, ctx: &TraceCtx<'_>, input: Vec<Set>) -> Vec<Set> {
    match stage {
        Stage::Spanset(se) => input
            .iter()
            .flat_map(|ss| eval_spanset(se, ctx, ss))
            .collect(),
        Stage::ScalarFilter { agg, op, value } => input
            .into_iter()
            .filter_map(|mut ss| {
                let v = aggregate(agg, ctx, &ss.spans)?;
                if compare(&v, *op, value) {
                    ss.attrs.push(KeyValue {
                        key: agg.to_string(),
                        value: v.to_any(),
                    });
                    Some(ss)
                } else {
                    None
                }
            })
            .collect(),
        Stage::By(exprs) => {
            let mut out = Vec::new();
            for ss in &input {
                let mut index: HashMap<Vec<GroupKey>, usize> = HashMap::new();
                let mut groups: Vec<Set> = Vec::new();
                for &i in &ss.spans {
                    let s = first_ref(ctx, i);
                    let vals: Vec<Value<'_>> = exprs.iter().map(|e| eval_expr(e, s)).collect();
                    let key: Vec<GroupKey> = vals.iter().map(Value::key).collect();
                    let g = *index.entry(key).or_insert_with(|| {
                        let mut attrs = ss.attrs.clone();
                        for (e, v) in exprs.iter().zip(&vals) {
                            attrs.push(KeyValue {
                                key: format!("by({e})"),
                                value: v.to_any(),
                            });
                        }
                        groups.push(Set {
                            spans: Vec::new(),
                            attrs,
                        });
                        groups.len() - 1
                    });
                    if let Some(group) = groups.get_mut(g) {
                        group.spans.push(i);
                    }
                }
                out.extend(groups);
            }
            out
        }
        Stage::Select(_) => input,
        Stage::Coalesce => {
            let m = ctx.mask(&input);
            vec![Set {
                spans: ctx.spans_of(&m),
                attrs: Vec::new(),
            }]
        }
    }
}

fn eval_spanset(se: &SpansetExpr, ctx: &TraceCtx<'_>, ss: &Set) -> Vec<Set> {
    let result: Vec<usize> = match se {
        SpansetExpr::Filter(f) => ss
            .spans
            .iter()
            .copied()
            .filter(|&i| filter_matches(f, ctx, i))
            .collect(),
        SpansetExpr::Pipeline(p) => return eval_pipeline(p, ctx, vec![ss.clone()]),
        SpansetExpr::Op(op, l, r) => {
            let lhs = eval_spanset(l, ctx, ss);
            let rhs = eval_spanset(r, ctx, ss);
            let has = |sets: &[Set]| sets.iter().any(|s| !s.spans.is_empty());
            match op {
                SpansetOp::And if has(&lhs) && has(&rhs) => union(ctx, &lhs, &rhs),
                SpansetOp::Or if has(&lhs) || has(&rhs) => union(ctx, &lhs, &rhs),
                SpansetOp::And | SpansetOp::Or => Vec::new(),
                _ if !has(&rhs) => Vec::new(),
                op => {
                    let l = ctx.mask(&lhs);
                    let r = ctx.mask(&rhs);
                    let m = structural(*op, ctx, &l, &r);
                    ctx.spans_of(&m)
                }
            }
        }
    };
    if result.is_empty() {
        Vec::new()
    } else {
        vec![Set {
            spans: result,
            attrs: ss.attrs.clone(),
        }]
    }
}

fn union(ctx: &TraceCtx<'_>, a: &[Set], b: &[Set]) -> Vec<usize> {
    let mut m = ctx.mask(a);
    for s in b {
        for &i in &s.spans {
            m[i] = true;
        }
    }
    ctx.spans_of(&m)
}

/// Structural operators: spans of the right side related to the left side (union forms also
/// return the related spans of the left side).
fn structural(op: SpansetOp, ctx: &TraceCtx<'_>, l: &[bool], r: &[bool]) -> Vec<bool> {
    let and =
        |a: &[bool], b: &[bool]| -> Vec<bool> { a.iter().zip(b).map(|(x, y)| *x && *y).collect() };
    let and_not =
        |a: &[bool], b: &[bool]| -> Vec<bool> { a.iter().zip(b).map(|(x, y)| *x && !*y).collect() };
    let or = |a: Vec<bool>, b: Vec<bool>| -> Vec<bool> {
        a.iter().zip(&b).map(|(x, y)| *x || *y).collect()
    };
    match op {
        SpansetOp::Child => and(r, &ctx.has_parent_in(l)),
        SpansetOp::NotChild => and_not(r, &ctx.has_parent_in(l)),
        SpansetOp::Parent => and(r, &ctx.has_child_in(l)),
        SpansetOp::NotParent => and_not(r, &ctx.has_child_in(l)),
        SpansetOp::Desc => and(r, &ctx.has_ancestor_in(l)),
        SpansetOp::NotDesc => and_not(r, &ctx.has_ancestor_in(l)),
        SpansetOp::Anc => and(r, &ctx.has_descendant_in(l)),
        SpansetOp::NotAnc => and_not(r, &ctx.has_descendant_in(l)),
        SpansetOp::Sibling => and(r, &ctx.has_sibling_in(l)),
        SpansetOp::NotSibling => and_not(r, &ctx.has_sibling_in(l)),
        SpansetOp::UnionChild => or(and(r, &ctx.has_parent_in(l)), and(l, &ctx.has_child_in(r))),
        SpansetOp::UnionParent => or(and(r, &ctx.has_child_in(l)), and(l, &ctx.has_parent_in(r))),
        SpansetOp::UnionDesc => or(
            and(r, &ctx.has_ancestor_in(l)),
            and(l, &ctx.has_descendant_in(r)),
        ),
        SpansetOp::UnionAnc => or(
            and(r, &ctx.has_descendant_in(l)),
            and(l, &ctx.has_ancestor_in(r)),
        ),
        SpansetOp::UnionSibling => or(
            and(r, &ctx.has_sibling_in(l)),
            and(l, &ctx.has_sibling_in(r)),
        ),
        SpansetOp::And | SpansetOp::Or => vec![false; ctx.len()],
    }
}

/// An aggregate over the spans of a spanset; `None` when no span has a numeric value.
fn aggregate(agg: &Aggregate, ctx: &TraceCtx<'_>, spans: &[usize]) -> Option<Value<'static>> {
    let Some(e) = &agg.expr else {
        return Some(Value::Int(i64::try_from(spans.len()).unwrap_or(i64::MAX)));
    };
    let values = spans
        .iter()
        .map(|&i| eval_expr(e, first_ref(ctx, i)).into_owned());
    let numeric = values.filter(Value::is_numeric);
    match agg.op {
        AggOp::Count => None,
        AggOp::Min | AggOp::Max => {
            let mut best: Option<Value<'static>> = None;
            for v in numeric {
                let better = match &best {
                    None => true,
                    Some(b) if agg.op == AggOp::Max => v.as_f64() > b.as_f64(),
                    Some(b) => v.as_f64() < b.as_f64(),
                };
                if better {
                    best = Some(v);
                }
            }
            best
        }
        AggOp::Sum | AggOp::Avg => {
            // like Tempo, the first value fixes the type; values of another type are skipped
            let mut acc: Option<Value<'static>> = None;
            let mut n: i64 = 0;
            for v in numeric {
                match (&mut acc, v) {
                    (None, v) => {
                        acc = Some(v);
                        n = 1;
                    }
                    (Some(Value::Int(a)), Value::Int(b)) => {
                        *a = a.wrapping_add(b);
                        n += 1;
                    }
                    (Some(Value::Duration(a)), Value::Duration(b)) => {
                        *a = a.wrapping_add(b);
                        n += 1;
                    }
                    (Some(Value::Float(a)), Value::Float(b)) => {
                        *a += b;
                        n += 1;
                    }
                    _ => {}
                }
            }
            let acc = acc?;
            if agg.op == AggOp::Sum {
                return Some(acc);
            }
            Some(match acc {
                Value::Int(a) => Value::Float(a as f64 / n as f64),
                Value::Duration(d) => Value::Duration(d / n.max(1)),
                Value::Float(f) => Value::Float(f / n as f64),
                other => other,
            })
        }
    }
}

fn compare(v: &Value<'_>, op: CmpOp, s: &Static) -> bool {
    let rhs = Value::from_static(s);
    match op {
        CmpOp::Eq => v.equals(&rhs),
        CmpOp::Neq => !v.equals(&rhs),
        _ => {
            let Some(ord) = v.as_f64().partial_cmp(&rhs.as_f64()) else {
                return false;
            };
            match op {
                CmpOp::Lt => ord.is_lt(),
                CmpOp::Lte => ord.is_le(),
                CmpOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            }
        }
    }
}

/// The attributes a matched span shows (`shown` lists them in query order).
pub(crate) fn shown_attributes(shown: &[Attribute], ctx: &TraceCtx<'_>, i: usize) -> Vec<KeyValue> {
    let span = &ctx.spans[i];
    let mut out = Vec::new();
    for a in shown {
        let base = SpanRef {
            ctx,
            span,
            event: None,
            link: None,
        };
        let v = if a.uses_events() {
            span.events
                .iter()
                .map(|e| {
                    lookup(
                        a,
                        SpanRef {
                            event: Some(e),
                            ..base
                        },
                    )
                })
                .find(|v| !v.is_nil())
        } else if a.uses_links() {
            span.links
                .iter()
                .map(|l| {
                    lookup(
                        a,
                        SpanRef {
                            link: Some(l),
                            ..base
                        },
                    )
                })
                .find(|v| !v.is_nil())
        } else {
            Some(lookup(a, base))
        };
        if let Some(v) = v.filter(|v| !v.is_nil()) {
            let kv = KeyValue {
                key: a.output_key().to_string(),
                value: v.to_any(),
            };
            // `.x` and `span.x` show the same thing once
            if !out.contains(&kv) {
                out.push(kv);
            }
        }
    }
    out
}
