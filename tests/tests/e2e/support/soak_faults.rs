//! The soak's fault schedule, drawn from a seed: SIGKILLs of node processes, SIGKILL and
//! restart of the broker and of PostgreSQL, network faults through the proxies in front of
//! them, one region cut off from its database, and one rolling deploy. One fault at a time,
//! each healed before the next calm spell.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::broker::PrivateBroker;
use super::cluster::Cluster;
use super::fault_proxy::FaultProxy;
use super::private_postgres::PrivatePostgres;

/// What the faults act on.
#[derive(Debug)]
pub struct Targets<'a> {
    pub cluster: &'a Cluster,
    pub broker: &'a mut PrivateBroker,
    /// Every Kafka client of every node goes through it.
    pub broker_proxy: &'a FaultProxy,
    pub postgres: &'a PrivatePostgres,
    /// Per region, the proxy its processes reach PostgreSQL through.
    pub postgres_proxies: &'a BTreeMap<String, FaultProxy>,
}

/// When the faults come.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    /// Faults are injected for this long (the load runs as long).
    pub duration: Duration,
    /// How long the region cut lasts (a minute in a long soak).
    pub cut_for: Duration,
    /// The binary every process is rolled to in the middle of the run.
    pub deploy_binary: PathBuf,
}

/// What was injected.
#[derive(Debug)]
pub struct FaultLog {
    pub injected: BTreeMap<&'static str, u64>,
    /// SIGKILLs of node processes.
    pub kills: u64,
    /// When the last fault was healed.
    pub last_healed: Instant,
    /// One line per fault, with the time into the run.
    pub lines: Vec<String>,
}

/// Faults drawn at random between the two scheduled ones, with their weights.
const RANDOM_FAULTS: [(&str, u32); 6] = [
    ("kill", 36),
    ("broker-net", 22),
    ("postgres-net", 18),
    ("broker-kill", 8),
    ("postgres-kill", 8),
    ("graceful-restart", 8),
];
const NET_FAULTS: [&str; 5] = ["reset", "delay", "drop", "cut", "blackhole"];

/// Injects faults for `schedule.duration` (longer if not every kind was injected by then):
/// each random kind once, then kinds drawn by weight; the region cut comes at a quarter of the
/// duration and the rolling deploy at half of it.
pub async fn inject(targets: Targets<'_>, schedule: &Schedule) -> FaultLog {
    let Targets {
        cluster,
        broker,
        broker_proxy,
        postgres,
        postgres_proxies,
    } = targets;
    let mut rng = StdRng::seed_from_u64(schedule.seed ^ 0x50a4);
    let started = Instant::now();
    let mut log = FaultLog {
        injected: BTreeMap::new(),
        kills: 0,
        last_healed: Instant::now(),
        lines: Vec::new(),
    };
    let (mut cut_done, mut deploy_done) = (false, false);
    // Every kind once first (in a seeded order), so even a short run injects each of them.
    let mut first_round: Vec<&'static str> = RANDOM_FAULTS.iter().map(|(kind, _)| *kind).collect();
    first_round.shuffle(&mut rng);
    let processes: Vec<String> = cluster
        .regions
        .iter()
        .flat_map(|r| cluster.processes(r))
        .collect();
    // A short run goes on until every kind was injected.
    while started.elapsed() < schedule.duration
        || !first_round.is_empty()
        || !cut_done
        || !deploy_done
    {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3000))).await;
        let at = started.elapsed();
        let kind: &'static str = if !cut_done && at >= schedule.duration / 4 {
            cut_done = true;
            "region-cut"
        } else if !deploy_done && at >= schedule.duration / 2 {
            deploy_done = true;
            "rolling-deploy"
        } else if let Some(kind) = first_round.pop() {
            kind
        } else {
            RANDOM_FAULTS
                .choose_weighted(&mut rng, |(_, weight)| *weight)
                .unwrap()
                .0
        };
        let spell = Duration::from_millis(rng.random_range(500..4000));
        let what = match kind {
            "kill" => {
                let name = processes.choose(&mut rng).unwrap();
                cluster.kill(name);
                log.kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..2000))).await;
                cluster.restart(name).await;
                format!("SIGKILL {name}, restarted")
            }
            "graceful-restart" => {
                let name = processes.choose(&mut rng).unwrap();
                let status = cluster.stop(name).await;
                cluster.restart(name).await;
                format!("SIGTERM {name} ({status}), restarted")
            }
            "broker-kill" if broker.durable() => {
                broker.kill();
                tokio::time::sleep(spell).await;
                broker.restart().await;
                format!("SIGKILL broker, down {spell:.1?}")
            }
            "broker-kill" => {
                broker.freeze(true);
                tokio::time::sleep(spell).await;
                broker.freeze(false);
                format!("broker frozen (SIGSTOP) for {spell:.1?}")
            }
            "postgres-kill" => {
                postgres.kill_server().await;
                tokio::time::sleep(spell).await;
                postgres.start_server().await;
                format!("SIGKILL PostgreSQL, down {spell:.1?}")
            }
            "broker-net" => {
                let fault = net_fault(broker_proxy, &mut rng, spell).await;
                format!("broker network: {fault}")
            }
            "postgres-net" => {
                let region = cluster.regions.choose(&mut rng).unwrap();
                let fault = net_fault(&postgres_proxies[region], &mut rng, spell).await;
                format!("{region} PostgreSQL network: {fault}")
            }
            "region-cut" => {
                let region = cluster.regions.choose(&mut rng).unwrap();
                let proxy = &postgres_proxies[region];
                proxy.drop_connections();
                proxy.cut();
                tokio::time::sleep(schedule.cut_for).await;
                proxy.heal();
                format!(
                    "{region} cut off from PostgreSQL for {:.1?}",
                    schedule.cut_for
                )
            }
            _ => {
                // One process at a time: the others keep serving.
                for name in &processes {
                    let status = cluster.stop(name).await;
                    cluster.set_binary(name, schedule.deploy_binary.clone());
                    cluster.restart(name).await;
                    eprintln!("[soak] deployed {name} (stopped: {status})");
                }
                format!(
                    "rolling deploy of {} processes to {}",
                    processes.len(),
                    schedule.deploy_binary.display()
                )
            }
        };
        log.last_healed = Instant::now();
        *log.injected.entry(kind).or_default() += 1;
        let line = format!("{:>7.1?} {what}", at);
        eprintln!("[soak] {line}");
        log.lines.push(line);
    }
    log
}

/// One network fault on `proxy` for `spell` (a drop is instant), healed afterwards.
async fn net_fault(proxy: &FaultProxy, rng: &mut StdRng, spell: Duration) -> String {
    let kind = *NET_FAULTS.choose(rng).unwrap();
    let what = match kind {
        "reset" => {
            let bytes = rng.random_range(64..8192);
            proxy.reset_after(bytes);
            tokio::time::sleep(spell).await;
            format!("connections reset after {bytes} bytes for {spell:.1?}")
        }
        "delay" => {
            let delay = Duration::from_millis(rng.random_range(20..400));
            proxy.latency(delay);
            tokio::time::sleep(spell).await;
            format!("{delay:?} latency for {spell:.1?}")
        }
        "drop" => format!("{} connections dropped", proxy.drop_connections()),
        "cut" => {
            proxy.drop_connections();
            proxy.cut();
            tokio::time::sleep(spell).await;
            format!("cut for {spell:.1?}")
        }
        _ => {
            proxy.blackhole();
            tokio::time::sleep(spell).await;
            format!("blackholed for {spell:.1?}")
        }
    };
    proxy.heal();
    what
}
