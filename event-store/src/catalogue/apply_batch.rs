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
/// applied and takes only newer changes, and one model's events touch its row in sequence
/// order. So the events of one model in a batch reduce to one change carrying, per column,
/// the value of the last event that set it, guarded by the last sequence; the events of one
/// availability stream reduce to the last. A model whose events come from more than one
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

/// The net change of one model's lifecycle, status and metadata events in a batch.
struct ModelChange<'a> {
    model: &'a str,
    origin: &'a str,
    lifecycle: Option<&'static str>,
    status: Option<&'static str>,
    name: Option<String>,
    description: Option<String>,
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
                    change.take(other);
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
    fn take(&mut self, event: &EventPayload) {
        match event {
            EventPayload::ModelActivated => self.lifecycle = Some(Lifecycle::Active.as_str()),
            EventPayload::ModelDeactivated => self.lifecycle = Some(Lifecycle::Inactive.as_str()),
            EventPayload::ModelRetired => self.lifecycle = Some(Lifecycle::Retired.as_str()),
            EventPayload::ModelStatusChanged { status } => self.status = Some(status.as_str()),
            EventPayload::ModelMetadataUpdated { name, description } => {
                if let Some(name) = name {
                    self.name = Some(json_text(name));
                }
                if let Some(description) = description {
                    self.description = Some(json_text(description));
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
    let lifecycles: Vec<Option<&str>> = changes.iter().map(|c| c.lifecycle).collect();
    let statuses: Vec<Option<&str>> = changes.iter().map(|c| c.status).collect();
    let names: Vec<Option<&str>> = changes.iter().map(|c| c.name.as_deref()).collect();
    let descriptions: Vec<Option<&str>> =
        changes.iter().map(|c| c.description.as_deref()).collect();
    let versions: Vec<i64> = changes.iter().map(|c| sequence_db(c.sequence)).collect();
    let times: Vec<DateTime<Utc>> = changes.iter().map(|c| c.at).collect();
    sqlx::query(
        "UPDATE catalogue_models AS m
            SET lifecycle = COALESCE(u.lifecycle, m.lifecycle),
                status = COALESCE(u.status, m.status),
                name = COALESCE(u.name::jsonb, m.name),
                description = COALESCE(u.description::jsonb, m.description),
                version = u.version, updated_at = u.at
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::int8[], $8::timestamptz[])
                AS u(id, origin, lifecycle, status, name, description, version, at)
          WHERE m.model_id = u.id AND m.version < u.version AND m.home_region = u.origin",
    )
    .bind(&ids)
    .bind(&origins)
    .bind(&lifecycles)
    .bind(&statuses)
    .bind(&names)
    .bind(&descriptions)
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
