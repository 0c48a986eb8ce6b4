//! Dapr's building blocks as platform-neutral functions: component traits (state, pub/sub,
//! secrets), service invocation, the Dapr HTTP API router, pub/sub delivery and the
//! conformance suites every component implementation must pass.

pub mod conformance;
pub mod error;
pub mod invoke;
pub mod json;
pub mod pubsub;
pub mod resources;
pub mod router;
pub mod runtime;
pub mod secrets;
pub mod state;
pub mod telemetry;

pub use error::ApiError;
pub use runtime::Runtime;
