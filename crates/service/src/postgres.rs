//! PostgreSQL pool and readiness check.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::settings::DatabaseSettings;

/// A pool that connects on first use, so a service starts (and reports not-ready) while
/// PostgreSQL is still coming up. Fails only on a malformed URL.
pub fn lazy_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(&settings.database_url)
        .map_err(|e| anyhow::anyhow!("invalid LOGSTREAM_DATABASE_URL / --database-url: {e}"))?
        .application_name("logstream");
    Ok(PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Readiness: the database answers a trivial query.
pub async fn check(pool: &PgPool) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| format!("postgres unreachable: {e}"))
}
