//! TraceQL for Tempest: a parser with positioned errors and an evaluator over Tempest's span
//! model, following Grafana Tempo's semantics (`pkg/traceql`) for the search subset of the
//! language: spanset filters, spanset and structural operators, and pipelines with `count()`,
//! `avg()`, `min()`, `max()`, `sum()`, `by()`, `select()` and `coalesce()`.
//!
//! Metrics queries (`rate()`, `quantile_over_time()`, `compare()`, ...), query hints
//! (`with(...)`) and `parent.` attributes are rejected with a [`ParseError`].
//!
//! ```
//! let q = tempest_traceql::parse(r#"{ resource.service.name = "api" } | count() > 2"#).unwrap();
//! assert!(q.eval(&[]).is_empty());
//! assert!(tempest_traceql::parse("{ } | rate()").is_err());
//! ```

mod ast;
pub mod condition;
mod eval;
mod lexer;
mod parser;
mod value;

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod parser_tests;

use std::fmt;

use tempest_traces::{KeyValue, Span};

use crate::ast::{Attribute, Pipeline, SpansetExpr, Stage};
use crate::eval::{Set, TraceCtx, eval_pipeline, shown_attributes};

pub use parser::{ParseError, parse};

/// A parsed TraceQL query.
#[derive(Debug, Clone)]
pub struct Query {
    pipeline: Pipeline,
    /// Attributes a matched span shows: those referenced by filters, `by()`, aggregates and
    /// `select()`, in query order, minus the intrinsics Tempo leaves out.
    shown: Vec<Attribute>,
    /// The text it was parsed from.
    source: String,
}

/// One result spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSet {
    /// Matched spans (indices into the `trace` slice passed to eval), in start-time order, each
    /// with the attributes to show for it.
    pub spans: Vec<MatchedSpan>,
    /// Spanset-level attributes: pipeline outputs such as `by(resource.service.name)` keys and
    /// aggregate values (`count()`, `avg(duration)`), in the order the pipeline added them.
    pub attributes: Vec<KeyValue>,
}

/// One span of a result spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedSpan {
    /// Index into the `trace` slice passed to [`Query::eval`].
    pub index: usize,
    /// The attributes the query referenced (in filters, `by()`, aggregates) plus `select()`ed
    /// ones, with this span's values; missing ones are left out. Keys are written as Tempo
    /// returns them: attribute names without scope (`service.name` for
    /// `resource.service.name`), intrinsics by name (`status`, `kind`, `statusMessage`,
    /// `span:parentID`, `event:name`, ...). `name`, `duration`, span/trace ids and trace-level
    /// intrinsics are not repeated. Durations are Go-style strings (`1.5s`), status and kind
    /// are strings (`error`, `server`).
    pub attributes: Vec<KeyValue>,
}

impl Query {
    pub(crate) fn new(pipeline: Pipeline, source: &str) -> Self {
        let mut shown = Vec::new();
        collect_pipeline(&pipeline, &mut shown);
        Query {
            pipeline,
            shown,
            source: source.to_owned(),
        }
    }

    /// The text the query was parsed from (to pass it on: [`parse`] of it gives this query
    /// again; the canonical `Display` form is for showing).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The spansets this trace yields (empty when the trace does not match). `trace` holds all
    /// spans of one trace, in any order.
    pub fn eval(&self, trace: &[Span]) -> Vec<SpanSet> {
        if trace.is_empty() {
            return Vec::new();
        }
        let ctx = TraceCtx::new(trace);
        let input = vec![Set {
            spans: ctx.order.clone(),
            attrs: Vec::new(),
        }];
        let mut cache: Vec<Option<Vec<KeyValue>>> = vec![None; trace.len()];
        eval_pipeline(&self.pipeline, &ctx, input)
            .into_iter()
            .filter(|s| !s.spans.is_empty())
            .map(|s| SpanSet {
                spans: s
                    .spans
                    .iter()
                    .map(|&i| MatchedSpan {
                        index: i,
                        attributes: cache[i]
                            .get_or_insert_with(|| shown_attributes(&self.shown, &ctx, i))
                            .clone(),
                    })
                    .collect(),
                attributes: s.attrs,
            })
            .collect()
    }
}

/// The canonical form of the query (Tempo's `String()` style).
impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pipeline)
    }
}

fn push_shown(a: &Attribute, out: &mut Vec<Attribute>) {
    if let Attribute::Intrinsic(i) = a
        && !i.shown()
    {
        return;
    }
    if !out.contains(a) {
        out.push(a.clone());
    }
}

fn collect_pipeline(p: &Pipeline, out: &mut Vec<Attribute>) {
    for stage in &p.stages {
        match stage {
            Stage::Spanset(se) => collect_spanset(se, out),
            Stage::ScalarFilter { agg, .. } => {
                if let Some(e) = &agg.expr {
                    e.visit_attributes(&mut |a| push_shown(a, out));
                }
            }
            Stage::By(es) => {
                for e in es {
                    e.visit_attributes(&mut |a| push_shown(a, out));
                }
            }
            Stage::Select(attrs) => {
                for a in attrs {
                    push_shown(a, out);
                }
            }
            Stage::Coalesce => {}
        }
    }
}

fn collect_spanset(se: &SpansetExpr, out: &mut Vec<Attribute>) {
    match se {
        SpansetExpr::Filter(f) => {
            if let Some(e) = &f.expr {
                e.visit_attributes(&mut |a| push_shown(a, out));
            }
        }
        SpansetExpr::Op(_, l, r) => {
            collect_spanset(l, out);
            collect_spanset(r, out);
        }
        SpansetExpr::Pipeline(p) => collect_pipeline(p, out),
    }
}
