use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use crate::config::DatabaseSettings;

/// Creates the node's database if it does not exist yet, then applies every migration.
pub async fn migrate(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    if !Postgres::database_exists(&settings.url)
        .await
        .context("cannot reach PostgreSQL")?
    {
        Postgres::create_database(&settings.url)
            .await
            .context("cannot create the node's database")?;
    }
    let pool = connect(settings).await?;
    migrations::MIGRATOR
        .run(&pool)
        .await
        .context("applying migrations")?;
    Ok(pool)
}

/// A pool that gives up quickly when the database is down, so commands fail with 503
/// instead of hanging, and recovers by itself when it returns.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect(&settings.url)
        .await
        .context("connecting to PostgreSQL")
}
