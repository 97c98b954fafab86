//! What every route handler is given: the database pool and the generator instances.

use sqlx::PgPool;

use crate::generators::Generators;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub generators: Generators,
}
