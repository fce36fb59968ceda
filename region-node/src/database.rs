//! Connecting to the region's PostgreSQL and running the migrations.

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

/// The pool `serve` runs on: migrated first under `database.migrate_on_start`, else checked
/// to have every migration this binary knows applied (an operator ran `migrate`), and refused
/// otherwise, naming the first one missing.
pub async fn open(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    if settings.migrate_on_start {
        return migrate(settings).await;
    }
    let pool = connect(settings).await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    let missing = migrations::MIGRATOR
        .iter()
        .find(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version));
    if let Some(missing) = missing {
        anyhow::bail!(
            "the database is behind this binary: migration {} ({}) is not applied, and \
             database.migrate_on_start is false; run `region-node migrate` first",
            missing.version,
            missing.description
        );
    }
    Ok(pool)
}

/// The read side's own pool on the same database (as `writes` connects to it): read load can
/// never take the connections commands, the relay, the projector and the follower need, and
/// PostgreSQL cancels any read statement that runs longer than `read_statement_timeout`.
/// Connects lazily, like the first read.
pub fn read_pool(writes: &PgPool, settings: &DatabaseSettings) -> PgPool {
    let timeout_ms = settings.read_statement_timeout.as_millis().max(1);
    let options = (*writes.connect_options())
        .clone()
        .options([("statement_timeout", timeout_ms.to_string())]);
    PgPoolOptions::new()
        .max_connections(settings.read_max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options)
}

/// A pool that gives up quickly when the database is down, so commands fail with 503
/// instead of hanging, and recovers by itself when it returns.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect(&settings.url)
        .await
        .context("connecting to PostgreSQL")
}
