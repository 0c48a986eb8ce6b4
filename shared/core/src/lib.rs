//! Pieces every Tempest function needs: configuration, W3C trace context and CloudEvents.

pub mod cloudevents;
pub mod config;
pub mod hex;
pub mod tenant;
pub mod tracecontext;

pub use config::{Config, ConfigError};
pub use tenant::TenantId;
pub use tracecontext::TraceContext;
