//! Load generation and benchmarks. Each benchmark runs its reference (a direct HTTP call, the
//! raw Redis client) in the same run and reports the ratio.

pub mod cold_start;
pub mod process;
pub mod rate;
pub mod spin_start;
pub mod synth;
