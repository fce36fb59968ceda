//! A node on a secured broker and a TLS PostgreSQL, configured as the README and
//! docs/DEPLOYMENT.md say: SASL/SCRAM-SHA-512 over TLS to the broker (Nisshi authenticates;
//! it cannot terminate TLS, so a TLS proxy in front of it does, and the broker advertises the
//! proxy), `sslmode=verify-full` to PostgreSQL. A wrong password or a wrong CA fails clearly.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::broker::{BrokerOptions, PrivateBroker, SCRAM_PASSWORD, SCRAM_USER};
use crate::support::certs::TestCerts;
use crate::support::cli;
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::ports::free_addr;
use crate::support::private_postgres::PrivatePostgres;
use crate::support::tls_proxy::TlsProxy;
use crate::support::{EU, wait_until};

/// The `[kafka.client]` properties, given as the variables an operator would use for secrets.
fn secured_client(ca: &Path, password: &str) -> Vec<(String, String)> {
    [
        ("SECURITY_PROTOCOL", "SASL_SSL"),
        ("SASL_MECHANISM", "SCRAM-SHA-512"),
        ("SASL_USERNAME", SCRAM_USER),
        ("SASL_PASSWORD", password),
        ("SSL_CA_LOCATION", &ca.display().to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (format!("AIGO_KAFKA__CLIENT__{name}"), value.to_owned()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_counts_through_sasl_scram_over_tls_and_a_wrong_password_keeps_it_unready() {
    let certs = TestCerts::make();
    let tls_addr = free_addr();
    let options = BrokerOptions {
        in_memory: false,
        advertised: Some(tls_addr),
    };
    let mut broker = PrivateBroker::start_with(free_addr(), options).await;
    broker.require_authentication().await;
    let _proxy = TlsProxy::start_on(tls_addr, &certs, broker.listener()).await;

    let options = ClusterOptions {
        brokers: Some(tls_addr.to_string()),
        env: secured_client(&certs.ca(), SCRAM_PASSWORD),
        ..ClusterOptions::default()
    };
    // Ready means the projector caught up with its partitions: it reads over SASL_SSL.
    let mut cluster = Cluster::start_with(&[EU], options).await;
    let answer = cluster
        .command(
            EU,
            Method::POST,
            "/v1/models",
            Some(json!({"id": "acme/secured", "provider": "acme", "name": {"en": "Secured"}})),
        )
        .await;
    assert!(answer["consistency_token"].is_string(), "{answer}");
    // Published by the relay, folded by the projector, both through the TLS proxy.
    let cluster_ref = &cluster;
    wait_until("the secured node counts the model", || async move {
        let counts = cluster_ref.counts(EU).await?;
        if counts["total"] == 1 {
            Ok(())
        } else {
            Err(format!("total {}", counts["total"]))
        }
    })
    .await;

    // The same node with a wrong password: never ready, and the log says why.
    let status = cluster.stop(EU).await;
    assert!(status.success(), "{status}");
    let from = cluster.log_text(EU).len();
    cluster.set_env(EU, secured_client(&certs.ca(), "wrong password"));
    cluster.spawn(EU);
    let readyz = format!("{}/readyz", cluster.node(EU).base);
    let client = reqwest::Client::new();
    let mut answered = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(response) = client.get(&readyz).send().await {
            answered += 1;
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "ready with a wrong password"
            );
        }
    }
    assert!(
        answered > 20,
        "the node answered /readyz only {answered} times"
    );
    let log = cluster.log_text(EU);
    let since = log.get(from..).unwrap_or_default();
    assert!(
        since.contains("Authentication failed") || since.contains("SASL authentication error"),
        "no authentication error in the log:\n{since}"
    );
}

/// A configuration file for `region-node` with only the database URL set.
fn config_with_database(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join(format!("tls-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, format!("[database]\nurl = {url:?}\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_full_passes_with_the_right_ca_and_fails_clearly_with_another() {
    let certs = TestCerts::make();
    let strangers = TestCerts::make();
    let server = PrivatePostgres::start_with_tls(&certs).await;
    let url = |ca: &Path| {
        format!(
            "postgres://postgres@127.0.0.1:{}/aigo_tls?sslmode=verify-full&sslrootcert={}",
            server.port(),
            ca.display()
        )
    };
    let dir = std::env::temp_dir();

    // The real binary: creates the database and migrates it over a verified TLS connection.
    let trusted = config_with_database(&dir, &url(&certs.ca()));
    let migrated = cli::region_node(&trusted, &["migrate"]).await;
    assert!(migrated.success, "{}", migrated.stderr);
    let mut settings = region_node::Settings::load(Some(&trusted)).unwrap();
    let pool = region_node::database::connect(&settings.database)
        .await
        .unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(encrypted, "the connection is not encrypted");
    let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(migrations > 0);
    pool.close().await;

    // A CA that did not sign the server's certificate: refused, saying so, nothing done.
    let untrusted = config_with_database(&dir, &url(&strangers.ca()));
    let refused = cli::region_node(&untrusted, &["migrate"]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("certificate") || refused.stderr.contains("UnknownIssuer"),
        "{}",
        refused.stderr
    );
    settings.database.url = url(&strangers.ca());
    let error = region_node::database::connect(&settings.database)
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("PostgreSQL"), "{error:#}");
    for config in [trusted, untrusted] {
        let _ = std::fs::remove_file(config);
    }
}
