//! `serve` refuses topics it cannot count on: an events topic with another partition count or
//! a finite retention, or (when an operator provisions topics) a missing one. It exits 1 and
//! its log names the topic and the setting.

use std::time::Duration;

use crate::support::EU;
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::kafka::{self, unique_topic};

/// Starts a one-node cluster on `prefix` with `env`, and returns its exit code and log.
async fn serve_exit(prefix: &str, env: Vec<(String, String)>) -> (Option<i32>, String) {
    let options = ClusterOptions {
        topic_prefix: Some(prefix.to_owned()),
        env,
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start_unready(&[EU], options).await;
    let status = cluster
        .node(EU)
        .process
        .wait_exit(Duration::from_secs(60))
        .await;
    (status.and_then(|s| s.code()), cluster.log_text(EU))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exits_naming_the_topic_and_setting_it_cannot_count_on() {
    let kept_forever = [("retention.ms", "-1"), ("retention.bytes", "-1")];

    let prefix = unique_topic("topics-narrow");
    let topic = format!("{prefix}.events.{EU}");
    kafka::create_topic(&topic, 2, &kept_forever).await;
    let (code, log) = serve_exit(&prefix, Vec::new()).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "topic {topic}: partitions is 2, but the node needs 3"
        )),
        "{log}"
    );

    let prefix = unique_topic("topics-week");
    let topic = format!("{prefix}.events.{EU}");
    kafka::create_topic(&topic, 3, &[("retention.ms", "604800000")]).await;
    let (code, log) = serve_exit(&prefix, Vec::new()).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "topic {topic}: retention.ms is 604800000, but the node needs -1"
        )),
        "{log}"
    );

    let prefix = unique_topic("topics-missing");
    let provisioned = vec![("AIGO_KAFKA__CREATE_TOPICS".to_owned(), "false".to_owned())];
    let (code, log) = serve_exit(&prefix, provisioned).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&format!("topic {prefix}.events.")), "{log}");
    assert!(log.contains("does not exist"), "{log}");
    assert_eq!(
        kafka::partition_count(&format!("{prefix}.events.{EU}")).await,
        0,
        "a node told not to create topics created one"
    );
}
