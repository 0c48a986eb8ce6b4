//! The parsed form of a query, and its canonical text (Tempo's `String()` forms, used for
//! spanset attribute keys such as `by(resource.service.name)` and `avg(duration)`).

use std::fmt;

use regex::Regex;
use tempest_traces::SpanKind;

use crate::lexer::AttrScope;

/// Span status as TraceQL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Status {
    Error,
    Ok,
    Unset,
}

impl Status {
    pub(crate) fn from_code(code: i32) -> Self {
        match code {
            1 => Status::Ok,
            2 => Status::Error,
            _ => Status::Unset,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::Ok => "ok",
            Status::Unset => "unset",
        }
    }
}

pub(crate) fn kind_str(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// Static types, as Tempo's validation sees them. `Attr` means "known only at query time".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Nil,
    Attr,
    Int,
    Float,
    Str,
    Bool,
    Duration,
    Status,
    Kind,
}

impl Type {
    pub(crate) fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Duration)
    }

    /// Tempo's `isMatchingOperand` (without arrays: statics are never arrays).
    pub(crate) fn matches(self, other: Type) -> bool {
        self == Type::Attr
            || other == Type::Attr
            || self == other
            || (self.is_numeric() && other.is_numeric())
            || self == Type::Nil
            || other == Type::Nil
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Type::Nil => "nil",
            Type::Attr => "attribute",
            Type::Int => "int",
            Type::Float => "float",
            Type::Str => "string",
            Type::Bool => "boolean",
            Type::Duration => "duration",
            Type::Status => "status",
            Type::Kind => "kind",
        }
    }
}

/// Intrinsic fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Intrinsic {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    SpanId,
    ParentId,
    TraceId,
    TraceRootName,
    TraceRootService,
    TraceDuration,
    EventName,
    EventTimeSinceStart,
    LinkTraceId,
    LinkSpanId,
    InstrumentationName,
    InstrumentationVersion,
}

impl Intrinsic {
    /// Tempo's `Intrinsic.String()`: the name used in canonical text and result attributes.
    pub(crate) fn tempo_name(self) -> &'static str {
        match self {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::Duration => "duration",
            Intrinsic::SpanId => "span:id",
            Intrinsic::ParentId => "span:parentID",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::TraceRootName => "rootName",
            Intrinsic::TraceRootService => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::EventName => "event:name",
            Intrinsic::EventTimeSinceStart => "event:timeSinceStart",
            Intrinsic::LinkTraceId => "link:traceID",
            Intrinsic::LinkSpanId => "link:spanID",
            Intrinsic::InstrumentationName => "instrumentation:name",
            Intrinsic::InstrumentationVersion => "instrumentation:version",
        }
    }

    pub(crate) fn static_type(self) -> Type {
        match self {
            Intrinsic::Status => Type::Status,
            Intrinsic::Kind => Type::Kind,
            Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::EventTimeSinceStart => {
                Type::Duration
            }
            _ => Type::Str,
        }
    }

    /// Whether Tempo lists this intrinsic among a matched span's attributes (name, duration,
    /// ids and trace-level fields are carried by the span/trace itself and left out).
    pub(crate) fn shown(self) -> bool {
        !matches!(
            self,
            Intrinsic::Name
                | Intrinsic::Duration
                | Intrinsic::SpanId
                | Intrinsic::TraceId
                | Intrinsic::TraceRootName
                | Intrinsic::TraceRootService
                | Intrinsic::TraceDuration
        )
    }
}

/// A field reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Attribute {
    Intrinsic(Intrinsic),
    /// `scope.name`; the scope is never `Parent`.
    Attr {
        scope: AttrScope,
        name: String,
    },
}

impl Attribute {
    pub(crate) fn static_type(&self) -> Type {
        match self {
            Attribute::Intrinsic(i) => i.static_type(),
            Attribute::Attr { .. } => Type::Attr,
        }
    }

    /// The key under which a matched span shows this attribute.
    pub(crate) fn output_key(&self) -> &str {
        match self {
            Attribute::Intrinsic(i) => i.tempo_name(),
            Attribute::Attr { name, .. } => name,
        }
    }

    pub(crate) fn uses_events(&self) -> bool {
        matches!(
            self,
            Attribute::Intrinsic(Intrinsic::EventName | Intrinsic::EventTimeSinceStart)
                | Attribute::Attr {
                    scope: AttrScope::Event,
                    ..
                }
        )
    }

    pub(crate) fn uses_links(&self) -> bool {
        matches!(
            self,
            Attribute::Intrinsic(Intrinsic::LinkTraceId | Intrinsic::LinkSpanId)
                | Attribute::Attr {
                    scope: AttrScope::Link,
                    ..
                }
        )
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Intrinsic(i) => f.write_str(i.tempo_name()),
            Attribute::Attr { scope, name } => {
                let prefix = match scope {
                    AttrScope::None => ".",
                    AttrScope::Span => "span.",
                    AttrScope::Resource => "resource.",
                    AttrScope::Event => "event.",
                    AttrScope::Link => "link.",
                    AttrScope::Instrumentation => "instrumentation.",
                    AttrScope::Parent => "parent.",
                };
                f.write_str(prefix)?;
                let needs_quotes = name.chars().any(|c| {
                    c.is_whitespace()
                        || matches!(
                            c,
                            '{' | '}'
                                | '('
                                | ')'
                                | '='
                                | '~'
                                | '!'
                                | '<'
                                | '>'
                                | '&'
                                | '|'
                                | '^'
                                | ','
                                | '"'
                        )
                });
                if needs_quotes {
                    f.write_str("\"")?;
                    for c in name.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")
                } else {
                    f.write_str(name)
                }
            }
        }
    }
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Static {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(Status),
    Kind(SpanKind),
}

impl Static {
    pub(crate) fn static_type(&self) -> Type {
        match self {
            Static::Int(_) => Type::Int,
            Static::Float(_) => Type::Float,
            Static::Str(_) => Type::Str,
            Static::Bool(_) => Type::Bool,
            Static::Duration(_) => Type::Duration,
            Static::Status(_) => Type::Status,
            Static::Kind(_) => Type::Kind,
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, plus Tempo's ".0" for integral values.
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let e = format!("{v:e}"); // e.g. "1.5e6", "-2e-7"
    let (mant, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let s = if v != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{v}")
    };
    if s.contains(['e', '.']) || s.contains("Inf") {
        s
    } else {
        s + ".0"
    }
}

/// Go's `time.Duration.String()`.
pub(crate) fn go_duration(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    fn frac(v: u64, digits: u32) -> String {
        let p = 10u64.pow(digits);
        let whole = v / p;
        let rem = v % p;
        if rem == 0 {
            whole.to_string()
        } else {
            let r = format!("{rem:0width$}", width = digits as usize);
            format!("{whole}.{}", r.trim_end_matches('0'))
        }
    }
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 6))
    } else {
        let secs = frac(u % 60_000_000_000, 9);
        let mins = u / 60_000_000_000;
        let (h, m) = (mins / 60, mins % 60);
        if h > 0 {
            format!("{h}h{m}m{secs}s")
        } else if m > 0 {
            format!("{m}m{secs}s")
        } else {
            format!("{secs}s")
        }
    };
    if neg { format!("-{body}") } else { body }
}

impl fmt::Display for Static {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Static::Int(i) => write!(f, "{i}"),
            Static::Float(v) => f.write_str(&go_float(*v)),
            Static::Str(s) => write!(f, "`{s}`"),
            Static::Bool(b) => write!(f, "{b}"),
            Static::Duration(d) => f.write_str(&go_duration(*d)),
            Static::Status(s) => f.write_str(s.as_str()),
            Static::Kind(k) => f.write_str(kind_str(*k)),
        }
    }
}

/// Binary operators inside `{ }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    And,
    Or,
}

impl BinOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "=",
            BinOp::Neq => "!=",
            BinOp::Lt => "<",
            BinOp::Lte => "<=",
            BinOp::Gt => ">",
            BinOp::Gte => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }

    /// Whether the result is a boolean.
    pub(crate) fn is_boolean(self) -> bool {
        !matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow
        )
    }

    /// Tempo's `binaryTypeValid` for one operand type (regex handled separately).
    pub(crate) fn valid_for(self, t: Type) -> bool {
        use BinOp::*;
        match t {
            Type::Attr => true,
            Type::Bool => matches!(self, And | Or | Eq | Neq),
            Type::Int | Type::Float | Type::Duration => {
                matches!(
                    self,
                    Add | Sub | Mul | Div | Mod | Pow | Eq | Neq | Gt | Gte | Lt | Lte
                )
            }
            Type::Str => matches!(self, Eq | Neq | Gt | Gte | Lt | Lte),
            Type::Nil | Type::Status | Type::Kind => matches!(self, Eq | Neq),
        }
    }
}

/// A field expression (inside `{ }`, `by()`, aggregates).
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Static(Static),
    Attr(Attribute),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `lhs =~ "re"` / `lhs !~ "re"`; the regex is compiled fully anchored.
    Regex {
        lhs: Box<Expr>,
        pattern: String,
        re: Regex,
        negate: bool,
    },
    Not(Box<Expr>),
    Neg(Box<Expr>),
    /// `x != nil`
    Exists(Box<Expr>),
    /// `x = nil`
    NotExists(Box<Expr>),
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        use Expr::*;
        match (self, other) {
            (Static(a), Static(b)) => a == b,
            (Attr(a), Attr(b)) => a == b,
            (Binary(o1, l1, r1), Binary(o2, l2, r2)) => o1 == o2 && l1 == l2 && r1 == r2,
            (
                Regex {
                    lhs: l1,
                    pattern: p1,
                    negate: n1,
                    ..
                },
                Regex {
                    lhs: l2,
                    pattern: p2,
                    negate: n2,
                    ..
                },
            ) => l1 == l2 && p1 == p2 && n1 == n2,
            (Not(a), Not(b)) | (Neg(a), Neg(b)) | (Exists(a), Exists(b)) => a == b,
            (NotExists(a), NotExists(b)) => a == b,
            _ => false,
        }
    }
}

impl Expr {
    /// Tempo's `impliedType`.
    pub(crate) fn static_type(&self) -> Type {
        match self {
            Expr::Static(s) => s.static_type(),
            Expr::Attr(a) => a.static_type(),
            Expr::Binary(op, l, r) => {
                if op.is_boolean() {
                    Type::Bool
                } else {
                    match l.static_type() {
                        Type::Attr => r.static_type(),
                        t => t,
                    }
                }
            }
            Expr::Regex { .. } | Expr::Exists(_) | Expr::NotExists(_) => Type::Bool,
            Expr::Not(e) | Expr::Neg(e) => e.static_type(),
        }
    }

    /// Whether the expression reads anything from the span.
    pub(crate) fn references_span(&self) -> bool {
        let mut any = false;
        self.visit_attributes(&mut |_| any = true);
        any
    }

    pub(crate) fn visit_attributes<'a>(&'a self, f: &mut dyn FnMut(&'a Attribute)) {
        match self {
            Expr::Static(_) => {}
            Expr::Attr(a) => f(a),
            Expr::Binary(_, l, r) => {
                l.visit_attributes(f);
                r.visit_attributes(f);
            }
            Expr::Regex { lhs, .. } => lhs.visit_attributes(f),
            Expr::Not(e) | Expr::Neg(e) | Expr::Exists(e) | Expr::NotExists(e) => {
                e.visit_attributes(f)
            }
        }
    }

    /// Nesting depth of the tree.
    pub(crate) fn depth(&self) -> usize {
        match self {
            Expr::Static(_) | Expr::Attr(_) => 1,
            Expr::Binary(_, l, r) => 1 + l.depth().max(r.depth()),
            Expr::Regex { lhs, .. } => 1 + lhs.depth(),
            Expr::Not(e) | Expr::Neg(e) | Expr::Exists(e) | Expr::NotExists(e) => 1 + e.depth(),
        }
    }

    fn fmt_wrapped(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Static(_) | Expr::Attr(_) => write!(f, "{self}"),
            _ => write!(f, "({self})"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Static(s) => write!(f, "{s}"),
            Expr::Attr(a) => write!(f, "{a}"),
            Expr::Binary(op, l, r) => {
                l.fmt_wrapped(f)?;
                write!(f, " {} ", op.as_str())?;
                r.fmt_wrapped(f)
            }
            Expr::Regex {
                lhs,
                pattern,
                negate,
                ..
            } => {
                lhs.fmt_wrapped(f)?;
                write!(f, " {} `{pattern}`", if *negate { "!~" } else { "=~" })
            }
            Expr::Not(e) => {
                f.write_str("!")?;
                e.fmt_wrapped(f)
            }
            Expr::Neg(e) => {
                f.write_str("-")?;
                e.fmt_wrapped(f)
            }
            Expr::Exists(e) => {
                e.fmt_wrapped(f)?;
                f.write_str(" != nil")
            }
            Expr::NotExists(e) => {
                e.fmt_wrapped(f)?;
                f.write_str(" = nil")
            }
        }
    }
}

/// Operators between spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpansetOp {
    And,
    Or,
    Child,
    Parent,
    Desc,
    Anc,
    Sibling,
    NotChild,
    NotParent,
    NotDesc,
    NotAnc,
    NotSibling,
    UnionChild,
    UnionParent,
    UnionDesc,
    UnionAnc,
    UnionSibling,
}

impl SpansetOp {
    pub(crate) fn as_str(self) -> &'static str {
        use SpansetOp::*;
        match self {
            And => "&&",
            Or => "||",
            Child => ">",
            Parent => "<",
            Desc => ">>",
            Anc => "<<",
            Sibling => "~",
            NotChild => "!>",
            NotParent => "!<",
            NotDesc => "!>>",
            NotAnc => "!<<",
            NotSibling => "!~",
            UnionChild => "&>",
            UnionParent => "&<",
            UnionDesc => "&>>",
            UnionAnc => "&<<",
            UnionSibling => "&~",
        }
    }
}

/// A `{ }` filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    /// `None` for `{ }` (every span).
    pub expr: Option<Expr>,
    /// The expression reads event fields: evaluate it once per event.
    pub uses_events: bool,
    /// The expression reads link fields: evaluate it once per link.
    pub uses_links: bool,
}

/// Spanset expressions: filters combined with spanset operators, and wrapped pipelines.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SpansetExpr {
    Filter(Filter),
    Op(SpansetOp, Box<SpansetExpr>, Box<SpansetExpr>),
    Pipeline(Pipeline),
}

impl SpansetExpr {
    pub(crate) fn depth(&self) -> usize {
        match self {
            SpansetExpr::Filter(_) => 1,
            SpansetExpr::Op(_, l, r) => 1 + l.depth().max(r.depth()),
            SpansetExpr::Pipeline(_) => 1,
        }
    }
}

impl fmt::Display for SpansetExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(Filter { expr: None, .. }) => f.write_str("{ true }"),
            SpansetExpr::Filter(Filter { expr: Some(e), .. }) => write!(f, "{{ {e} }}"),
            SpansetExpr::Op(op, l, r) => write!(f, "({l}) {} ({r})", op.as_str()),
            SpansetExpr::Pipeline(p) => write!(f, "{p}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggOp {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Aggregate {
    pub op: AggOp,
    /// `None` for `count()`.
    pub expr: Option<Expr>,
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.op {
            AggOp::Count => "count",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Sum => "sum",
        };
        match &self.expr {
            None => write!(f, "{name}()"),
            Some(e) => write!(f, "{name}({e})"),
        }
    }
}

/// Comparison in a scalar filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Neq => "!=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
        }
    }
}

/// One element of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stage {
    Spanset(SpansetExpr),
    /// `aggregate <op> value`
    ScalarFilter {
        agg: Aggregate,
        op: CmpOp,
        value: Static,
    },
    By(Vec<Expr>),
    Select(Vec<Attribute>),
    Coalesce,
}

/// Writes `name(a, b, …)`.
fn write_call<T: fmt::Display>(f: &mut fmt::Formatter<'_>, name: &str, args: &[T]) -> fmt::Result {
    write!(f, "{name}(")?;
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{a}")?;
    }
    f.write_str(")")
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Spanset(s) => write!(f, "{s}"),
            Stage::ScalarFilter { agg, op, value } => {
                write!(f, "({agg}) {} {value}", op.as_str())
            }
            Stage::By(es) => write_call(f, "by", es),
            Stage::Select(attrs) => write_call(f, "select", attrs),
            Stage::Coalesce => f.write_str("coalesce()"),
        }
    }
}

/// Stages joined with `|`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pipeline {
    pub stages: Vec<Stage>,
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(250), "250ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(20_000_000), "20ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(-2_000_000), "-2ms");
        assert_eq!(go_float(1.0), "1.0");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456.0");
        assert_eq!(go_float(0.00001), "1e-05");
    }
}
