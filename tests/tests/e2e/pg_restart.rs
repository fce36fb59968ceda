//! PostgreSQL restarted under load: two `region-node` processes of one region on one database
//! (two relays: one publishes, one stands by) on a private PostgreSQL server that the test
//! crashes and restarts (`pg_ctl stop -m immediate`, then start) while commands keep coming.
//! Afterwards exactly one relay publishes, every acknowledged event is on the topic and counted
//! exactly once by the fold (duplicates on the topic are allowed, double counting is not), the
//! counts equal the recount, and `audit` passes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain::RegionId;
use tokio::time::Instant;

use crate::support::broker::{BrokerOptions, PrivateBroker};
use crate::support::cli::region_node;
use crate::support::cluster::{Cluster, ClusterOptions, unlimited_commands};
use crate::support::private_postgres::PrivatePostgres;
use crate::support::seed_from_env;
use crate::support::topic_check::{TopicFold, counts_of};
use crate::support::wait_until;
use crate::support::workload::{Mix, Workload, check_converged, diff};

const REGION: &str = "eu-west";
/// Partitions of the region's topic (the cluster harness's setting).
const PARTITIONS: i32 = 3;
/// Commands before the restart, and at least as many after it.
const BEFORE: usize = 800;
const AFTER: usize = 800;
/// The load goes on at least this long after the restart: longer than a standby relay's lock
/// retry (`max_backoff`, 5 s), so a second relay would have time to start publishing.
const LOAD_AFTER_RESTART: Duration = Duration::from_secs(12);
const IN_FLIGHT: usize = 8;
const LEADER_GAUGE: &str = "aigo_outbox_relay_leader";

fn seed() -> u64 {
    seed_from_env("PG_RESTART_SEED", "the same load")
}

/// A metric's value on a process's `/metrics` (unlabelled series only); `None` if absent.
async fn metric(cluster: &Cluster, name: &str, metric: &str) -> Option<f64> {
    let body = cluster.get(name, "/metrics", &[]).await.body;
    let text = body.as_str().unwrap_or_default().to_owned();
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == metric).then(|| value.trim().parse().ok()).flatten()
    })
}

/// Lines of a process's log from byte `from` on that say whether its relay publishes.
fn leadership_lines(cluster: &Cluster, name: &str, from: usize) -> Vec<String> {
    let log = cluster.log_text(name);
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("outbox relay: "))
        .map(|l| l.chars().take(200).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_one_relay_publishes_nothing_lost_or_doubled() {
    let seed = seed();
    // Declared first, dropped last: the cluster drops its databases on it.
    let postgres = PrivatePostgres::start().await;
    eprintln!("private PostgreSQL on port {}", postgres.port());
    // A broker of its own (in memory): the test depends on no shared service but the binaries.
    let broker = PrivateBroker::start_with(
        crate::support::ports::free_addr(),
        BrokerOptions {
            in_memory: true,
            advertised: None,
        },
    )
    .await;
    let env = unlimited_commands();
    let mut cluster = Cluster::start_with(
        &[REGION],
        ClusterOptions {
            database_url: Some(postgres.url()),
            brokers: Some(broker.brokers()),
            env,
            ..ClusterOptions::default()
        },
    )
    .await;
    let second = cluster.add_process(REGION).await;
    let processes = cluster.processes(REGION);
    eprintln!("processes of {REGION}: {processes:?}");

    let workload = Workload::new(&cluster, Mix::default());
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut published_before = BTreeMap::new();
    let mut log_marks = BTreeMap::new();
    let restart = async {
        while workload.sent() < BEFORE {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for name in &processes {
            log_marks.insert(name.clone(), cluster.log_text(name).len());
        }
        let at = workload.sent();
        let t = Instant::now();
        postgres.stop_immediate();
        // Counted from here, while the server is down: rows the leader had fetched before the
        // crash may still be acknowledged by the broker (no second publisher in that), and
        // from now on each relay must win the lock again before it fetches a row.
        let settled = wait_until("the relays' published counts settle", || async {
            let mut counts = BTreeMap::new();
            for name in &processes {
                let published = metric(&cluster, name, "aigo_outbox_published_total")
                    .await
                    .unwrap_or(0.0);
                counts.insert(name.clone(), published);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            for name in &processes {
                let again = metric(&cluster, name, "aigo_outbox_published_total")
                    .await
                    .unwrap_or(0.0);
                if again != counts[name] {
                    return Err(format!(
                        "{name} still publishing: {} then {again}",
                        counts[name]
                    ));
                }
            }
            Ok(counts)
        })
        .await;
        published_before.extend(settled);
        postgres.start_server().await;
        eprintln!(
            "PostgreSQL crashed and restarted after {at} commands ({:.1?} down)",
            t.elapsed()
        );
        while workload.sent() < BEFORE + AFTER || t.elapsed() < LOAD_AFTER_RESTART {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::SeqCst);
    };
    tokio::join!(workload.run(IN_FLIGHT, usize::MAX, seed, &stop), restart);
    eprintln!(
        "{} commands acknowledged in {:.1?}, {} models; by kind {:?}",
        workload.sent(),
        started.elapsed(),
        workload.models(),
        workload.by_kind()
    );
    for name in &processes {
        assert!(
            cluster.running(name),
            "{name} exited during the restart:\n{}",
            cluster.log_text(name)
        );
    }

    // Nothing lost, nothing doubled: the counts of both processes and the catalogue equal the
    // recount of the acknowledged commands.
    let expected = workload.expected();
    wait_until(
        "both processes' counts and the catalogue equal the recount",
        || check_converged(&cluster, &processes, &expected),
    )
    .await;

    // Every acknowledged event is on the topic and applied exactly once by a fresh fold.
    let topic = format!("{}.events.{REGION}", cluster.topic_prefix);
    let acknowledged = workload.acknowledged();
    let region = RegionId::parse(REGION).unwrap();
    let topic_fold = wait_until("every acknowledged event is on the topic", || async {
        let topic_fold = TopicFold::read(&broker.brokers(), &topic, PARTITIONS, &region).await?;
        let missing = topic_fold.missing(&acknowledged, 5);
        if missing.is_empty() {
            Ok(topic_fold)
        } else {
            Err(format!("not on the topic (first 5): {missing:?}"))
        }
    })
    .await;
    let doubled = topic_fold.doubled(5);
    assert!(doubled.is_empty(), "applied more than once: {doubled:?}");
    let replay = counts_of(&topic_fold.folds, &cluster.regions);
    assert_eq!(
        replay,
        expected,
        "the fold of the topic vs the recount: {}",
        diff(&replay, &expected)
    );
    let (records, applied, duplicates) = (
        topic_fold.records,
        &topic_fold.applied,
        topic_fold.duplicates,
    );
    eprintln!(
        "topic: {records} records, {} events applied once each ({} acknowledged by commands, \
         the rest withdrawals by retirement), {duplicates} duplicates dropped by sequence",
        applied.len(),
        acknowledged.len()
    );

    let audit = region_node(cluster.node(REGION).config_path(), &["audit"]).await;
    assert!(
        audit.success,
        "audit exited {:?}\nstdout:\n{}\nstderr:\n{}",
        audit.code, audit.stdout, audit.stderr
    );

    // One relay publishes after the restart. Two observations: which processes' relays
    // published rows after the restart (`outbox_published_total` moved), and, once the
    // relay reports it, the `outbox_relay_leader` gauge of each process.
    let mut published_after = BTreeMap::new();
    for name in &processes {
        let now = metric(&cluster, name, "aigo_outbox_published_total")
            .await
            .unwrap_or(0.0);
        published_after.insert(name.clone(), now - published_before[name]);
        eprintln!(
            "{name}: {} rows published after the restart; relay log since the restart: {:?}",
            now - published_before[name],
            leadership_lines(&cluster, name, log_marks[name])
        );
    }
    let publishers: BTreeSet<&String> = published_after
        .iter()
        .filter(|(_, n)| **n > 0.0)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        publishers.len(),
        1,
        "after the restart these processes published: {published_after:?}"
    );
    let leaders = wait_until(
        &format!("exactly one process reports {LEADER_GAUGE} 1, the other 0"),
        || async {
            let mut gauges = BTreeMap::new();
            for name in &processes {
                gauges.insert(name.clone(), metric(&cluster, name, LEADER_GAUGE).await);
            }
            let ones = gauges.values().filter(|g| **g == Some(1.0)).count();
            let zeros = gauges.values().filter(|g| **g == Some(0.0)).count();
            if ones == 1 && zeros == processes.len() - 1 {
                Ok(gauges)
            } else {
                Err(format!("{LEADER_GAUGE} per process: {gauges:?}"))
            }
        },
    )
    .await;
    let leader = leaders
        .iter()
        .find(|(_, g)| **g == Some(1.0))
        .map(|(name, _)| name.clone())
        .unwrap();
    assert!(
        publishers.contains(&leader),
        "{leader} reports the lead but {publishers:?} published"
    );
    eprintln!("leader after the restart: {leader} (standby: {second} or {REGION})");
    drop(cluster);
    drop(broker);
    drop(postgres);
}

/// The private server itself: it starts, a crash-restart breaks the connections open across
/// it, and it accepts new ones afterwards with its data intact.
#[tokio::test]
async fn private_postgres_restarts_with_its_data() {
    use sqlx::{Connection, PgConnection};
    let postgres = PrivatePostgres::start().await;
    let mut before = PgConnection::connect(&postgres.url()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE kept (n INT); INSERT INTO kept VALUES (7)")
        .execute(&mut before)
        .await
        .unwrap();
    postgres.restart_immediate().await;
    assert!(
        sqlx::query("SELECT 1").execute(&mut before).await.is_err(),
        "a connection survived the crash"
    );
    let mut after = PgConnection::connect(&postgres.url()).await.unwrap();
    let n: i32 = sqlx::query_scalar("SELECT n FROM kept")
        .fetch_one(&mut after)
        .await
        .unwrap();
    assert_eq!(n, 7);
}
