//! The smallest Spin HTTP component (`spin-sdk`, one route answering "hello"): the reference
//! `tempest-bench spin` measures Tempest's component against, on the same engine in the same run.
//! `cargo build --release -p tempest-spin --example hello --target wasm32-wasip2`

#![cfg(target_arch = "wasm32")]

/// The export glue `spin_sdk::http_component` writes is `unsafe` code.
#[allow(unsafe_code)]
mod export {
    use spin_sdk::http::{Request, Response};

    #[spin_sdk::http_component]
    fn hello(_req: Request) -> Response {
        Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body("hello")
            .build()
    }
}
