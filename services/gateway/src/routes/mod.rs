//! The public REST API's routes.

pub mod generator;
pub mod stats;
