//! A stop (SIGTERM) ends within its grace even while a response cannot finish: an import whose
//! every wave waits out the pool's acquire timeout on a database whose packets are swallowed.
//! Before the grace existed, the HTTP server's drain waited for it with no bound (the 30-minute
//! soak of seed 945441660 failed on exactly that, docs/RELIABILITY.md).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::postgres::PgConnectOptions;

use crate::support::EU;
use crate::support::cluster::{ADMIN_TOKEN, Cluster, ClusterOptions};
use crate::support::fault_proxy::FaultProxy;

/// Lines of one model, so each is a wave of its own: each wave asks the pool for a connection.
const LINES: usize = 40;
const GRACE: Duration = Duration::from_secs(3);

/// The server of `DATABASE_URL` (the dev PostgreSQL by default).
fn database_server() -> SocketAddr {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let options = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
    format!("{}:{}", options.get_host(), options.get_port())
        .parse()
        .expect("DATABASE_URL's host is an address")
}

#[tokio::test]
async fn a_stop_cuts_a_response_still_running_after_its_grace() {
    let proxy = FaultProxy::start(database_server())
        .await
        .expect("starting a PostgreSQL proxy");
    let cluster = Cluster::start_with(
        &[EU],
        ClusterOptions {
            region_database_urls: BTreeMap::from([(
                EU.to_owned(),
                format!("postgres://postgres@{}/postgres", proxy.addr()),
            )]),
            env: vec![(
                "AIGO_HTTP__SHUTDOWN_GRACE_MS".to_owned(),
                GRACE.as_millis().to_string(),
            )],
            ..ClusterOptions::default()
        },
    )
    .await;
    proxy.blackhole();
    let body: String = (0..LINES)
        .map(|n| {
            let line = json!({
                "idempotency_key": format!("stuck-{n}"),
                "method": "POST",
                "path": "/v1/models/acme/stuck/activate",
            });
            format!("{line}\n")
        })
        .collect();
    let url = format!("{}/v1/imports", cluster.node(EU).base);
    let import = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await?;
        response.text().await
    });
    // The import is under way: its first waves wait on the pool.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!import.is_finished(), "the import ended before the stop");

    let asked = Instant::now();
    let status = cluster.stop(EU).await;
    let took = asked.elapsed();
    assert!(status.success(), "stopped with {status}");
    assert!(
        took < GRACE + Duration::from_secs(10),
        "the stop took {took:?} with a grace of {GRACE:?}"
    );
    // The client sees its response cut, not completed: fewer result lines than it sent, or
    // the connection closed under it.
    match import.await.expect("the import task") {
        Ok(text) => assert!(
            text.lines().count() < LINES,
            "the import answered every line: {text}"
        ),
        Err(error) => assert!(!error.is_status(), "{error}"),
    }
    proxy.heal();
}
