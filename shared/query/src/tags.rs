//! Tag names and values for Grafana's TraceQL editor (`/api/search/tags`, `/api/v2/search/tags`,
//! `/api/search/tag/{tag}/values`, `/api/v2/search/tag/{tag}/values`), collected from the newest
//! blocks in the time range, up to a bounded number of bytes.

use std::collections::BTreeSet;

use tempest_blocks::index::BlockIndex;
use tempest_blocks::reader;
use tempest_core::TenantId;
use tempest_traceql::Query;
use tempest_traces::{AnyValue, Span};

use crate::QueryError;
use crate::search::overlaps;

/// Block bytes read at most to answer a tags request (newest blocks first).
pub const SCAN_BYTES: u64 = 256 << 20;
/// Values returned at most, as Tempo's default `max_bytes_per_tag_values_query` bounds them.
pub const MAX_VALUES: usize = 1000;

/// The intrinsics Tempo lists under the `intrinsic` scope, limited to those Tempest's TraceQL
/// evaluates.
pub const INTRINSICS: &[&str] = &[
    "duration",
    "event:name",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

/// Attribute scopes a tags request can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Resource attributes.
    Resource,
    /// Span attributes.
    Span,
    /// Event attributes.
    Event,
    /// Link attributes.
    Link,
    /// Instrumentation scope attributes.
    Instrumentation,
    /// Intrinsics.
    Intrinsic,
}

impl Scope {
    /// Every scope, in the order Tempo lists them.
    pub const ALL: [Scope; 6] = [
        Scope::Resource,
        Scope::Span,
        Scope::Event,
        Scope::Link,
        Scope::Instrumentation,
        Scope::Intrinsic,
    ];

    /// Tempo's name for the scope.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Resource => "resource",
            Scope::Span => "span",
            Scope::Event => "event",
            Scope::Link => "link",
            Scope::Instrumentation => "instrumentation",
            Scope::Intrinsic => "intrinsic",
        }
    }

    /// The scope named by a `scope` parameter; `None` for "all" (absent, empty or `none`).
    pub fn parse(text: Option<&str>) -> Result<Option<Scope>, String> {
        match text.map(str::trim) {
            None | Some("") | Some("none") | Some("all") => Ok(None),
            Some(t) => Scope::ALL
                .into_iter()
                .find(|s| s.name() == t)
                .map(Some)
                .ok_or_else(|| {
                    format!(
                        "invalid scope {t:?}: expected resource, span, event, link, instrumentation or intrinsic"
                    )
                }),
        }
    }
}

/// Reads the spans of the newest blocks in `range`, up to `SCAN_BYTES`, and hands each trace
/// (fragment) to `visit`.
async fn scan(
    index: &BlockIndex,
    tenant: &TenantId,
    range: Option<(u64, u64)>,
    mut visit: impl FnMut(&[Span]),
) -> Result<(), QueryError> {
    let loc = index.location();
    let mut blocks: Vec<_> = index
        .blocks(tenant)
        .await?
        .iter()
        .filter(|b| overlaps(&b.meta, range))
        .map(|b| b.meta.clone())
        .collect();
    blocks.sort_by_key(|b| std::cmp::Reverse(b.end_time_unix_nano));
    let mut bytes = 0;
    for meta in blocks {
        if bytes >= SCAN_BYTES {
            break;
        }
        bytes += meta.data_size;
        let spans = reader::read_spans(loc, &meta).await?;
        for trace in spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
            visit(trace);
        }
    }
    Ok(())
}

/// The spans of a trace the optional filter selects (all of them without one).
fn selected(trace: &[Span], filter: Option<&Query>) -> Vec<usize> {
    match filter {
        None => (0..trace.len()).collect(),
        Some(q) => {
            let mut idx: Vec<usize> = q
                .eval(trace)
                .into_iter()
                .flat_map(|set| set.spans.into_iter().map(|m| m.index))
                .collect();
            idx.sort_unstable();
            idx.dedup();
            idx
        }
    }
}

/// Attribute keys per scope (and the intrinsics) found in the data.
pub async fn names(
    index: &BlockIndex,
    tenant: &TenantId,
    range: Option<(u64, u64)>,
    filter: Option<&Query>,
) -> Result<Vec<(Scope, Vec<String>)>, QueryError> {
    let mut found: [BTreeSet<String>; 5] = Default::default();
    scan(index, tenant, range, |trace| {
        for i in selected(trace, filter) {
            let s = &trace[i];
            found[0].extend(s.resource.attributes.iter().map(|kv| kv.key.clone()));
            found[1].extend(s.attributes.iter().map(|kv| kv.key.clone()));
            for e in &s.events {
                found[2].extend(e.attributes.iter().map(|kv| kv.key.clone()));
            }
            for l in &s.links {
                found[3].extend(l.attributes.iter().map(|kv| kv.key.clone()));
            }
            found[4].extend(s.scope.attributes.iter().map(|kv| kv.key.clone()));
        }
    })
    .await?;
    let mut out: Vec<(Scope, Vec<String>)> = Scope::ALL[..5]
        .iter()
        .zip(found)
        .map(|(scope, keys)| (*scope, keys.into_iter().take(MAX_VALUES).collect()))
        .collect();
    out.push((
        Scope::Intrinsic,
        INTRINSICS.iter().map(|s| (*s).to_owned()).collect(),
    ));
    Ok(out)
}

/// A typed tag value, as `/api/v2/search/tag/{tag}/values` lists them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TypedValue {
    /// `string`, `int`, `float`, `bool`, `duration` or `keyword`.
    pub kind: &'static str,
    /// The value as text.
    pub value: String,
}

fn typed(v: &AnyValue) -> Option<TypedValue> {
    let (kind, value) = match v {
        AnyValue::Str(s) => ("string", s.clone()),
        AnyValue::Int(i) => ("int", i.to_string()),
        AnyValue::Double(d) => ("float", d.to_string()),
        AnyValue::Bool(b) => ("bool", b.to_string()),
        _ => return None,
    };
    Some(TypedValue { kind, value })
}

fn keywords(values: &[&str]) -> Vec<TypedValue> {
    values
        .iter()
        .map(|v| TypedValue {
            kind: "keyword",
            value: (*v).to_owned(),
        })
        .collect()
}

/// Where a tag's values come from.
enum Source {
    /// An attribute: span, resource, unscoped (both), event, link or instrumentation.
    Attribute(Option<Scope>, String),
    /// The span name / root name / root service / status message, read from the data.
    Intrinsic(fn(&Span) -> Option<String>),
    /// A fixed list of keywords.
    Fixed(&'static [&'static str]),
}

fn source(tag: &str) -> Result<Source, String> {
    Ok(match tag {
        "status" | "span:status" => Source::Fixed(&["error", "ok", "unset"]),
        "kind" | "span:kind" => Source::Fixed(&[
            "unspecified",
            "internal",
            "client",
            "server",
            "producer",
            "consumer",
        ]),
        "name" | "span:name" => Source::Intrinsic(|s| Some(s.name.clone())),
        "statusMessage" | "span:statusMessage" => {
            Source::Intrinsic(|s| Some(s.status_message.clone()).filter(|m| !m.is_empty()))
        }
        "rootName" | "trace:rootName" => {
            Source::Intrinsic(|s| s.parent_span_id.is_none().then(|| s.name.clone()))
        }
        "rootServiceName" | "trace:rootService" => Source::Intrinsic(|s| {
            s.parent_span_id
                .is_none()
                .then(|| s.resource.service_name().map(str::to_owned))
                .flatten()
        }),
        t => {
            let (scope, key) = if let Some(k) = t.strip_prefix("resource.") {
                (Some(Scope::Resource), k)
            } else if let Some(k) = t.strip_prefix("span.") {
                (Some(Scope::Span), k)
            } else if let Some(k) = t.strip_prefix("event.") {
                (Some(Scope::Event), k)
            } else if let Some(k) = t.strip_prefix("link.") {
                (Some(Scope::Link), k)
            } else if let Some(k) = t.strip_prefix("instrumentation.") {
                (Some(Scope::Instrumentation), k)
            } else if let Some(k) = t.strip_prefix('.') {
                (None, k)
            } else if t.contains(':') || INTRINSICS.contains(&t) {
                return Err(format!("tag {t:?} has no values to list"));
            } else {
                // v1 tags are unscoped names.
                (None, t)
            };
            if key.is_empty() {
                return Err(format!("invalid tag {t:?}"));
            }
            Source::Attribute(scope, key.to_owned())
        }
    })
}

/// The distinct values of `tag` (`resource.service.name`, `.http.method`, `name`, `status`, …)
/// among the spans the optional filter selects.
pub async fn values(
    index: &BlockIndex,
    tenant: &TenantId,
    tag: &str,
    range: Option<(u64, u64)>,
    filter: Option<&Query>,
) -> Result<Vec<TypedValue>, QueryError> {
    let source = source(tag).map_err(QueryError::BadRequest)?;
    if let Source::Fixed(list) = source {
        return Ok(keywords(list));
    }
    let mut found: BTreeSet<TypedValue> = BTreeSet::new();
    scan(index, tenant, range, |trace| {
        if found.len() >= MAX_VALUES {
            return;
        }
        for i in selected(trace, filter) {
            let s = &trace[i];
            match &source {
                Source::Intrinsic(read) => {
                    if let Some(v) = read(s) {
                        found.insert(TypedValue {
                            kind: "string",
                            value: v,
                        });
                    }
                }
                Source::Attribute(scope, key) => {
                    let mut lists: Vec<&[tempest_traces::KeyValue]> = Vec::new();
                    match scope {
                        Some(Scope::Resource) => lists.push(&s.resource.attributes),
                        Some(Scope::Span) => lists.push(&s.attributes),
                        Some(Scope::Instrumentation) => lists.push(&s.scope.attributes),
                        Some(Scope::Event) => {
                            lists.extend(s.events.iter().map(|e| &e.attributes[..]))
                        }
                        Some(Scope::Link) => {
                            lists.extend(s.links.iter().map(|l| &l.attributes[..]))
                        }
                        Some(Scope::Intrinsic) => {}
                        None => {
                            lists.push(&s.attributes);
                            lists.push(&s.resource.attributes);
                        }
                    }
                    for kv in lists.into_iter().flatten() {
                        if &kv.key == key {
                            found.extend(typed(&kv.value));
                        }
                    }
                }
                Source::Fixed(_) => {}
            }
        }
    })
    .await?;
    Ok(found.into_iter().take(MAX_VALUES).collect())
}
