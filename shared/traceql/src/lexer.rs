//! Tokenizer for TraceQL.
//!
//! Follows Tempo's lexer (`pkg/traceql/lexer.go`) where Grafana's published grammar
//! (`@grafana/lezer-traceql`) agrees with it, and is stricter where Grafana's grammar is:
//! durations take a single unit out of `ns us µs ms s m h`, floats need digits on both sides of
//! the dot, strings only know the escapes `\"` and `\\`, attribute names can't start with a digit.
//!
//! Lexing never fails outright: a malformed piece of input becomes an [`Tok::Error`] token
//! (followed by [`Tok::Eof`]) so the parser reports it at the right place.

/// Attribute scopes written with a dot: `span.x`, `resource.x`, `.x`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AttrScope {
    /// `.x`: span attribute, falling back to the resource attribute.
    None,
    /// `span.x`
    Span,
    /// `resource.x`
    Resource,
    /// `event.x`
    Event,
    /// `link.x`
    Link,
    /// `instrumentation.x`
    Instrumentation,
    /// `parent.x` (recognised so it can be reported as unsupported)
    Parent,
}

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    // comparison / field operators
    Eq,
    Neq,
    Re,
    Nre,
    Gt,
    Gte,
    Lt,
    Lte,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    And,
    Or,
    Not,
    Pipe,
    // structural operators
    Desc,
    Anc,
    Tilde,
    NotChild,
    NotParent,
    NotDesc,
    NotAnc,
    UnionChild,
    UnionParent,
    UnionDesc,
    UnionAnc,
    UnionSibl,
    // literals
    Str(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    /// A bare word: keyword, intrinsic or unknown identifier.
    Ident(String),
    /// `scope.name`
    Attr(AttrScope, String),
    /// `scope:name` (e.g. `span:name`), kept as written.
    Scoped(String),
    /// A lexical error: the message.
    Error(String),
    Eof,
}

/// A token and where it is in the query (byte offsets).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// Characters that end an unquoted attribute name (Tempo's `isAttributeRune`).
fn ends_attribute(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ','
        )
}

/// Characters an unquoted attribute name may start with (Grafana's grammar).
fn starts_attribute(c: char) -> bool {
    c.is_alphabetic()
        || matches!(
            c,
            '_' | '@' | '#' | '$' | '%' | '*' | '+' | '?' | ':' | ';' | '\'' | '`'
        )
}

fn is_word_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().nth(n))
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    /// Skips whitespace and comments; an unterminated block comment is an error.
    fn skip_trivia(&mut self) -> Result<(), (usize, String)> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek_at(1) == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek_at(1) == Some('*') => {
                    let start = self.pos;
                    self.pos += 2;
                    match self.rest().find("*/") {
                        Some(i) => self.pos += i + 2,
                        None => {
                            self.pos = self.src.len();
                            return Err((start, "comment not terminated".into()));
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !is_word_char(c) {
                break;
            }
            self.bump();
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// An attribute name after `.`/`scope.`, with quoted segments (Tempo's `parseAttribute`).
    fn attribute_name(&mut self) -> Result<String, String> {
        let mut name = String::new();
        match self.peek() {
            Some('"') => {}
            Some(c) if starts_attribute(c) => {}
            Some(c) if !ends_attribute(c) => {
                return Err(format!("attribute names can't start with {c:?}"));
            }
            _ => return Err("expecting an attribute name after \".\"".into()),
        }
        while let Some(c) = self.peek() {
            if c == '"' {
                self.bump();
                loop {
                    match self.bump() {
                        None => return Err("unterminated quoted attribute name".into()),
                        Some('"') => break,
                        Some('\\') => match self.bump() {
                            Some(e @ ('"' | '\\')) => name.push(e),
                            _ => {
                                return Err(
                                    "invalid escape sequence in attribute name (only \\\" and \\\\ are allowed)"
                                        .into(),
                                );
                            }
                        },
                        Some(c) => name.push(c),
                    }
                }
            } else if ends_attribute(c) {
                break;
            } else {
                name.push(c);
                self.bump();
            }
        }
        Ok(name)
    }

    fn string(&mut self, quote: char) -> Result<String, String> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err("string not terminated".into()),
                Some(c) if c == quote => return Ok(s),
                Some('\n') if quote == '"' => return Err("string not terminated".into()),
                Some('\\') if quote == '"' => match self.bump() {
                    Some(e @ ('"' | '\\')) => s.push(e),
                    Some(e) => {
                        return Err(format!(
                            "invalid escape sequence \"\\{e}\" (only \\\" and \\\\ are allowed; use a `raw string` for regular expressions)"
                        ));
                    }
                    None => return Err("string not terminated".into()),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.bump();
        }
    }

    fn number(&mut self) -> Result<Tok, String> {
        let start = self.pos;
        self.digits();
        let mut is_float = false;
        if self.peek() == Some('.') {
            if matches!(self.peek_at(1), Some(c) if c.is_ascii_digit()) {
                self.bump();
                self.digits();
                is_float = true;
            } else {
                return Err("expecting digits after the decimal point".into());
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        // a duration unit?
        const UNITS: [(&str, i64); 7] = [
            ("ns", 1),
            ("us", 1_000),
            ("µs", 1_000),
            ("ms", 1_000_000),
            ("s", 1_000_000_000),
            ("m", 60_000_000_000),
            ("h", 3_600_000_000_000),
        ];
        let rest = self.rest();
        let unit = UNITS.iter().find(|(u, _)| rest.starts_with(u));
        if let Some((u, mult)) = unit {
            self.pos += u.len();
            if matches!(self.peek(), Some(c) if is_word_char(c) || c == '.') {
                self.word();
                return Err(format!(
                    "invalid duration {:?} (units: ns, us, µs, ms, s, m, h)",
                    self.src.get(start..self.pos).unwrap_or("")
                ));
            }
            let nanos = if is_float {
                let f: f64 = text.parse().map_err(|_| "invalid number".to_string())?;
                let n = f * (*mult as f64);
                if !n.is_finite() || n >= i64::MAX as f64 {
                    return Err("duration out of range".into());
                }
                n.round() as i64
            } else {
                let i: i64 = text
                    .parse()
                    .map_err(|_| "duration out of range".to_string())?;
                i.checked_mul(*mult)
                    .ok_or_else(|| "duration out of range".to_string())?
            };
            return Ok(Tok::Duration(nanos));
        }
        if matches!(self.peek(), Some(c) if is_word_char(c)) {
            self.word();
            return Err(format!(
                "invalid number or duration {:?} (duration units: ns, us, µs, ms, s, m, h)",
                self.src.get(start..self.pos).unwrap_or("")
            ));
        }
        if is_float {
            let f: f64 = text.parse().map_err(|_| "invalid number".to_string())?;
            Ok(Tok::Float(f))
        } else {
            let i: i64 = text
                .parse()
                .map_err(|_| format!("integer {text} out of range"))?;
            Ok(Tok::Int(i))
        }
    }

    fn operator(&mut self) -> Option<Tok> {
        let r = self.rest();
        // longest first
        const OPS: [(&str, Tok); 30] = [
            ("!>>", Tok::NotDesc),
            ("!<<", Tok::NotAnc),
            ("&>>", Tok::UnionDesc),
            ("&<<", Tok::UnionAnc),
            ("!=", Tok::Neq),
            ("!~", Tok::Nre),
            ("!>", Tok::NotChild),
            ("!<", Tok::NotParent),
            ("=~", Tok::Re),
            (">=", Tok::Gte),
            ("<=", Tok::Lte),
            (">>", Tok::Desc),
            ("<<", Tok::Anc),
            ("&&", Tok::And),
            ("||", Tok::Or),
            ("&>", Tok::UnionChild),
            ("&<", Tok::UnionParent),
            ("&~", Tok::UnionSibl),
            ("=", Tok::Eq),
            (">", Tok::Gt),
            ("<", Tok::Lt),
            ("+", Tok::Add),
            ("-", Tok::Sub),
            ("*", Tok::Mul),
            ("/", Tok::Div),
            ("%", Tok::Mod),
            ("^", Tok::Pow),
            ("!", Tok::Not),
            ("|", Tok::Pipe),
            ("~", Tok::Tilde),
        ];
        for (s, t) in OPS.iter() {
            if r.starts_with(s) {
                self.pos += s.len();
                return Some(t.clone());
            }
        }
        None
    }

    fn next_token(&mut self) -> Token {
        if let Err((start, msg)) = self.skip_trivia() {
            return Token {
                tok: Tok::Error(msg),
                start,
                end: self.pos,
            };
        }
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Token {
                tok: Tok::Eof,
                start,
                end: start,
            };
        };
        let tok = match c {
            '{' => {
                self.bump();
                Tok::LBrace
            }
            '}' => {
                self.bump();
                Tok::RBrace
            }
            '(' => {
                self.bump();
                Tok::LParen
            }
            ')' => {
                self.bump();
                Tok::RParen
            }
            ',' => {
                self.bump();
                Tok::Comma
            }
            '"' | '`' => match self.string(c) {
                Ok(s) => Tok::Str(s),
                Err(e) => Tok::Error(e),
            },
            '.' if matches!(self.peek_at(1), Some(c) if c.is_ascii_digit()) => {
                self.bump();
                self.digits();
                Tok::Error(
                    "numbers need a digit before the decimal point (0.5), and attribute names can't start with a digit"
                        .into(),
                )
            }
            '.' => {
                self.bump();
                match self.attribute_name() {
                    Ok(n) => Tok::Attr(AttrScope::None, n),
                    Err(e) => Tok::Error(e),
                }
            }
            c if c.is_ascii_digit() => match self.number() {
                Ok(t) => t,
                Err(e) => Tok::Error(e),
            },
            c if is_word_start(c) => {
                let w = self.word();
                match self.peek() {
                    Some('.') => {
                        let scope = match w {
                            "span" => Some(AttrScope::Span),
                            "resource" => Some(AttrScope::Resource),
                            "event" => Some(AttrScope::Event),
                            "link" => Some(AttrScope::Link),
                            "instrumentation" => Some(AttrScope::Instrumentation),
                            "parent" => Some(AttrScope::Parent),
                            _ => None,
                        };
                        match scope {
                            Some(scope) => {
                                self.bump();
                                match self.attribute_name() {
                                    Ok(n) => Tok::Attr(scope, n),
                                    Err(e) => Tok::Error(e),
                                }
                            }
                            None => Tok::Ident(w.to_string()),
                        }
                    }
                    Some(':')
                        if matches!(w, "span" | "trace" | "event" | "link" | "instrumentation") =>
                    {
                        self.bump();
                        let name = self.word();
                        if name.is_empty() {
                            Tok::Error(format!("expecting an intrinsic name after \"{w}:\""))
                        } else {
                            Tok::Scoped(format!("{w}:{name}"))
                        }
                    }
                    _ => Tok::Ident(w.to_string()),
                }
            }
            c => match self.operator() {
                Some(t) => t,
                None => {
                    self.bump();
                    Tok::Error(format!("unexpected character {c:?}"))
                }
            },
        };
        Token {
            tok,
            start,
            end: self.pos,
        }
    }
}

/// Splits a query into tokens. The last token is always [`Tok::Eof`]; a lexical error becomes
/// a [`Tok::Error`] token followed by `Eof`.
pub(crate) fn tokenize(src: &str) -> Vec<Token> {
    let mut lx = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        let t = lx.next_token();
        match t.tok {
            Tok::Eof => {
                out.push(t);
                return out;
            }
            Tok::Error(_) => {
                let end = t.end;
                out.push(t);
                out.push(Token {
                    tok: Tok::Eof,
                    start: end,
                    end,
                });
                return out;
            }
            _ => out.push(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn basics() {
        assert_eq!(
            toks("{ span.http.status_code >= 200 }"),
            vec![
                Tok::LBrace,
                Tok::Attr(AttrScope::Span, "http.status_code".into()),
                Tok::Gte,
                Tok::Int(200),
                Tok::RBrace,
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("{.a=1.5s}"),
            vec![
                Tok::LBrace,
                Tok::Attr(AttrScope::None, "a".into()),
                Tok::Eq,
                Tok::Duration(1_500_000_000),
                Tok::RBrace,
                Tok::Eof
            ]
        );
        assert_eq!(
            toks(r#"span.attribute."with space" trace:rootService 5µs"#),
            vec![
                Tok::Attr(AttrScope::Span, "attribute.with space".into()),
                Tok::Scoped("trace:rootService".into()),
                Tok::Duration(5_000),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("!>> &<< !~ =~ != // comment\n /* block */ `raw\\d`"),
            vec![
                Tok::NotDesc,
                Tok::UnionAnc,
                Tok::Nre,
                Tok::Re,
                Tok::Neq,
                Tok::Str("raw\\d".into()),
                Tok::Eof
            ]
        );
        assert!(matches!(toks("1d")[0], Tok::Error(_)));
        assert!(matches!(toks("1.")[0], Tok::Error(_)));
        assert!(matches!(toks("\"a\\n\"")[0], Tok::Error(_)));
        assert!(matches!(toks(".0a")[0], Tok::Error(_)));
        assert!(matches!(toks("99999999999999999999")[0], Tok::Error(_)));
    }
}
