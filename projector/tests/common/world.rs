//! Random legal command histories, decided and evolved by the domain itself, published the
//! way the nodes publish them: each region appends to its own log, keyed by model id into
//! `PARTITIONS` partitions.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration};
use domain::{
    AvailabilityCommand, AvailabilityState, CURRENT_SCHEMA_VERSION, CatalogueFacts, EventEnvelope,
    EventPayload, Lifecycle, LocalizedText, ModelCommand, ModelId, ModelState, OperationalStatus,
    RegionId, RegisterModel, StreamId, UpdateMetadata, WithdrawReason, decide_availability,
    decide_model, evolve_availability, evolve_model,
};
use projector::{ActorId, CountSnapshot, GlobalView, PartitionFold, ProviderCounts, RegionCounts};
use proptest::prelude::*;
use uuid::Uuid;

use super::{model, provider, region};

pub const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
pub const PROVIDERS: [&str; 3] = ["openai", "meta", "mistral"];
pub const PARTITIONS: usize = 3;

/// One model of the scenario: indexes into `PROVIDERS` and `REGIONS` (its home).
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    pub provider: usize,
    pub home: usize,
    /// Registered before the scenario's steps (most are, so that more steps are legal).
    pub registered_first: bool,
}

/// A command attempt; the domain decides whether it is legal (rejected ones leave no trace).
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Register(usize),
    Activate(usize),
    Deactivate(usize),
    SetStatus(usize, OperationalStatus),
    Rename(usize, u8),
    Retire(usize),
    Serve { region: usize, model: usize },
    Withdraw { region: usize, model: usize },
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub models: Vec<ModelSpec>,
    pub steps: Vec<Step>,
}

fn step(models: usize) -> impl Strategy<Value = Step> {
    let m = 0..models;
    let r = 0..REGIONS.len();
    prop_oneof![
        2 => m.clone().prop_map(Step::Register),
        3 => m.clone().prop_map(Step::Activate),
        2 => m.clone().prop_map(Step::Deactivate),
        2 => (m.clone(), prop::sample::select(OperationalStatus::ALL.to_vec()))
            .prop_map(|(m, s)| Step::SetStatus(m, s)),
        1 => (m.clone(), 0u8..3).prop_map(|(m, n)| Step::Rename(m, n)),
        1 => m.clone().prop_map(Step::Retire),
        3 => (r.clone(), m.clone()).prop_map(|(region, model)| Step::Serve { region, model }),
        1 => (r, m).prop_map(|(region, model)| Step::Withdraw { region, model }),
    ]
}

/// 1–5 models and up to `max_steps` command attempts.
pub fn scenario(max_steps: usize) -> impl Strategy<Value = Scenario> {
    let spec = (
        0..PROVIDERS.len(),
        0..REGIONS.len(),
        prop::bool::weighted(0.8),
    );
    prop::collection::vec(spec, 1..=5).prop_flat_map(move |specs| {
        let models: Vec<ModelSpec> = specs
            .into_iter()
            .map(|(provider, home, registered_first)| ModelSpec {
                provider,
                home,
                registered_first,
            })
            .collect();
        let n = models.len();
        (Just(models), prop::collection::vec(step(n), 0..=max_steps))
            .prop_map(|(models, steps)| Scenario { models, steps })
    })
}

/// One region's topic: every event in log order, and the same events split into partitions
/// (offset = index).
#[derive(Debug, Clone, Default)]
pub struct RegionLog {
    pub all: Vec<EventEnvelope>,
    pub partitions: Vec<Vec<EventEnvelope>>,
}

/// The outcome of a scenario: final domain states and each region's published events.
#[derive(Debug, Clone)]
pub struct World {
    pub specs: Vec<ModelSpec>,
    pub ids: Vec<ModelId>,
    pub models: BTreeMap<ModelId, ModelState>,
    pub availability: BTreeMap<(RegionId, ModelId), AvailabilityState>,
    pub logs: BTreeMap<RegionId, RegionLog>,
    next_event: u128,
}

/// The partition a model's events go to (FNV-1a of the key, like a Kafka partitioner would
/// hash it).
pub fn partition_of(id: &ModelId) -> usize {
    let hash = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % PARTITIONS as u64) as usize
}

impl World {
    pub fn build(scenario: &Scenario) -> World {
        let ids = scenario
            .models
            .iter()
            .enumerate()
            .map(|(i, spec)| model(&format!("{}/m-{i}", PROVIDERS[spec.provider])))
            .collect();
        let logs = REGIONS
            .iter()
            .map(|r| {
                let log = RegionLog {
                    all: Vec::new(),
                    partitions: vec![Vec::new(); PARTITIONS],
                };
                (region(r), log)
            })
            .collect();
        let mut world = World {
            specs: scenario.models.clone(),
            ids,
            models: BTreeMap::new(),
            availability: BTreeMap::new(),
            logs,
            next_event: 1,
        };
        for (m, spec) in scenario.models.iter().enumerate() {
            if spec.registered_first {
                world.attempt(Step::Register(m));
            }
        }
        for step in &scenario.steps {
            world.attempt(*step);
        }
        world
    }

    fn attempt(&mut self, step: Step) {
        let (m, command) = match step {
            Step::Register(m) => {
                let spec = self.specs[m];
                let command = ModelCommand::Register(RegisterModel {
                    id: self.ids[m].clone(),
                    provider: provider(PROVIDERS[spec.provider]),
                    name: LocalizedText::english("Model"),
                    description: None,
                    home_region: region(REGIONS[spec.home]),
                });
                (m, command)
            }
            Step::Activate(m) => (m, ModelCommand::Activate),
            Step::Deactivate(m) => (m, ModelCommand::Deactivate),
            Step::SetStatus(m, status) => (m, ModelCommand::SetStatus(status)),
            Step::Rename(m, n) => (
                m,
                ModelCommand::UpdateMetadata(UpdateMetadata {
                    name: Some(LocalizedText::english(&format!("Model {n}"))),
                    description: None,
                }),
            ),
            Step::Retire(m) => (m, ModelCommand::Retire),
            Step::Serve {
                region: r,
                model: m,
            } => {
                return self.availability_command(r, m, AvailabilityCommand::Serve);
            }
            Step::Withdraw {
                region: r,
                model: m,
            } => {
                let command = AvailabilityCommand::Withdraw(WithdrawReason::Manual);
                return self.availability_command(r, m, command);
            }
        };
        self.model_command(m, &command);
    }

    fn model_command(&mut self, m: usize, command: &ModelCommand) {
        let id = self.ids[m].clone();
        let home = region(REGIONS[self.specs[m].home]);
        let state = self.models.get(&id).cloned().unwrap_or_default();
        let Ok(events) = decide_model(&state, &id, &home, command) else {
            return;
        };
        let mut state = state;
        for event in events {
            let sequence = state.version + 1;
            state = evolve_model(state, &event);
            self.publish(&home, StreamId::Model(id.clone()), sequence, &id, event);
        }
        let retired = state
            .record
            .as_ref()
            .is_some_and(|r| r.lifecycle == Lifecycle::Retired);
        self.models.insert(id, state);
        if retired {
            // Every region withdraws a retired model itself, when it sees the retirement.
            for r in 0..REGIONS.len() {
                let withdraw = AvailabilityCommand::Withdraw(WithdrawReason::ModelRetired);
                self.availability_command(r, m, withdraw);
            }
        }
    }

    fn availability_command(&mut self, r: usize, m: usize, command: AvailabilityCommand) {
        let id = self.ids[m].clone();
        let serving = region(REGIONS[r]);
        let key = (serving.clone(), id.clone());
        let state = self.availability.get(&key).copied().unwrap_or_default();
        let facts = self
            .models
            .get(&id)
            .and_then(|s| s.record.as_ref())
            .map(|record| CatalogueFacts {
                lifecycle: record.lifecycle,
            });
        let Ok(events) = decide_availability(&state, &serving, &id, &serving, facts, command)
        else {
            return;
        };
        let mut state = state;
        for event in events {
            let sequence = state.version + 1;
            state = evolve_availability(state, &event);
            let stream = StreamId::Availability {
                region: serving.clone(),
                model: id.clone(),
            };
            self.publish(&serving, stream, sequence, &id, event);
        }
        self.availability.insert(key, state);
    }

    fn publish(
        &mut self,
        origin: &RegionId,
        stream: StreamId,
        sequence: u64,
        id: &ModelId,
        event: EventPayload,
    ) {
        let n = self.next_event;
        self.next_event += 1;
        let log = self.logs.get_mut(origin).unwrap();
        let envelope = EventEnvelope {
            event_id: Uuid::from_u128(n),
            schema_version: CURRENT_SCHEMA_VERSION,
            stream,
            sequence,
            position: log.all.len() as u64 + 1,
            model_id: id.clone(),
            origin_region: origin.clone(),
            occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap()
                + Duration::seconds(n as i64),
            correlation_id: Uuid::from_u128(n),
            causation_id: None,
            idempotency_key: None,
            actor: None,
            event,
        };
        log.partitions[partition_of(id)].push(envelope.clone());
        log.all.push(envelope);
    }

    /// Every actor's fold over its own partition, in offset order (empty partitions too).
    pub fn fold_partitions(&self) -> Vec<PartitionFold> {
        let mut folds = Vec::new();
        for (region, log) in &self.logs {
            for (p, events) in log.partitions.iter().enumerate() {
                let mut fold = PartitionFold::new(ActorId::new(region.clone(), p as i32));
                for (offset, event) in events.iter().enumerate() {
                    fold.apply(offset as i64, event);
                }
                folds.push(fold);
            }
        }
        folds
    }

    /// The reference: each region's whole log folded by a single fold, in log order.
    pub fn fold_in_one_place(&self) -> GlobalView {
        let mut view = GlobalView::new();
        for (region, log) in &self.logs {
            let mut fold = PartitionFold::new(ActorId::new(region.clone(), 0));
            for (offset, event) in log.all.iter().enumerate() {
                fold.apply(offset as i64, event);
            }
            view.observe(fold.state());
        }
        view
    }

    /// Counts recomputed directly from the final domain states.
    pub fn recount(&self) -> CountSnapshot {
        self.recount_where(|_| true)
    }

    /// What region `home` alone counts: the models it is home to and what it serves.
    pub fn recount_region(&self, home: &RegionId) -> CountSnapshot {
        self.recount_where(|r| r == home)
    }

    fn recount_where(&self, include: impl Fn(&RegionId) -> bool) -> CountSnapshot {
        let mut counts = CountSnapshot::default();
        for record in self.models.values().filter_map(|s| s.record.as_ref()) {
            if !include(&record.home_region) {
                continue;
            }
            let by_provider = counts
                .by_provider
                .entry(record.provider.clone())
                .or_default();
            match record.lifecycle {
                Lifecycle::Retired => counts.retired += 1,
                lifecycle => {
                    counts.total += 1;
                    by_provider.total += 1;
                    *counts.by_status.entry(record.status).or_default() += 1;
                    if lifecycle == Lifecycle::Active {
                        counts.active += 1;
                        by_provider.active += 1;
                    } else {
                        counts.inactive += 1;
                    }
                }
            }
        }
        for ((serving, _), state) in &self.availability {
            if state.served && include(serving) {
                counts.regions.entry(serving.clone()).or_default().available += 1;
            }
        }
        counts
            .by_provider
            .retain(|_, c| *c != ProviderCounts::default());
        counts.regions.retain(|_, c| *c != RegionCounts::default());
        counts
    }

    pub fn event_count(&self) -> usize {
        self.logs.values().map(|log| log.all.len()).sum()
    }
}
