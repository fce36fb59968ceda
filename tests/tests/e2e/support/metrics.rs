//! A node's Prometheus metrics as the tests read them: one value, or waiting for one.

use crate::support::cluster::Cluster;
use crate::support::wait_until;

/// The value of metric `name` with all of `labels` on `region`'s `/metrics` (0 when absent).
pub async fn metric(cluster: &Cluster, region: &str, name: &str, labels: &[&str]) -> f64 {
    let text = cluster.get(region, "/metrics", &[]).await.body;
    let text = text.as_str().unwrap_or_default().to_owned();
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until metric `name{labels}` on `region` is `want` (`what` names the wait).
pub async fn wait_for_metric(
    cluster: &Cluster,
    region: &str,
    name: &str,
    labels: &[&str],
    want: f64,
    what: &str,
) {
    wait_until(what, || async {
        let got = metric(cluster, region, name, labels).await;
        #[expect(clippy::float_cmp, reason = "gauges of 0 and 1")]
        if got == want {
            Ok(())
        } else {
            Err(format!("{name}{{{}}} = {got}", labels.join(",")))
        }
    })
    .await;
}
