//! The public REST API's routes.

pub mod alerts;
pub mod errors;
pub mod generator;
pub mod logs;
pub mod names;
mod query;
pub mod stats;
pub mod tail;
pub mod windows;
