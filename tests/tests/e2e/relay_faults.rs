//! End to end through network faults: region nodes (separate processes) on a private in-memory
//! broker reached only through a fault-injecting proxy (relay producers, projectors, followers
//! and the state exchange alike), 10,000 commands over HTTP while the proxy resets produce
//! requests mid-batch, delays, drops and cuts connections on a schedule drawn from a printed
//! seed. After the last fault every node's counts and catalogue equal the recount of the
//! acknowledged commands, and `region-node audit` passes on every node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::support::broker::PrivateBroker;
use crate::support::cli::region_node;
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::fault_proxy::FaultProxy;
use crate::support::seed_from_env;
use crate::support::workload::{Mix, Workload, check_converged};
use crate::support::{AP, EU, US, wait_until};

/// Commands sent through the faults (`RELAY_FAULTS_COMMANDS` overrides it for a quick run).
const COMMANDS: usize = 10_000;
/// Commands in flight at once.
const IN_FLIGHT: usize = 24;
const REGIONS: [&str; 3] = [EU, US, AP];
/// The relay's `message.timeout.ms` in this test: shorter than the longer cuts and blackholes,
/// so a fault fails deliveries in the middle of a batch instead of being ridden out by
/// librdkafka's retries.
const MESSAGE_TIMEOUT_MS: u64 = 2000;

fn seed() -> u64 {
    seed_from_env("RELAY_FAULTS_SEED", "the same load and fault schedule")
}

fn commands() -> usize {
    std::env::var("RELAY_FAULTS_COMMANDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(COMMANDS)
}

/// The kinds of fault the schedule draws from.
const FAULTS: [&str; 5] = ["reset", "delay", "drop", "cut", "blackhole"];

/// Faults a run injects at least: a load that finishes early (a fast machine) is followed by
/// faults while the relays, projectors and followers still catch up, so every run faults enough.
const MIN_FAULTS: u64 = 6;

/// Injects faults until `done` and at least [`MIN_FAULTS`] were injected: a calm spell, then one
/// fault (healed after its spell), again. Returns how many of each kind were injected and when
/// the last one was healed.
async fn inject_faults(
    proxy: &FaultProxy,
    seed: u64,
    done: &AtomicBool,
) -> (BTreeMap<&'static str, u64>, Instant) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa17);
    let mut injected: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut healed = Instant::now();
    loop {
        let calm = Duration::from_millis(rng.random_range(300..1500));
        tokio::time::sleep(calm).await;
        if done.load(Ordering::SeqCst) && injected.values().sum::<u64>() >= MIN_FAULTS {
            break;
        }
        let kind = FAULTS[rng.random_range(0..FAULTS.len())];
        let spell = Duration::from_millis(rng.random_range(500..3500));
        match kind {
            // The next few hundred bytes of every open connection pass, then it is closed: a
            // produce request in flight is cut in the middle of its batch.
            "reset" => {
                proxy.reset_after(rng.random_range(64..8192));
                tokio::time::sleep(spell).await;
            }
            "delay" => {
                proxy.latency(Duration::from_millis(rng.random_range(20..400)));
                tokio::time::sleep(spell).await;
            }
            "drop" => {
                proxy.drop_connections();
            }
            "cut" => {
                proxy.drop_connections();
                proxy.cut();
                tokio::time::sleep(spell).await;
            }
            _ => {
                proxy.blackhole();
                tokio::time::sleep(spell).await;
            }
        }
        proxy.heal();
        healed = Instant::now();
        *injected.entry(kind).or_default() += 1;
    }
    proxy.heal();
    (injected, healed)
}

/// The lines of a node's `/metrics` that show what the faults did to its relay and projector.
async fn fault_metrics(cluster: &Cluster, node: &str) -> Vec<String> {
    let body = cluster.get(node, "/metrics", &[]).await.body;
    let text = body.as_str().unwrap_or_default();
    text.lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.starts_with("aigo_outbox_relay_errors_total")
                    || l.starts_with("aigo_outbox_reconciled_total")
                    || l.starts_with("aigo_outbox_published_total")
                    || l.starts_with("aigo_projector_events_folded_total"))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_survive_repeated_network_faults() {
    let seed = seed();
    let commands = commands();
    let (broker, proxy) = PrivateBroker::start_behind_proxy().await;
    eprintln!(
        "broker listens on {}, advertises the proxy at {}",
        broker.listener(),
        broker.brokers()
    );
    let env = [
        // 10,000 commands from one token: no rate limit in the way.
        ("AIGO_HTTP__COMMANDS_PER_SECOND", "1000000"),
        ("AIGO_HTTP__COMMAND_BURST", "1000000"),
        (
            "AIGO_KAFKA__MESSAGE_TIMEOUT_MS",
            &MESSAGE_TIMEOUT_MS.to_string(),
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let cluster = Cluster::start_with(
        &REGIONS,
        ClusterOptions {
            brokers: Some(broker.brokers()),
            env,
            ..ClusterOptions::default()
        },
    )
    .await;
    // Faults hold every catalogue follower back too: availability stays in the home region, so
    // no command waits on another region's catalogue (cross-region serving is tested without
    // faults in convergence.rs and pg_restart.rs).
    let mix = Mix {
        own_region_availability: true,
        ..Mix::default()
    };
    let workload = Workload::new(&cluster, mix);
    let done = AtomicBool::new(false);
    let never = AtomicBool::new(false);

    let started = Instant::now();
    let load = async {
        workload.run(IN_FLIGHT, commands, seed, &never).await;
        done.store(true, Ordering::SeqCst);
    };
    let ((), (injected, last_fault)) = tokio::join!(load, inject_faults(&proxy, seed, &done));
    let load_time = started.elapsed();
    let stats = proxy.stats();
    eprintln!(
        "{} commands acknowledged in {load_time:.1?} ({:.0}/s), {} models; by kind {:?}",
        workload.sent(),
        workload.sent() as f64 / load_time.as_secs_f64(),
        workload.models(),
        workload.by_kind()
    );
    eprintln!(
        "faults injected: {injected:?} (total {}); proxy: {stats:?}",
        injected.values().sum::<u64>()
    );
    assert_eq!(workload.sent(), commands);
    assert!(
        injected.values().sum::<u64>() >= MIN_FAULTS,
        "too few faults for a fault test: {injected:?}"
    );

    let nodes: Vec<String> = cluster.regions.clone();
    let expected = workload.expected();
    let converged = wait_until(
        "every node's counts and catalogue equal the recount of the acknowledged commands",
        || check_converged(&cluster, &nodes, &expected),
    )
    .await;
    let () = converged;
    let to_converge = last_fault.elapsed();
    eprintln!(
        "converged {to_converge:.1?} after the last fault: total {}, active {}, retired {}, \
         available {:?}",
        expected.total, expected.active, expected.retired, expected.available
    );
    for node in &nodes {
        eprintln!("{node}: {:?}", fault_metrics(&cluster, node).await);
    }

    for node in &nodes {
        let audit = region_node(cluster.node(node).config_path(), &["audit"]).await;
        assert!(
            audit.success,
            "{node}: audit exited {:?}\nstdout:\n{}\nstderr:\n{}",
            audit.code, audit.stdout, audit.stderr
        );
    }
    eprintln!(
        "figures: {} commands, {} faults {injected:?}, converged {to_converge:.1?} after the last \
         fault, run {:.1?}",
        workload.sent(),
        injected.values().sum::<u64>(),
        started.elapsed()
    );
    drop(cluster);
    drop(proxy);
    drop(broker);
}

/// The proxy itself, against an echo server: it forwards, delays, closes a connection after
/// the bytes it was told to let through, drops every connection, refuses while cut.
#[tokio::test]
async fn fault_proxy_injects_what_it_is_told() {
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = echo.local_addr().unwrap();
    // Everything the upstream received, in order.
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = echo.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut buf = [0_u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let deadline = Duration::from_secs(5);

    // Pass-through.
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    a.write_all(b"hello").await.unwrap();
    let mut buf = [0_u8; 5];
    tokio::time::timeout(deadline, a.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"hello");

    // Latency: an echo takes two delayed chunks.
    proxy.latency(Duration::from_millis(150));
    let t = Instant::now();
    a.write_all(b"slow!").await.unwrap();
    tokio::time::timeout(deadline, a.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    proxy.heal();

    // Reset after 3 more client->server bytes: the upstream gets "abc" and the connection
    // closes on both sides (the echo may or may not make it back first).
    proxy.reset_after(3);
    a.write_all(b"abcdef").await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(deadline, a.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(b"abc".starts_with(&got), "{got:?}");
    assert_eq!(proxy.stats().reset, 1);
    wait_until(
        "the upstream got exactly the bytes before the reset",
        || {
            let received = received.lock().unwrap().clone();
            async move {
                (received == b"helloslow!abc")
                    .then_some(())
                    .ok_or(format!("received {:?}", String::from_utf8_lossy(&received)))
            }
        },
    )
    .await;
    proxy.heal();

    // A connection opened after the reset was armed is not affected; drop closes it.
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    b.write_all(b"x").await.unwrap();
    let mut one = [0_u8; 1];
    tokio::time::timeout(deadline, b.read_exact(&mut one))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(proxy.drop_connections(), 1);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(deadline, b.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(read.is_err() || rest.is_empty(), "{read:?} {rest:?}");

    // Blackhole: nothing comes back until healed, then it does.
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.blackhole();
    c.write_all(b"z").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), c.read_exact(&mut one))
            .await
            .is_err()
    );
    proxy.heal();
    tokio::time::timeout(deadline, c.read_exact(&mut one))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&one, b"z");

    // Cut: a new connection is closed at once.
    proxy.cut();
    let mut d = TcpStream::connect(proxy.addr()).await.unwrap();
    let _ = d.write_all(b"q").await;
    let mut nothing = Vec::new();
    let read = tokio::time::timeout(deadline, d.read_to_end(&mut nothing))
        .await
        .unwrap();
    assert!(read.is_err() || nothing.is_empty(), "{read:?} {nothing:?}");
    assert_eq!(proxy.stats().refused, 1);
    proxy.heal();
    let stats = proxy.stats();
    assert_eq!(stats.dropped, 1);
    assert!(
        stats.delayed_chunks >= 2 && stats.held_chunks >= 1,
        "{stats:?}"
    );
}
