//! Harness for black-box tests: starts the real `tempest` binary on free loopback ports with its
//! own data folder, and a recording test app (an axum server) that plays the apps Tempest calls.

pub mod app;
pub mod clients;
pub mod emulators;
pub mod keyvault;
pub mod lambda;
pub mod process;
pub mod tempest;
pub mod wasmtime;

pub use app::TestApp;
pub use tempest::Tempest;

/// A free TCP port on 127.0.0.1 (bound and released; the OS rarely hands it out again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `secs` seconds with `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A Dapr Component document with string metadata.
pub fn component(name: &str, type_name: &str, metadata: &[(&str, &str)]) -> String {
    let md: Vec<String> = metadata
        .iter()
        .map(|(k, v)| {
            format!(
                "{{name: {k}, value: {}}}",
                serde_json::Value::String((*v).to_owned())
            )
        })
        .collect();
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: {name}}}\nspec: {{type: {type_name}, version: v1, metadata: [{}]}}\n",
        md.join(", ")
    )
}

/// Writes resource documents into `<dir>/resources/resources.yaml`; returns the folder path.
pub fn write_resources(dir: &std::path::Path, docs: &[String]) -> String {
    let res = dir.join("resources");
    std::fs::create_dir_all(&res).expect("create resources folder");
    std::fs::write(res.join("resources.yaml"), docs.join("---\n")).expect("write resources");
    res.to_string_lossy().into_owned()
}

/// Dapr's default component names on the embedded SQLite stores, as resource documents.
pub fn embedded_components() -> Vec<String> {
    vec![
        component(
            "statestore",
            "state.sqlite",
            &[("connectionString", "state.db")],
        ),
        component(
            "pubsub",
            "pubsub.sqlite",
            &[("connectionString", "pubsub.db")],
        ),
    ]
}
