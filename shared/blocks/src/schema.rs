//! The Parquet schema of `data.parquet` — one row per span — and the conversions between spans
//! and Arrow record batches. Frequently queried fields have their own columns (service name,
//! span name, status, kind, duration and the common http/db attributes); the remaining
//! attributes, events and links are in compact JSON columns (see `attrs`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    FixedSizeBinaryBuilder, Int8Builder, Int32Builder, Int64Builder, StringBuilder, UInt32Builder,
};
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, Int8Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt32Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use serde_json::{Value, json};
use tempest_traces::{AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanKind};

use crate::attrs;

/// The type of a dedicated attribute column.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
}

/// Span attributes with their own column: (attribute key, column name, type). An attribute of
/// another type than its column's stays in the generic column.
const DEDICATED: &[(&str, &str, Kind)] = &[
    ("http.request.method", "http_request_method", Kind::Str),
    (
        "http.response.status_code",
        "http_response_status_code",
        Kind::Int,
    ),
    ("http.route", "http_route", Kind::Str),
    ("url.full", "url_full", Kind::Str),
    ("http.method", "http_method", Kind::Str),
    ("http.status_code", "http_status_code", Kind::Int),
    ("http.url", "http_url", Kind::Str),
    ("db.system", "db_system", Kind::Str),
    ("db.statement", "db_statement", Kind::Str),
];

/// The attribute keys that have dedicated columns, for `meta.json`.
pub fn dedicated_keys() -> Vec<String> {
    DEDICATED.iter().map(|(k, _, _)| (*k).to_owned()).collect()
}

/// The Arrow schema of a block's data file.
pub fn schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("parent_span_id", DataType::FixedSizeBinary(8), true),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Int8, false),
        Field::new("start_unix_nano", DataType::Int64, false),
        Field::new("duration_nano", DataType::Int64, false),
        Field::new("status_code", DataType::Int32, false),
        Field::new("status_message", DataType::Utf8, false),
        Field::new("service_name", DataType::Utf8, true),
    ];
    for (_, column, kind) in DEDICATED {
        let dt = if *kind == Kind::Str {
            DataType::Utf8
        } else {
            DataType::Int64
        };
        fields.push(Field::new(*column, dt, true));
    }
    for name in [
        "attributes",
        "events",
        "links",
        "resource_attributes",
        "scope_name",
        "scope_version",
        "scope_attributes",
    ] {
        fields.push(Field::new(name, DataType::Utf8, false));
    }
    for name in [
        "dropped_attributes_count",
        "dropped_events_count",
        "dropped_links_count",
        "resource_dropped_attributes_count",
        "scope_dropped_attributes_count",
    ] {
        fields.push(Field::new(name, DataType::UInt32, false));
    }
    Arc::new(Schema::new(fields))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Converts spans (already sorted) into one record batch.
pub fn to_batch(spans: &[Span]) -> Result<RecordBatch, ArrowError> {
    let n = spans.len();
    let mut trace_id = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut span_id = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let mut parent = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let (mut trace_state, mut name, mut status_message, mut service) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut flags, mut kind, mut start, mut duration, mut status) = (
        UInt32Builder::new(),
        Int8Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int32Builder::new(),
    );
    let mut ded_str: Vec<StringBuilder> = DEDICATED.iter().map(|_| StringBuilder::new()).collect();
    let mut ded_int: Vec<Int64Builder> = DEDICATED.iter().map(|_| Int64Builder::new()).collect();
    let mut json_cols: Vec<StringBuilder> = (0..7).map(|_| StringBuilder::new()).collect();
    let mut counts: Vec<UInt32Builder> = (0..5).map(|_| UInt32Builder::new()).collect();
    for s in spans {
        trace_id.append_value(s.trace_id)?;
        span_id.append_value(s.span_id)?;
        match &s.parent_span_id {
            Some(p) => parent.append_value(p)?,
            None => parent.append_null(),
        }
        trace_state.append_value(&s.trace_state);
        flags.append_value(s.flags);
        name.append_value(&s.name);
        kind.append_value(s.kind as i8);
        start.append_value(s.start_unix_nano as i64);
        duration.append_value(s.duration_nano() as i64);
        status.append_value(s.status_code);
        status_message.append_value(&s.status_message);
        service.append_option(s.resource.service_name());
        // Dedicated attributes move to their columns (first occurrence of the right type).
        let mut taken = vec![false; s.attributes.len()];
        for (i, (key, _, k)) in DEDICATED.iter().enumerate() {
            let found = s.attributes.iter().enumerate().find(|(j, kv)| {
                !taken[*j]
                    && kv.key == *key
                    && matches!(
                        (&kv.value, k),
                        (AnyValue::Str(_), Kind::Str) | (AnyValue::Int(_), Kind::Int)
                    )
            });
            let (mut sv, mut iv) = (None, None);
            if let Some((j, kv)) = found {
                taken[j] = true;
                match &kv.value {
                    AnyValue::Str(v) => sv = Some(v.as_str()),
                    AnyValue::Int(v) => iv = Some(*v),
                    _ => {}
                }
            }
            ded_str[i].append_option(sv);
            ded_int[i].append_option(iv);
        }
        let rest: Vec<KeyValue> = s
            .attributes
            .iter()
            .zip(&taken)
            .filter(|(_, t)| !**t)
            .map(|(kv, _)| kv.clone())
            .collect();
        let events: Vec<Value> = s
            .events
            .iter()
            .map(|e| {
                json!([
                    e.time_unix_nano,
                    e.name,
                    attrs::encode(&e.attributes),
                    e.dropped_attributes_count
                ])
            })
            .collect();
        let links: Vec<Value> = s
            .links
            .iter()
            .map(|l| {
                json!([
                    hex(&l.trace_id),
                    hex(&l.span_id),
                    l.trace_state,
                    attrs::encode(&l.attributes),
                    l.dropped_attributes_count,
                    l.flags
                ])
            })
            .collect();
        // service.name has its own column; the rest of the resource stays generic.
        let resource_rest: Vec<KeyValue> = s
            .resource
            .attributes
            .iter()
            .filter(|kv| !(kv.key == "service.name" && matches!(kv.value, AnyValue::Str(_))))
            .cloned()
            .collect();
        let json_values = [
            attrs::encode(&rest),
            if events.is_empty() {
                String::new()
            } else {
                Value::Array(events).to_string()
            },
            if links.is_empty() {
                String::new()
            } else {
                Value::Array(links).to_string()
            },
            attrs::encode(&resource_rest),
            s.scope.name.clone(),
            s.scope.version.clone(),
            attrs::encode(&s.scope.attributes),
        ];
        for (col, v) in json_cols.iter_mut().zip(json_values) {
            col.append_value(v);
        }
        for (col, v) in counts.iter_mut().zip([
            s.dropped_attributes_count,
            s.dropped_events_count,
            s.dropped_links_count,
            s.resource.dropped_attributes_count,
            s.scope.dropped_attributes_count,
        ]) {
            col.append_value(v);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent.finish()),
        Arc::new(trace_state.finish()),
        Arc::new(flags.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(start.finish()),
        Arc::new(duration.finish()),
        Arc::new(status.finish()),
        Arc::new(status_message.finish()),
        Arc::new(service.finish()),
    ];
    for (i, (_, _, k)) in DEDICATED.iter().enumerate() {
        columns.push(if *k == Kind::Str {
            Arc::new(ded_str[i].finish())
        } else {
            Arc::new(ded_int[i].finish())
        });
    }
    columns.extend(
        json_cols
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef),
    );
    columns.extend(counts.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef));
    RecordBatch::try_new(schema(), columns)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("column {name} missing"))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("column {name} has an unexpected type"))
}

/// Converts a record batch of a block back into spans, sharing equal resources and scopes.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Span>, String> {
    let trace_id = column::<FixedSizeBinaryArray>(batch, "trace_id")?;
    let span_id = column::<FixedSizeBinaryArray>(batch, "span_id")?;
    let parent = column::<FixedSizeBinaryArray>(batch, "parent_span_id")?;
    let s = |name| column::<StringArray>(batch, name);
    let u = |name| column::<UInt32Array>(batch, name);
    let (trace_state, name, status_message, service) = (
        s("trace_state")?,
        s("name")?,
        s("status_message")?,
        s("service_name")?,
    );
    let (attributes, events, links, res_attrs, scope_name, scope_version, scope_attrs) = (
        s("attributes")?,
        s("events")?,
        s("links")?,
        s("resource_attributes")?,
        s("scope_name")?,
        s("scope_version")?,
        s("scope_attributes")?,
    );
    let (flags, d_attrs, d_events, d_links, d_res, d_scope) = (
        u("flags")?,
        u("dropped_attributes_count")?,
        u("dropped_events_count")?,
        u("dropped_links_count")?,
        u("resource_dropped_attributes_count")?,
        u("scope_dropped_attributes_count")?,
    );
    let kind = column::<Int8Array>(batch, "kind")?;
    let start = column::<Int64Array>(batch, "start_unix_nano")?;
    let duration = column::<Int64Array>(batch, "duration_nano")?;
    let status = column::<Int32Array>(batch, "status_code")?;
    let mut resources: HashMap<(Option<String>, String, u32), Arc<Resource>> = HashMap::new();
    let mut scopes: HashMap<(String, String, String, u32), Arc<Scope>> = HashMap::new();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let svc = (!service.is_null(row)).then(|| service.value(row).to_owned());
        let res_key = (svc, res_attrs.value(row).to_owned(), d_res.value(row));
        let resource = match resources.get(&res_key) {
            Some(r) => r.clone(),
            None => {
                let mut attributes = Vec::new();
                if let Some(svc) = &res_key.0 {
                    attributes.push(KeyValue::str("service.name", svc));
                }
                attributes.extend(attrs::decode(&res_key.1)?);
                let r = Arc::new(Resource {
                    attributes,
                    dropped_attributes_count: res_key.2,
                });
                resources.insert(res_key, r.clone());
                r
            }
        };
        let scope_key = (
            scope_name.value(row).to_owned(),
            scope_version.value(row).to_owned(),
            scope_attrs.value(row).to_owned(),
            d_scope.value(row),
        );
        let scope = match scopes.get(&scope_key) {
            Some(sc) => sc.clone(),
            None => {
                let sc = Arc::new(Scope {
                    name: scope_key.0.clone(),
                    version: scope_key.1.clone(),
                    attributes: attrs::decode(&scope_key.2)?,
                    dropped_attributes_count: scope_key.3,
                });
                scopes.insert(scope_key, sc.clone());
                sc
            }
        };
        let mut span_attrs = attrs::decode(attributes.value(row))?;
        for (key, col, k) in DEDICATED {
            let value = if *k == Kind::Str {
                let c = column::<StringArray>(batch, col)?;
                (!c.is_null(row)).then(|| AnyValue::Str(c.value(row).to_owned()))
            } else {
                let c = column::<Int64Array>(batch, col)?;
                (!c.is_null(row)).then(|| AnyValue::Int(c.value(row)))
            };
            if let Some(value) = value {
                span_attrs.push(KeyValue {
                    key: (*key).to_owned(),
                    value,
                });
            }
        }
        let mut span_events = Vec::new();
        if !events.value(row).is_empty() {
            let v: Value = serde_json::from_str(events.value(row)).map_err(|e| e.to_string())?;
            for e in v.as_array().ok_or("events is not an array")? {
                span_events.push(Event {
                    time_unix_nano: e[0].as_u64().ok_or("event time")?,
                    name: e[1].as_str().ok_or("event name")?.to_owned(),
                    attributes: attrs::decode(e[2].as_str().ok_or("event attributes")?)?,
                    dropped_attributes_count: e[3].as_u64().ok_or("event dropped count")? as u32,
                });
            }
        }
        let mut span_links = Vec::new();
        if !links.value(row).is_empty() {
            let v: Value = serde_json::from_str(links.value(row)).map_err(|e| e.to_string())?;
            for l in v.as_array().ok_or("links is not an array")? {
                span_links.push(Link {
                    trace_id: l[0].as_str().and_then(unhex::<16>).ok_or("link trace id")?,
                    span_id: l[1].as_str().and_then(unhex::<8>).ok_or("link span id")?,
                    trace_state: l[2].as_str().ok_or("link trace state")?.to_owned(),
                    attributes: attrs::decode(l[3].as_str().ok_or("link attributes")?)?,
                    dropped_attributes_count: l[4].as_u64().ok_or("link dropped count")? as u32,
                    flags: l[5].as_u64().ok_or("link flags")? as u32,
                });
            }
        }
        let start_ns = start.value(row) as u64;
        out.push(Span {
            trace_id: trace_id
                .value(row)
                .try_into()
                .map_err(|_| "trace id width")?,
            span_id: span_id.value(row).try_into().map_err(|_| "span id width")?,
            parent_span_id: if parent.is_null(row) {
                None
            } else {
                Some(
                    parent
                        .value(row)
                        .try_into()
                        .map_err(|_| "parent id width")?,
                )
            },
            trace_state: trace_state.value(row).to_owned(),
            flags: flags.value(row),
            name: name.value(row).to_owned(),
            kind: SpanKind::from_i32(i32::from(kind.value(row))),
            start_unix_nano: start_ns,
            end_unix_nano: start_ns + duration.value(row) as u64,
            attributes: span_attrs,
            dropped_attributes_count: d_attrs.value(row),
            events: span_events,
            dropped_events_count: d_events.value(row),
            links: span_links,
            dropped_links_count: d_links.value(row),
            status_code: status.value(row),
            status_message: status_message.value(row).to_owned(),
            resource,
            scope,
        });
    }
    Ok(out)
}
