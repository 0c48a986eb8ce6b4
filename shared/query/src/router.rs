//! The HTTP shapes of Tempo's query API (port 3200), as Grafana's Tempo data source calls it:
//! paths, parameters, `Accept`-driven protobuf or JSON, 404 with an empty body for a missing
//! trace, plain-text 400s Grafana shows as they are.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost::Message;
use serde_json::json;
use tempest_blocks::index::BlockIndex;
use tempest_blocks::store::Location;
use tempest_core::TenantId;

use crate::search::{DEFAULT_LIMIT, DEFAULT_SPSS, JobRunner, LocalJobs, MAX_SPSS, SearchRequest};
use crate::tags::Scope;
use crate::tempopb::{TraceByIdMetrics, TraceByIdResponse};
use crate::worker;
use crate::{QueryError, json, params, search, tags, trace_by_id};

/// What the query API serves from.
#[derive(Clone)]
pub struct QueryApi {
    index: Arc<BlockIndex>,
    jobs: Arc<dyn JobRunner>,
}

impl QueryApi {
    /// Serves the blocks at `loc`, running search jobs in this process.
    pub fn new(loc: Location) -> Self {
        let index = Arc::new(BlockIndex::new(loc));
        QueryApi {
            jobs: Arc::new(LocalJobs::new(index.clone())),
            index,
        }
    }

    /// Serves the blocks at `loc`, running search jobs with `jobs`.
    pub fn with_jobs(loc: Location, jobs: Arc<dyn JobRunner>) -> Self {
        QueryApi {
            index: Arc::new(BlockIndex::new(loc)),
            jobs,
        }
    }
}

/// Where the `search-worker` function takes jobs over HTTP (POST, JSON).
pub const SEARCH_WORKER_PATH: &str = "/tempest/search-worker";

/// The `search-worker` function over HTTP: `POST` a [`worker::WorkerRequest`], get a
/// [`worker::WorkerResponse`]; a malformed job is 400 with the reason.
pub fn search_worker_router(loc: Location) -> Router {
    let index = Arc::new(BlockIndex::new(loc));
    Router::new()
        .route(
            SEARCH_WORKER_PATH,
            axum::routing::post(
                |State(index): State<Arc<BlockIndex>>, body: axum::body::Bytes| async move {
                    worker::handle(&index, &body).await.map(axum::Json)
                },
            ),
        )
        .with_state(index)
}

/// The version reported by `/api/status/buildinfo`: Grafana gates features on Tempo's version,
/// and everything Tempest serves exists in Tempo 2.7.
const TEMPO_COMPATIBLE_VERSION: &str = "2.7.0";

/// The Tempo query API.
pub fn router(api: QueryApi) -> Router {
    Router::new()
        .route("/api/echo", get(|| async { "echo" }))
        .route("/ready", get(|| async { "ready" }))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/search", get(search_handler))
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(values_v2))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(api)
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        match self {
            QueryError::BadRequest(message) => (StatusCode::BAD_REQUEST, message).into_response(),
            QueryError::Storage(e) => {
                tracing::error!(error = %e, "query failed reading blocks");
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
            }
            QueryError::Worker(e) => {
                tracing::error!(error = %e, "search worker failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("search worker: {e}"),
                )
                    .into_response()
            }
        }
    }
}

type Params = Query<HashMap<String, String>>;

fn bad(message: impl Into<String>) -> QueryError {
    QueryError::BadRequest(message.into())
}

fn tenant(headers: &HeaderMap) -> Result<TenantId, QueryError> {
    let value = headers
        .get("x-scope-orgid")
        .map(|v| v.to_str().map_err(|_| bad("X-Scope-OrgID is not text")))
        .transpose()?;
    TenantId::parse(value).map_err(|e| bad(e.to_string()))
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf"))
}

fn protobuf(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/protobuf")], body).into_response()
}

fn range(p: &HashMap<String, String>) -> Result<Option<(u64, u64)>, QueryError> {
    params::time_range(
        p.get("start").map(String::as_str),
        p.get("end").map(String::as_str),
    )
    .map_err(bad)
}

async fn buildinfo() -> Response {
    axum::Json(json!({
        "version": TEMPO_COMPATIBLE_VERSION,
        "revision": format!("tempest-{}", env!("CARGO_PKG_VERSION")),
        "branch": "main",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
    .into_response()
}

/// Looks a trace up; `None` (a 404) when no block holds it.
async fn lookup(
    api: &QueryApi,
    headers: &HeaderMap,
    id: &str,
    p: &HashMap<String, String>,
) -> Result<Option<trace_by_id::Found>, QueryError> {
    let id = params::trace_id(id).map_err(bad)?;
    let tenant = tenant(headers)?;
    let found = trace_by_id::find(&api.index, &tenant, &id, range(p)?).await?;
    Ok((!found.spans.is_empty()).then_some(found))
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

async fn trace_v1(
    State(api): State<QueryApi>,
    Path(id): Path<String>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let Some(found) = lookup(&api, &headers, &id, &p).await? else {
        return Ok(not_found());
    };
    let trace = trace_by_id::to_trace(&found.spans);
    Ok(if wants_protobuf(&headers) {
        protobuf(trace.encode_to_vec())
    } else {
        axum::Json(json::trace(&trace)).into_response()
    })
}

async fn trace_v2(
    State(api): State<QueryApi>,
    Path(id): Path<String>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let Some(found) = lookup(&api, &headers, &id, &p).await? else {
        return Ok(not_found());
    };
    let response = TraceByIdResponse {
        trace: Some(trace_by_id::to_trace(&found.spans)),
        metrics: Some(TraceByIdMetrics {
            inspected_bytes: found.inspected_bytes,
        }),
        status: 0,
        message: String::new(),
    };
    Ok(if wants_protobuf(&headers) {
        protobuf(response.encode_to_vec())
    } else {
        axum::Json(json::trace_by_id(&response)).into_response()
    })
}

/// Parameters that are not tags in Tempo's legacy "every other parameter is a tag" form.
const SEARCH_PARAMS: &[&str] = &[
    "q",
    "tags",
    "limit",
    "spss",
    "start",
    "end",
    "minDuration",
    "maxDuration",
];

/// The TraceQL a search request stands for: `q`, or the legacy `tags` as a spanset filter.
fn search_query(p: &HashMap<String, String>) -> Result<String, QueryError> {
    let q = p.get("q").map(|s| s.trim()).filter(|s| !s.is_empty());
    let tags = p.get("tags").map(|s| s.trim()).filter(|s| !s.is_empty());
    let pairs = match (q, tags) {
        (Some(_), Some(_)) => return Err(bad("invalid request: q and tags can't both be set")),
        (Some(q), None) => return Ok(q.to_owned()),
        (None, Some(tags)) => params::logfmt(tags).map_err(bad)?,
        // Old Grafana sent tags as plain parameters when it sent neither q, tags nor a range.
        (None, None) if !p.contains_key("start") && !p.contains_key("end") => {
            let mut pairs: Vec<(String, String)> = p
                .iter()
                .filter(|(k, _)| !SEARCH_PARAMS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            pairs.sort();
            pairs
        }
        (None, None) => Vec::new(),
    };
    let conditions: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{} = {}",
                params::traceql_attribute(k),
                params::traceql_string(v)
            )
        })
        .collect();
    Ok(if conditions.is_empty() {
        "{ }".into()
    } else {
        format!("{{ {} }}", conditions.join(" && "))
    })
}

fn number(p: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, QueryError> {
    match p.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            bad(format!(
                "invalid {name} {v:?}: expected a non-negative integer"
            ))
        }),
    }
}

fn search_request(p: &HashMap<String, String>) -> Result<SearchRequest, QueryError> {
    let text = search_query(p)?;
    let query = tempest_traceql::parse(&text).map_err(|e| bad(e.to_string()))?;
    let limit = match number(p, "limit", DEFAULT_LIMIT)? {
        0 => DEFAULT_LIMIT,
        n => n,
    };
    let spss = match number(p, "spss", DEFAULT_SPSS)? {
        0 => DEFAULT_SPSS,
        n if n > MAX_SPSS => {
            return Err(bad(format!("invalid spss {n}: must be at most {MAX_SPSS}")));
        }
        n => n,
    };
    let duration = |name: &str| {
        p.get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|v| params::go_duration(name, v).map_err(bad))
            .transpose()
    };
    let (min_duration, max_duration) = (duration("minDuration")?, duration("maxDuration")?);
    if let (Some(min), Some(max)) = (min_duration, max_duration)
        && min > max
    {
        return Err(bad(
            "invalid minDuration and maxDuration: minDuration must not exceed maxDuration",
        ));
    }
    Ok(SearchRequest {
        query,
        limit,
        spss,
        range: range(p)?,
        min_duration,
        max_duration,
    })
}

async fn search_handler(
    State(api): State<QueryApi>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let req = search_request(&p)?;
    let tenant = tenant(&headers)?;
    let response = search::search(&api.index, api.jobs.clone(), &tenant, &req).await?;
    Ok(if wants_protobuf(&headers) {
        protobuf(response.encode_to_vec())
    } else {
        axum::Json(json::search(&response)).into_response()
    })
}

/// The optional `q` filter of the v2 tag endpoints.
fn filter(p: &HashMap<String, String>) -> Result<Option<tempest_traceql::Query>, QueryError> {
    p.get("q")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && *s != "{}")
        .map(|q| tempest_traceql::parse(q).map_err(|e| bad(e.to_string())))
        .transpose()
}

async fn tags_v1(
    State(api): State<QueryApi>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let scope = Scope::parse(p.get("scope").map(String::as_str)).map_err(bad)?;
    let found = tags::names(&api.index, &tenant(&headers)?, range(&p)?, None).await?;
    let mut names: Vec<String> = found
        .into_iter()
        .filter(|(s, _)| match scope {
            None => matches!(s, Scope::Resource | Scope::Span),
            Some(want) => *s == want,
        })
        .flat_map(|(_, keys)| keys)
        .collect();
    names.sort();
    names.dedup();
    Ok(axum::Json(json!({ "tagNames": names })).into_response())
}

async fn tags_v2(
    State(api): State<QueryApi>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let scope = Scope::parse(p.get("scope").map(String::as_str)).map_err(bad)?;
    let q = filter(&p)?;
    let found = tags::names(&api.index, &tenant(&headers)?, range(&p)?, q.as_ref()).await?;
    let scopes: Vec<_> = found
        .into_iter()
        .filter(|(s, keys)| scope.is_none_or(|want| *s == want) && !keys.is_empty())
        .map(|(s, keys)| json!({ "name": s.name(), "tags": keys }))
        .collect();
    Ok(axum::Json(json!({ "scopes": scopes })).into_response())
}

async fn values_v1(
    State(api): State<QueryApi>,
    Path(tag): Path<String>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let found = tags::values(&api.index, &tenant(&headers)?, &tag, range(&p)?, None).await?;
    let mut values: Vec<String> = found.into_iter().map(|v| v.value).collect();
    values.sort();
    values.dedup();
    Ok(axum::Json(json!({ "tagValues": values })).into_response())
}

async fn values_v2(
    State(api): State<QueryApi>,
    Path(tag): Path<String>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let q = filter(&p)?;
    let found = tags::values(&api.index, &tenant(&headers)?, &tag, range(&p)?, q.as_ref()).await?;
    let values: Vec<_> = found
        .into_iter()
        .map(|v| json!({ "type": v.kind, "value": v.value }))
        .collect();
    Ok(axum::Json(json!({ "tagValues": values })).into_response())
}
