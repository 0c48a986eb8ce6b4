//! Seeded synthetic traces with a realistic shape: a root request fanning out through several
//! services, HTTP and database spans with their usual attributes, some errors, and a long tail
//! of slow requests. The same seed always gives the same traces.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tempest_traces::{AnyValue, Event, KeyValue, Resource, Scope, Span, SpanKind};

/// The shape of generated traces.
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// Distinct services.
    #[arg(long, default_value_t = 6)]
    pub services: usize,
    /// Maximum depth of a trace (root = 1).
    #[arg(long, default_value_t = 4)]
    pub depth: usize,
    /// Maximum children per span.
    #[arg(long, default_value_t = 3)]
    pub fanout: usize,
    /// Extra custom attributes per span.
    #[arg(long, default_value_t = 4)]
    pub attributes: usize,
    /// Share of traces that fail (0..1).
    #[arg(long, default_value_t = 0.02)]
    pub error_rate: f64,
    /// Share of traces that are ten times slower (0..1).
    #[arg(long, default_value_t = 0.01)]
    pub long_tail: f64,
    /// Random seed: the same seed gives the same traces.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            services: 6,
            depth: 4,
            fanout: 3,
            attributes: 4,
            error_rate: 0.02,
            long_tail: 0.01,
            seed: 42,
        }
    }
}

const ROUTES: &[&str] = &[
    "/api/orders",
    "/api/orders/{id}",
    "/api/cart",
    "/api/users/{id}",
    "/api/search",
    "/health",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const TABLES: &[&str] = &["orders", "users", "carts", "items", "payments"];

/// A deterministic trace generator.
pub struct Generator {
    shape: Shape,
    rng: StdRng,
    resources: Vec<Arc<Resource>>,
    scope: Arc<Scope>,
    clock: u64,
}

impl Generator {
    /// A generator for `shape`, starting at `start_unix_nano`.
    pub fn new(shape: Shape, start_unix_nano: u64) -> Self {
        let resources = (0..shape.services.max(1))
            .map(|i| {
                Arc::new(Resource {
                    attributes: vec![
                        KeyValue::str("service.name", &format!("service-{i}")),
                        KeyValue::str("service.version", "1.4.2"),
                        KeyValue::str("deployment.environment", "load"),
                        KeyValue::str("host.name", &format!("host-{}", i % 3)),
                    ],
                    dropped_attributes_count: 0,
                })
            })
            .collect();
        let rng = StdRng::seed_from_u64(shape.seed);
        Generator {
            shape,
            rng,
            resources,
            scope: Arc::new(Scope {
                name: "tempest-load".into(),
                version: "1".into(),
                ..Scope::default()
            }),
            clock: start_unix_nano,
        }
    }

    fn id<const N: usize>(&mut self) -> [u8; N] {
        loop {
            let mut b = [0u8; N];
            self.rng.fill(&mut b[..]);
            if b.iter().any(|x| *x != 0) {
                return b;
            }
        }
    }

    /// One trace's spans.
    pub fn trace(&mut self) -> Vec<Span> {
        let trace_id = self.id::<16>();
        let failing = self.rng.gen_bool(self.shape.error_rate.clamp(0.0, 1.0));
        let slow = self.rng.gen_bool(self.shape.long_tail.clamp(0.0, 1.0));
        self.clock += self.rng.gen_range(1_000..5_000_000);
        let start = self.clock;
        let mut spans = Vec::new();
        let route = ROUTES[self.rng.gen_range(0..ROUTES.len())];
        let method = METHODS[self.rng.gen_range(0..METHODS.len())];
        let scale = if slow { 10 } else { 1 };
        self.span(
            &mut spans,
            trace_id,
            None,
            0,
            1,
            start,
            200_000_000 * scale,
            failing,
            &format!("{method} {route}"),
        );
        if let Some(root) = spans.first_mut() {
            root.attributes
                .push(KeyValue::str("http.request.method", method));
            root.attributes.push(KeyValue::str("http.route", route));
        }
        spans
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        out: &mut Vec<Span>,
        trace_id: [u8; 16],
        parent: Option<[u8; 8]>,
        service: usize,
        level: usize,
        start: u64,
        budget: u64,
        failing: bool,
        name: &str,
    ) {
        let span_id = self.id::<8>();
        let duration = self.rng.gen_range(budget / 4..=budget.max(1));
        let leaf = level >= self.shape.depth || self.rng.gen_bool(0.3);
        let mut attributes = Vec::new();
        let kind = if parent.is_none() {
            SpanKind::Server
        } else if leaf {
            SpanKind::Client
        } else {
            SpanKind::Server
        };
        if leaf && parent.is_some() {
            let table = TABLES[self.rng.gen_range(0..TABLES.len())];
            attributes.push(KeyValue::str("db.system", "postgresql"));
            attributes.push(KeyValue::str(
                "db.statement",
                &format!("SELECT * FROM {table} WHERE id = $1"),
            ));
        } else {
            let status = if failing && level == 1 { 500 } else { 200 };
            attributes.push(KeyValue {
                key: "http.response.status_code".into(),
                value: AnyValue::Int(status),
            });
        }
        for i in 0..self.shape.attributes {
            let v = match i % 3 {
                0 => AnyValue::Str(format!("customer-{}", self.rng.gen_range(0..10_000))),
                1 => AnyValue::Int(self.rng.gen_range(0..1_000)),
                _ => AnyValue::Bool(self.rng.gen_bool(0.5)),
            };
            attributes.push(KeyValue {
                key: format!("app.attr{i}"),
                value: v,
            });
        }
        let error_here = failing && (leaf || level == 1);
        let events = if error_here {
            vec![Event {
                time_unix_nano: start + duration / 2,
                name: "exception".into(),
                attributes: vec![
                    KeyValue::str("exception.type", "TimeoutError"),
                    KeyValue::str("exception.message", "upstream timed out"),
                ],
                dropped_attributes_count: 0,
            }]
        } else {
            vec![]
        };
        out.push(Span {
            trace_id,
            span_id,
            parent_span_id: parent,
            trace_state: String::new(),
            flags: 1,
            name: name.to_owned(),
            kind,
            start_unix_nano: start,
            end_unix_nano: start + duration,
            attributes,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links: vec![],
            dropped_links_count: 0,
            status_code: if error_here { 2 } else { 0 },
            status_message: if error_here {
                "upstream timed out".into()
            } else {
                String::new()
            },
            resource: self.resources[service].clone(),
            scope: self.scope.clone(),
        });
        if leaf {
            return;
        }
        let children = self.rng.gen_range(1..=self.shape.fanout.max(1));
        let mut t = start + duration / 20;
        for _ in 0..children {
            let child_service = self.rng.gen_range(0..self.resources.len());
            let child_budget = duration / (children as u64 + 1);
            let child_name = if level + 1 >= self.shape.depth {
                "query".to_owned()
            } else {
                format!(
                    "{} {}",
                    METHODS[self.rng.gen_range(0..METHODS.len())],
                    ROUTES[self.rng.gen_range(0..ROUTES.len())]
                )
            };
            self.span(
                out,
                trace_id,
                Some(span_id),
                child_service,
                level + 1,
                t,
                child_budget.max(1_000),
                failing,
                &child_name,
            );
            t += child_budget;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_traces() {
        let a: Vec<_> = {
            let mut g = Generator::new(Shape::default(), 1);
            (0..20).map(|_| g.trace()).collect()
        };
        let b: Vec<_> = {
            let mut g = Generator::new(Shape::default(), 1);
            (0..20).map(|_| g.trace()).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().all(|t| t[0].parent_span_id.is_none()
            && t.iter().skip(1).all(|s| s.parent_span_id.is_some())));
        assert!(
            a.iter().map(Vec::len).max().unwrap_or(0) > 1,
            "traces fan out"
        );
    }
}
