//! Azure REST access shared by every Azure component: credentials from Dapr's Azure metadata
//! and request signing. Storage accounts take Shared Key (`accountKey`, which is what Azurite
//! speaks); everything else, and storage without a key, takes Microsoft Entra ID bearer tokens
//! from a service principal (`azureTenantId`, `azureClientId`, `azureClientSecret`) or from the
//! managed identity of a Function App (`IDENTITY_ENDPOINT`/`IDENTITY_HEADER`, which the
//! Functions host sets). The official Rust SDKs take tokens only, so they cannot reach Azurite;
//! the few documented calls the components make are made here directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderValue, Method, header};
use sha2::{Digest, Sha256};
use tempest_http::{HttpClient, Request, Response};
use tokio::sync::Mutex;

use crate::ComponentError;
use crate::metadata::{Metadata, env};

/// The `x-ms-version` of every storage request: the first that takes Entra ID tokens on all
/// three storage services.
pub const STORAGE_VERSION: &str = "2019-02-02";
/// The service a credential signs for: Shared Key strings differ between Table and the
/// others, and tokens have one audience per service family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Table storage.
    Table,
    /// Queue storage.
    Queue,
    /// Key Vault.
    Vault,
}

impl Service {
    fn resource(self) -> &'static str {
        match self {
            Service::Table | Service::Queue => "https://storage.azure.com",
            Service::Vault => "https://vault.azure.net",
        }
    }
}

/// How requests are authorised.
enum Auth {
    /// Storage Shared Key Lite with the account key.
    SharedKey { account: String, key: Vec<u8> },
    /// Entra ID client-credentials flow.
    ClientSecret {
        authority: String,
        tenant: String,
        client: String,
        secret: String,
    },
    /// The App Service / Functions managed identity endpoint.
    ManagedIdentity {
        endpoint: String,
        header: String,
        client: Option<String>,
    },
}

/// A cached bearer token.
struct Token {
    value: String,
    expires: Instant,
}

/// Credentials for one component, with its token cache.
pub struct Credential {
    auth: Auth,
    service: Service,
    http: Arc<dyn HttpClient>,
    token: Mutex<Option<Token>>,
}

fn invalid(md: &Metadata, message: impl Into<String>) -> ComponentError {
    ComponentError::Invalid {
        component: md.component.clone(),
        message: message.into(),
    }
}

impl Credential {
    /// Reads Dapr's Azure auth metadata: `accountKey` (storage only, with `account`), else a
    /// service principal, else the managed identity the environment offers.
    pub fn from_metadata(
        md: &Metadata,
        account: Option<&str>,
        service: Service,
    ) -> Result<Self, ComponentError> {
        let auth = match (account, md.get("accountKey")) {
            (Some(account), Some(key)) => Auth::SharedKey {
                account: account.to_owned(),
                key: base64::engine::general_purpose::STANDARD
                    .decode(key.trim())
                    .map_err(|_| invalid(md, "accountKey is not base64"))?,
            },
            _ => match (md.get("azureClientId"), md.get("azureClientSecret")) {
                (Some(client), Some(secret)) => Auth::ClientSecret {
                    // `azureAuthorityHost` is Tempest's: the AZURE_AUTHORITY_HOST of the Azure
                    // SDKs, per component (sovereign clouds, test servers).
                    authority: md
                        .get("azureAuthorityHost")
                        .map(str::to_owned)
                        .or_else(|| env("AZURE_AUTHORITY_HOST"))
                        .unwrap_or_else(|| "https://login.microsoftonline.com".into())
                        .trim_end_matches('/')
                        .to_owned(),
                    tenant: md
                        .get("azureTenantId")
                        .ok_or_else(|| invalid(md, "azureClientSecret needs azureTenantId"))?
                        .to_owned(),
                    client: client.to_owned(),
                    secret: secret.to_owned(),
                },
                _ => match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
                    (Some(endpoint), Some(header)) => Auth::ManagedIdentity {
                        endpoint,
                        header,
                        client: md.get("azureClientId").map(str::to_owned),
                    },
                    _ => {
                        return Err(invalid(
                            md,
                            "no credentials: set accountKey, or azureTenantId/azureClientId/azureClientSecret, \
                             or run where a managed identity is offered (IDENTITY_ENDPOINT)",
                        ));
                    }
                },
            },
        };
        Ok(Credential {
            auth,
            service,
            http: tempest_http::client(),
            token: Mutex::new(None),
        })
    }

    /// Signs and sends a request to the service.
    pub async fn send(&self, mut req: Request) -> Result<Response, String> {
        self.authorize(&mut req).await?;
        self.http.send(req).await.map_err(|e| e.to_string())
    }

    /// Adds the `Authorization` (and, for storage, `x-ms-date`/`x-ms-version`) headers.
    async fn authorize(&self, req: &mut Request) -> Result<(), String> {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let headers = req.headers_mut();
        if self.service != Service::Vault {
            headers.insert("x-ms-date", header_value(&date)?);
            headers.insert("x-ms-version", header_value(STORAGE_VERSION)?);
        }
        let value = match &self.auth {
            Auth::SharedKey { account, key } => {
                let signature = sign(key, &string_to_sign(req, account, self.service));
                format!("SharedKeyLite {account}:{signature}")
            }
            _ => format!("Bearer {}", self.bearer().await?),
        };
        req.headers_mut()
            .insert(header::AUTHORIZATION, header_value(&value)?);
        Ok(())
    }

    /// A valid token, fetched when there is none or it expires within five minutes.
    async fn bearer(&self) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && t.expires > Instant::now() + Duration::from_secs(300)
        {
            return Ok(t.value.clone());
        }
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    async fn fetch_token(&self) -> Result<Token, String> {
        let req = match &self.auth {
            Auth::SharedKey { .. } => return Err("shared key has no bearer token".into()),
            Auth::ClientSecret {
                authority,
                tenant,
                client,
                secret,
            } => tempest_http::build(
                http::Request::post(format!("{authority}/{tenant}/oauth2/v2.0/token"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
                tempest_http::form([
                    ("grant_type", "client_credentials"),
                    ("client_id", client.as_str()),
                    ("client_secret", secret.as_str()),
                    ("scope", &format!("{}/.default", self.service.resource())),
                ]),
            ),
            Auth::ManagedIdentity {
                endpoint,
                header,
                client,
            } => {
                let mut query = vec![
                    ("api-version", "2019-08-01"),
                    ("resource", self.service.resource()),
                ];
                if let Some(c) = client {
                    query.push(("client_id", c));
                }
                tempest_http::build(
                    http::Request::get(tempest_http::with_query(endpoint, query))
                        .header("X-IDENTITY-HEADER", header),
                    Bytes::new(),
                )
            }
        }
        .map_err(|e| format!("token request: {e}"))?;
        let resp = self
            .http
            .send(req)
            .await
            .map_err(|e| format!("token request failed: {e}"))?;
        let status = resp.status();
        let body: serde_json::Value = serde_json::from_slice(resp.body())
            .map_err(|e| format!("token response is not JSON: {e}"))?;
        if !status.is_success() {
            let field = |name| body.get(name).and_then(|v| v.as_str()).unwrap_or("");
            return Err(format!(
                "token request answered {status}: {} {}",
                field("error"),
                field("error_description")
            ));
        }
        let value = body
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or("token response has no access_token")?
            .to_owned();
        // Entra ID answers `expires_in` (seconds); the identity endpoint `expires_on` (Unix time).
        let number = |v: &serde_json::Value| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        };
        let lifetime = match (
            body.get("expires_in").and_then(number),
            body.get("expires_on").and_then(number),
        ) {
            (Some(secs), _) => secs,
            (None, Some(at)) => at.saturating_sub(chrono::Utc::now().timestamp().max(0) as u64),
            (None, None) => 300,
        };
        Ok(Token {
            value,
            expires: Instant::now() + Duration::from_secs(lifetime),
        })
    }
}

fn header_value(value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|e| format!("bad header value: {e}"))
}

/// Shared Key Lite's string to sign, which the Blob, Queue and Table services all accept: for
/// Table the date and resource only, for the others the verb, content headers and `x-ms-*`
/// headers too. The resource is the account and the URL's path (an emulator's path starts
/// with the account again, and that is what it expects), plus `comp` if present.
fn string_to_sign(req: &Request, account: &str, service: Service) -> String {
    let url = req.uri();
    let mut resource = format!("/{account}{}", url.path());
    let query = form_urlencoded::parse(url.query().unwrap_or("").as_bytes());
    if let Some((_, comp)) = query.into_iter().find(|(k, _)| k == "comp") {
        resource.push_str("?comp=");
        resource.push_str(&comp);
    }
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    if service == Service::Table {
        return format!("{}\n{resource}", h("x-ms-date"));
    }
    let mut ms: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-ms-"))
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or("").trim().to_owned(),
            )
        })
        .collect();
    ms.sort();
    let canonical: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    format!(
        "{}\n{}\n{}\n\n{canonical}{resource}",
        req.method(),
        h("content-md5"),
        h("content-type"),
    )
}

fn sign(key: &[u8], text: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC takes keys of any length; this cannot happen.
        return String::new();
    };
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The first `n` hex digits of SHA-256 of `text`: a stable name suffix that Terraform's
/// `sha256()` reproduces.
pub fn short_hash(text: &str, n: usize) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex = tempest_core::hex::encode(&digest);
    hex[..n.min(hex.len())].to_owned()
}

/// A storage service's base URL for `account`: `serviceURL` when set (Azurite's
/// `http://127.0.0.1:10002/devstoreaccount1`, say), else the public cloud's.
pub fn service_url(md: &Metadata, account: &str, service: &str) -> String {
    md.get("serviceURL")
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("https://{account}.{service}.core.windows.net"))
}

/// A request to an Azure service: `method` on `url`, with `headers` and `body`.
pub fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Request, String> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    tempest_http::build(builder, body).map_err(|e| e.to_string())
}

/// The error code and message of a failed storage or Key Vault response (JSON or XML body).
pub fn describe(resp: &Response) -> String {
    let status = resp.status();
    let code = resp
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = tempest_http::text(resp);
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let e = v.get("odata.error").or_else(|| v.get("error"))?;
            let m = e.get("message")?;
            Some(
                m.get("value")
                    .and_then(|v| v.as_str())
                    .or_else(|| m.as_str())?
                    .to_owned(),
            )
        })
        .or_else(|| {
            let start = body.find("<Message>")? + "<Message>".len();
            let end = body[start..].find("</Message>")? + start;
            Some(body[start..end].to_owned())
        })
        .unwrap_or(body);
    let message = message.lines().next().unwrap_or("").to_owned();
    match code {
        Some(code) => format!("{status} {code}: {message}"),
        None => format!("{status}: {message}"),
    }
}
