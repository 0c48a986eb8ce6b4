//! W3C Trace Context (`traceparent` / `tracestate`), enough to continue a trace across a hop.

use rand::Rng;

/// One position in a distributed trace, as carried by the `traceparent` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 16-byte trace id, lower-case hex.
    pub trace_id: String,
    /// 8-byte span id of the current span, lower-case hex.
    pub span_id: String,
    /// Trace flags (bit 0 = sampled).
    pub flags: u8,
    /// The opaque `tracestate` header travelling with the trace, if any.
    pub tracestate: Option<String>,
}

/// A random trace id (16 bytes) or span id (8 bytes) as lower-case hex; never all zeros,
/// which W3C trace context forbids.
fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    if bytes == 8 {
        let id = loop {
            let v: u64 = rng.r#gen();
            if v != 0 {
                break v;
            }
        };
        return format!("{id:016x}");
    }
    let id = loop {
        let v: u128 = rng.r#gen();
        if v != 0 {
            break v;
        }
    };
    format!("{id:032x}")
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl TraceContext {
    /// Starts a new sampled trace.
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: random_hex(16),
            span_id: random_hex(8),
            flags: 1,
            tracestate: None,
        }
    }

    /// Parses a `traceparent` header; `None` when it is not a valid version-00 header
    /// (an invalid parent starts a new trace, as the W3C spec asks).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        if !is_lower_hex(trace_id, 32) || !is_lower_hex(span_id, 16) || flags.len() != 2 {
            return None;
        }
        if trace_id.bytes().all(|b| b == b'0') || span_id.bytes().all(|b| b == b'0') {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceContext {
            trace_id: trace_id.to_owned(),
            span_id: span_id.to_owned(),
            flags,
            tracestate: tracestate.filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }

    /// A child of this context: same trace, new span id, same flags and tracestate.
    pub fn child(&self) -> Self {
        TraceContext {
            trace_id: self.trace_id.clone(),
            span_id: random_hex(8),
            flags: self.flags,
            tracestate: self.tracestate.clone(),
        }
    }

    /// Continues the incoming context with a new span, or starts a new trace.
    pub fn continue_or_start(traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        traceparent
            .and_then(|tp| Self::parse(tp, tracestate))
            .map(|parent| parent.child())
            .unwrap_or_else(Self::new_root)
    }

    /// The `traceparent` header value for this context.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(tp, Some("congo=t61rcWkgMzE")).expect("valid");
        assert_eq!(ctx.traceparent(), tp);
        assert_eq!(ctx.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        let child = ctx.child();
        assert_eq!(child.trace_id, ctx.trace_id);
        assert_ne!(child.span_id, ctx.span_id);
        assert_eq!(child.tracestate, ctx.tracestate);
    }

    #[test]
    fn rejects_invalid_headers() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad}");
        }
        let fresh = TraceContext::continue_or_start(Some("garbage"), None);
        assert_eq!(fresh.traceparent().len(), 55);
    }
}
