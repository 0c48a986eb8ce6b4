//! Conformance suites, modelled on Dapr's components-contrib conformance tests: each runs
//! against any implementation of its trait, so every backend is held to the same contract.

pub mod pubsub;
pub mod secrets;
pub mod state;
