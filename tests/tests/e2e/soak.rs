//! The soak: three regions (two processes in eu-west) on a durable broker and a PostgreSQL
//! server of their own, each behind fault-injecting proxies, under a steady mixed command load,
//! contended writes with `If-Match` and repeated idempotency keys, live stream watchers and
//! `?at=` readers, while a seeded schedule SIGKILLs processes, kills and restarts the broker
//! and PostgreSQL, injects network faults, cuts a region off from its database and rolls every
//! process to another binary. Then the checker: every node's counts and catalogue equal the
//! recount of what was acknowledged, every acknowledged event is on its region's topic and
//! applied exactly once by a fresh fold whose counts agree, `audit` passes on every node, every
//! stream watcher's last counts are the final ones and its numbered events never skipped one,
//! and nothing answered a 5xx other than a documented 503.
//!
//! `SOAK_DURATION` (`75s` by default, the short version `.ci/run` runs; `scripts/soak.sh 30m`
//! for the long one), `SOAK_SEED` (fixed by default, so CI always runs the same schedule),
//! `SOAK_DEPLOY_BINARY` (what the rolling deploy installs; a copy of the binary under test by
//! default; with `REGION_NODE_BIN` naming an older build, an upgrade), `SOAK_BROKER=memory`
//! (Nisshi's in-memory engine, frozen with SIGSTOP instead of killed, since a kill would lose
//! everything; by default the durable sqlite engine, SIGKILLed and restarted: see
//! docs/RELIABILITY.md), `SOAK_WORKERS` (command workers, 12 by
//! default; the long run on release builds takes more to reach its million events),
//! `SOAK_IMPORTERS` and `SOAK_IMPORT_LINES` (concurrent `POST /v1/imports` senders, 1 by
//! default, and commands per batch, 200), `SOAK_PG_SHARED_BUFFERS` (the soak's PostgreSQL's
//! `shared_buffers`, its default unless set), `SOAK_PG_STATEMENT_STATS=1` (it loads
//! `pg_stat_statements`, to read what each statement costs during a run).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain::RegionId;
use tokio::time::Instant;

use crate::support::broker::PrivateBroker;
use crate::support::cli::region_node;
use crate::support::cluster::{Cluster, ClusterOptions, unlimited_commands};
use crate::support::counts::Counts;
use crate::support::fault_proxy::FaultProxy;
use crate::support::private_postgres::PrivatePostgres;
use crate::support::soak_clients::{
    CONTESTED_PROVIDER, Contention, ReadRecord, Watcher, read_history,
};
use crate::support::soak_faults::{FaultLog, Schedule, Targets, inject};
use crate::support::soak_imports::{self, run_imports};
use crate::support::topic_check::{TopicFold, counts_of};
use crate::support::wait_until_within;
use crate::support::workload::{Mix, Workload, check_converged, diff};
use crate::support::{AP, EU, US};

const REGIONS: [&str; 3] = [EU, US, AP];
/// The seed CI runs with.
const CI_SEED: u64 = 20_261_205;
const DEFAULT_DURATION: Duration = Duration::from_secs(75);
/// Command workers (unless `SOAK_WORKERS` says), contenders and `?at=` readers.
const IN_FLIGHT: usize = 12;
const CONTENDERS: usize = 3;
const CONTESTED_MODELS: usize = 6;
const READERS: usize = 2;
/// Partitions of every region's topic (the cluster harness's setting).
const PARTITIONS: i32 = 3;
/// Longest the nodes may take to converge after the last fault.
const CONVERGENCE: Duration = Duration::from_secs(300);

fn seed() -> u64 {
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_SEED);
    eprintln!("[soak] seed: {seed} (SOAK_SEED={seed} replays the same load and fault schedule)");
    seed
}

/// `75s`, `30m`, `1h` or plain seconds.
fn duration() -> Duration {
    let Ok(text) = std::env::var("SOAK_DURATION") else {
        return DEFAULT_DURATION;
    };
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("SOAK_DURATION={text}: expected e.g. 75s, 30m, 1h"));
    let seconds = match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => panic!("SOAK_DURATION={text}: expected e.g. 75s, 30m, 1h"),
    };
    Duration::from_secs(seconds)
}

/// How many command workers send at once: `SOAK_WORKERS`, else [`IN_FLIGHT`].
fn workers() -> usize {
    std::env::var("SOAK_WORKERS").map_or(IN_FLIGHT, |text| {
        text.parse()
            .ok()
            .filter(|&workers| workers > 0)
            .unwrap_or_else(|| panic!("SOAK_WORKERS={text}: expected a positive number"))
    })
}

/// What the rolling deploy installs: `SOAK_DEPLOY_BINARY`, else a copy of the binary under
/// test (another file, so every process really is started from a new path).
fn deploy_binary(dir: &std::path::Path) -> PathBuf {
    if let Ok(path) = std::env::var("SOAK_DEPLOY_BINARY") {
        return PathBuf::from(path);
    }
    let copy = dir.join("region-node-deployed");
    std::fs::copy(crate::support::process::binary(), &copy).expect("copying the binary");
    copy
}

/// The counts of the contested models in `node`'s catalogue (they are not in the load's
/// ledger: contenders race on them).
async fn contested_counts(cluster: &Cluster, node: &str) -> Result<Counts, String> {
    let pool = cluster.pool(node).await;
    let rows: Result<Vec<(String, String)>, _> =
        sqlx::query_as("SELECT lifecycle, status FROM catalogue_models WHERE provider = $1")
            .bind(CONTESTED_PROVIDER)
            .fetch_all(&pool)
            .await;
    pool.close().await;
    let rows = rows.map_err(|e| format!("{node}: contested models: {e}"))?;
    let mut counts = Counts::default();
    for (lifecycle, status) in rows {
        if lifecycle == "retired" {
            counts.retired += 1;
            continue;
        }
        counts.total += 1;
        *counts.by_status.entry(status).or_default() += 1;
        let provider = counts
            .by_provider
            .entry(CONTESTED_PROVIDER.to_owned())
            .or_default();
        provider.0 += 1;
        if lifecycle == "active" {
            counts.active += 1;
            provider.1 += 1;
        } else {
            counts.inactive += 1;
        }
    }
    Ok(counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_counts_every_acknowledged_command_once_through_a_storm_of_faults() {
    let seed = seed();
    let duration = duration();
    let cut_for = (duration / 5).min(Duration::from_secs(60));
    // Declared first, dropped last: the cluster drops its databases on it.
    let postgres = PrivatePostgres::start_for_load().await;
    let mut postgres_proxies = BTreeMap::new();
    let mut region_database_urls = BTreeMap::new();
    for region in REGIONS {
        let upstream = format!("127.0.0.1:{}", postgres.port()).parse().unwrap();
        let proxy = FaultProxy::start(upstream)
            .await
            .expect("starting a PostgreSQL proxy");
        region_database_urls.insert(
            region.to_owned(),
            format!("postgres://postgres@{}/postgres", proxy.addr()),
        );
        postgres_proxies.insert(region.to_owned(), proxy);
    }
    // The durable (sqlite) broker is SIGKILLed and restarted; the in-memory one, which would
    // lose everything, is frozen instead (docs/RELIABILITY.md).
    let durable = match std::env::var("SOAK_BROKER").as_deref() {
        Err(_) | Ok("durable") => true,
        Ok("memory") => false,
        Ok(other) => panic!("SOAK_BROKER={other}: durable (the default) or memory"),
    };
    let (mut broker, broker_proxy) = if durable {
        PrivateBroker::start_durable_behind_proxy().await
    } else {
        PrivateBroker::start_behind_proxy().await
    };
    let brokers = broker.brokers();
    eprintln!(
        "[soak] PostgreSQL on port {}, {} broker on {} behind {brokers}, {duration:?} of \
         faults, region cut {cut_for:?}",
        postgres.port(),
        if durable {
            "durable (sqlite)"
        } else {
            "in-memory"
        },
        broker.listener()
    );
    let env = unlimited_commands();
    let mut cluster = Cluster::start_with(
        &REGIONS,
        ClusterOptions {
            database_url: Some(postgres.url()),
            region_database_urls,
            brokers: Some(brokers.clone()),
            env,
            patience: Some(cut_for + Duration::from_secs(120)),
            ..ClusterOptions::default()
        },
    )
    .await;
    cluster.add_process(EU).await;
    let processes: Vec<String> = REGIONS.iter().flat_map(|r| cluster.processes(r)).collect();
    let files = std::env::temp_dir().join(format!("aigo-soak-{seed}-{}", std::process::id()));
    std::fs::create_dir_all(&files).unwrap();
    let schedule = Schedule {
        seed,
        duration,
        cut_for,
        deploy_binary: deploy_binary(&files),
    };

    let cluster = &cluster;
    let workload = Workload::new(cluster, Mix::default());
    let contention = Contention::register(cluster, CONTESTED_MODELS).await;
    let watchers: Vec<Watcher> = processes.iter().map(|p| Watcher::new(p)).collect();
    let reads = Mutex::new(ReadRecord::default());
    let (load_stop, watch_stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let started = Instant::now();

    let watching = futures::future::join_all(watchers.iter().map(|w| w.run(cluster, &watch_stop)));
    let run_and_check = async {
        let load = async {
            tokio::join!(
                workload.run(workers(), usize::MAX, seed, &load_stop),
                run_imports(
                    &workload,
                    cluster,
                    soak_imports::loaders(),
                    soak_imports::batch_lines(),
                    seed.wrapping_add(2000),
                    cut_for + Duration::from_secs(120),
                    &load_stop,
                ),
                futures::future::join_all((0..CONTENDERS).map(|c| {
                    contention.contend(cluster, seed.wrapping_add(1000 + c as u64), &load_stop)
                })),
                futures::future::join_all((0..READERS).map(|r| read_history(
                    cluster,
                    seed + r as u64,
                    &load_stop,
                    &reads
                ))),
            );
        };
        let faults = async {
            let targets = Targets {
                cluster,
                broker: &mut broker,
                broker_proxy: &broker_proxy,
                postgres: &postgres,
                postgres_proxies: &postgres_proxies,
            };
            let log = inject(targets, &schedule).await;
            load_stop.store(true, Ordering::SeqCst);
            log
        };
        let ((), log) = tokio::join!(load, faults);
        let load_time = started.elapsed();
        let checked = check(
            cluster,
            &processes,
            &workload,
            &contention,
            &watchers,
            &brokers,
            &log,
        )
        .await;
        watch_stop.store(true, Ordering::SeqCst);
        (log, load_time, checked)
    };
    let (_, (log, load_time, converged_after)) = tokio::join!(watching, run_and_check);

    let reads = reads.into_inner().unwrap();
    assert!(
        reads.violations.is_empty(),
        "readers were answered: {:?}",
        reads.violations
    );
    let violations = contention.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "contended writes: {violations:?}");
    for watcher in &watchers {
        let record = watcher.record.lock().unwrap();
        assert!(
            record.gaps.is_empty(),
            "{}: stream ids skipped without a snapshot: {:?}",
            watcher.process,
            record.gaps
        );
    }
    assert!(
        log.kills > 0 && log.injected.len() >= 8,
        "not every kind of fault was injected: {:?}",
        log.injected
    );

    eprintln!("[soak] report");
    eprintln!(
        "[soak]   seed {seed}, faults for {duration:?}, load ran {load_time:.1?}, {} command \
         workers, {} importers of {} lines a batch",
        workers(),
        soak_imports::loaders(),
        soak_imports::batch_lines()
    );
    eprintln!(
        "[soak]   commands acknowledged: {} (by kind {:?}), {} models",
        workload.sent(),
        workload.by_kind(),
        workload.models()
    );
    eprintln!(
        "[soak]   contended writes by status: {:?}, repeated keys answered alike: {}",
        contention.by_status.lock().unwrap(),
        contention.repeats_matched.lock().unwrap()
    );
    eprintln!(
        "[soak]   ?at= and counts reads by status (0: no answer): {:?}",
        reads.by_status
    );
    for watcher in &watchers {
        let record = watcher.record.lock().unwrap();
        eprintln!(
            "[soak]   stream on {}: {} connections, {} numbered events, {} snapshots",
            watcher.process, record.connections, record.events, record.snapshots
        );
    }
    eprintln!(
        "[soak]   faults: {} SIGKILLs of node processes; by kind {:?}",
        log.kills, log.injected
    );
    eprintln!("[soak]   converged {converged_after:.1?} after the last fault");
}

/// Everything the soak promises, once the load stopped; returns how long after the last fault
/// the nodes converged.
async fn check(
    cluster: &Cluster,
    processes: &[String],
    workload: &Workload<'_>,
    contention: &Contention,
    watchers: &[Watcher],
    brokers: &str,
    log: &FaultLog,
) -> Duration {
    for name in processes {
        assert!(
            cluster.running(name),
            "{name} exited by itself:\n{}",
            cluster.node(name).process.log_tail()
        );
    }
    // The ledger's models, plus the contested ones as the catalogue has them.
    let expected = || async {
        let mut expected = workload.expected();
        let contested = contested_counts(cluster, EU).await?;
        expected.add(&contested);
        Ok::<_, String>(expected)
    };
    let expected = wait_until_within(
        "every process's counts and catalogue equal the recount of the acknowledged commands",
        CONVERGENCE,
        || async {
            let expected = expected().await?;
            check_converged(cluster, processes, &expected).await?;
            Ok(expected)
        },
    )
    .await;
    let converged_after = log.last_healed.elapsed();
    eprintln!(
        "[soak] converged {converged_after:.1?} after the last fault: total {}, active {}, \
         retired {}, available {:?}",
        expected.total, expected.active, expected.retired, expected.available
    );

    // Every acknowledged event on its region's topic, applied once by a fresh fold.
    let mut acknowledged = workload.acknowledged();
    acknowledged.extend(contention.acknowledged.lock().unwrap().iter().cloned());
    let folds = wait_until_within(
        "every acknowledged event is on its region's topic",
        CONVERGENCE,
        || async {
            let mut folds = Vec::new();
            for region in &cluster.regions {
                let topic = format!("{}.events.{region}", cluster.topic_prefix);
                let region = RegionId::parse(region).unwrap();
                folds.push(TopicFold::read(brokers, &topic, PARTITIONS, &region).await?);
            }
            let on_a_topic =
                |key: &(String, u64)| folds.iter().any(|f| f.applied.contains_key(key));
            let missing: Vec<_> = acknowledged
                .iter()
                .filter(|k| !on_a_topic(k))
                .take(5)
                .collect();
            if missing.is_empty() {
                Ok(folds)
            } else {
                Err(format!("not on any topic (first 5 of them): {missing:?}"))
            }
        },
    )
    .await;
    let mut events = 0;
    for fold in &folds {
        let doubled = fold.doubled(5);
        assert!(doubled.is_empty(), "applied more than once: {doubled:?}");
        assert!(
            fold.out_of_order.is_empty(),
            "events before their stream's predecessor: {:?}",
            fold.out_of_order.iter().take(5).collect::<Vec<_>>()
        );
        events += fold.applied.len();
        eprintln!(
            "[soak] {}: {} records, {} events, {} duplicates dropped by sequence",
            fold.topic,
            fold.records,
            fold.applied.len(),
            fold.duplicates
        );
    }
    eprintln!(
        "[soak] {events} events on the topics, {} acknowledged by commands",
        acknowledged.len()
    );
    let replay = counts_of(folds.iter().flat_map(|f| &f.folds), &cluster.regions);
    assert_eq!(
        replay,
        expected,
        "a fresh fold of the topics vs the recount: {}",
        diff(&replay, &expected)
    );

    for region in &cluster.regions {
        let audit = region_node(cluster.node(region).config_path(), &["audit"]).await;
        assert!(
            audit.success,
            "{region}: audit exited {:?}\nstdout:\n{}\nstderr:\n{}",
            audit.code, audit.stdout, audit.stderr
        );
    }
    wait_until_within(
        "every stream watcher's last counts are the final counts",
        CONVERGENCE,
        || async { watchers.iter().try_for_each(|w| w.saw(&expected)) },
    )
    .await;
    converged_after
}
