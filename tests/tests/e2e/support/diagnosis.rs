//! What a cluster test prints when a node keeps refusing a model as unknown: each process's
//! catalogue and relay metrics and each region's catalogue offsets and unpublished outbox rows,
//! so a log tells whether the model's home region stopped publishing or this region stopped
//! reading.

use std::fmt::Write as _;

use sqlx::PgPool;

use super::cluster::Cluster;

/// Metric families worth reading when a catalogue lags.
const FAMILIES: [&str; 3] = ["aigo_catalogue", "aigo_outbox", "aigo_undecodable"];

/// A multi-line report of every region's catalogue intake and publishing.
pub async fn catalogue_diagnosis(cluster: &Cluster) -> String {
    let mut report = String::from("catalogue diagnosis:\n");
    for region in &cluster.regions {
        for process in cluster.processes(region) {
            let _ = writeln!(report, "  {process} metrics:");
            if !cluster.running(&process) {
                let _ = writeln!(report, "    (not running)");
                continue;
            }
            // The fault schedule may kill it meanwhile: a diagnosis must not fail the run.
            let answer = match cluster.try_get(&process, "/metrics", &[]).await {
                Ok(answer) => answer,
                Err(error) => {
                    let _ = writeln!(report, "    (no answer: {error})");
                    continue;
                }
            };
            let text = answer.body.as_str().unwrap_or_default();
            for line in text
                .lines()
                .filter(|line| FAMILIES.iter().any(|family| line.starts_with(family)))
                // A histogram's buckets say nothing its count and sum do not.
                .filter(|line| !line.contains("_bucket{"))
            {
                let _ = writeln!(report, "    {line}");
            }
        }
        let _ = writeln!(report, "  {region} database:");
        match database_facts(cluster, region).await {
            Ok(facts) => report.push_str(&facts),
            Err(error) => {
                let _ = writeln!(report, "    unreadable: {error}");
            }
        }
    }
    report
}

async fn database_facts(cluster: &Cluster, region: &str) -> Result<String, sqlx::Error> {
    let pool = PgPool::connect(&cluster.node(region).database_url).await?;
    let mut facts = String::new();
    let offsets: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT topic, partition, next_offset FROM catalogue_offsets ORDER BY topic, partition",
    )
    .fetch_all(&pool)
    .await?;
    for (topic, partition, next) in offsets {
        let _ = writeln!(
            facts,
            "    catalogue next offset {topic}/{partition}: {next}"
        );
    }
    let (events, unpublished): (Option<i64>, i64) = sqlx::query_as(
        "SELECT (SELECT max(position) FROM events), \
                (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
    )
    .fetch_one(&pool)
    .await?;
    let _ = writeln!(
        facts,
        "    last event position {events:?}, unpublished outbox rows {unpublished}"
    );
    pool.close().await;
    Ok(facts)
}
