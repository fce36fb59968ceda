//! Loading a stream's state (events folded by `evolve`) and the catalogue facts a decision needs.

use domain::{
    AvailabilityState, CatalogueFacts, EventEnvelope, Lifecycle, ModelId, ModelState, RegionId,
    StreamId, evolve_availability, evolve_model,
};

use crate::catalogue;
use crate::error::StoreError;
use crate::store::EventStore;
use crate::stream_heads::{self, Lookup};

impl EventStore {
    /// Every event of one stream, in sequence order.
    pub async fn read_stream(&self, stream: &StreamId) -> Result<Vec<EventEnvelope>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT position, envelope::text FROM events WHERE stream = $1 ORDER BY sequence",
        )
        .bind(stream.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(position, text)| {
                EventEnvelope::decode(text.as_bytes())
                    .map_err(|source| StoreError::Corrupt { position, source })
            })
            .collect()
    }

    /// The model's lifecycle stream, folded: its head if recorded, else all its events.
    pub async fn load_model(&self, id: &ModelId) -> Result<ModelState, StoreError> {
        let stream = StreamId::Model(id.clone());
        match stream_heads::lookup(&self.pool, &stream).await? {
            Lookup::Empty => Ok(ModelState::default()),
            Lookup::Head(state) => Ok(state),
            Lookup::Fold => self.fold_model(id).await,
        }
    }

    /// The model's lifecycle stream folded from every event: the reference for its head.
    pub async fn fold_model(&self, id: &ModelId) -> Result<ModelState, StoreError> {
        let events = self.read_stream(&StreamId::Model(id.clone())).await?;
        Ok(events.iter().fold(ModelState::default(), |state, e| {
            evolve_model(state, &e.event)
        }))
    }

    /// Whether `region` serves `model`: its availability stream's head, else its events folded.
    pub async fn load_availability(
        &self,
        region: &RegionId,
        model: &ModelId,
    ) -> Result<AvailabilityState, StoreError> {
        let stream = StreamId::Availability {
            region: region.clone(),
            model: model.clone(),
        };
        match stream_heads::lookup(&self.pool, &stream).await? {
            Lookup::Empty => Ok(AvailabilityState::default()),
            Lookup::Head(state) => Ok(state),
            Lookup::Fold => self.fold_availability(region, model).await,
        }
    }

    /// The availability stream folded from every event: the reference for its head.
    pub async fn fold_availability(
        &self,
        region: &RegionId,
        model: &ModelId,
    ) -> Result<AvailabilityState, StoreError> {
        let stream = StreamId::Availability {
            region: region.clone(),
            model: model.clone(),
        };
        let events = self.read_stream(&stream).await?;
        Ok(events
            .iter()
            .fold(AvailabilityState::default(), |state, e| {
                evolve_availability(state, &e.event)
            }))
    }

    /// What the catalogue knows of a model (from any region), for availability decisions.
    pub async fn catalogue_facts(
        &self,
        model: &ModelId,
    ) -> Result<Option<CatalogueFacts>, StoreError> {
        catalogue::lifecycle(&self.pool, model)
            .await?
            .map(|raw| {
                Lifecycle::parse(&raw)
                    .map(|lifecycle| CatalogueFacts { lifecycle })
                    .map_err(|e| StoreError::Invalid(e.to_string()))
            })
            .transpose()
    }

    /// Number of events in the store: what tests and audits compare before and after.
    pub async fn event_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await?)
    }
}

impl EventStore {
    /// The home region the catalogue records for a model, if any region registered it.
    pub async fn catalogue_home_region(
        &self,
        model: &ModelId,
    ) -> Result<Option<RegionId>, StoreError> {
        catalogue::home_region(&self.pool, model)
            .await?
            .map(|raw| RegionId::parse(&raw).map_err(|e| StoreError::Invalid(e.to_string())))
            .transpose()
    }
}

impl EventStore {
    /// Models `region` still serves although the catalogue says they are retired: each needs a
    /// withdrawal event of that region.
    pub async fn served_but_retired(&self, region: &RegionId) -> Result<Vec<ModelId>, StoreError> {
        parse_models(catalogue::served_but_retired(&self.pool, region).await?)
    }

    /// [`Self::served_but_retired`] among `models` only.
    pub async fn served_but_retired_among(
        &self,
        region: &RegionId,
        models: &[String],
    ) -> Result<Vec<ModelId>, StoreError> {
        parse_models(catalogue::served_but_retired_among(&self.pool, region, models).await?)
    }
}

fn parse_models(ids: Vec<String>) -> Result<Vec<ModelId>, StoreError> {
    ids.iter()
        .map(|id| ModelId::parse(id).map_err(|e| StoreError::Invalid(e.to_string())))
        .collect()
}
