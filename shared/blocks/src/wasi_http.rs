//! `object_store`'s HTTP client and crypto on wasm32, so the cloud stores (S3 and compatible, Azure
//! Blob) work inside a WebAssembly component: requests go out through the host's
//! `wasi:http/outgoing-handler` (Spin's outbound HTTP, `wasmtime serve`), and request signing
//! (SigV4, Shared Key) uses the RustCrypto hashes instead of a native crypto library.
//!
//! Calls block the component until the answer is in: a component runs one request on one thread,
//! and the block writer and reader wait for each object anyway. [`send`] is the component's
//! HTTP client for anything else too (the query function reaching its search workers).

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::BodyExt;
use object_store::ClientOptions;
use object_store::client::{
    CryptoProvider, DigestAlgorithm, DigestContext, HmacContext, HttpClient, HttpConnector,
    HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody, HttpService, Signer,
    SigningAlgorithm,
};
use sha2::Digest;
use wasi::http::types as wasi_http;

/// Connects `object_store` to the host's outgoing HTTP handler.
#[derive(Debug, Default)]
pub struct WasiHttpConnector;

impl HttpConnector for WasiHttpConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(WasiHttp))
    }
}

#[derive(Debug)]
struct WasiHttp;

/// A request that got no answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Whether the request could not be sent at all (no connection, refused by the host), as
    /// opposed to failing on the way.
    pub connect: bool,
    /// What went wrong.
    pub message: String,
}

fn failed(connect: bool, what: impl std::fmt::Display) -> SendError {
    SendError {
        connect,
        message: what.to_string(),
    }
}

#[async_trait::async_trait]
impl HttpService for WasiHttp {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let (parts, body) = send(&parts, &body)
            .map_err(|e| {
                let kind = if e.connect {
                    HttpErrorKind::Connect
                } else {
                    HttpErrorKind::Request
                };
                HttpError::new(kind, e)
            })?
            .into_parts();
        Ok(HttpResponse::from_parts(
            parts,
            HttpResponseBody::from(body),
        ))
    }
}

fn method(m: &http::Method) -> wasi_http::Method {
    match *m {
        http::Method::GET => wasi_http::Method::Get,
        http::Method::HEAD => wasi_http::Method::Head,
        http::Method::POST => wasi_http::Method::Post,
        http::Method::PUT => wasi_http::Method::Put,
        http::Method::DELETE => wasi_http::Method::Delete,
        http::Method::PATCH => wasi_http::Method::Patch,
        http::Method::OPTIONS => wasi_http::Method::Options,
        ref other => wasi_http::Method::Other(other.as_str().to_owned()),
    }
}

/// One request through `wasi:http/outgoing-handler`, waited for, with the whole answer.
pub fn send(parts: &http::request::Parts, body: &[u8]) -> Result<http::Response<Bytes>, SendError> {
    const CONNECT: bool = true;
    const REQUEST: bool = false;
    let headers = wasi_http::Fields::new();
    for (name, value) in &parts.headers {
        headers
            .append(&name.as_str().to_owned(), &value.as_bytes().to_vec())
            .map_err(|e| failed(REQUEST, format!("header {name}: {e:?}")))?;
    }
    // Hosts send a body without a length chunked, which S3 refuses for PUT.
    if !parts.headers.contains_key(http::header::CONTENT_LENGTH)
        && (!body.is_empty() || matches!(parts.method, http::Method::PUT | http::Method::POST))
    {
        headers
            .append(
                &"content-length".to_owned(),
                &body.len().to_string().into_bytes(),
            )
            .map_err(|e| failed(REQUEST, format!("content-length: {e:?}")))?;
    }
    let request = wasi_http::OutgoingRequest::new(headers);
    let uri = &parts.uri;
    let scheme = match uri.scheme_str() {
        Some("https") => wasi_http::Scheme::Https,
        Some("http") => wasi_http::Scheme::Http,
        other => return Err(failed(REQUEST, format!("unsupported scheme {other:?}"))),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| failed(REQUEST, format!("{uri} has no host")))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    request
        .set_method(&method(&parts.method))
        .and_then(|()| request.set_scheme(Some(&scheme)))
        .and_then(|()| request.set_authority(Some(authority.as_str())))
        .and_then(|()| request.set_path_with_query(Some(path)))
        .map_err(|()| failed(REQUEST, format!("the host refused {} {uri}", parts.method)))?;
    let outgoing = request
        .body()
        .map_err(|()| failed(REQUEST, "no request body"))?;
    // Sent first, so the host streams the body as it is written rather than buffering it.
    let pending = wasi::http::outgoing_handler::handle(request, None)
        .map_err(|e| failed(CONNECT, format!("{} {uri}: {e:?}", parts.method)))?;
    {
        // The stream is the body's child: it must be gone before the body is finished.
        let stream = outgoing
            .write()
            .map_err(|()| failed(REQUEST, "no body stream"))?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| failed(REQUEST, format!("writing the body: {e:?}")))?;
        }
    }
    wasi_http::OutgoingBody::finish(outgoing, None)
        .map_err(|e| failed(REQUEST, format!("finishing the body: {e:?}")))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(failed(CONNECT, format!("{} {uri}: {e:?}", parts.method))),
        Some(Err(())) | None => return Err(failed(CONNECT, "the response never came")),
    };
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers().entries() {
        builder = builder.header(name, value);
    }
    let incoming = response
        .consume()
        .map_err(|()| failed(REQUEST, "no response body"))?;
    let mut data = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| failed(REQUEST, "no response stream"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(wasi::io::streams::StreamError::Closed) => break,
                Err(e) => return Err(failed(REQUEST, format!("reading the response: {e:?}"))),
            }
        }
    }
    drop(wasi_http::IncomingBody::finish(incoming));
    builder
        .body(Bytes::from(data))
        .map_err(|e| failed(REQUEST, format!("response: {e}")))
}

/// SHA-256 and HMAC-SHA256 from RustCrypto: what SigV4 and Shared Key signing need.
#[derive(Debug, Default)]
pub struct RustCrypto;

struct Sha256Context(sha2::Sha256, Vec<u8>);

impl DigestContext for Sha256Context {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finish(&mut self) -> object_store::Result<&[u8]> {
        self.1 = std::mem::take(&mut self.0).finalize().to_vec();
        Ok(&self.1)
    }
}

struct HmacSha256Context(hmac::Hmac<sha2::Sha256>, Vec<u8>);

impl HmacContext for HmacSha256Context {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finish(&mut self) -> object_store::Result<&[u8]> {
        self.1 = self.0.clone().finalize().into_bytes().to_vec();
        Ok(&self.1)
    }
}

impl CryptoProvider for RustCrypto {
    fn digest(&self, algorithm: DigestAlgorithm) -> object_store::Result<Box<dyn DigestContext>> {
        match algorithm {
            DigestAlgorithm::Sha256 => Ok(Box::new(Sha256Context(sha2::Sha256::new(), Vec::new()))),
            other => Err(unsupported(format!("digest {other:?}"))),
        }
    }

    fn hmac(
        &self,
        algorithm: DigestAlgorithm,
        secret: &[u8],
    ) -> object_store::Result<Box<dyn HmacContext>> {
        match algorithm {
            DigestAlgorithm::Sha256 => {
                let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
                    .map_err(|e| unsupported(format!("HMAC key: {e}")))?;
                Ok(Box::new(HmacSha256Context(mac, Vec::new())))
            }
            other => Err(unsupported(format!("HMAC {other:?}"))),
        }
    }

    fn sign(
        &self,
        algorithm: SigningAlgorithm,
        _pem: &[u8],
    ) -> object_store::Result<Box<dyn Signer>> {
        Err(unsupported(format!(
            "{algorithm:?} signing (Google service accounts) in a component"
        )))
    }
}

fn unsupported(what: String) -> object_store::Error {
    object_store::Error::NotSupported {
        source: what.into(),
    }
}
