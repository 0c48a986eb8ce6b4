//! Tempest's outgoing HTTP: the one client every building block uses to reach apps and cloud
//! REST APIs. [`HttpClient`] takes a whole request and gives back a whole answer;
//! [`client()`] is the platform's own: `reqwest` on native hosts, the host's
//! `wasi:http/outgoing-handler` inside a WebAssembly component (Spin, `wasmtime serve`), where
//! `reqwest` has no client.

use std::sync::Arc;

use bytes::Bytes;

#[cfg(not(target_arch = "wasm32"))]
mod reqwest_client;
#[cfg(target_arch = "wasm32")]
pub mod wasi;

#[cfg(not(target_arch = "wasm32"))]
pub use reqwest_client::ReqwestClient;
#[cfg(target_arch = "wasm32")]
pub use wasi::WasiClient;

/// A request with its whole body.
pub type Request = http::Request<Bytes>;
/// An answer with its whole body.
pub type Response = http::Response<Bytes>;

/// What kind of failure kept a request from its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection was made: nothing reached the server, so a retry cannot repeat a request.
    Connect,
    /// The server did not answer in time.
    Timeout,
    /// The request could not be built or failed on the way.
    Request,
}

/// A request that got no answer.
#[derive(Debug, thiserror::Error)]
#[error("{request}: {message}")]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The request: its method and URL (`a request` when it could not be built).
    pub request: String,
    /// What went wrong, with its causes.
    pub message: String,
}

impl Error {
    /// A failure of `req` (named by its method and URL) of `kind`.
    pub fn new(kind: ErrorKind, req: &http::request::Parts, message: impl Into<String>) -> Self {
        Error {
            kind,
            request: format!("{} {}", req.method, req.uri),
            message: message.into(),
        }
    }

    /// Whether no connection could be made.
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }

    /// Whether the server did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }
}

/// An HTTP client: one request in, its whole answer out.
#[async_trait::async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends `req` and reads the whole answer. Any status is an answer; only a request that
    /// got none is an error.
    async fn send(&self, req: Request) -> Result<Response, Error>;

    /// Finishes `builder` with `body` (see [`build`]) and sends it.
    async fn call(&self, builder: http::request::Builder, body: Bytes) -> Result<Response, Error> {
        self.send(build(builder, body)?).await
    }
}

/// The platform's client: `reqwest` (keeping connections alive) natively, `wasi:http` in a
/// WebAssembly component.
pub fn client() -> Arc<dyn HttpClient> {
    #[cfg(not(target_arch = "wasm32"))]
    return Arc::new(ReqwestClient::new());
    #[cfg(target_arch = "wasm32")]
    return Arc::new(WasiClient);
}

/// Finishes `builder` with `body`; a bad URL or header becomes an [`Error`] (the builder keeps
/// only the error, so it names no request).
pub fn build(builder: http::request::Builder, body: impl Into<Bytes>) -> Result<Request, Error> {
    builder.body(body.into()).map_err(|e| Error {
        kind: ErrorKind::Request,
        request: "a request".into(),
        message: e.to_string(),
    })
}

/// `url` as a URI, with what a URI cannot hold as it is (spaces, non-ASCII characters, say,
/// from a percent-decoded path) percent-encoded, as WHATWG URL parsing does.
pub fn uri(url: &str) -> Result<http::Uri, Error> {
    let invalid = |message: String| Error {
        kind: ErrorKind::Request,
        request: format!("the URL {url:?}"),
        message,
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    parsed
        .as_str()
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))
}

/// `url` with `pairs` appended as its query, form-encoded (`?` or `&` as the URL needs).
pub fn with_query<'a>(url: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let query = form(pairs);
    if query.is_empty() {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// `pairs` as an `application/x-www-form-urlencoded` body or query.
pub fn form<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The answer's body as text (lossy UTF-8).
pub fn text(resp: &Response) -> String {
    String::from_utf8_lossy(resp.body()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_forms_are_encoded() {
        assert_eq!(
            with_query("http://h/p", [("a", "1 2"), ("b", "x&y")]),
            "http://h/p?a=1+2&b=x%26y"
        );
        assert_eq!(
            with_query("http://h/p?c=3", [("a", "1")]),
            "http://h/p?c=3&a=1"
        );
        assert_eq!(with_query("http://h/p", []), "http://h/p");
    }

    #[test]
    fn urls_are_encoded_where_a_uri_needs_it() {
        assert_eq!(
            uri("http://h:1/a b/ü?x=1 2").expect("encoded"),
            "http://h:1/a%20b/%C3%BC?x=1%202"
        );
        assert_eq!(uri("http://h/a%20b").expect("kept"), "http://h/a%20b");
        assert!(uri("no scheme").is_err());
    }

    #[test]
    fn a_bad_request_is_an_error_naming_it() {
        let e = build(
            http::Request::post("http://h/p").header("x-bad", "a\nb"),
            "",
        )
        .expect_err("a newline in a header");
        assert_eq!(e.kind, ErrorKind::Request);
        assert!(!e.is_connect() && !e.is_timeout());
        assert!(e.to_string().contains("header"), "{e}");
    }
}
