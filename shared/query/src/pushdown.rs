//! Predicate push-down: a query's necessary condition ([`TraceCondition`]) as row filters on
//! a block's columns plus a formula over how many rows of a trace pass each filter. A search
//! evaluates the formula on the counts a column scan returns and builds spans only for the
//! traces that pass.

use tempest_blocks::BlockMeta;
use tempest_blocks::scan::{Cmp, Number, RowFilter};
use tempest_blocks::schema::{self, ValueType, columns};
use tempest_traceql::Query;
use tempest_traceql::condition::{CompareOp, Field, Literal, SpanCondition, TraceCondition};

/// How a trace's per-filter counts decide whether it may match.
#[derive(Debug, Clone)]
enum Formula {
    All(Vec<Formula>),
    Any(Vec<Formula>),
    /// At least `n` rows pass filter `filter`.
    AtLeast {
        filter: usize,
        n: u32,
    },
}

impl Formula {
    fn holds(&self, counts: &[u32]) -> bool {
        match self {
            Formula::All(parts) => parts.iter().all(|p| p.holds(counts)),
            Formula::Any(parts) => parts.iter().any(|p| p.holds(counts)),
            Formula::AtLeast { filter, n } => counts.get(*filter).is_some_and(|c| c >= n),
        }
    }
}

/// A query's push-down: span conditions to turn into row filters, and the formula over them.
#[derive(Debug, Clone)]
pub struct Pushdown {
    spans: Vec<SpanCondition>,
    /// `None`: every trace may match.
    formula: Option<Formula>,
}

impl Pushdown {
    /// The push-down of `query`.
    pub fn new(query: &Query) -> Self {
        let mut spans = Vec::new();
        let formula = match query.condition() {
            TraceCondition::Always => None,
            c => Some(formula(c, &mut spans)),
        };
        Pushdown { spans, formula }
    }

    /// Whether every trace may match (nothing to filter on).
    pub fn is_always(&self) -> bool {
        self.formula.is_none()
    }

    /// The row filters for one block, in formula order (attributes that the block keeps in
    /// its generic lists as well as in a dedicated column are looked for in both).
    pub fn filters(&self, meta: &BlockMeta) -> Vec<RowFilter> {
        self.spans.iter().map(|c| row_filter(c, meta)).collect()
    }

    /// How many filters [`Pushdown::filters`] returns.
    pub fn width(&self) -> usize {
        self.spans.len()
    }

    /// Whether a trace whose rows pass the filters `counts` times may match.
    pub fn may_match(&self, counts: &[u32]) -> bool {
        self.formula.as_ref().is_none_or(|f| f.holds(counts))
    }
}

fn formula(c: TraceCondition, spans: &mut Vec<SpanCondition>) -> Formula {
    match c {
        // Only at the top (`Pushdown::new`) or folded away by the condition's simplification;
        // anything at least one row passes is a safe stand-in.
        TraceCondition::Always => {
            spans.push(SpanCondition::Always);
            Formula::AtLeast {
                filter: spans.len() - 1,
                n: 0,
            }
        }
        TraceCondition::All(parts) => {
            Formula::All(parts.into_iter().map(|p| formula(p, spans)).collect())
        }
        TraceCondition::Any(parts) => {
            Formula::Any(parts.into_iter().map(|p| formula(p, spans)).collect())
        }
        TraceCondition::Spans { filter, at_least } => {
            spans.push(filter);
            Formula::AtLeast {
                filter: spans.len() - 1,
                n: at_least,
            }
        }
    }
}

fn cmp(op: CompareOp) -> Cmp {
    match op {
        CompareOp::Eq => Cmp::Eq,
        CompareOp::Ne => Cmp::Ne,
        CompareOp::Lt => Cmp::Lt,
        CompareOp::Le => Cmp::Le,
        CompareOp::Gt => Cmp::Gt,
        CompareOp::Ge => Cmp::Ge,
    }
}

fn row_filter(c: &SpanCondition, meta: &BlockMeta) -> RowFilter {
    match c {
        SpanCondition::Always => RowFilter::Always,
        SpanCondition::Never => RowFilter::Never,
        SpanCondition::All(parts) => {
            RowFilter::All(parts.iter().map(|p| row_filter(p, meta)).collect())
        }
        SpanCondition::Any(parts) => {
            RowFilter::Any(parts.iter().map(|p| row_filter(p, meta)).collect())
        }
        SpanCondition::Compare { field, op, value } => compare(field, cmp(*op), value, meta),
        SpanCondition::Regex {
            field,
            regex,
            negate,
        } => on_strings(field, meta, |column| RowFilter::Regex {
            column,
            regex: regex.clone(),
            negate: *negate,
        }),
        SpanCondition::Exists(field) => exists(field),
    }
}

/// Where a field's string values are.
enum Located {
    /// Only in this column.
    Column(&'static str),
    /// In this column, or in a generic list (the filter saying so).
    Either(&'static str, RowFilter),
}

/// The string column of a field, if it has one.
fn string_column(field: &Field, meta: &BlockMeta) -> Option<Located> {
    Some(match field {
        Field::Name => Located::Column(columns::NAME),
        Field::StatusMessage => Located::Column(columns::STATUS_MESSAGE),
        Field::ScopeName => Located::Column(columns::SCOPE_NAME),
        Field::ScopeVersion => Located::Column(columns::SCOPE_VERSION),
        Field::SpanAttribute(key) => match schema::dedicated_column(key) {
            Some((column, ValueType::Str)) => located(column, &format!("span.{key}"), key, meta),
            _ => return None,
        },
        Field::ResourceAttribute(key) if key == "service.name" => located(
            columns::SERVICE_NAME,
            schema::RESOURCE_SERVICE_NAME,
            key,
            meta,
        ),
        _ => return None,
    })
}

/// `test` on the field's string column, also admitting rows whose generic list holds the
/// field where the block keeps some of its values there; without a string column, rows
/// where the field exists.
fn on_strings(
    field: &Field,
    meta: &BlockMeta,
    test: impl Fn(&'static str) -> RowFilter,
) -> RowFilter {
    match string_column(field, meta) {
        Some(Located::Column(column)) => test(column),
        Some(Located::Either(column, generic)) => RowFilter::Any(vec![test(column), generic]),
        None => exists(field),
    }
}

fn located(column: &'static str, noted: &str, key: &str, meta: &BlockMeta) -> Located {
    if meta.has_generic(noted) {
        let list = if noted.starts_with("span.") {
            columns::SPAN_ATTRIBUTES
        } else {
            columns::RESOURCE_ATTRIBUTES
        };
        Located::Either(
            column,
            RowFilter::HasKey {
                column: list,
                key: key.to_owned(),
            },
        )
    } else {
        Located::Column(column)
    }
}

fn compare(field: &Field, op: Cmp, value: &Literal, meta: &BlockMeta) -> RowFilter {
    let num = |column, value| RowFilter::Num { column, op, value };
    match (field, value) {
        (Field::AnyAttribute(key), _) => RowFilter::Any(vec![
            compare(&Field::SpanAttribute(key.clone()), op, value, meta),
            compare(&Field::ResourceAttribute(key.clone()), op, value, meta),
        ]),
        (Field::Status, Literal::Status(code)) => {
            num(columns::STATUS_CODE, Number::Int(i64::from(*code)))
        }
        (Field::Kind, Literal::Kind(kind)) => num(columns::KIND, Number::Int(i64::from(*kind))),
        (Field::Duration, Literal::Duration(d)) => num(columns::DURATION, Number::Int(*d)),
        (_, Literal::Str(s)) => on_strings(field, meta, |column| RowFilter::Str {
            column,
            op,
            value: s.clone(),
        }),
        (Field::SpanAttribute(key), Literal::Int(_) | Literal::Float(_)) => {
            match schema::dedicated_column(key) {
                Some((column, ValueType::Int)) => {
                    let n = match value {
                        Literal::Int(i) => Number::Int(*i),
                        Literal::Float(f) => Number::Float(*f),
                        _ => return exists(field),
                    };
                    // Doubles compare numerically with ints and live in the generic list.
                    RowFilter::Any(vec![num(column, n), generic_list(field)])
                }
                _ => exists(field),
            }
        }
        _ => exists(field),
    }
}

/// The generic attribute list holding `field`, as a filter.
fn generic_list(field: &Field) -> RowFilter {
    match field {
        Field::SpanAttribute(key) => RowFilter::HasKey {
            column: columns::SPAN_ATTRIBUTES,
            key: key.clone(),
        },
        Field::ResourceAttribute(key) => RowFilter::HasKey {
            column: columns::RESOURCE_ATTRIBUTES,
            key: key.clone(),
        },
        _ => RowFilter::Always,
    }
}

/// Rows where `field` is set at all (any comparison with a missing field is false).
fn exists(field: &Field) -> RowFilter {
    match field {
        Field::SpanAttribute(key) => match schema::dedicated_column(key) {
            Some((column, _)) => {
                RowFilter::Any(vec![RowFilter::NotNull { column }, generic_list(field)])
            }
            None => generic_list(field),
        },
        Field::ResourceAttribute(key) if key == "service.name" => RowFilter::Any(vec![
            RowFilter::NotNull {
                column: columns::SERVICE_NAME,
            },
            generic_list(field),
        ]),
        Field::ResourceAttribute(_) => generic_list(field),
        Field::AnyAttribute(key) => RowFilter::Any(vec![
            exists(&Field::SpanAttribute(key.clone())),
            exists(&Field::ResourceAttribute(key.clone())),
        ]),
        // Intrinsics are always set.
        _ => RowFilter::Always,
    }
}
