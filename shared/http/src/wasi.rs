//! [`HttpClient`] inside a WebAssembly component: requests go out through the host's
//! `wasi:http/outgoing-handler` (Spin's outbound HTTP, `wasmtime serve`).
//!
//! Calls block the component until the answer is in: a component serves one request on one
//! thread, and its callers wait for each answer anyway.

use bytes::Bytes;
use wasi::http::types as wasi_http;

use crate::{Error, ErrorKind, HttpClient, Request, Response};

/// The host's outgoing HTTP handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct WasiClient;

#[async_trait::async_trait]
impl HttpClient for WasiClient {
    async fn send(&self, req: Request) -> Result<Response, Error> {
        let (parts, body) = req.into_parts();
        send(&parts, &body)
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
pub fn send(parts: &http::request::Parts, body: &[u8]) -> Result<Response, Error> {
    let failed = |kind: ErrorKind, what: String| Error::new(kind, parts, what);
    let request_failed = |what: String| failed(ErrorKind::Request, what);
    let headers = wasi_http::Fields::new();
    for (name, value) in &parts.headers {
        headers
            .append(&name.as_str().to_owned(), &value.as_bytes().to_vec())
            .map_err(|e| request_failed(format!("header {name}: {e:?}")))?;
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
            .map_err(|e| request_failed(format!("content-length: {e:?}")))?;
    }
    let request = wasi_http::OutgoingRequest::new(headers);
    let uri = &parts.uri;
    let scheme = match uri.scheme_str() {
        Some("https") => wasi_http::Scheme::Https,
        Some("http") => wasi_http::Scheme::Http,
        other => return Err(request_failed(format!("unsupported scheme {other:?}"))),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| request_failed("no host".into()))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    request
        .set_method(&method(&parts.method))
        .and_then(|()| request.set_scheme(Some(&scheme)))
        .and_then(|()| request.set_authority(Some(authority.as_str())))
        .and_then(|()| request.set_path_with_query(Some(path)))
        .map_err(|()| request_failed("the host refused the request".into()))?;
    let outgoing = request
        .body()
        .map_err(|()| request_failed("no request body".into()))?;
    // Sent first, so the host streams the body as it is written rather than buffering it.
    let pending = wasi::http::outgoing_handler::handle(request, None)
        .map_err(|e| failed(ErrorKind::Connect, format!("{e:?}")))?;
    {
        // The stream is the body's child: it must be gone before the body is finished.
        let stream = outgoing
            .write()
            .map_err(|()| request_failed("no body stream".into()))?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| request_failed(format!("writing the body: {e:?}")))?;
        }
    }
    wasi_http::OutgoingBody::finish(outgoing, None)
        .map_err(|e| request_failed(format!("finishing the body: {e:?}")))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(failed(error_kind(&e), format!("{e:?}"))),
        Some(Err(())) | None => {
            return Err(failed(ErrorKind::Connect, "the response never came".into()));
        }
    };
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers().entries() {
        builder = builder.header(name, value);
    }
    let incoming = response
        .consume()
        .map_err(|()| request_failed("no response body".into()))?;
    let mut data = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| request_failed("no response stream".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(wasi::io::streams::StreamError::Closed) => break,
                Err(e) => return Err(request_failed(format!("reading the response: {e:?}"))),
            }
        }
    }
    drop(wasi_http::IncomingBody::finish(incoming));
    builder
        .body(Bytes::from(data))
        .map_err(|e| request_failed(format!("response: {e}")))
}

/// Which of the host's errors mean that nothing reached the server.
fn error_kind(e: &wasi_http::ErrorCode) -> ErrorKind {
    use wasi_http::ErrorCode as E;
    match e {
        E::DnsTimeout
        | E::DnsError(_)
        | E::DestinationNotFound
        | E::DestinationUnavailable
        | E::DestinationIpProhibited
        | E::DestinationIpUnroutable
        | E::ConnectionRefused
        | E::ConnectionTimeout
        | E::ConnectionLimitReached
        | E::TlsProtocolError
        | E::TlsCertificateError
        | E::TlsAlertReceived(_) => ErrorKind::Connect,
        E::ConnectionReadTimeout | E::ConnectionWriteTimeout | E::HttpResponseTimeout => {
            ErrorKind::Timeout
        }
        _ => ErrorKind::Request,
    }
}
