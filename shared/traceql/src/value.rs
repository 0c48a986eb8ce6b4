//! Run-time values and Tempo's operator semantics (`ast_execute.go`, `Static.Equals`).

use std::borrow::Cow;
use std::cmp::Ordering;

use tempest_traces::{AnyValue, SpanKind};

use crate::ast::{BinOp, Static, Status, Type, go_duration, kind_str};

/// A value read from a span or a literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Nil,
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(Status),
    Kind(SpanKind),
    /// An array attribute (elements converted on use).
    Array(&'a [AnyValue]),
}

impl<'a> Value<'a> {
    pub(crate) fn from_static(s: &'a Static) -> Self {
        match s {
            Static::Int(i) => Value::Int(*i),
            Static::Float(f) => Value::Float(*f),
            Static::Str(s) => Value::Str(Cow::Borrowed(s)),
            Static::Bool(b) => Value::Bool(*b),
            Static::Duration(d) => Value::Duration(*d),
            Static::Status(s) => Value::Status(*s),
            Static::Kind(k) => Value::Kind(*k),
        }
    }

    pub(crate) fn from_any(v: &'a AnyValue) -> Self {
        match v {
            AnyValue::Str(s) => Value::Str(Cow::Borrowed(s)),
            AnyValue::Bool(b) => Value::Bool(*b),
            AnyValue::Int(i) => Value::Int(*i),
            AnyValue::Double(f) => Value::Float(*f),
            AnyValue::Array(a) => Value::Array(a),
            // Tempo doesn't index bytes or nested lists.
            AnyValue::Bytes(_) | AnyValue::KvList(_) => Value::Nil,
        }
    }

    fn ty(&self) -> Type {
        match self {
            Value::Nil | Value::Array(_) => Type::Nil,
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::Str(_) => Type::Str,
            Value::Bool(_) => Type::Bool,
            Value::Duration(_) => Type::Duration,
            Value::Status(_) => Type::Status,
            Value::Kind(_) => Type::Kind,
        }
    }

    pub(crate) fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub(crate) fn is_numeric(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_) | Value::Duration(_))
    }

    pub(crate) fn as_f64(&self) -> f64 {
        match self {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            Value::Duration(d) => *d as f64,
            _ => f64::NAN,
        }
    }

    /// Tempo's `Static.Equals`.
    pub(crate) fn equals(&self, o: &Value<'_>) -> bool {
        match (self, o) {
            (Value::Nil, _) | (_, Value::Nil) => false,
            (Value::Int(a) | Value::Duration(a), Value::Int(b) | Value::Duration(b)) => a == b,
            (Value::Int(_) | Value::Duration(_), Value::Float(b)) => self.as_f64() == *b,
            (Value::Float(a), _) => *a == o.as_f64(),
            (Value::Status(a), Value::Status(b)) => a == b,
            (Value::Kind(a), Value::Kind(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            _ => false,
        }
    }

    /// The value as a result attribute (Tempo's `AsAnyValue`).
    pub(crate) fn to_any(&self) -> AnyValue {
        match self {
            Value::Nil => AnyValue::Str("nil".into()),
            Value::Int(i) => AnyValue::Int(*i),
            Value::Float(f) => AnyValue::Double(*f),
            Value::Str(s) => AnyValue::Str(s.to_string()),
            Value::Bool(b) => AnyValue::Bool(*b),
            Value::Duration(d) => AnyValue::Str(go_duration(*d)),
            Value::Status(s) => AnyValue::Str(s.as_str().into()),
            Value::Kind(k) => AnyValue::Str(kind_str(*k).into()),
            Value::Array(a) => AnyValue::Array(a.to_vec()),
        }
    }

    /// A hashable, owned form (for grouping).
    pub(crate) fn key(&self) -> GroupKey {
        match self {
            Value::Nil => GroupKey::Nil,
            Value::Int(i) => GroupKey::Int(*i),
            Value::Float(f) => GroupKey::Float(f.to_bits()),
            Value::Str(s) => GroupKey::Str(s.to_string()),
            Value::Bool(b) => GroupKey::Bool(*b),
            Value::Duration(d) => GroupKey::Duration(*d),
            Value::Status(s) => GroupKey::Str(format!("status:{}", s.as_str())),
            Value::Kind(k) => GroupKey::Str(format!("kind:{}", kind_str(*k))),
            Value::Array(a) => GroupKey::Str(format!("array:{a:?}")),
        }
    }

    pub(crate) fn into_owned(self) -> Value<'static> {
        match self {
            Value::Nil => Value::Nil,
            Value::Int(i) => Value::Int(i),
            Value::Float(f) => Value::Float(f),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Bool(b) => Value::Bool(b),
            Value::Duration(d) => Value::Duration(d),
            Value::Status(s) => Value::Status(s),
            Value::Kind(k) => Value::Kind(k),
            // arrays don't take part in arithmetic or aggregation
            Value::Array(_) => Value::Nil,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum GroupKey {
    Nil,
    Int(i64),
    Float(u64),
    Str(String),
    Bool(bool),
    Duration(i64),
}

fn compare_result(op: BinOp, ord: Option<Ordering>) -> Value<'static> {
    let Some(ord) = ord else {
        return Value::Bool(false);
    };
    Value::Bool(match op {
        BinOp::Lt => ord == Ordering::Less,
        BinOp::Lte => ord != Ordering::Greater,
        BinOp::Gt => ord == Ordering::Greater,
        BinOp::Gte => ord != Ordering::Less,
        _ => false,
    })
}

/// `lhs op rhs` for non-array operands.
fn scalar_op<'a>(op: BinOp, l: &Value<'a>, r: &Value<'a>) -> Value<'a> {
    let (lt, rt) = (l.ty(), r.ty());
    if !lt.matches(rt) || !op.valid_for(lt) || !op.valid_for(rt) {
        return Value::Bool(false);
    }
    match (l, r) {
        (Value::Str(a), Value::Str(b))
            if matches!(op, BinOp::Lt | BinOp::Lte | BinOp::Gt | BinOp::Gte) =>
        {
            return compare_result(op, Some(a.as_ref().cmp(b.as_ref())));
        }
        (Value::Int(a), Value::Int(b)) => {
            let (a, b) = (*a, *b);
            return match op {
                BinOp::Add => Value::Int(a.wrapping_add(b)),
                BinOp::Sub => Value::Int(a.wrapping_sub(b)),
                BinOp::Mul => Value::Int(a.wrapping_mul(b)),
                BinOp::Div | BinOp::Mod if b == 0 => Value::Nil,
                BinOp::Div => Value::Int(a.wrapping_div(b)),
                BinOp::Mod => Value::Int(a.wrapping_rem(b)),
                BinOp::Pow => match u32::try_from(b) {
                    Ok(e) => Value::Int(a.wrapping_pow(e)),
                    Err(_) => Value::Float((a as f64).powf(b as f64)),
                },
                BinOp::Eq => Value::Bool(a == b),
                BinOp::Neq => Value::Bool(a != b),
                BinOp::Lt | BinOp::Lte | BinOp::Gt | BinOp::Gte => {
                    compare_result(op, Some(a.cmp(&b)))
                }
                BinOp::And | BinOp::Or => Value::Bool(false),
            };
        }
        (Value::Bool(a), Value::Bool(b)) if matches!(op, BinOp::And | BinOp::Or) => {
            return Value::Bool(if op == BinOp::And { *a && *b } else { *a || *b });
        }
        _ => {}
    }
    // catch-all: floats and equality
    let (a, b) = (l.as_f64(), r.as_f64());
    match op {
        BinOp::Add => Value::Float(a + b),
        BinOp::Sub => Value::Float(a - b),
        BinOp::Mul => Value::Float(a * b),
        BinOp::Div => Value::Float(a / b),
        BinOp::Mod => Value::Float(a % b),
        BinOp::Pow => Value::Float(a.powf(b)),
        BinOp::Lt | BinOp::Lte | BinOp::Gt | BinOp::Gte => compare_result(op, a.partial_cmp(&b)),
        BinOp::Eq => Value::Bool(l.equals(r)),
        BinOp::Neq => Value::Bool(!l.is_nil() && !r.is_nil() && !l.equals(r)),
        BinOp::And | BinOp::Or => Value::Bool(false),
    }
}

/// `lhs op rhs` with Tempo's array rules: `=`, `<`, ... match if any element does; `!=` matches
/// if no element is equal.
pub(crate) fn binary_op<'a>(op: BinOp, l: &Value<'a>, r: &Value<'a>) -> Value<'a> {
    match (l, r) {
        (Value::Array(_), Value::Array(_)) => Value::Bool(false),
        (Value::Array(arr), other) | (other, Value::Array(arr)) => {
            if !op.is_boolean() || matches!(op, BinOp::And | BinOp::Or) {
                return Value::Nil;
            }
            let array_left = matches!(l, Value::Array(_));
            let mut hits = 0usize;
            for elem in arr.iter() {
                let e = Value::from_any(elem);
                if matches!(e, Value::Array(_)) {
                    continue;
                }
                let res = if array_left {
                    scalar_op(op, &e, other)
                } else {
                    scalar_op(op, other, &e)
                };
                if res == Value::Bool(true) {
                    hits += 1;
                    if op != BinOp::Neq {
                        break;
                    }
                }
            }
            if op == BinOp::Neq {
                Value::Bool(hits == arr.len())
            } else {
                Value::Bool(hits > 0)
            }
        }
        _ => scalar_op(op, l, r),
    }
}

/// Regex match with array rules (`=~` any element, `!~` no element).
pub(crate) fn regex_match(re: &regex::Regex, negate: bool, v: &Value<'_>) -> bool {
    match v {
        Value::Str(s) => re.is_match(s) != negate,
        Value::Array(arr) => {
            let strs = arr.iter().filter_map(|e| match e {
                AnyValue::Str(s) => Some(s),
                _ => None,
            });
            if negate {
                arr.iter()
                    .all(|e| matches!(e, AnyValue::Str(s) if !re.is_match(s)))
            } else {
                strs.into_iter().any(|s| re.is_match(s))
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempo_semantics() {
        let s = |x: &'static str| Value::Str(Cow::Borrowed(x));
        // int vs float compares numerically
        assert_eq!(
            binary_op(BinOp::Eq, &Value::Int(200), &Value::Float(200.0)),
            Value::Bool(true)
        );
        // string vs int is simply false
        assert_eq!(
            binary_op(BinOp::Eq, &s("200"), &Value::Int(200)),
            Value::Bool(false)
        );
        assert_eq!(
            binary_op(BinOp::Neq, &s("200"), &Value::Int(200)),
            Value::Bool(false)
        );
        // missing attributes never match, even with !=
        assert_eq!(
            binary_op(BinOp::Neq, &Value::Nil, &s("x")),
            Value::Bool(false)
        );
        assert_eq!(
            binary_op(BinOp::Gte, &s("404"), &s("400")),
            Value::Bool(true)
        );
        assert_eq!(
            binary_op(BinOp::Div, &Value::Int(1), &Value::Int(0)),
            Value::Nil
        );
        let arr = [AnyValue::Str("a".into()), AnyValue::Str("b".into())];
        assert_eq!(
            binary_op(BinOp::Eq, &Value::Array(&arr), &s("b")),
            Value::Bool(true)
        );
        assert_eq!(
            binary_op(BinOp::Neq, &Value::Array(&arr), &s("b")),
            Value::Bool(false)
        );
        assert_eq!(
            binary_op(BinOp::Neq, &Value::Array(&arr), &s("c")),
            Value::Bool(true)
        );
    }
}
