//! Secret store backends.

#[cfg(feature = "aws")]
pub mod aws;
pub mod env;
pub mod file;
#[cfg(feature = "azure")]
pub mod keyvault;
