//! Parsing the query parameters of Tempo's API: trace ids, time ranges, Go durations, logfmt
//! tags. Each error message is what the 400 body says.

use std::time::Duration;

/// A trace id from the URL: up to 32 hex digits, left-padded with zeros as Tempo does.
pub fn trace_id(text: &str) -> Result<[u8; 16], String> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "invalid trace id {text:?}: expected up to 32 hexadecimal digits"
        ));
    }
    let padded = format!("{text:0>32}");
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&padded[i * 2..i * 2 + 2], 16)
            .map_err(|e| format!("invalid trace id {text:?}: {e}"))?;
    }
    if out == [0u8; 16] {
        return Err("invalid trace id: all zeros".into());
    }
    Ok(out)
}

/// A trace id as Tempo prints it in search results: hex without leading zeros.
pub fn trace_id_hex(id: &[u8; 16]) -> String {
    let hex = tempest_core::hex::encode(id);
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

/// An optional `start`/`end` parameter in Unix seconds.
pub fn unix_seconds(name: &str, value: Option<&str>) -> Result<Option<u64>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("invalid {name} {v:?}: expected Unix seconds")),
    }
}

/// A time range in Unix nanoseconds from `start`/`end` seconds; both or neither, start ≤ end.
pub fn time_range(start: Option<&str>, end: Option<&str>) -> Result<Option<(u64, u64)>, String> {
    let (s, e) = (unix_seconds("start", start)?, unix_seconds("end", end)?);
    match (s, e) {
        (Some(s), Some(e)) if s > e => Err(format!(
            "invalid start {s} and end {e}: start must not be after end"
        )),
        // An end in seconds covers the whole second.
        (Some(s), Some(e)) => Ok(Some((
            s.saturating_mul(1_000_000_000),
            e.saturating_add(1).saturating_mul(1_000_000_000),
        ))),
        (None, None) => Ok(None),
        _ => Err("start and end must be given together".into()),
    }
}

/// A Go duration (`300ms`, `1.5s`, `2h45m`), as Tempo's `minDuration`/`maxDuration` take.
pub fn go_duration(name: &str, text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid {name} {text:?}: expected a duration such as 100ms, 1.5s or 2m");
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = t;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Tempo's legacy `tags` parameter: logfmt `key=value` pairs (values may be double-quoted).
pub fn logfmt(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    let bad = |why: &str| format!("invalid tags {text:?}: {why}");
    loop {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let Some(&(start, _)) = chars.peek() else {
            return Ok(out);
        };
        let mut key_end = None;
        for (i, c) in chars.by_ref() {
            if c == '=' {
                key_end = Some(i);
                break;
            }
            if c.is_whitespace() {
                return Err(bad("expected key=value"));
            }
        }
        let key_end = key_end.ok_or_else(|| bad("expected key=value"))?;
        let key = text[start..key_end].to_owned();
        if key.is_empty() {
            return Err(bad("empty key"));
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|(_, c)| *c == '"') {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, e)) => value.push(e),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(bad("unterminated quoted value"));
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// A TraceQL string literal for `s`.
pub fn traceql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TraceQL attribute reference for a legacy tag key: `.key`, quoted when it is not a plain
/// dotted identifier.
pub fn traceql_attribute(key: &str) -> String {
    let plain = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if plain {
        format!(".{key}")
    } else {
        format!(".{}", traceql_string(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_pad_and_trim() {
        let id = trace_id("abc").expect("short id");
        assert_eq!(id[15], 0xbc);
        assert_eq!(id[14], 0x0a);
        assert_eq!(trace_id_hex(&id), "abc");
        assert!(trace_id("xyz").is_err());
        assert!(trace_id(&"1".repeat(33)).is_err());
        assert!(trace_id("").is_err());
        assert!(trace_id("0000").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("d", "100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(go_duration("d", "1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(go_duration("d", "2h45m"), Ok(Duration::from_secs(9900)));
        assert_eq!(go_duration("d", "0"), Ok(Duration::ZERO));
        assert!(go_duration("d", "10").is_err());
        assert!(go_duration("d", "ms").is_err());
        assert!(go_duration("d", "5 years").is_err());
    }

    #[test]
    fn logfmt_tags() {
        assert_eq!(
            logfmt(r#"service.name=api http.url="/a b" x=\"#),
            Ok(vec![
                ("service.name".into(), "api".into()),
                ("http.url".into(), "/a b".into()),
                ("x".into(), "\\".into()),
            ])
        );
        assert!(logfmt("novalue").is_err());
        assert!(logfmt(r#"a="open"#).is_err());
        assert_eq!(logfmt("  "), Ok(vec![]));
    }

    #[test]
    fn ranges() {
        assert_eq!(
            time_range(Some("10"), Some("20")),
            Ok(Some((10_000_000_000, 21_000_000_000)))
        );
        assert!(time_range(Some("20"), Some("10")).is_err());
        assert!(time_range(Some("10"), None).is_err());
        assert!(time_range(Some("x"), Some("10")).is_err());
        assert_eq!(time_range(None, None), Ok(None));
    }
}
