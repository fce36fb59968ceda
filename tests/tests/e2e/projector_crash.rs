//! The regional projector as a separate process (the real `region-node` binary) against the
//! real broker and PostgreSQL: SIGKILLed at random points, fed duplicates, and sharing its
//! partitions with a second process. Whatever happens, the committed checkpoints end equal to a
//! from-scratch replay of the topic, byte for byte, and the counts equal a recount of the
//! generated models.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use domain::{EventEnvelope, RegionId};
use kafka_client::KafkaClient;
use outbox_relay::{Provisioning, TopicSpec, ensure_topics};
use projector::{ActorId, CountSnapshot, FoldStats, PartitionFold};
use projector_runtime::exchange::merge_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;
use tokio::time::Instant;

use crate::support::events::{self, Generator, Outgoing, Record};
use crate::support::kafka::{brokers, unique_topic};
use crate::support::process::{NodeProcess, TURN};
use crate::support::seed_from_env;

const REGION: &str = "eu-west";
const PARTITIONS: i32 = 3;
const ADMIN_TOKEN: &str = "crash-test-admin-token-0123456789";
/// A run that stops moving for this long has failed (progress, not total time, is bounded).
const STALL: Duration = Duration::from_secs(90);

fn seed() -> u64 {
    seed_from_env("PROJECTOR_CRASH_SEED", "the same streams and kill plan")
}

// ---------------------------------------------------------------------------------------------
// The node binary and its processes
// ---------------------------------------------------------------------------------------------

/// A test environment: own database (the sqlx::test one), topic prefix, scratch dir.
struct Env {
    pool: PgPool,
    database_url: String,
    prefix: String,
    topic: String,
    region: RegionId,
    dir: PathBuf,
}

impl Env {
    async fn new(pool: PgPool, test: &str) -> Self {
        let name: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&pool)
            .await
            .unwrap();
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let (base, query) = base
            .split_once('?')
            .map_or((base.as_str(), None), |(b, q)| (b, Some(q)));
        let (server, _) = base.rsplit_once('/').unwrap();
        let database_url = match query {
            Some(query) => format!("{server}/{name}?{query}"),
            None => format!("{server}/{name}"),
        };
        let prefix = unique_topic(&format!("crash-{test}"));
        let topic = format!("{prefix}.events.{REGION}");
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!(
            "{test}: topic {topic}, database {name}, node logs in {}",
            dir.display()
        );
        ensure_topics(
            &KafkaClient::new(brokers()),
            &[TopicSpec::new(topic.clone(), PARTITIONS).events()],
            Duration::from_secs(10),
            Provisioning::Create,
        )
        .await
        .unwrap();
        Self {
            pool,
            database_url,
            prefix,
            topic,
            region: RegionId::parse(REGION).unwrap(),
            dir,
        }
    }

    /// The node's configuration file, as an operator would write it.
    fn config_file(&self) -> PathBuf {
        let path = self.dir.join("node.toml");
        if !path.exists() {
            let config = format!(
                r#"region = "{REGION}"
regions = ["{REGION}"]

[http]
# The OS picks a free port at every start.
listen = "127.0.0.1:0"

[database]
url = "{url}"
max_connections = 5
acquire_timeout_ms = 3000

[kafka]
brokers = "{brokers}"
topic_prefix = "{prefix}"
partitions = {PARTITIONS}
message_timeout_ms = 10000

[projector]
commit_every = 1000
commit_interval_ms = 50
heartbeat_ms = 500
stale_after_ms = 5000
withdrawal_interval_ms = 5000

[[tokens]]
name = "admin"
secret = "{ADMIN_TOKEN}"
scopes = ["admin"]
"#,
                url = self.database_url,
                brokers = brokers(),
                prefix = self.prefix,
            );
            std::fs::write(&path, config).unwrap();
        }
        path
    }

    /// A started node process of this test's configuration.
    fn node(&self, name: &str) -> NodeProcess {
        let env = [
            (
                "RUST_LOG",
                "warn,projector=info,projector_runtime=info,region_node=info",
            ),
            ("NO_COLOR", "1"),
        ];
        let node = NodeProcess::new(
            name,
            self.config_file(),
            self.dir.join(format!("{name}.log")),
            env.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec(),
        );
        node.spawn();
        node
    }

    async fn next_offsets(&self) -> BTreeMap<i32, i64> {
        events::next_offsets(&self.pool, &self.topic).await
    }

    async fn folded(&self) -> i64 {
        self.next_offsets().await.values().sum()
    }

    async fn produce(&self, producer: &FutureProducer, records: &[Outgoing]) -> Vec<(i32, i64)> {
        events::produce(producer, &self.topic, PARTITIONS, records).await
    }

    async fn read(&self) -> Vec<Vec<Record>> {
        events::read_partitions(&brokers(), &self.topic, PARTITIONS).await
    }

    /// Waits until every partition's checkpoint stands at `ends[p]` (records in the partition).
    /// Fails only if the checkpoints stop moving for [`STALL`] without getting there.
    async fn wait_for_checkpoints(&self, ends: &[i64]) {
        let expected: BTreeMap<i32, i64> = (0..PARTITIONS)
            .zip(ends.iter().copied())
            .filter(|(_, end)| *end > 0)
            .collect();
        let mut last = BTreeMap::new();
        let mut moved = Instant::now();
        let mut reported = Instant::now();
        loop {
            let now = self.next_offsets().await;
            if now == expected {
                return;
            }
            if now != last {
                last = now;
                moved = Instant::now();
            }
            if reported.elapsed() > Duration::from_secs(5) {
                eprintln!("  checkpoints {last:?}, waiting for {expected:?}");
                reported = Instant::now();
            }
            assert!(
                moved.elapsed() < STALL,
                "checkpoints stuck at {last:?}, expected {expected:?}; logs in {}",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end state: every checkpoint equals the replay of its partition from offset zero (next
    /// offset and state bytes), and the counts of the persisted states, of the replay and of
    /// the merged actor states all equal `expected`. Returns the replay's fold statistics.
    async fn verify(&self, records: &[Vec<Record>], expected: &CountSnapshot) -> Vec<FoldStats> {
        let checkpoints = events::checkpoints(&self.pool, &self.region, &self.topic).await;
        let mut restored = Vec::new();
        let mut replayed = Vec::new();
        for (partition, records) in (0..PARTITIONS).zip(records) {
            for (index, record) in records.iter().enumerate() {
                assert_eq!(
                    record.offset,
                    i64::try_from(index).unwrap(),
                    "partition {partition}: offsets are not contiguous from 0"
                );
            }
            let replay = events::replay(&self.region, partition, records);
            let count = i64::try_from(records.len()).unwrap();
            let Some((next_offset, state)) = checkpoints.get(&partition) else {
                assert_eq!(
                    count, 0,
                    "partition {partition} has records but no checkpoint"
                );
                replayed.push(replay);
                continue;
            };
            assert_eq!(
                *next_offset, count,
                "partition {partition}: checkpoint offset vs records"
            );
            let bytes = replay.snapshot().unwrap();
            assert!(
                *state == bytes,
                "partition {partition}: the persisted state ({} bytes) differs from the replay's \
                 ({} bytes), first at byte {:?}",
                state.len(),
                bytes.len(),
                state.iter().zip(&bytes).position(|(a, b)| a != b)
            );
            let fold = PartitionFold::restore(state).unwrap();
            assert_eq!(
                fold.actor(),
                &ActorId::new(self.region.clone(), partition),
                "checkpoint of partition {partition} holds another actor"
            );
            restored.push(fold);
            replayed.push(replay);
        }
        let persisted = CountSnapshot::sum(restored.iter().map(PartitionFold::counters));
        let replay_counts = CountSnapshot::sum(replayed.iter().map(PartitionFold::counters));
        let merged = merge_all(restored.iter().map(PartitionFold::state)).totals();
        assert_eq!(persisted, replay_counts, "persisted counts vs replay");
        assert_eq!(merged, persisted, "merged actor states vs persisted counts");
        assert_eq!(
            persisted, *expected,
            "persisted counts vs the generator's recount"
        );
        replayed.iter().map(PartitionFold::stats).collect()
    }

    /// After a passed test: deletes its topics (the test broker keeps everything in memory) and
    /// the node logs (`KEEP_NODE_LOGS=1` keeps them).
    async fn cleanup(&self) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .unwrap();
        let exchange = format!("{}.counter-states", self.prefix);
        let deleted = admin
            .delete_topics(&[&self.topic, &exchange], &AdminOptions::new())
            .await;
        if let Err(error) = deleted {
            eprintln!("  topics of {} not deleted: {error}", self.prefix);
        }
        if std::env::var_os("KEEP_NODE_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Waits until the checkpoints add up to `target` records at least.
async fn wait_until_folded(env: &Env, node: &NodeProcess, target: i64) {
    let deadline = Instant::now() + STALL;
    while env.folded().await < target {
        node.assert_running();
        assert!(
            Instant::now() < deadline,
            "checkpoints never reached {target} after start {}; logs in {}",
            node.starts(),
            env.dir.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records per partition, as the producer's acknowledgements say.
fn ends_from(delivered: &[(i32, i64)]) -> Vec<i64> {
    let mut ends = vec![0_i64; usize::try_from(PARTITIONS).unwrap()];
    for (partition, offset) in delivered {
        let end = &mut ends[usize::try_from(*partition).unwrap()];
        *end = (*end).max(offset + 1);
    }
    ends
}

fn lengths(records: &[Vec<Record>]) -> Vec<i64> {
    records
        .iter()
        .map(|r| i64::try_from(r.len()).unwrap())
        .collect()
}

fn outgoing(envelopes: &[EventEnvelope]) -> Vec<Outgoing> {
    envelopes.iter().map(Outgoing::from).collect()
}

/// The node's log lines this test reads: `(true, p)` for each "partition loaded" line,
/// `(false, p)` for "partition revoked", in its log from byte `from` on.
fn partition_log(node: &NodeProcess, from: usize) -> Vec<(bool, i32)> {
    let text = node.log_text();
    text.get(from..)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let loaded = if line.contains("projector: partition loaded") {
                true
            } else if line.contains("projector: partition handed over") {
                false
            } else {
                return None;
            };
            let (_, rest) = line.split_once(" partition=")?;
            let partition = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            Some((loaded, partition))
        })
        .collect()
}

/// Partitions the process logged as loaded, in its log from byte `from` on.
fn loaded_partitions(node: &NodeProcess, from: usize) -> BTreeSet<i32> {
    partition_log(node, from)
        .into_iter()
        .filter_map(|(loaded, partition)| loaded.then_some(partition))
        .collect()
}

/// Partitions the process holds according to its log: loaded and not revoked since.
fn owned_partitions(node: &NodeProcess) -> BTreeSet<i32> {
    let mut owned = BTreeSet::new();
    for (loaded, partition) in partition_log(node, 0) {
        if loaded {
            owned.insert(partition);
        } else {
            owned.remove(&partition);
        }
    }
    owned
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// 100 000 legal events produced in chunks while one `region-node` process is SIGKILLed at
/// random points and restarted: the checkpoints end exactly where a replay from offset zero
/// does, byte for byte, and the counts equal the generator's recount.
#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn crash_consistency(pool: PgPool) {
    const EVENTS: usize = 100_000;
    // At least 10; `PROJECTOR_CRASH_KILLS` asks for more.
    let kills: usize = std::env::var("PROJECTOR_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(10)
        .max(10);
    let _turn = TURN.lock().await;
    let started = Instant::now();
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let env = Env::new(pool, "kill").await;
    let mut generator = Generator::new(REGION, seed);
    let history = outgoing(&generator.take(EVENTS));
    eprintln!(
        "generated {EVENTS} events for {} models in {:.1?}",
        generator.models(),
        started.elapsed()
    );
    let producer = events::producer(&brokers());
    // One chunk before the first start and one at each restart: the node always has a backlog
    // when it comes up, so kills land while it folds and commits.
    let chunks: Vec<&[Outgoing]> = history.chunks(EVENTS.div_ceil(kills + 1)).collect();
    let mut delivered = Vec::with_capacity(EVENTS);
    delivered.extend(env.produce(&producer, chunks[0]).await);
    let node = env.node("node");
    let mut kills_with_backlog = 0;
    for kill in 0..kills {
        let before = env.folded().await;
        let produced = i64::try_from(delivered.len()).unwrap();
        // Where this kill lands, at random: a random delay after the start (start-up,
        // partition claims and load, first batches), a random delay after the run's first commit,
        // or the moment the checkpoints pass a random point of the backlog (mid-stream).
        let how = match rng.random_range(0..100) {
            0..25 => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..6_000))).await;
                "random delay after start"
            }
            25..60 => {
                wait_until_folded(&env, &node, before + 1).await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..1_500))).await;
                "random delay after a commit"
            }
            _ => {
                let target = before + rng.random_range(1..=(produced - before).max(1));
                wait_until_folded(&env, &node, target).await;
                "random point of the backlog"
            }
        };
        node.assert_running();
        node.kill_now();
        let folded = env.folded().await;
        if folded < produced {
            kills_with_backlog += 1;
        }
        eprintln!(
            "kill {:>2} at {:>5.1?}: checkpoints {folded:>6} (+{:>5}) of {produced:>6} produced; \
             {how}",
            kill + 1,
            started.elapsed(),
            folded - before
        );
        // The next chunk goes out while the node restarts.
        let chunk = chunks.get(kill + 1).copied().unwrap_or_default();
        node.spawn();
        delivered.extend(env.produce(&producer, chunk).await);
    }
    for chunk in chunks.iter().skip(kills + 1) {
        delivered.extend(env.produce(&producer, chunk).await);
    }
    assert_eq!(delivered.len(), EVENTS);

    let records = env.read().await;
    assert_eq!(
        lengths(&records),
        ends_from(&delivered),
        "records read to EOF vs acknowledged"
    );
    env.wait_for_checkpoints(&lengths(&records)).await;
    node.assert_running();
    node.kill_now();
    let caught_up = started.elapsed();

    let stats = env.verify(&records, &generator.recount()).await;
    let applied: u64 = stats.iter().map(|s| s.applied).sum();
    assert_eq!(
        applied, EVENTS as u64,
        "every generated event is legal: {stats:?}"
    );
    eprintln!(
        "crash_consistency: {EVENTS} events, {kills} SIGKILLs ({kills_with_backlog} with a \
         backlog), {} starts; caught up after {caught_up:.1?}, verified after {:.1?}; \
         counts {:?}",
        node.starts(),
        started.elapsed(),
        generator.recount()
    );
    env.cleanup().await;
}

/// Re-published events (same envelopes, new offsets), also below where a restarted process
/// resumes (it keeps no position in Kafka, only its checkpoints): the counts do not move and
/// the checkpoints still equal the replay.
#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn duplicate_delivery(pool: PgPool) {
    const EVENTS: usize = 8_000;
    let _turn = TURN.lock().await;
    let started = Instant::now();
    let seed = seed();
    let env = Env::new(pool, "dup").await;
    let mut generator = Generator::new(REGION, seed);
    let history = outgoing(&generator.take(EVENTS));
    let expected = generator.recount();
    let producer = events::producer(&brokers());
    let mut delivered = env.produce(&producer, &history).await;
    let node = env.node("node");

    let records = env.read().await;
    assert_eq!(lengths(&records), ends_from(&delivered));
    env.wait_for_checkpoints(&lengths(&records)).await;
    env.verify(&records, &expected).await;

    // 1. A slice of every partition published again: the same bytes at new offsets.
    let mut again: Vec<Outgoing> = Vec::new();
    for partition in &records {
        let from = partition.len() / 3;
        let to = (from + 700).min(partition.len());
        again.extend(partition[from..to].iter().map(Record::outgoing));
    }
    let republished = again.len();
    delivered.extend(env.produce(&producer, &again).await);
    let records = env.read().await;
    assert_eq!(lengths(&records), ends_from(&delivered));
    env.wait_for_checkpoints(&lengths(&records)).await;
    let stats = env.verify(&records, &expected).await;
    let duplicates: u64 = stats.iter().map(|s| s.duplicates).sum();
    assert_eq!(duplicates, republished as u64, "{stats:?}");
    node.assert_running();

    // 2. Killed; the oldest events (registrations included) published again; restarted.
    node.kill_now();
    let mut again: Vec<Outgoing> = Vec::new();
    for partition in &records {
        let to = 400.min(partition.len());
        again.extend(partition[..to].iter().map(Record::outgoing));
    }
    let republished_2 = again.len();
    delivered.extend(env.produce(&producer, &again).await);
    node.spawn();
    let records = env.read().await;
    assert_eq!(lengths(&records), ends_from(&delivered));
    env.wait_for_checkpoints(&lengths(&records)).await;
    let stats = env.verify(&records, &expected).await;
    let duplicates: u64 = stats.iter().map(|s| s.duplicates).sum();
    assert_eq!(
        duplicates,
        (republished + republished_2) as u64,
        "{stats:?}"
    );
    node.assert_running();
    node.kill_now();
    eprintln!(
        "duplicate_delivery: {EVENTS} events, {} duplicates re-published; {:.1?}",
        republished + republished_2,
        started.elapsed()
    );
    env.cleanup().await;
}

/// Two processes of the same region (one database) share the partitions; one is
/// SIGKILLed mid-stream and the survivor takes its partitions over: the checkpoints end equal
/// to the replay and the counts are exact.
#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn two_projectors_share_partitions(pool: PgPool) {
    const EVENTS: usize = 30_000;
    let _turn = TURN.lock().await;
    let started = Instant::now();
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x2);
    let env = Env::new(pool, "two").await;
    let mut generator = Generator::new(REGION, seed);
    let history = outgoing(&generator.take(EVENTS));
    let producer = events::producer(&brokers());
    let mut first = env.node("first");
    let mut second = env.node("second");
    // Wait until the two have shared the partitions out.
    let deadline = Instant::now() + STALL;
    while owned_partitions(&first).is_empty() || owned_partitions(&second).is_empty() {
        first.assert_running();
        second.assert_running();
        assert!(
            Instant::now() < deadline,
            "both nodes never owned partitions; logs in {}",
            env.dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "both own partitions after {:.1?}: first {:?}, second {:?}",
        started.elapsed(),
        owned_partitions(&first),
        owned_partitions(&second)
    );

    let (before, after) = history.split_at(EVENTS / 2);
    let mut delivered = env.produce(&producer, before).await;
    // Killed when the checkpoints pass a random point of the first half: mid-stream.
    let target = rng.random_range(1..=i64::try_from(before.len()).unwrap());
    let deadline = Instant::now() + STALL;
    while env.folded().await < target {
        assert!(Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (victim, survivor) = if rng.random_bool(0.5) {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };
    victim.assert_running();
    survivor.assert_running();
    let victim_owned = owned_partitions(victim);
    assert!(!victim_owned.is_empty(), "the victim owns no partition");
    let log_mark = survivor.log_len();
    victim.kill_now();
    eprintln!(
        "killed {} (owning {victim_owned:?}) at {:.1?} with {} of {} folded",
        victim.name(),
        started.elapsed(),
        env.folded().await,
        delivered.len()
    );
    delivered.extend(env.produce(&producer, after).await);

    let records = env.read().await;
    assert_eq!(lengths(&records), ends_from(&delivered));
    env.wait_for_checkpoints(&lengths(&records)).await;
    survivor.assert_running();
    let taken_over = loaded_partitions(survivor, log_mark);
    assert!(
        taken_over.is_superset(&victim_owned),
        "the survivor loaded {taken_over:?} after the kill, the victim had {victim_owned:?}"
    );
    survivor.kill_now();
    let stats = env.verify(&records, &generator.recount()).await;
    let applied: u64 = stats.iter().map(|s| s.applied).sum();
    assert_eq!(applied, EVENTS as u64, "{stats:?}");
    eprintln!(
        "two_projectors_share_partitions: {EVENTS} events; {} killed, {} took over {taken_over:?}; \
         {:.1?}",
        victim.name(),
        survivor.name(),
        started.elapsed()
    );
    env.cleanup().await;
}
