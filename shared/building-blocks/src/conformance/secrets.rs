//! Secret store conformance (after components-contrib `tests/conformance/secretstores`).
//! The store under test must hold `conftestsecret=abcd` and `secondsecret=efgh`.

use std::collections::BTreeMap;

use crate::secrets::SecretStore;

/// Runs the scenarios; panics on the first violation.
pub async fn run(store: &dyn SecretStore) {
    let none = BTreeMap::new();
    let got = store.get("conftestsecret", &none).await.expect("get");
    assert_eq!(
        got,
        BTreeMap::from([("conftestsecret".to_string(), "abcd".to_string())])
    );
    let all = store.bulk(&none).await.expect("bulk");
    assert_eq!(
        all.get("conftestsecret"),
        Some(&BTreeMap::from([(
            "conftestsecret".to_string(),
            "abcd".to_string()
        )]))
    );
    assert_eq!(
        all.get("secondsecret"),
        Some(&BTreeMap::from([(
            "secondsecret".to_string(),
            "efgh".to_string()
        )]))
    );
}
