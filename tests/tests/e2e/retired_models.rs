//! The retirement withdrawals' to-do list: the models a region still serves although the
//! catalogue says they are retired, found from the retired models (a partial index) rather
//! than from every row the region serves.

use domain::RegionId;
use event_store::catalogue;
use sqlx::PgPool;

/// A catalogue row for `model` with `lifecycle`, and its availability in each of `served`
/// (`(region, served)`).
async fn model(pool: &PgPool, model: &str, lifecycle: &str, served: &[(&str, bool)]) {
    sqlx::query(
        "INSERT INTO catalogue_models
             (model_id, provider, home_region, name, lifecycle, status, version, updated_at)
         VALUES ($1, 'acme', 'eu-west', '{}'::jsonb, $2, 'operational', 1, now())",
    )
    .bind(model)
    .bind(lifecycle)
    .execute(pool)
    .await
    .unwrap();
    for (region, is_served) in served {
        sqlx::query(
            "INSERT INTO catalogue_availability (region, model_id, served, version, updated_at)
             VALUES ($1, $2, $3, 1, now())",
        )
        .bind(region)
        .bind(model)
        .bind(is_served)
        .execute(pool)
        .await
        .unwrap();
    }
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn only_retired_models_the_region_still_serves_are_to_withdraw(pool: PgPool) {
    model(
        &pool,
        "acme/b-retired-served",
        "retired",
        &[("eu-west", true), ("us-east", true)],
    )
    .await;
    model(
        &pool,
        "acme/a-retired-served",
        "retired",
        &[("eu-west", true)],
    )
    .await;
    model(
        &pool,
        "acme/retired-withdrawn",
        "retired",
        &[("eu-west", false)],
    )
    .await;
    model(
        &pool,
        "acme/retired-elsewhere",
        "retired",
        &[("us-east", true)],
    )
    .await;
    model(&pool, "acme/retired-nowhere", "retired", &[]).await;
    model(&pool, "acme/active-served", "active", &[("eu-west", true)]).await;

    let eu_west = RegionId::parse("eu-west").unwrap();
    assert_eq!(
        catalogue::served_but_retired(&pool, &eu_west)
            .await
            .unwrap(),
        ["acme/a-retired-served", "acme/b-retired-served"],
        "retired and served here, by id"
    );
    let us_east = RegionId::parse("us-east").unwrap();
    assert_eq!(
        catalogue::served_but_retired(&pool, &us_east)
            .await
            .unwrap(),
        ["acme/b-retired-served", "acme/retired-elsewhere"]
    );
}
