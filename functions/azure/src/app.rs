//! The Azure Functions app: which Azure function serves which catalog function on which
//! route or timer, and the `host.json` and `function.json` files that declare them.

use std::path::Path;

use serde_json::{Value, json};

/// How the Functions host triggers an Azure function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// An HTTP trigger on a route template (no leading slash; `routePrefix` is empty), forwarded
    /// to the handler as the original request.
    Http {
        /// Azure route template: literal segments, then optionally a `{*rest}` catch-all.
        route: &'static str,
        /// Allowed methods, lower case; empty for all.
        methods: &'static [&'static str],
    },
    /// A timer trigger; the host POSTs the custom-handler JSON payload to `/<name>`.
    Timer {
        /// NCRONTAB (six fields, seconds first) or an `%APP_SETTING%` holding one.
        schedule: &'static str,
    },
    /// A Storage Queue trigger; the host POSTs each message as custom-handler JSON to
    /// `/<name>`, retries it while the handler fails, and moves it to `<queue>-poison` after
    /// `maxDequeueCount` tries.
    Queue {
        /// Queue name, or an `%APP_SETTING%` holding one.
        queue: &'static str,
    },
}

/// One Azure function of the app.
#[derive(Debug, Clone, Copy)]
pub struct AzureFunction {
    /// Its folder name in the app, and the path the host calls for non-HTTP triggers.
    pub name: &'static str,
    /// The catalog function it runs.
    pub function: &'static str,
    /// How it is triggered.
    pub trigger: Trigger,
}

/// The app setting that holds `compact`'s schedule.
pub const COMPACTION_SCHEDULE_SETTING: &str = "TEMPEST_COMPACTION_SCHEDULE";
/// Its default: every five minutes, as `tempest serve` compacts.
pub const DEFAULT_COMPACTION_SCHEDULE: &str = "0 */5 * * * *";
/// The app setting that names the queue `deliver` is triggered by.
pub const DELIVER_QUEUE_SETTING: &str = "TEMPEST_DELIVER_QUEUE";
/// Its default: one queue for the app's subscriptions.
pub const DEFAULT_DELIVER_QUEUE: &str = "tempest-deliver";
/// Tries of one message before the host moves it to the poison queue (the host's default).
pub const MAX_DEQUEUE_COUNT: u32 = 5;

const ALL: &[&str] = &[];
const GET: &[&str] = &["get"];
const POST: &[&str] = &["post"];

const fn http(
    name: &'static str,
    function: &'static str,
    route: &'static str,
    methods: &'static [&'static str],
) -> AzureFunction {
    AzureFunction {
        name,
        function,
        trigger: Trigger::Http { route, methods },
    }
}

/// Every function of the app. An Azure HTTP trigger has one route, so a catalog function that
/// serves several paths (the receivers of `ingest`) is several Azure functions.
pub const FUNCTIONS: &[AzureFunction] = &[
    http("dapr-invoke", "invoke", "v1.0/invoke/{*rest}", ALL),
    http("dapr-state", "state", "v1.0/state/{*rest}", ALL),
    http("dapr-publish", "publish", "v1.0/publish/{*rest}", ALL),
    http("dapr-secrets", "secrets", "v1.0/secrets/{*rest}", ALL),
    // metadata, healthz, shutdown and the rest of Dapr's stable API.
    http("dapr-metadata", "metadata", "v1.0/{*rest}", ALL),
    // Dapr's alpha API: bulk publish and state query.
    http("dapr-alpha", "publish", "v1.0-alpha1/{*rest}", ALL),
    http("ingest-otlp", "ingest", "v1/traces", POST),
    http("ingest-zipkin", "ingest", "api/v2/spans", POST),
    http("ingest-jaeger", "ingest", "api/traces", POST),
    http("query", "query", "api/{*rest}", GET),
    http("query-ready", "query", "ready", GET),
    http(
        "search-worker",
        "search-worker",
        "tempest/search-worker",
        POST,
    ),
    AzureFunction {
        name: "compact",
        function: "compact",
        trigger: Trigger::Timer {
            schedule: "%TEMPEST_COMPACTION_SCHEDULE%",
        },
    },
    AzureFunction {
        name: "deliver",
        function: "deliver",
        trigger: Trigger::Queue {
            queue: "%TEMPEST_DELIVER_QUEUE%",
        },
    },
];

/// `host.json`: a custom handler (`handler`, the binary at the app root) that gets HTTP
/// requests forwarded as they came, with no `api/` route prefix so paths are the protocols' own.
pub fn host_json() -> Value {
    json!({
        "version": "2.0",
        "logging": {"logLevel": {"default": "Information"}},
        "customHandler": {
            "description": {
                "defaultExecutablePath": "handler",
                "workingDirectory": "",
                "arguments": []
            },
            "enableForwardingHttpRequest": true
        },
        "extensions": {
            "http": {"routePrefix": ""},
            // A message whose delivery fails becomes visible again after 10 s, as Dapr's
            // default retry waits, and is poisoned after the host's usual five tries.
            "queues": {
                "maxDequeueCount": MAX_DEQUEUE_COUNT,
                "visibilityTimeout": "00:00:10",
                "batchSize": 16
            }
        },
        "extensionBundle": {
            "id": "Microsoft.Azure.Functions.ExtensionBundle",
            "version": "[4.*, 5.0.0)"
        }
    })
}

/// One function's `function.json`.
pub fn function_json(f: &AzureFunction) -> Value {
    match f.trigger {
        Trigger::Http { route, methods } => {
            let methods: Vec<&str> = if methods.is_empty() {
                vec!["get", "post", "put", "delete", "patch", "head", "options"]
            } else {
                methods.to_vec()
            };
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous",
                 "methods": methods, "route": route},
                {"type": "http", "direction": "out", "name": "res"}
            ]})
        }
        Trigger::Timer { schedule } => json!({"bindings": [
            {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": schedule,
             "runOnStartup": false, "useMonitor": true}
        ]}),
        Trigger::Queue { queue } => json!({"bindings": [
            {"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": queue,
             "connection": "AzureWebJobsStorage"}
        ]}),
    }
}

/// `local.settings.json` for running the app with Core Tools: the custom worker runtime and the
/// schedule setting's default.
pub fn local_settings_json() -> Value {
    json!({
        "IsEncrypted": false,
        "Values": {
            "FUNCTIONS_WORKER_RUNTIME": "custom",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            COMPACTION_SCHEDULE_SETTING: DEFAULT_COMPACTION_SCHEDULE,
            DELIVER_QUEUE_SETTING: DEFAULT_DELIVER_QUEUE
        }
    })
}

/// Writes `host.json`, `local.settings.json` and one `<name>/function.json` per function into
/// `dir` (the handler binary goes beside them as `handler`).
pub fn write(dir: &Path) -> std::io::Result<()> {
    let write_json = |path: &Path, v: &Value| {
        let text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    };
    std::fs::create_dir_all(dir)?;
    write_json(&dir.join("host.json"), &host_json())?;
    write_json(&dir.join("local.settings.json"), &local_settings_json())?;
    for f in FUNCTIONS {
        let folder = dir.join(f.name);
        std::fs::create_dir_all(&folder)?;
        write_json(&folder.join("function.json"), &function_json(f))?;
    }
    Ok(())
}

/// The HTTP function whose route serves `path` for `method`, as the Functions host resolves
/// routes: literal routes before catch-alls, longer literal prefixes first.
pub fn route(method: &str, path: &str) -> Option<&'static AzureFunction> {
    let path = path.trim_start_matches('/');
    FUNCTIONS
        .iter()
        .filter_map(|f| match f.trigger {
            Trigger::Http { route, methods } => {
                let allowed =
                    methods.is_empty() || methods.iter().any(|m| m.eq_ignore_ascii_case(method));
                let rank = matches(route, path)?;
                allowed.then_some((rank, f))
            }
            Trigger::Timer { .. } | Trigger::Queue { .. } => None,
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, f)| f)
}

/// How specifically `route` matches `path`: (exact, literal segments), or `None`.
fn matches(route: &str, path: &str) -> Option<(bool, usize)> {
    match route.strip_suffix("{*rest}") {
        Some(prefix) => {
            let literal = prefix.trim_end_matches('/');
            let rest = path.strip_prefix(literal)?;
            (rest.is_empty() || rest.starts_with('/'))
                .then_some((false, literal.split('/').count()))
        }
        None => (route == path).then_some((true, route.split('/').count())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_as_the_functions_host_does() {
        for (method, path, name) in [
            ("POST", "/v1.0/state/statestore", "dapr-state"),
            ("GET", "/v1.0/state/statestore/key", "dapr-state"),
            ("GET", "/v1.0/metadata", "dapr-metadata"),
            ("GET", "/v1.0/healthz", "dapr-metadata"),
            ("POST", "/v1.0/invoke/app/method/orders", "dapr-invoke"),
            (
                "POST",
                "/v1.0-alpha1/publish/bulk/pubsub/orders",
                "dapr-alpha",
            ),
            ("POST", "/v1/traces", "ingest-otlp"),
            ("POST", "/api/v2/spans", "ingest-zipkin"),
            ("POST", "/api/traces", "ingest-jaeger"),
            ("GET", "/api/traces/0123", "query"),
            ("GET", "/api/search", "query"),
            ("GET", "/ready", "query-ready"),
            ("POST", "/tempest/search-worker", "search-worker"),
        ] {
            assert_eq!(
                route(method, path).map(|f| f.name),
                Some(name),
                "{method} {path}"
            );
        }
        for (method, path) in [
            ("GET", "/v1/traces"),
            ("POST", "/api/search"),
            ("GET", "/v1.0state/x"),
            ("GET", "/compact"),
            ("POST", "/deliver"),
            ("GET", "/"),
        ] {
            assert!(route(method, path).is_none(), "{method} {path}");
        }
    }

    #[test]
    fn every_function_name_is_unique_and_in_the_catalog() {
        let mut names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FUNCTIONS.len());
        for f in FUNCTIONS {
            assert!(
                tempest_catalog::CATALOG
                    .iter()
                    .any(|c| c.name == f.function),
                "{}",
                f.function
            );
        }
    }
}
