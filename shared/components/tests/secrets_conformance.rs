//! The secret store conformance suite against every secret store.

use tempest_building_blocks::conformance::secrets::run;
use tempest_building_blocks::secrets::SecretStore;
use tempest_components::secrets::{env::EnvSecretStore, file::FileSecretStore};

#[tokio::test]
async fn local_env() {
    let store = EnvSecretStore::with_vars("", || {
        vec![
            ("conftestsecret".into(), "abcd".into()),
            ("secondsecret".into(), "efgh".into()),
            ("DAPR_API_TOKEN".into(), "hidden".into()),
        ]
    });
    run(&store).await;
    let none = Default::default();
    let all = store.bulk(&none).await.expect("bulk");
    assert!(
        !all.contains_key("DAPR_API_TOKEN"),
        "Dapr's own variables are never exposed"
    );
    assert_eq!(
        store.get("DAPR_API_TOKEN", &none).await.expect("get")["DAPR_API_TOKEN"],
        ""
    );
    assert_eq!(
        store.get("unset", &none).await.expect("get")["unset"],
        "",
        "unset reads as empty, as in Dapr"
    );
}

#[tokio::test]
async fn local_env_prefix() {
    let store = EnvSecretStore::with_vars("APP_", || {
        vec![
            ("APP_conftestsecret".into(), "abcd".into()),
            ("APP_secondsecret".into(), "efgh".into()),
            ("OTHER".into(), "x".into()),
        ]
    });
    run(&store).await;
    assert_eq!(
        store.bulk(&Default::default()).await.expect("bulk").len(),
        2
    );
}

#[tokio::test]
async fn local_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secrets.json");
    std::fs::write(
        &path,
        r#"{"conftestsecret":"abcd","secondsecret":"efgh","db":{"user":"u","port":5432}}"#,
    )
    .expect("write");
    let store = FileSecretStore::new(path.clone(), ":", false);
    run(&store).await;
    let none = Default::default();
    assert_eq!(
        store.get("db:port", &none).await.expect("nested")["db:port"],
        "5432"
    );
    assert!(
        store.get("missing", &none).await.is_err(),
        "local.file reports a missing secret as an error"
    );
    let multi = FileSecretStore::new(path, ":", true);
    assert_eq!(multi.get("db", &none).await.expect("multi")["user"], "u");
}
