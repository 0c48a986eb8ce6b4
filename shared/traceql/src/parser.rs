//! Recursive-descent parser with Tempo's precedences (`pkg/traceql/expr.y`) and Tempo's
//! validation rules (`ast_validate.go`) applied while parsing, so every error has a position.

use regex::RegexBuilder;
use tempest_traces::SpanKind;

use crate::Query;
use crate::ast::{
    AggOp, Aggregate, Attribute, BinOp, CmpOp, Expr, Filter, Intrinsic, Pipeline, SpansetExpr,
    SpansetOp, Stage, Static, Status, Type,
};
use crate::lexer::{AttrScope, Tok, Token, tokenize};

/// A parse error Grafana can show: position and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parse error at line {line}, col {column}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset into the query.
    pub offset: usize,
    /// What was found and what was expected.
    pub message: String,
}

/// How deeply parentheses, unary operators and nested pipelines may nest.
const MAX_NESTING: usize = 64;
/// How deep an expression tree may get (long `a && b && c ...` chains count too).
const MAX_TREE_DEPTH: usize = 128;
/// Compiled-program limit per regular expression.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

const STAGE_EXPECTING: &str = "a spanset filter \"{ ... }\", \"(\", or a pipeline function (by, select, coalesce, count, avg, min, max, sum)";

/// Parses a TraceQL query.
pub fn parse(query: &str) -> Result<Query, ParseError> {
    let mut p = Parser {
        src: query,
        toks: tokenize(query),
        pos: 0,
        nesting: 0,
    };
    let pipeline = p.parse_pipeline()?;
    match &p.peek().tok {
        Tok::Eof => {}
        Tok::Ident(w) if w == "with" => {
            return Err(p.error_here("query hints (with(...)) are not supported".into()));
        }
        _ => {
            let expecting = match pipeline.stages.last() {
                Some(Stage::Spanset(_)) => "a spanset operator, \"|\" or end of query",
                _ => "\"|\" or end of query",
            };
            return Err(p.unexpected(expecting));
        }
    }
    Ok(Query::new(pipeline, query))
}

/// A field-expression node while parsing: `nil` is only valid next to `=`/`!=`.
enum Node {
    Expr(Expr),
    Nil,
}

/// Scalar expressions of scalar filters, before they are reduced to `aggregate op value`.
enum Scalar {
    Agg(Aggregate),
    Const(Static),
    Bin(BinOp, Box<Scalar>, Box<Scalar>),
    Neg(Box<Scalar>),
}

impl Scalar {
    fn has_aggregate(&self) -> bool {
        match self {
            Scalar::Agg(_) => true,
            Scalar::Const(_) => false,
            Scalar::Bin(_, l, r) => l.has_aggregate() || r.has_aggregate(),
            Scalar::Neg(e) => e.has_aggregate(),
        }
    }
}

#[derive(Clone, Copy)]
enum FieldOp {
    Bin(BinOp),
    Regex { negate: bool },
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    nesting: usize,
}

fn eof_token(offset: usize) -> Token {
    Token {
        tok: Tok::Eof,
        start: offset,
        end: offset,
    }
}

impl<'a> Parser<'a> {
    // ---------------------------------------------------------------- helpers

    fn peek(&self) -> Token {
        self.toks
            .get(self.pos)
            .cloned()
            .unwrap_or_else(|| eof_token(self.src.len()))
    }

    fn peek_tok(&self) -> &Tok {
        self.toks.get(self.pos).map(|t| &t.tok).unwrap_or(&Tok::Eof)
    }

    fn advance(&mut self) -> Token {
        let t = self.peek();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek_tok() == tok {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, expecting: &str) -> Result<Token, ParseError> {
        if self.peek_tok() == tok {
            Ok(self.advance())
        } else {
            Err(self.unexpected(expecting))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error_here(format!(
                "query nested too deeply (more than {MAX_NESTING} levels)"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    fn error_at(&self, offset: usize, message: String) -> ParseError {
        let offset = offset.min(self.src.len());
        let before = self.src.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
        ParseError {
            line,
            column,
            offset,
            message,
        }
    }

    fn error_here(&self, message: String) -> ParseError {
        self.error_at(self.peek().start, message)
    }

    fn describe(&self, t: &Token) -> String {
        match &t.tok {
            Tok::Eof => "end of query".into(),
            _ => {
                let text = self.src.get(t.start..t.end).unwrap_or("");
                let mut short: String = text.chars().take(40).collect();
                if short.len() < text.len() {
                    short.push('…');
                }
                format!("{short:?}")
            }
        }
    }

    /// "unexpected X, expecting Y" at the current token (or the lexer's message).
    fn unexpected(&self, expecting: &str) -> ParseError {
        let t = self.peek();
        if let Tok::Error(msg) = &t.tok {
            return self.error_at(t.start, msg.clone());
        }
        self.error_at(
            t.start,
            format!("unexpected {}, expecting {expecting}", self.describe(&t)),
        )
    }

    // ---------------------------------------------------------------- pipelines

    fn parse_pipeline(&mut self) -> Result<Pipeline, ParseError> {
        self.enter()?;
        let mut stages = vec![self.parse_stage(true)?];
        while self.eat(&Tok::Pipe) {
            stages.push(self.parse_stage(false)?);
        }
        self.leave();
        Ok(Pipeline { stages })
    }

    fn parse_stage(&mut self, first: bool) -> Result<Stage, ParseError> {
        let t = self.peek();
        match &t.tok {
            Tok::LBrace => Ok(Stage::Spanset(self.parse_spanset_expr(0)?)),
            Tok::LParen => {
                if self.looks_like_scalar() {
                    let (pos, nesting) = (self.pos, self.nesting);
                    match self.parse_scalar_filter() {
                        Ok(s) => Ok(s),
                        Err(e1) => {
                            self.pos = pos;
                            self.nesting = nesting;
                            match self.parse_spanset_expr(0) {
                                Ok(s) => Ok(Stage::Spanset(s)),
                                Err(e2) => Err(if e2.offset > e1.offset { e2 } else { e1 }),
                            }
                        }
                    }
                } else {
                    Ok(Stage::Spanset(self.parse_spanset_expr(0)?))
                }
            }
            Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) | Tok::Sub => self.parse_scalar_filter(),
            Tok::Ident(w) => match w.as_str() {
                "by" => self.parse_by(),
                "select" => self.parse_select(),
                "coalesce" if first => {
                    Err(self.error_at(t.start, "a pipeline can't start with coalesce()".into()))
                }
                "coalesce" => {
                    self.advance();
                    self.expect(&Tok::LParen, "\"(\"")?;
                    self.expect(&Tok::RParen, "\")\" (coalesce takes no arguments)")?;
                    Ok(Stage::Coalesce)
                }
                "count" | "avg" | "min" | "max" | "sum" => self.parse_scalar_filter(),
                "rate"
                | "count_over_time"
                | "min_over_time"
                | "max_over_time"
                | "avg_over_time"
                | "sum_over_time"
                | "quantile_over_time"
                | "histogram_over_time"
                | "compare"
                | "topk"
                | "bottomk" => Err(self.error_at(
                    t.start,
                    format!("metrics function {w}() is not supported (only search queries are)"),
                )),
                "with" => {
                    Err(self.error_at(t.start, "query hints (with(...)) are not supported".into()))
                }
                _ => Err(self.unexpected(STAGE_EXPECTING)),
            },
            _ => Err(self.unexpected(STAGE_EXPECTING)),
        }
    }

    /// `(((count() ...`, `(2 ...`: a scalar filter rather than a spanset expression?
    fn looks_like_scalar(&self) -> bool {
        let mut i = self.pos;
        while matches!(self.toks.get(i).map(|t| &t.tok), Some(Tok::LParen)) {
            i += 1;
        }
        match self.toks.get(i).map(|t| &t.tok) {
            Some(Tok::Ident(w)) => matches!(w.as_str(), "count" | "avg" | "min" | "max" | "sum"),
            Some(Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) | Tok::Sub) => true,
            _ => false,
        }
    }

    fn parse_by(&mut self) -> Result<Stage, ParseError> {
        self.advance();
        self.expect(&Tok::LParen, "\"(\"")?;
        let mut fields = Vec::new();
        loop {
            let start = self.peek().start;
            let e = self.parse_field_expr("a field expression")?;
            if !e.references_span() {
                return Err(self.error_at(
                    start,
                    format!("by() fields must reference the span: by({e})"),
                ));
            }
            fields.push(e);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(&Tok::RParen, "\",\" or \")\"")?;
        Ok(Stage::By(fields))
    }

    fn parse_select(&mut self) -> Result<Stage, ParseError> {
        self.advance();
        self.expect(&Tok::LParen, "\"(\"")?;
        let mut attrs = Vec::new();
        loop {
            let start = self.peek().start;
            if self.peek_tok() == &Tok::RParen {
                return Err(self.unexpected("an attribute"));
            }
            match self.parse_field_expr("an attribute")? {
                Expr::Attr(a) => attrs.push(a),
                e => {
                    return Err(self.error_at(
                        start,
                        format!(
                            "select() takes attributes (e.g. span.http.url), not expressions: {e}"
                        ),
                    ));
                }
            }
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(&Tok::RParen, "\",\" or \")\"")?;
        Ok(Stage::Select(attrs))
    }

    // ---------------------------------------------------------------- scalar filters

    fn parse_scalar_filter(&mut self) -> Result<Stage, ParseError> {
        let start = self.peek().start;
        let lhs = self.parse_scalar(0)?;
        let op = match self.peek_tok() {
            Tok::Eq => CmpOp::Eq,
            Tok::Neq => CmpOp::Neq,
            Tok::Lt => CmpOp::Lt,
            Tok::Lte => CmpOp::Lte,
            Tok::Gt => CmpOp::Gt,
            Tok::Gte => CmpOp::Gte,
            _ => {
                return Err(self.unexpected(
                    "a comparison operator (=, !=, <, <=, >, >=) after the aggregate",
                ));
            }
        };
        self.advance();
        let rhs_start = self.peek().start;
        let rhs = self.parse_scalar(0)?;
        let agg = match lhs {
            Scalar::Agg(a) => a,
            other if other.has_aggregate() => {
                return Err(self.error_at(
                    start,
                    "arithmetic on aggregates is not supported; compare a single aggregate with a value, e.g. count() > 2".into(),
                ));
            }
            _ => {
                return Err(self.error_at(
                    start,
                    "a scalar filter needs an aggregate (count(), avg(), min(), max(), sum()) on its left side".into(),
                ));
            }
        };
        if rhs.has_aggregate() {
            return Err(self.error_at(
                rhs_start,
                "comparing aggregates with each other is not supported; compare with a value, e.g. count() > 2".into(),
            ));
        }
        let value = self.fold(rhs, rhs_start)?;
        Ok(Stage::ScalarFilter { agg, op, value })
    }

    fn parse_scalar(&mut self, min: u8) -> Result<Scalar, ParseError> {
        self.enter()?;
        let mut lhs = self.parse_scalar_primary()?;
        loop {
            let (op, prec) = match self.peek_tok() {
                Tok::Add => (BinOp::Add, 3),
                Tok::Sub => (BinOp::Sub, 3),
                Tok::Mul => (BinOp::Mul, 5),
                Tok::Div => (BinOp::Div, 5),
                Tok::Mod => (BinOp::Mod, 5),
                Tok::Pow => (BinOp::Pow, 6),
                _ => break,
            };
            if prec < min {
                break;
            }
            self.advance();
            let next = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.parse_scalar(next)?;
            lhs = Scalar::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        self.leave();
        Ok(lhs)
    }

    fn parse_scalar_primary(&mut self) -> Result<Scalar, ParseError> {
        let t = self.peek();
        match &t.tok {
            Tok::Int(i) => {
                self.advance();
                Ok(Scalar::Const(Static::Int(*i)))
            }
            Tok::Float(f) => {
                self.advance();
                Ok(Scalar::Const(Static::Float(*f)))
            }
            Tok::Duration(d) => {
                self.advance();
                Ok(Scalar::Const(Static::Duration(*d)))
            }
            Tok::Sub => {
                self.advance();
                self.enter()?;
                let e = self.parse_scalar_primary()?;
                self.leave();
                Ok(Scalar::Neg(Box::new(e)))
            }
            Tok::LParen => {
                self.advance();
                let e = self.parse_scalar(0)?;
                self.expect(&Tok::RParen, "an operator or \")\"")?;
                Ok(e)
            }
            Tok::Ident(w) => {
                let op = match w.as_str() {
                    "count" => AggOp::Count,
                    "avg" => AggOp::Avg,
                    "min" => AggOp::Min,
                    "max" => AggOp::Max,
                    "sum" => AggOp::Sum,
                    _ => return Err(self.unexpected("an aggregate or a number")),
                };
                self.advance();
                self.expect(&Tok::LParen, "\"(\"")?;
                if op == AggOp::Count {
                    self.expect(&Tok::RParen, "\")\" (count takes no arguments)")?;
                    return Ok(Scalar::Agg(Aggregate { op, expr: None }));
                }
                let start = self.peek().start;
                let e = self.parse_field_expr("a field expression")?;
                let ty = e.static_type();
                if ty != Type::Attr && !ty.is_numeric() {
                    return Err(self.error_at(
                        start,
                        format!(
                            "aggregate field expressions must resolve to a number, found {}: {e}",
                            ty.name()
                        ),
                    ));
                }
                if !e.references_span() {
                    return Err(self.error_at(
                        start,
                        format!("aggregate field expressions must reference the span: {e}"),
                    ));
                }
                self.expect(&Tok::RParen, "an operator or \")\"")?;
                Ok(Scalar::Agg(Aggregate { op, expr: Some(e) }))
            }
            _ => Err(self.unexpected("an aggregate or a number")),
        }
    }

    /// Folds a constant scalar expression (numbers and durations).
    fn fold(&self, s: Scalar, at: usize) -> Result<Static, ParseError> {
        let overflow = || self.error_at(at, "number out of range".into());
        match s {
            Scalar::Const(c) => Ok(c),
            Scalar::Agg(_) => Err(self.error_at(at, "unexpected aggregate".into())),
            Scalar::Neg(e) => match self.fold(*e, at)? {
                Static::Int(i) => i.checked_neg().map(Static::Int).ok_or_else(overflow),
                Static::Duration(d) => d.checked_neg().map(Static::Duration).ok_or_else(overflow),
                Static::Float(f) => Ok(Static::Float(-f)),
                other => Ok(other),
            },
            Scalar::Bin(op, l, r) => {
                let l = self.fold(*l, at)?;
                let r = self.fold(*r, at)?;
                let as_f = |s: &Static| match s {
                    Static::Int(i) => *i as f64,
                    Static::Duration(d) => *d as f64,
                    Static::Float(f) => *f,
                    _ => f64::NAN,
                };
                if let (Static::Int(a), Static::Int(b)) = (&l, &r) {
                    let (a, b) = (*a, *b);
                    let v = match op {
                        BinOp::Add => a.checked_add(b),
                        BinOp::Sub => a.checked_sub(b),
                        BinOp::Mul => a.checked_mul(b),
                        BinOp::Div | BinOp::Mod if b == 0 => {
                            return Err(self.error_at(at, "division by zero".into()));
                        }
                        BinOp::Div => a.checked_div(b),
                        BinOp::Mod => a.checked_rem(b),
                        BinOp::Pow => u32::try_from(b).ok().and_then(|e| a.checked_pow(e)),
                        _ => None,
                    };
                    return v.map(Static::Int).ok_or_else(overflow);
                }
                let (a, b) = (as_f(&l), as_f(&r));
                let v = match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Mod => a % b,
                    BinOp::Pow => a.powf(b),
                    _ => f64::NAN,
                };
                Ok(Static::Float(v))
            }
        }
    }

    // ---------------------------------------------------------------- spanset expressions

    fn parse_spanset_expr(&mut self, min: u8) -> Result<SpansetExpr, ParseError> {
        let mut lhs = self.parse_spanset_operand()?;
        loop {
            let op = match self.peek_tok() {
                Tok::And => SpansetOp::And,
                Tok::Or => SpansetOp::Or,
                Tok::Gt => SpansetOp::Child,
                Tok::Lt => SpansetOp::Parent,
                Tok::Desc => SpansetOp::Desc,
                Tok::Anc => SpansetOp::Anc,
                Tok::Tilde => SpansetOp::Sibling,
                Tok::NotChild => SpansetOp::NotChild,
                Tok::NotParent => SpansetOp::NotParent,
                Tok::NotDesc => SpansetOp::NotDesc,
                Tok::NotAnc => SpansetOp::NotAnc,
                Tok::Nre => SpansetOp::NotSibling,
                Tok::UnionChild => SpansetOp::UnionChild,
                Tok::UnionParent => SpansetOp::UnionParent,
                Tok::UnionDesc => SpansetOp::UnionDesc,
                Tok::UnionAnc => SpansetOp::UnionAnc,
                Tok::UnionSibl => SpansetOp::UnionSibling,
                _ => break,
            };
            // && and || bind looser than the structural operators (Tempo's precedence).
            let prec = if matches!(op, SpansetOp::And | SpansetOp::Or) {
                1
            } else {
                2
            };
            if prec < min {
                break;
            }
            let op_tok = self.advance();
            let rhs = self.parse_spanset_expr(prec + 1)?;
            lhs = SpansetExpr::Op(op, Box::new(lhs), Box::new(rhs));
            if lhs.depth() > MAX_TREE_DEPTH {
                return Err(self.error_at(op_tok.start, "query too complex".into()));
            }
        }
        Ok(lhs)
    }

    fn parse_spanset_operand(&mut self) -> Result<SpansetExpr, ParseError> {
        match self.peek_tok() {
            Tok::LBrace => self.parse_filter(),
            Tok::LParen => {
                self.advance();
                let p = self.parse_pipeline()?;
                self.expect(&Tok::RParen, "a spanset operator, \"|\" or \")\"")?;
                let mut p = p;
                if p.stages.len() == 1
                    && matches!(p.stages.first(), Some(Stage::Spanset(_)))
                    && let Some(Stage::Spanset(s)) = p.stages.pop()
                {
                    return Ok(s);
                }
                Ok(SpansetExpr::Pipeline(p))
            }
            _ => Err(self.unexpected("a spanset filter \"{ ... }\" or \"(\"")),
        }
    }

    fn parse_filter(&mut self) -> Result<SpansetExpr, ParseError> {
        self.advance(); // {
        if self.eat(&Tok::RBrace) {
            return Ok(SpansetExpr::Filter(Filter {
                expr: None,
                uses_events: false,
                uses_links: false,
            }));
        }
        let start = self.peek().start;
        let e = self.parse_field_expr("a field expression or \"}\"")?;
        self.expect(&Tok::RBrace, "an operator or \"}\"")?;
        let ty = e.static_type();
        if ty != Type::Bool && ty != Type::Attr {
            return Err(self.error_at(
                start,
                format!(
                    "span filter expressions must resolve to a boolean, found {}: {{ {e} }}",
                    ty.name()
                ),
            ));
        }
        let (mut uses_events, mut uses_links) = (false, false);
        e.visit_attributes(&mut |a| {
            uses_events |= a.uses_events();
            uses_links |= a.uses_links();
        });
        Ok(SpansetExpr::Filter(Filter {
            expr: Some(e),
            uses_events,
            uses_links,
        }))
    }

    // ---------------------------------------------------------------- field expressions

    /// A complete field expression (not `nil`).
    fn parse_field_expr(&mut self, expecting: &str) -> Result<Expr, ParseError> {
        let start = self.peek();
        if !starts_field(&start.tok) {
            return Err(self.unexpected(expecting));
        }
        match self.parse_field(0)? {
            Node::Expr(e) => Ok(e),
            Node::Nil => Err(self.error_at(start.start, NIL_MISUSE.into())),
        }
    }

    fn parse_field(&mut self, min: u8) -> Result<Node, ParseError> {
        self.enter()?;
        let mut lhs = self.parse_field_prefix()?;
        loop {
            let (op, prec) = match self.peek_tok() {
                Tok::And => (FieldOp::Bin(BinOp::And), 1),
                Tok::Or => (FieldOp::Bin(BinOp::Or), 1),
                Tok::Eq => (FieldOp::Bin(BinOp::Eq), 2),
                Tok::Neq => (FieldOp::Bin(BinOp::Neq), 2),
                Tok::Lt => (FieldOp::Bin(BinOp::Lt), 2),
                Tok::Lte => (FieldOp::Bin(BinOp::Lte), 2),
                Tok::Gt => (FieldOp::Bin(BinOp::Gt), 2),
                Tok::Gte => (FieldOp::Bin(BinOp::Gte), 2),
                Tok::Re => (FieldOp::Regex { negate: false }, 2),
                Tok::Nre => (FieldOp::Regex { negate: true }, 2),
                Tok::Add => (FieldOp::Bin(BinOp::Add), 3),
                Tok::Sub => (FieldOp::Bin(BinOp::Sub), 3),
                Tok::Mul => (FieldOp::Bin(BinOp::Mul), 5),
                Tok::Div => (FieldOp::Bin(BinOp::Div), 5),
                Tok::Mod => (FieldOp::Bin(BinOp::Mod), 5),
                Tok::Pow => (FieldOp::Bin(BinOp::Pow), 6),
                _ => break,
            };
            if prec < min {
                break;
            }
            let op_tok = self.advance();
            if !starts_field(self.peek_tok()) {
                return Err(self.unexpected("a field expression"));
            }
            let next = if matches!(op, FieldOp::Bin(BinOp::Pow)) {
                prec
            } else {
                prec + 1
            };
            let rhs = self.parse_field(next)?;
            lhs = self.combine(op, lhs, rhs, &op_tok)?;
        }
        self.leave();
        Ok(lhs)
    }

    fn combine(
        &self,
        op: FieldOp,
        lhs: Node,
        rhs: Node,
        op_tok: &Token,
    ) -> Result<Node, ParseError> {
        let at = op_tok.start;
        let e = match (op, lhs, rhs) {
            (FieldOp::Bin(BinOp::Eq | BinOp::Neq), Node::Nil, Node::Nil) => {
                Expr::Static(Static::Bool(false))
            }
            (FieldOp::Bin(op @ (BinOp::Eq | BinOp::Neq)), Node::Nil, Node::Expr(e))
            | (FieldOp::Bin(op @ (BinOp::Eq | BinOp::Neq)), Node::Expr(e), Node::Nil) => {
                if op == BinOp::Neq {
                    Expr::Exists(Box::new(e))
                } else {
                    match &e {
                        Expr::Attr(Attribute::Intrinsic(i)) => {
                            return Err(self.error_at(
                                at,
                                format!(
                                    "{}=nil is not valid because intrinsics cannot be nil",
                                    i.tempo_name()
                                ),
                            ));
                        }
                        Expr::Attr(Attribute::Attr {
                            scope: AttrScope::Resource,
                            name,
                        }) if name == "service.name" => {
                            return Err(self.error_at(
                                at,
                                "resource.service.name=nil is not valid because resource.service.name cannot be nil".into(),
                            ));
                        }
                        _ => {}
                    }
                    Expr::NotExists(Box::new(e))
                }
            }
            (_, Node::Nil, _) | (_, _, Node::Nil) => {
                return Err(self.error_at(at, NIL_MISUSE.into()));
            }
            (FieldOp::Regex { negate }, Node::Expr(l), Node::Expr(r)) => {
                let sym = if negate { "!~" } else { "=~" };
                let Expr::Static(Static::Str(pattern)) = r else {
                    return Err(self.error_at(
                        at,
                        format!("the right side of {sym} must be a string (a regular expression)"),
                    ));
                };
                let lt = l.static_type();
                if lt != Type::Str && lt != Type::Attr {
                    return Err(self.error_at(
                        at,
                        format!("{sym} needs a string on its left, found {}: {l}", lt.name()),
                    ));
                }
                let re = RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .nest_limit(64)
                    .build()
                    .map_err(|e| {
                        let detail = match e {
                            regex::Error::CompiledTooBig(_) => {
                                "regular expression too large".to_string()
                            }
                            e => {
                                let text = e.to_string();
                                let last = text.lines().last().unwrap_or("").trim();
                                last.strip_prefix("error: ").unwrap_or(last).to_string()
                            }
                        };
                        self.error_at(
                            at,
                            format!("invalid regular expression {pattern:?}: {detail}"),
                        )
                    })?;
                Expr::Regex {
                    lhs: Box::new(l),
                    pattern,
                    re,
                    negate,
                }
            }
            (FieldOp::Bin(op), Node::Expr(l), Node::Expr(r)) => {
                let (lt, rt) = (l.static_type(), r.static_type());
                if !lt.matches(rt) {
                    return Err(self.error_at(
                        at,
                        format!(
                            "binary operations must operate on the same type, found {} {} {}: {l} {} {r}",
                            lt.name(),
                            op.as_str(),
                            rt.name(),
                            op.as_str()
                        ),
                    ));
                }
                for t in [lt, rt] {
                    if !op.valid_for(t) {
                        return Err(self.error_at(
                            at,
                            format!("operator {} can't be used with a {}", op.as_str(), t.name()),
                        ));
                    }
                }
                let (l, r) = if matches!(op, BinOp::Eq | BinOp::Neq) {
                    {
                        let l2 = normalize_id(l, &r);
                        let r2 = normalize_id(r, &l2);
                        (l2, r2)
                    }
                } else {
                    (l, r)
                };
                Expr::Binary(op, Box::new(l), Box::new(r))
            }
        };
        if e.depth() > MAX_TREE_DEPTH {
            return Err(self.error_at(at, "expression too complex".into()));
        }
        Ok(Node::Expr(e))
    }

    fn parse_field_prefix(&mut self) -> Result<Node, ParseError> {
        let t = self.peek();
        let at = t.start;
        let node = match &t.tok {
            Tok::Not | Tok::Sub => {
                self.advance();
                if !starts_field(self.peek_tok()) {
                    return Err(self.unexpected("a field expression"));
                }
                let not = t.tok == Tok::Not;
                // `!` binds tighter than `+`, looser than `*`; unary `-` like binary `-`.
                let operand = match self.parse_field(if not { 5 } else { 4 })? {
                    Node::Expr(e) => e,
                    Node::Nil => return Err(self.error_at(at, NIL_MISUSE.into())),
                };
                let ty = operand.static_type();
                if not {
                    if ty != Type::Bool && ty != Type::Attr {
                        return Err(self.error_at(
                            at,
                            format!("! needs a boolean, found {}: !{operand}", ty.name()),
                        ));
                    }
                    Expr::Not(Box::new(operand))
                } else {
                    if ty != Type::Attr && !ty.is_numeric() {
                        return Err(self.error_at(
                            at,
                            format!("unary - needs a number, found {}: -{operand}", ty.name()),
                        ));
                    }
                    Expr::Neg(Box::new(operand))
                }
            }
            Tok::LParen => {
                self.advance();
                let inner = self.parse_field_expr("a field expression")?;
                self.expect(&Tok::RParen, "an operator or \")\"")?;
                inner
            }
            Tok::Str(s) => {
                self.advance();
                Expr::Static(Static::Str(s.clone()))
            }
            Tok::Int(i) => {
                self.advance();
                Expr::Static(Static::Int(*i))
            }
            Tok::Float(f) => {
                self.advance();
                Expr::Static(Static::Float(*f))
            }
            Tok::Duration(d) => {
                self.advance();
                Expr::Static(Static::Duration(*d))
            }
            Tok::Ident(w) => {
                let e = match w.as_str() {
                    "nil" => {
                        self.advance();
                        return Ok(Node::Nil);
                    }
                    "true" => Expr::Static(Static::Bool(true)),
                    "false" => Expr::Static(Static::Bool(false)),
                    "ok" => Expr::Static(Static::Status(Status::Ok)),
                    "error" => Expr::Static(Static::Status(Status::Error)),
                    "unset" => Expr::Static(Static::Status(Status::Unset)),
                    "unspecified" => Expr::Static(Static::Kind(SpanKind::Unspecified)),
                    "internal" => Expr::Static(Static::Kind(SpanKind::Internal)),
                    "server" => Expr::Static(Static::Kind(SpanKind::Server)),
                    "client" => Expr::Static(Static::Kind(SpanKind::Client)),
                    "producer" => Expr::Static(Static::Kind(SpanKind::Producer)),
                    "consumer" => Expr::Static(Static::Kind(SpanKind::Consumer)),
                    "name" => Expr::Attr(Attribute::Intrinsic(Intrinsic::Name)),
                    "status" => Expr::Attr(Attribute::Intrinsic(Intrinsic::Status)),
                    "statusMessage" => Expr::Attr(Attribute::Intrinsic(Intrinsic::StatusMessage)),
                    "kind" => Expr::Attr(Attribute::Intrinsic(Intrinsic::Kind)),
                    "duration" => Expr::Attr(Attribute::Intrinsic(Intrinsic::Duration)),
                    "rootName" => Expr::Attr(Attribute::Intrinsic(Intrinsic::TraceRootName)),
                    "rootServiceName" => {
                        Expr::Attr(Attribute::Intrinsic(Intrinsic::TraceRootService))
                    }
                    "traceDuration" => Expr::Attr(Attribute::Intrinsic(Intrinsic::TraceDuration)),
                    "parent" | "nestedSetLeft" | "nestedSetRight" | "nestedSetParent"
                    | "childCount" | "minInt" | "maxInt" => {
                        return Err(self.error_at(at, format!("{w} is not supported")));
                    }
                    _ => {
                        return Err(self.error_at(
                            at,
                            format!(
                                "unknown identifier {w:?}; attributes need a scope or a leading dot (.{w}, span.{w}, resource.{w})"
                            ),
                        ));
                    }
                };
                self.advance();
                e
            }
            Tok::Attr(AttrScope::Parent, _) => {
                return Err(self.error_at(at, "parent. attributes are not supported".into()));
            }
            Tok::Attr(scope, name) => {
                self.advance();
                Expr::Attr(Attribute::Attr {
                    scope: *scope,
                    name: name.clone(),
                })
            }
            Tok::Scoped(s) => {
                let i = match s.as_str() {
                    "span:name" => Intrinsic::Name,
                    "span:status" => Intrinsic::Status,
                    "span:statusMessage" => Intrinsic::StatusMessage,
                    "span:kind" => Intrinsic::Kind,
                    "span:duration" => Intrinsic::Duration,
                    "span:id" => Intrinsic::SpanId,
                    "span:parentID" => Intrinsic::ParentId,
                    "trace:rootName" => Intrinsic::TraceRootName,
                    "trace:rootService" => Intrinsic::TraceRootService,
                    "trace:duration" => Intrinsic::TraceDuration,
                    "trace:id" => Intrinsic::TraceId,
                    "event:name" => Intrinsic::EventName,
                    "event:timeSinceStart" => Intrinsic::EventTimeSinceStart,
                    "link:traceID" => Intrinsic::LinkTraceId,
                    "link:spanID" => Intrinsic::LinkSpanId,
                    "instrumentation:name" => Intrinsic::InstrumentationName,
                    "instrumentation:version" => Intrinsic::InstrumentationVersion,
                    "span:childCount" => {
                        return Err(self.error_at(at, "span:childCount is not supported".into()));
                    }
                    _ => {
                        return Err(self.error_at(at, format!("unknown intrinsic {s}")));
                    }
                };
                self.advance();
                Expr::Attr(Attribute::Intrinsic(i))
            }
            _ => return Err(self.unexpected("a field expression")),
        };
        Ok(Node::Expr(node))
    }
}

/// Ids compare as lowercase hex of full width; like Tempo (which decodes the literal into id
/// bytes), a shorter or uppercase hex literal compared with an id intrinsic is normalized.
fn normalize_id(e: Expr, other: &Expr) -> Expr {
    let width = match other {
        Expr::Attr(Attribute::Intrinsic(Intrinsic::TraceId | Intrinsic::LinkTraceId)) => 32,
        Expr::Attr(Attribute::Intrinsic(
            Intrinsic::SpanId | Intrinsic::ParentId | Intrinsic::LinkSpanId,
        )) => 16,
        _ => return e,
    };
    match e {
        Expr::Static(Static::Str(s))
            if !s.is_empty() && s.len() <= width && s.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Expr::Static(Static::Str(format!("{:0>width$}", s.to_ascii_lowercase())))
        }
        e => e,
    }
}

const NIL_MISUSE: &str =
    "nil can only be compared with = or != (e.g. span.foo != nil, span.foo = nil)";

/// Tokens a field expression can start with (for better "expecting" messages).
fn starts_field(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Not
            | Tok::Sub
            | Tok::LParen
            | Tok::Str(_)
            | Tok::Int(_)
            | Tok::Float(_)
            | Tok::Duration(_)
            | Tok::Ident(_)
            | Tok::Attr(..)
            | Tok::Scoped(_)
            | Tok::Error(_)
    )
}
