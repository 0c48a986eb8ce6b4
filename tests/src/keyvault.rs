//! A Key Vault stand-in: Azure Key Vault has no emulator, so this server implements only the
//! documented REST calls `secretstores.azure.keyvault` makes, from Microsoft's REST reference
//! (api-version 7.4): Get Secret (`GET /secrets/{name}[/{version}]`) and Get Secrets
//! (`GET /secrets`, paged with `nextLink`), behind bearer tokens from the Entra ID
//! client-credentials flow (`POST /{tenant}/oauth2/v2.0/token`) or the App Service managed
//! identity endpoint (`GET /msi/token` with `X-IDENTITY-HEADER`). Errors use Key Vault's
//! and Entra ID's bodies and status codes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The tenant, client and secret the server accepts.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// Client id of the accepted service principal.
pub const CLIENT_ID: &str = "tempest-test-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "tempest-test-secret";
/// The header value the managed identity endpoint wants (`IDENTITY_HEADER`).
pub const IDENTITY_HEADER: &str = "tempest-identity-header";
/// Secrets per page of Get Secrets, small so paging is exercised.
const PAGE: usize = 2;

/// One secret version.
#[derive(Clone)]
pub struct Version {
    /// Version id.
    pub id: String,
    /// Value.
    pub value: String,
    /// Whether it is enabled.
    pub enabled: bool,
}

#[derive(Default)]
struct Vault {
    base: String,
    /// name → versions, newest last.
    secrets: BTreeMap<String, Vec<Version>>,
    tokens: Vec<String>,
    /// Requests served, by kind, so tests can see what the component asked.
    calls: HashMap<&'static str, usize>,
}

/// A running vault; the server stops with the test's runtime.
#[derive(Clone)]
pub struct KeyVault {
    state: Arc<Mutex<Vault>>,
    /// `http://127.0.0.1:<port>`: the vault URL and the authority host.
    pub url: String,
}

impl KeyVault {
    /// Starts the server on a free port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(Vault {
            base: url.clone(),
            ..Vault::default()
        }));
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/msi/token", get(msi_token))
            .route("/secrets", get(list))
            .route("/secrets/{name}", get(secret))
            .route("/secrets/{name}/{version}", get(secret_version))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        KeyVault { state, url }
    }

    /// Adds a version of `name` (it becomes the current one).
    pub fn put(&self, name: &str, value: &str, enabled: bool) -> String {
        let mut v = self.state.lock().expect("lock");
        let versions = v.secrets.entry(name.to_owned()).or_default();
        let id = format!("{:032x}", versions.len() + 1);
        versions.push(Version {
            id: id.clone(),
            value: value.to_owned(),
            enabled,
        });
        id
    }

    /// How many requests of `kind` (`token`, `msi`, `get`, `list`) were served.
    pub fn calls(&self, kind: &str) -> usize {
        *self
            .state
            .lock()
            .expect("lock")
            .calls
            .get(kind)
            .unwrap_or(&0)
    }
}

type Shared = State<Arc<Mutex<Vault>>>;

fn count(v: &mut Vault, kind: &'static str) {
    *v.calls.entry(kind).or_default() += 1;
}

fn issue(v: &mut Vault) -> String {
    let token = format!("kv-token-{}", v.tokens.len() + 1);
    v.tokens.push(token.clone());
    token
}

fn aad_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

async fn token(
    State(s): Shared,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut v = s.lock().expect("lock");
    count(&mut v, "token");
    if tenant != TENANT {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            "AADSTS90002: Tenant not found.",
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003",
        );
    }
    if form.get("scope").map(String::as_str) != Some("https://vault.azure.net/.default") {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_scope", "AADSTS70011");
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let token = issue(&mut v);
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}))
        .into_response()
}

async fn msi_token(
    State(s): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut v = s.lock().expect("lock");
    count(&mut v, "msi");
    let header_ok = headers
        .get("x-identity-header")
        .and_then(|h| h.to_str().ok())
        == Some(IDENTITY_HEADER);
    if !header_ok || q.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return (StatusCode::BAD_REQUEST, "bad identity request").into_response();
    }
    if q.get("resource").map(String::as_str) != Some("https://vault.azure.net") {
        return (StatusCode::BAD_REQUEST, "unknown resource").into_response();
    }
    let token = issue(&mut v);
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 3600)
        .unwrap_or(0);
    Json(
        json!({"access_token": token, "expires_on": expires_on.to_string(),
        "resource": "https://vault.azure.net", "token_type": "Bearer"}),
    )
    .into_response()
}

fn kv_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Checks the bearer token and the api-version; the error response otherwise.
fn admit(v: &Vault, headers: &HeaderMap, q: &HashMap<String, String>) -> Result<(), Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if !token.is_some_and(|t| v.tokens.iter().any(|k| k == t)) {
        let challenge = format!(
            "Bearer authorization=\"{}/{TENANT}\", resource=\"https://vault.azure.net\"",
            v.base
        );
        let mut resp = kv_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
        if let Ok(h) = challenge.parse() {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, h);
        }
        return Err(Box::new(resp));
    }
    if q.get("api-version").map(String::as_str) != Some("7.4") {
        return Err(Box::new(kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The specified version is not supported.",
        )));
    }
    Ok(())
}

fn bundle(v: &Vault, name: &str, version: &Version) -> Value {
    json!({
        "value": version.value,
        "id": format!("{}/secrets/{name}/{}", v.base, version.id),
        "attributes": {"enabled": version.enabled, "recoveryLevel": "Recoverable+Purgeable"},
    })
}

fn find(v: &Vault, name: &str, version: Option<&str>) -> Response {
    let not_found = || {
        kv_error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            &format!("A secret with (name/id) {name} was not found in this key vault."),
        )
    };
    let Some(versions) = v.secrets.get(name) else {
        return not_found();
    };
    let found = match version {
        Some(id) => versions.iter().find(|x| x.id == id),
        None => versions.last(),
    };
    match found {
        Some(x) if x.enabled => Json(bundle(v, name, x)).into_response(),
        Some(_) => kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
        ),
        None => not_found(),
    }
}

/// Counts the request and admits it (token, api-version): the vault, or the error response.
fn enter<'a>(
    s: &'a Mutex<Vault>,
    kind: &'static str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<std::sync::MutexGuard<'a, Vault>, Box<Response>> {
    let mut v = s.lock().expect("lock");
    count(&mut v, kind);
    admit(&v, headers, q)?;
    Ok(v)
}

async fn secret(
    State(s): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match enter(&s, "get", &headers, &q) {
        Ok(v) => find(&v, &name, None),
        Err(r) => *r,
    }
}

async fn secret_version(
    State(s): Shared,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match enter(&s, "get", &headers, &q) {
        Ok(v) => find(&v, &name, Some(&version)),
        Err(r) => *r,
    }
}

async fn list(
    State(s): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let v = match enter(&s, "list", &headers, &q) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let names: Vec<&String> = v.secrets.keys().collect();
    let page: Vec<Value> = names
        .iter()
        .skip(skip)
        .take(PAGE)
        .map(|n| {
            let enabled = v.secrets[*n].last().is_some_and(|x| x.enabled);
            json!({"id": format!("{}/secrets/{n}", v.base), "attributes": {"enabled": enabled}})
        })
        .collect();
    let next = (skip + PAGE < names.len()).then(|| {
        format!(
            "{}/secrets?api-version=7.4&$skiptoken={}",
            v.base,
            skip + PAGE
        )
    });
    Json(json!({"value": page, "nextLink": next})).into_response()
}
