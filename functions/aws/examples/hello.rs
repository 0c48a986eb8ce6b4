//! The cold-start reference for `tempest-bench cold-start`: the smallest useful Rust Lambda, an
//! axum router with one route behind `lambda_http` (the shape of the published Rust cold-start
//! figures), built and run exactly like `bootstrap`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
    lambda_http::run(app).await
}
