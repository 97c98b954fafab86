//! What every route handler is given: the database pool, the generator instances, the
//! detection rules, the live tail's hub.

use std::sync::Arc;

use logstream_core::detect::rules::Rules;
use sqlx::PgPool;

use crate::generators::Generators;
use crate::tail::hub::Hub;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub generators: Generators,
    /// The detection rules in force, for `GET /api/v1/alerts/rules`.
    pub rules: Arc<Rules>,
    /// The live tail's followers.
    pub tail: Arc<Hub>,
}
