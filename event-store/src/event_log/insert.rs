//! Logging events as the catalogue follower reads them from the region topics.

use domain::EventEnvelope;
use sqlx::PgConnection;

/// One event read from a region topic, with where it was read.
#[derive(Debug)]
pub struct LoggedEvent {
    pub partition: i32,
    pub offset: i64,
    pub envelope: EventEnvelope,
}

/// Held from the insert to the caller's commit: arrival numbers are handed out in commit
/// order, which `GET /v1/changes?after=` relies on to never skip an event.
const ARRIVAL_LOCK: i64 = 0x6169_676f_0003;

/// Inserts `events` in one statement inside the caller's transaction; events already logged
/// (a re-delivery) are left as they are. Each new row gets the next arrival number; the
/// transaction holds the arrival lock until it ends, so keep it short after this.
pub async fn insert(conn: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ARRIVAL_LOCK)
        .execute(&mut *conn)
        .await?;
    let n = events.len();
    let mut regions = Vec::with_capacity(n);
    let mut positions = Vec::with_capacity(n);
    let mut partitions = Vec::with_capacity(n);
    let mut offsets = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut models = Vec::with_capacity(n);
    let mut streams = Vec::with_capacity(n);
    let mut sequences = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    for LoggedEvent {
        partition,
        offset,
        envelope,
    } in events
    {
        regions.push(envelope.origin_region.as_str().to_owned());
        positions.push(i64::try_from(envelope.position).unwrap_or(i64::MAX));
        partitions.push(*partition);
        offsets.push(*offset);
        event_ids.push(envelope.event_id);
        models.push(envelope.model_id.as_str().to_owned());
        streams.push(envelope.stream.to_string());
        sequences.push(i64::try_from(envelope.sequence).unwrap_or(i64::MAX));
        types.push(envelope.event.type_name().to_owned());
        versions.push(i16::try_from(envelope.schema_version).unwrap_or(i16::MAX));
        times.push(envelope.occurred_at);
        bodies.push(String::from_utf8_lossy(&envelope.encode()).into_owned());
    }
    sqlx::query(
        "INSERT INTO event_log (region, position, partition, kafka_offset, event_id, model_id,
                                stream, sequence, event_type, schema_version, occurred_at, envelope)
         SELECT r, p, pa, o, e, m, s, q, t, v, at, b::jsonb
           FROM UNNEST($1::text[], $2::bigint[], $3::int[], $4::bigint[], $5::uuid[], $6::text[],
                       $7::text[], $8::bigint[], $9::text[], $10::smallint[], $11::timestamptz[],
                       $12::text[]) WITH ORDINALITY AS u(r, p, pa, o, e, m, s, q, t, v, at, b, n)
         ORDER BY u.n
         ON CONFLICT (region, position) DO NOTHING",
    )
    .bind(regions)
    .bind(positions)
    .bind(partitions)
    .bind(offsets)
    .bind(event_ids)
    .bind(models)
    .bind(streams)
    .bind(sequences)
    .bind(types)
    .bind(versions)
    .bind(times)
    .bind(bodies)
    .execute(conn)
    .await?;
    Ok(())
}
