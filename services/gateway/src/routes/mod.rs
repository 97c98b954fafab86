//! The public REST API's routes.

pub mod alerts;
pub mod errors;
pub mod generator;
mod query;
pub mod stats;
pub mod windows;
