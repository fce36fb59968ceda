//! Partition claims on a real PostgreSQL: the processes present share a reader's partitions
//! evenly and never hold one twice; a process that goes away (its session closed, or killed
//! by the server) leaves its partitions to the others at their next review, and one whose
//! session was killed or stopped answering (a fault proxy swallowing its traffic) learns that
//! it holds nothing any more.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use projector_runtime::claims::{PartitionClaims, PartitionKey};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::support::fault_proxy::FaultProxy;

const READER: &str = "projector-eu-west";

fn partitions(topic: &str, count: i32) -> BTreeSet<PartitionKey> {
    (0..count).map(|p| (topic.to_owned(), p)).collect()
}

/// One review round as a reader runs it: give up the surplus, then take a share.
async fn round(claims: &mut PartitionClaims, all: &BTreeSet<PartitionKey>) -> Vec<PartitionKey> {
    let review = claims.review(all).await;
    claims.release(&review.surplus).await;
    let mut lost = review.lost;
    lost.extend(review.surplus);
    claims.claim(all).await;
    lost
}

fn assert_disjoint_cover(a: &PartitionClaims, b: &PartitionClaims, all: &BTreeSet<PartitionKey>) {
    assert!(
        a.held().is_disjoint(b.held()),
        "a partition held twice: {:?} and {:?}",
        a.held(),
        b.held()
    );
    let union: BTreeSet<PartitionKey> = a.held().union(b.held()).cloned().collect();
    assert_eq!(&union, all, "some partition has no reader");
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn processes_share_partitions_evenly_and_take_over_those_of_one_that_goes(pool: PgPool) {
    let all = partitions("model-events-eu-west", 3);
    let mut first = PartitionClaims::new(pool.clone(), READER);
    round(&mut first, &all).await;
    assert_eq!(first.held(), &all, "a lone process reads every partition");

    // A second process arrives: the first hands one over, the second takes it.
    let mut second = PartitionClaims::new(pool.clone(), READER);
    round(&mut second, &all).await;
    assert!(
        second.held().is_empty(),
        "nothing is free until the first hands over"
    );
    let handed = round(&mut first, &all).await;
    assert_eq!(handed.len(), 1, "the first keeps its share of 2 of 3");
    round(&mut second, &all).await;
    assert_disjoint_cover(&first, &second, &all);
    assert_eq!((first.held().len(), second.held().len()), (2, 1));

    // Rounds in any order keep it so.
    for _ in 0..3 {
        assert!(round(&mut second, &all).await.is_empty());
        assert!(round(&mut first, &all).await.is_empty());
        assert_disjoint_cover(&first, &second, &all);
    }

    // Another reader's claims are its own: the same topic, another name.
    let mut other = PartitionClaims::new(pool.clone(), "catalogue-eu-west");
    round(&mut other, &all).await;
    assert_eq!(other.held(), &all);

    // The first process goes (its session closes): the second takes everything.
    drop(first);
    let mut rounds = 0;
    while second.held() != &all {
        rounds += 1;
        assert!(rounds <= 20, "the second never took the first's partitions");
        tokio::time::sleep(Duration::from_millis(50)).await;
        round(&mut second, &all).await;
    }
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn a_process_whose_session_was_killed_lets_go_and_another_takes_over(pool: PgPool) {
    let all = partitions("model-events-us-east", 4);
    let mut first = PartitionClaims::new(pool.clone(), READER);
    let mut second = PartitionClaims::new(pool.clone(), READER);
    round(&mut first, &all).await;
    round(&mut second, &all).await;
    round(&mut first, &all).await;
    round(&mut second, &all).await;
    assert_disjoint_cover(&first, &second, &all);
    assert_eq!((first.held().len(), second.held().len()), (2, 2));

    // The server ends the first's session (as a PostgreSQL restart or failover would). The
    // call waits until the backend has exited: a signalled backend releases its advisory locks
    // only on its way out, after its client has already seen the error.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(holder.pid, 10000))
           FROM (SELECT DISTINCT l.pid FROM pg_locks l
                  WHERE l.locktype = 'advisory' AND l.mode = 'ExclusiveLock'
                    AND l.objid::int4 = ANY($1)
                    AND l.pid <> pg_backend_pid()
                    AND l.database = (SELECT oid FROM pg_database
                                       WHERE datname = current_database())) AS holder",
    )
    .bind(first.held().iter().map(|(_, p)| *p).collect::<Vec<i32>>())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(killed >= 1, "the first's session was not found");
    let held_before: Vec<PartitionKey> = first.held().iter().cloned().collect();

    let review = first.review(&all).await;
    assert_eq!(
        review.lost, held_before,
        "the first must let go of what it held"
    );
    assert!(first.held().is_empty());

    // The second takes all four, then the first comes back and they share again.
    round(&mut second, &all).await;
    assert_eq!(second.held(), &all);
    round(&mut first, &all).await;
    round(&mut second, &all).await;
    round(&mut first, &all).await;
    assert_disjoint_cover(&first, &second, &all);
    assert_eq!((first.held().len(), second.held().len()), (2, 2));
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn a_process_whose_session_stops_answering_lets_go(pool: PgPool) {
    let all = partitions("model-events-ap-northeast", 2);
    let options = pool.connect_options();
    let server = SocketAddr::from(([127, 0, 0, 1], options.get_port()));
    let proxy = FaultProxy::start(server).await.unwrap();
    let through_proxy = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(
            options
                .as_ref()
                .clone()
                .host("127.0.0.1")
                .port(proxy.addr().port()),
        )
        .await
        .unwrap();
    let mut claims = PartitionClaims::new(through_proxy, READER);
    round(&mut claims, &all).await;
    assert_eq!(claims.held(), &all);

    // The network swallows everything from now on: the review must not wait for it forever.
    proxy.blackhole();
    let review = tokio::time::timeout(Duration::from_secs(60), claims.review(&all))
        .await
        .expect("a review waited for a session that no longer answers");
    assert_eq!(review.lost, all.iter().cloned().collect::<Vec<_>>());
    assert!(claims.held().is_empty());
    assert!(!claims.joined());
    proxy.heal();
}
