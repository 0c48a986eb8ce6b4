//! [`HttpClient`] over `reqwest`, for native hosts.

use crate::{Error, ErrorKind, HttpClient, Request, Response};

/// `reqwest` with its connection pool.
#[derive(Debug, Clone)]
pub struct ReqwestClient(reqwest::Client);

impl ReqwestClient {
    /// A client that keeps idle connections for 90 s (as Go's, which daprd uses).
    pub fn new() -> Self {
        ReqwestClient(
            reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(90))
                .build()
                .unwrap_or_default(),
        )
    }
}

impl Default for ReqwestClient {
    fn default() -> Self {
        Self::new()
    }
}

/// The error with its causes: `reqwest` says only "error sending request" on top.
fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

fn kind(e: &reqwest::Error) -> ErrorKind {
    if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Request
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, req: Request) -> Result<Response, Error> {
        let (parts, body) = req.into_parts();
        let failed = |e: reqwest::Error| Error::new(kind(&e), &parts, chain(&e));
        let req = reqwest::Request::try_from(http::Request::from_parts(parts.clone(), body))
            .map_err(failed)?;
        let resp = self.0.execute(req).await.map_err(failed)?;
        let mut answer = http::Response::builder()
            .status(resp.status())
            .version(resp.version());
        if let Some(headers) = answer.headers_mut() {
            *headers = resp.headers().clone();
        }
        let body = resp.bytes().await.map_err(failed)?;
        answer
            .body(body)
            .map_err(|e| Error::new(ErrorKind::Request, &parts, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[tokio::test]
    async fn answers_come_back_whole_and_failed_connections_say_so() {
        // A one-answer server: whatever the request, 201 with a header and a body.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/p?q=1", listener.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            // A request that never completes fails the test rather than hanging it.
            conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .expect("timeout");
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.ends_with(b"\r\n\r\nbody") {
                let n = conn.read(&mut buf).expect("read");
                assert!(n > 0, "the request ended early");
                seen.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 201 Created\r\nx-answer: yes\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                .expect("write");
            String::from_utf8_lossy(&seen).into_owned()
        });
        let client = ReqwestClient::new();
        let resp = client
            .call(
                http::Request::put(&url).header("x-asked", "1"),
                "body".into(),
            )
            .await
            .expect("an answer");
        assert_eq!(resp.status(), http::StatusCode::CREATED);
        assert_eq!(resp.headers()["x-answer"], "yes");
        assert_eq!(resp.body().as_ref(), b"hello");
        let request = server.join().expect("server");
        assert!(request.starts_with("PUT /p?q=1 HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("x-asked: 1\r\n"), "{request}");

        // Nobody listens any more: a connect error, naming the request.
        let e = client
            .call(http::Request::get(&url), bytes::Bytes::new())
            .await
            .expect_err("refused");
        assert!(e.is_connect(), "{e:?}");
        assert!(e.to_string().starts_with(&format!("GET {url}: ")), "{e}");
    }
}
