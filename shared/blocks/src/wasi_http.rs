//! `object_store`'s HTTP client and crypto on wasm32, so the cloud stores (S3 and compatible, Azure
//! Blob) work inside a WebAssembly component: requests go out through the host's
//! `wasi:http/outgoing-handler` (Spin's outbound HTTP, `wasmtime serve`), and request signing
//! (SigV4, Shared Key) uses the RustCrypto hashes instead of a native crypto library.
//!
//! Requests go through `tempest_http`'s `wasi:http` client, which blocks the component until
//! the answer is in: the block writer and reader wait for each object anyway.

use hmac::{KeyInit, Mac};
use http_body_util::BodyExt;
use object_store::ClientOptions;
use object_store::client::{
    CryptoProvider, DigestAlgorithm, DigestContext, HmacContext, HttpClient, HttpConnector,
    HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody, HttpService, Signer,
    SigningAlgorithm,
};
use sha2::Digest;

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

#[async_trait::async_trait]
impl HttpService for WasiHttp {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let (parts, body) = tempest_http::wasi::send(&parts, &body)
            .map_err(|e| {
                let kind = match e.kind {
                    tempest_http::ErrorKind::Connect => HttpErrorKind::Connect,
                    tempest_http::ErrorKind::Timeout => HttpErrorKind::Timeout,
                    tempest_http::ErrorKind::Request => HttpErrorKind::Request,
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
