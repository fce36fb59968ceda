//! Keeping the catalogue a batch at a time: a few multi-row statements per batch instead of one
//! statement per event, with exactly the effect of [`apply_to_catalogue`] on each event in order.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use domain::{EventEnvelope, EventPayload, Lifecycle};
use sqlx::PgConnection;

use super::apply::apply_to_catalogue;

/// Folds `events` (in the order given) into the catalogue.
///
/// Why this equals applying each event in turn: every row remembers the last stream sequence
/// applied (its version) and takes only newer events, in sequence order. So the events of one
/// model in a batch reduce to one change carrying, per column, the value and sequence of the
/// last event that set it: the column changes if that sequence is newer than the row's version
/// (then it is the last newer event that set it), and otherwise no newer event set it. The
/// events of one availability stream reduce to the last. A model whose events come from more than one
/// origin region in one batch (only an impostor region can cause that) is applied event by
/// event, since its row takes changes from its home region only.
pub async fn apply_batch_to_catalogue(
    conn: &mut PgConnection,
    events: &[&EventEnvelope],
) -> Result<(), sqlx::Error> {
    let plan = Plan::of(events);
    insert_registrations(conn, &plan.registrations).await?;
    update_models(conn, &plan.model_changes).await?;
    upsert_availability(conn, &plan.availability).await?;
    for event in plan.one_by_one {
        apply_to_catalogue(conn, event).await?;
    }
    Ok(())
}

/// What a batch does to the catalogue, reduced per row.
#[derive(Default)]
struct Plan<'a> {
    registrations: Vec<&'a EventEnvelope>,
    model_changes: Vec<ModelChange<'a>>,
    availability: Vec<&'a EventEnvelope>,
    one_by_one: Vec<&'a EventEnvelope>,
}

/// The net change of one model's lifecycle, status and metadata events in a batch: per column,
/// the value of the last event that set it and that event's sequence. A column is written only
/// if that sequence is newer than the row's version: a batch may hold re-delivered events the
/// row has already passed, and their values must not come back.
struct ModelChange<'a> {
    model: &'a str,
    origin: &'a str,
    lifecycle: Option<(&'static str, u64)>,
    status: Option<(&'static str, u64)>,
    name: Option<(String, u64)>,
    description: Option<(String, u64)>,
    sequence: u64,
    at: DateTime<Utc>,
}

impl<'a> Plan<'a> {
    fn of(events: &[&'a EventEnvelope]) -> Self {
        let mut plan = Plan::default();
        let mut mixed_origins = HashSet::new();
        let mut origins: HashMap<&str, &str> = HashMap::new();
        for event in events.iter().copied() {
            if is_model_event(&event.event) {
                let origin = origins
                    .entry(event.model_id.as_str())
                    .or_insert(event.origin_region.as_str());
                if *origin != event.origin_region.as_str() {
                    mixed_origins.insert(event.model_id.as_str());
                }
            }
        }

        let mut changes: HashMap<&str, ModelChange<'a>> = HashMap::new();
        let mut ordered: Vec<&EventEnvelope> = events.to_vec();
        // Stable: events of one stream stay in batch order when sequences tie (re-deliveries).
        ordered.sort_by_key(|event| event.sequence);
        let mut availability: HashMap<(&str, &str), &EventEnvelope> = HashMap::new();
        for event in ordered {
            let model = event.model_id.as_str();
            if is_model_event(&event.event) && mixed_origins.contains(model) {
                continue;
            }
            match &event.event {
                EventPayload::ModelRegistered { .. } => plan.registrations.push(event),
                EventPayload::ModelServed { region }
                | EventPayload::ModelWithdrawn { region, .. } => {
                    // Later sequences win; the sort put them last.
                    availability.insert((region.as_str(), model), event);
                }
                other => {
                    let change = match changes.entry(model) {
                        Entry::Occupied(entry) => entry.into_mut(),
                        Entry::Vacant(entry) => entry.insert(ModelChange {
                            model,
                            origin: event.origin_region.as_str(),
                            lifecycle: None,
                            status: None,
                            name: None,
                            description: None,
                            sequence: event.sequence,
                            at: event.occurred_at,
                        }),
                    };
                    change.sequence = event.sequence;
                    change.at = event.occurred_at;
                    change.take(other, event.sequence);
                }
            }
        }
        plan.one_by_one = events
            .iter()
            .copied()
            .filter(|e| is_model_event(&e.event) && mixed_origins.contains(e.model_id.as_str()))
            .collect();
        plan.model_changes = changes.into_values().collect();
        plan.availability = availability.into_values().collect();
        plan
    }
}

impl ModelChange<'_> {
    fn take(&mut self, event: &EventPayload, sequence: u64) {
        match event {
            EventPayload::ModelActivated => {
                self.lifecycle = Some((Lifecycle::Active.as_str(), sequence));
            }
            EventPayload::ModelDeactivated => {
                self.lifecycle = Some((Lifecycle::Inactive.as_str(), sequence));
            }
            EventPayload::ModelRetired => {
                self.lifecycle = Some((Lifecycle::Retired.as_str(), sequence));
            }
            EventPayload::ModelStatusChanged { status } => {
                self.status = Some((status.as_str(), sequence));
            }
            EventPayload::ModelMetadataUpdated { name, description } => {
                if let Some(name) = name {
                    self.name = Some((json_text(name), sequence));
                }
                if let Some(description) = description {
                    self.description = Some((json_text(description), sequence));
                }
            }
            EventPayload::ModelRegistered { .. }
            | EventPayload::ModelServed { .. }
            | EventPayload::ModelWithdrawn { .. } => {}
        }
    }
}

/// Events of a model's own stream (availability streams are keyed by region and model).
fn is_model_event(event: &EventPayload) -> bool {
    !matches!(
        event,
        EventPayload::ModelServed { .. } | EventPayload::ModelWithdrawn { .. }
    )
}

/// The sequence of the event that set a column, 0 (older than any row) if none did.
fn set_at(sequence: Option<u64>) -> i64 {
    sequence.map_or(0, sequence_db)
}

fn sequence_db(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}

async fn insert_registrations(
    conn: &mut PgConnection,
    registrations: &[&EventEnvelope],
) -> Result<(), sqlx::Error> {
    if registrations.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(registrations.len());
    let mut providers = Vec::with_capacity(registrations.len());
    let mut homes = Vec::with_capacity(registrations.len());
    let mut names = Vec::with_capacity(registrations.len());
    let mut descriptions = Vec::with_capacity(registrations.len());
    let mut statuses = Vec::with_capacity(registrations.len());
    let mut versions = Vec::with_capacity(registrations.len());
    let mut times = Vec::with_capacity(registrations.len());
    for event in registrations {
        let EventPayload::ModelRegistered {
            provider,
            home_region,
            name,
            description,
            status,
            ..
        } = &event.event
        else {
            continue;
        };
        ids.push(event.model_id.as_str());
        providers.push(provider.as_str());
        homes.push(home_region.as_str());
        names.push(json_text(name));
        descriptions.push(description.as_ref().map(json_text));
        statuses.push(status.as_str());
        versions.push(sequence_db(event.sequence));
        times.push(event.occurred_at);
    }
    // The first registration of an id wins, as in `apply_to_catalogue` (DO NOTHING also
    // tolerates the same id twice in one statement).
    sqlx::query(
        "INSERT INTO catalogue_models (model_id, provider, home_region, name, description,
                                       lifecycle, status, version, updated_at)
         SELECT id, provider, home, name::jsonb, description::jsonb, $6, status, version, at
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::text[],
                       $8::int8[], $9::timestamptz[])
                AS u(id, provider, home, name, description, status, version, at)
         ON CONFLICT (model_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&providers)
    .bind(&homes)
    .bind(&names)
    .bind(&descriptions)
    .bind(Lifecycle::Inactive.as_str())
    .bind(&statuses)
    .bind(&versions)
    .bind(&times)
    .execute(conn)
    .await?;
    Ok(())
}

async fn update_models(
    conn: &mut PgConnection,
    changes: &[ModelChange<'_>],
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = changes.iter().map(|c| c.model).collect();
    let origins: Vec<&str> = changes.iter().map(|c| c.origin).collect();
    let lifecycles: Vec<Option<&str>> = changes.iter().map(|c| c.lifecycle.map(|v| v.0)).collect();
    let lifecycle_at: Vec<i64> = changes
        .iter()
        .map(|c| set_at(c.lifecycle.map(|v| v.1)))
        .collect();
    let statuses: Vec<Option<&str>> = changes.iter().map(|c| c.status.map(|v| v.0)).collect();
    let status_at: Vec<i64> = changes
        .iter()
        .map(|c| set_at(c.status.map(|v| v.1)))
        .collect();
    let names: Vec<Option<&str>> = changes
        .iter()
        .map(|c| c.name.as_ref().map(|v| v.0.as_str()))
        .collect();
    let name_at: Vec<i64> = changes
        .iter()
        .map(|c| set_at(c.name.as_ref().map(|v| v.1)))
        .collect();
    let descriptions: Vec<Option<&str>> = changes
        .iter()
        .map(|c| c.description.as_ref().map(|v| v.0.as_str()))
        .collect();
    let description_at: Vec<i64> = changes
        .iter()
        .map(|c| set_at(c.description.as_ref().map(|v| v.1)))
        .collect();
    let versions: Vec<i64> = changes.iter().map(|c| sequence_db(c.sequence)).collect();
    let times: Vec<DateTime<Utc>> = changes.iter().map(|c| c.at).collect();
    // A column takes the batch's value only if the event that set it is newer than the row.
    sqlx::query(
        "UPDATE catalogue_models AS m
            SET lifecycle = CASE WHEN u.lifecycle_at > m.version THEN u.lifecycle ELSE m.lifecycle END,
                status = CASE WHEN u.status_at > m.version THEN u.status ELSE m.status END,
                name = CASE WHEN u.name_at > m.version THEN u.name::jsonb ELSE m.name END,
                description = CASE WHEN u.description_at > m.version
                                   THEN u.description::jsonb ELSE m.description END,
                version = u.version, updated_at = u.at
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int8[],
                       $7::text[], $8::int8[], $9::text[], $10::int8[], $11::int8[],
                       $12::timestamptz[])
                AS u(id, origin, lifecycle, lifecycle_at, status, status_at, name, name_at,
                     description, description_at, version, at)
          WHERE m.model_id = u.id AND m.version < u.version AND m.home_region = u.origin",
    )
    .bind(&ids)
    .bind(&origins)
    .bind(&lifecycles)
    .bind(&lifecycle_at)
    .bind(&statuses)
    .bind(&status_at)
    .bind(&names)
    .bind(&name_at)
    .bind(&descriptions)
    .bind(&description_at)
    .bind(&versions)
    .bind(&times)
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_availability(
    conn: &mut PgConnection,
    events: &[&EventEnvelope],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut regions = Vec::with_capacity(events.len());
    let mut models = Vec::with_capacity(events.len());
    let mut served = Vec::with_capacity(events.len());
    let mut versions = Vec::with_capacity(events.len());
    let mut times = Vec::with_capacity(events.len());
    for event in events {
        let (region, is_served) = match &event.event {
            EventPayload::ModelServed { region } => (region, true),
            EventPayload::ModelWithdrawn { region, .. } => (region, false),
            _ => continue,
        };
        regions.push(region.as_str());
        models.push(event.model_id.as_str());
        served.push(is_served);
        versions.push(sequence_db(event.sequence));
        times.push(event.occurred_at);
    }
    sqlx::query(
        "INSERT INTO catalogue_availability (region, model_id, served, version, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::int8[], $5::timestamptz[])
         ON CONFLICT (region, model_id) DO UPDATE
            SET served = excluded.served, version = excluded.version,
                updated_at = excluded.updated_at
          WHERE catalogue_availability.version < excluded.version",
    )
    .bind(&regions)
    .bind(&models)
    .bind(&served)
    .bind(&versions)
    .bind(&times)
    .execute(conn)
    .await?;
    Ok(())
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
