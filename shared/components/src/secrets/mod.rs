//! Secret store backends.

pub mod env;
pub mod file;
