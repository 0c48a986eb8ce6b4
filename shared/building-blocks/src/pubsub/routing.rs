//! Picks the app route for an event: the first rule whose CEL `match` holds, else the default.

use cel_interpreter::{Context, Program, Value as CelValue};
use serde_json::Value;

use super::Subscription;

/// Why a routing expression could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid routing rule {expr:?}: {message}")]
pub struct RoutingError {
    /// The expression.
    pub expr: String,
    /// What went wrong.
    pub message: String,
}

/// Checks that every rule of a subscription compiles, so a bad rule is reported at load time.
pub fn validate(sub: &Subscription) -> Result<(), RoutingError> {
    for rule in &sub.rules {
        if !rule.match_expr.trim().is_empty() {
            Program::compile(&rule.match_expr).map_err(|e| RoutingError {
                expr: rule.match_expr.clone(),
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// Compiled rules by expression: routing runs for every delivered message, compiling once.
fn compiled(expr: &str) -> Option<std::sync::Arc<Program>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Program>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = guard.get(expr) {
        return Some(p.clone());
    }
    let program = Arc::new(Program::compile(expr).ok()?);
    guard.insert(expr.to_owned(), program.clone());
    Some(program)
}

/// The route for `event`, or `None` when no rule matches and there is no default.
pub fn route<'a>(sub: &'a Subscription, event: &Value) -> Option<&'a str> {
    for rule in &sub.rules {
        if rule.match_expr.trim().is_empty() {
            return Some(&rule.path);
        }
        let Some(program) = compiled(&rule.match_expr) else {
            continue;
        };
        let mut ctx = Context::default();
        if ctx.add_variable("event", event.clone()).is_err() {
            continue;
        }
        // A rule that errors (missing field, wrong type) does not match, as in Dapr.
        if let Ok(CelValue::Bool(true)) = program.execute(&ctx) {
            return Some(&rule.path);
        }
    }
    sub.default_route.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::subscription::{Rule, SubscriptionKind};

    fn sub(rules: &[(&str, &str)], default: Option<&str>) -> Subscription {
        Subscription {
            app_id: "a".into(),
            pubsub_name: "p".into(),
            topic: "t".into(),
            rules: rules
                .iter()
                .map(|(m, p)| Rule {
                    match_expr: m.to_string(),
                    path: p.to_string(),
                })
                .collect(),
            default_route: default.map(str::to_owned),
            dead_letter_topic: None,
            raw_payload: false,
            metadata: Default::default(),
            kind: SubscriptionKind::Declarative,
            bulk: None,
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let s = sub(
            &[
                (r#"event.type == "widget""#, "/widgets"),
                (
                    r#"event.data.amount > 100 && event.data.region == "eu""#,
                    "/big",
                ),
            ],
            Some("/default"),
        );
        let ev = serde_json::json!({"type": "widget", "data": {"amount": 500, "region": "eu"}});
        assert_eq!(route(&s, &ev), Some("/widgets"));
        let ev = serde_json::json!({"type": "gadget", "data": {"amount": 500, "region": "eu"}});
        assert_eq!(route(&s, &ev), Some("/big"));
        let ev = serde_json::json!({"type": "gadget", "data": "text"});
        assert_eq!(route(&s, &ev), Some("/default"));
        assert_eq!(
            route(&sub(&[(r#"event.type == "x""#, "/x")], None), &ev),
            None
        );
        assert!(validate(&sub(&[("event.type ==", "/x")], None)).is_err());
    }
}
