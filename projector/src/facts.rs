//! What a partition fold remembers about the streams it has seen, to compute deltas.
//!
//! Held compactly, since a node holds it for every model (twice: its projector's fold and its
//! history index's): one entry per model id, keyed by the id's text once, holding the model's
//! lifecycle facts and its availability streams, with providers and regions interned. Encoded
//! exactly as the plain maps it replaced (`models` by id, `availability` by region then id), so
//! stored snapshots and checkpoint rows read and write the same bytes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use domain::{Lifecycle, ModelId, OperationalStatus, ProviderId, RegionId};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A model whose lifecycle stream (`model:<id>`) is in this partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFacts {
    pub provider: ProviderId,
    pub lifecycle: Lifecycle,
    pub status: OperationalStatus,
    /// The last lifecycle-stream sequence applied.
    pub sequence: u64,
}

/// One region's availability stream (`availability:<region>:<model>`) for one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityFacts {
    pub served: bool,
    /// The last availability-stream sequence applied (0: none yet).
    pub sequence: u64,
}

/// Per-stream facts of one partition: lifecycle streams by model id, availability streams by
/// (region, model id).
#[derive(Clone, Default)]
pub struct PartitionFacts {
    by_model: BTreeMap<Box<str>, Streams>,
    providers: Interned<ProviderId>,
    regions: Interned<RegionId>,
    models: usize,
    availability: usize,
}

/// The streams of one model id in this partition.
#[derive(Clone)]
struct Streams {
    model: Option<PackedModel>,
    availability: Availability,
}

#[derive(Clone, Copy)]
struct PackedModel {
    sequence: u64,
    provider: u32,
    lifecycle: Lifecycle,
    status: OperationalStatus,
}

#[derive(Clone, Copy)]
struct PackedAvailability {
    sequence: u64,
    region: u32,
    served: bool,
}

/// A model's availability streams: most models are served in one region, so one is inline.
#[derive(Clone)]
enum Availability {
    None,
    One(PackedAvailability),
    Many(Box<[PackedAvailability]>),
}

impl Availability {
    fn as_slice(&self) -> &[PackedAvailability] {
        match self {
            Availability::None => &[],
            Availability::One(one) => std::slice::from_ref(one),
            Availability::Many(many) => many,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [PackedAvailability] {
        match self {
            Availability::None => &mut [],
            Availability::One(one) => std::slice::from_mut(one),
            Availability::Many(many) => many,
        }
    }

    fn push(&mut self, added: PackedAvailability) {
        *self = match std::mem::replace(self, Availability::None) {
            Availability::None => Availability::One(added),
            Availability::One(one) => Availability::Many(Box::new([one, added])),
            Availability::Many(many) => {
                let mut all = many.into_vec();
                all.push(added);
                Availability::Many(all.into_boxed_slice())
            }
        };
    }
}

/// Values stored once and referred to by index: a catalogue has a few dozen providers and
/// regions, and millions of models.
#[derive(Clone)]
struct Interned<T> {
    values: Vec<T>,
    index: HashMap<T, u32>,
}

impl<T> Default for Interned<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T: Clone + Eq + std::hash::Hash> Interned<T> {
    fn index_of(&mut self, value: &T) -> u32 {
        if let Some(&index) = self.index.get(value) {
            return index;
        }
        // More than u32::MAX distinct providers or regions cannot be held in memory anyway.
        let index = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(value.clone());
        self.index.insert(value.clone(), index);
        index
    }

    fn find(&self, value: &T) -> Option<u32> {
        self.index.get(value).copied()
    }

    fn get(&self, index: u32) -> &T {
        self.values
            .get(index as usize)
            .unwrap_or_else(|| unreachable!("indexes come from `index_of` of this same table"))
    }
}

impl PartitionFacts {
    /// Lifecycle streams known.
    pub fn model_count(&self) -> usize {
        self.models
    }

    /// Availability streams known.
    pub fn availability_count(&self) -> usize {
        self.availability
    }

    pub fn model(&self, model: &str) -> Option<ModelFacts> {
        let packed = self.by_model.get(model)?.model?;
        Some(self.unpack(packed))
    }

    /// The last lifecycle sequence applied to `model` (0: none).
    pub fn model_sequence(&self, model: &str) -> u64 {
        self.by_model
            .get(model)
            .and_then(|streams| streams.model)
            .map_or(0, |packed| packed.sequence)
    }

    pub fn set_model(&mut self, model: &ModelId, facts: &ModelFacts) {
        let packed = pack(&mut self.providers, None, facts);
        let streams = self.streams_mut(model);
        let added = streams.model.replace(packed).is_none();
        if added {
            self.models += 1;
        }
    }

    pub fn availability(&self, region: &RegionId, model: &str) -> Option<AvailabilityFacts> {
        let region = self.regions.find(region)?;
        let streams = self.by_model.get(model)?;
        streams
            .availability
            .as_slice()
            .iter()
            .find(|a| a.region == region)
            .map(|a| AvailabilityFacts {
                served: a.served,
                sequence: a.sequence,
            })
    }

    pub fn set_availability(
        &mut self,
        region: &RegionId,
        model: &ModelId,
        facts: AvailabilityFacts,
    ) {
        let region = self.regions.index_of(region);
        let packed = PackedAvailability {
            sequence: facts.sequence,
            region,
            served: facts.served,
        };
        let streams = self.streams_mut(model);
        if let Some(slot) = streams
            .availability
            .as_mut_slice()
            .iter_mut()
            .find(|a| a.region == region)
        {
            *slot = packed;
            return;
        }
        streams.availability.push(packed);
        self.availability += 1;
    }

    /// Decides `model`'s next lifecycle facts from its current ones (`None`: not seen) and
    /// stores them, unless `decide` refuses. One search for a model already known.
    pub(crate) fn update_model<T, E>(
        &mut self,
        model: &ModelId,
        decide: impl FnOnce(Option<ModelFacts>) -> Result<(ModelFacts, T), E>,
    ) -> Result<T, E> {
        let providers = &mut self.providers;
        if let Some(streams) = self.by_model.get_mut(model.as_str()) {
            let current = streams.model.map(|packed| unpack(providers, packed));
            let (next, decided) = decide(current)?;
            let kept = streams.model.map(|packed| packed.provider);
            if streams
                .model
                .replace(pack(providers, kept, &next))
                .is_none()
            {
                self.models += 1;
            }
            return Ok(decided);
        }
        let (next, decided) = decide(None)?;
        let packed = pack(providers, None, &next);
        self.by_model.insert(
            model.as_str().into(),
            Streams {
                model: Some(packed),
                availability: Availability::None,
            },
        );
        self.models += 1;
        Ok(decided)
    }

    /// Like [`Self::update_model`] for the availability stream of `model` in `region`
    /// (current facts: the default if not seen). One search for a model already known; the
    /// region is interned only when facts are stored.
    pub(crate) fn update_availability<T, E>(
        &mut self,
        region: &RegionId,
        model: &ModelId,
        decide: impl FnOnce(AvailabilityFacts) -> Result<(AvailabilityFacts, T), E>,
    ) -> Result<T, E> {
        let known_region = self.regions.find(region);
        let packed =
            |regions: &mut Interned<RegionId>, next: AvailabilityFacts| PackedAvailability {
                sequence: next.sequence,
                region: known_region.unwrap_or_else(|| regions.index_of(region)),
                served: next.served,
            };
        if let Some(streams) = self.by_model.get_mut(model.as_str()) {
            let slot = known_region.and_then(|known| {
                streams
                    .availability
                    .as_mut_slice()
                    .iter_mut()
                    .find(|a| a.region == known)
            });
            let current = slot
                .as_deref()
                .map_or_else(AvailabilityFacts::default, |a| AvailabilityFacts {
                    served: a.served,
                    sequence: a.sequence,
                });
            let (next, decided) = decide(current)?;
            let next = packed(&mut self.regions, next);
            match slot {
                Some(slot) => *slot = next,
                None => {
                    streams.availability.push(next);
                    self.availability += 1;
                }
            }
            return Ok(decided);
        }
        let (next, decided) = decide(AvailabilityFacts::default())?;
        let next = packed(&mut self.regions, next);
        self.by_model.insert(
            model.as_str().into(),
            Streams {
                model: None,
                availability: Availability::One(next),
            },
        );
        self.availability += 1;
        Ok(decided)
    }

    /// Every lifecycle stream's facts, in model id order.
    pub fn models(&self) -> impl Iterator<Item = (&str, ModelFacts)> + '_ {
        self.by_model.iter().filter_map(|(model, streams)| {
            streams
                .model
                .map(|packed| (model.as_ref(), self.unpack(packed)))
        })
    }

    /// Every availability stream's facts, in (region, model id) order.
    pub fn availabilities(&self) -> Vec<(&RegionId, &str, AvailabilityFacts)> {
        let mut all: Vec<(&RegionId, &str, AvailabilityFacts)> = self
            .by_model
            .iter()
            .flat_map(|(model, streams)| {
                streams.availability.as_slice().iter().map(move |a| {
                    (
                        self.regions.get(a.region),
                        model.as_ref(),
                        AvailabilityFacts {
                            served: a.served,
                            sequence: a.sequence,
                        },
                    )
                })
            })
            .collect();
        // Ids are unique per region: the sort never compares equal keys' values.
        all.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        all
    }

    fn streams_mut(&mut self, model: &ModelId) -> &mut Streams {
        // Found in place first: an entry's key is allocated only when the model is new.
        if !self.by_model.contains_key(model.as_str()) {
            self.by_model.insert(
                model.as_str().into(),
                Streams {
                    model: None,
                    availability: Availability::None,
                },
            );
        }
        self.by_model
            .get_mut(model.as_str())
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    fn unpack(&self, packed: PackedModel) -> ModelFacts {
        unpack(&self.providers, packed)
    }
}

fn unpack(providers: &Interned<ProviderId>, packed: PackedModel) -> ModelFacts {
    ModelFacts {
        provider: providers.get(packed.provider).clone(),
        lifecycle: packed.lifecycle,
        status: packed.status,
        sequence: packed.sequence,
    }
}

/// `kept`: the provider index the model had, reused without a look-up if it is still its.
fn pack(
    providers: &mut Interned<ProviderId>,
    kept: Option<u32>,
    facts: &ModelFacts,
) -> PackedModel {
    let provider = match kept {
        Some(index) if providers.get(index) == &facts.provider => index,
        _ => providers.index_of(&facts.provider),
    };
    PackedModel {
        sequence: facts.sequence,
        provider,
        lifecycle: facts.lifecycle,
        status: facts.status,
    }
}

/// Equal when they know the same streams with the same facts, however they were interned.
impl PartialEq for PartitionFacts {
    fn eq(&self, other: &Self) -> bool {
        self.models == other.models
            && self.availability == other.availability
            && self.models().eq(other.models())
            && self.availabilities() == other.availabilities()
    }
}

impl Eq for PartitionFacts {}

impl fmt::Debug for PartitionFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionFacts")
            .field("models", &self.models().collect::<BTreeMap<_, _>>())
            .field("availability", &self.availabilities())
            .finish()
    }
}

/// The encoded form: two maps, as `{ models: BTreeMap<ModelId, ModelFacts>, availability:
/// BTreeMap<(RegionId, ModelId), AvailabilityFacts> }` derived it.
impl Serialize for PartitionFacts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut facts = serializer.serialize_struct("PartitionFacts", 2)?;
        facts.serialize_field("models", &ModelsField(self))?;
        facts.serialize_field("availability", &AvailabilityField(self))?;
        facts.end()
    }
}

struct ModelsField<'a>(&'a PartitionFacts);

impl Serialize for ModelsField<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.models))?;
        for (model, facts) in self.0.models() {
            map.serialize_entry(model, &facts)?;
        }
        map.end()
    }
}

struct AvailabilityField<'a>(&'a PartitionFacts);

impl Serialize for AvailabilityField<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let all = self.0.availabilities();
        let mut map = serializer.serialize_map(Some(all.len()))?;
        for (region, model, facts) in all {
            map.serialize_entry(&(region, model), &facts)?;
        }
        map.end()
    }
}

#[derive(Deserialize)]
#[serde(rename = "PartitionFacts")]
struct PlainFacts {
    models: BTreeMap<ModelId, ModelFacts>,
    availability: BTreeMap<(RegionId, ModelId), AvailabilityFacts>,
}

impl<'de> Deserialize<'de> for PartitionFacts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let plain = PlainFacts::deserialize(deserializer)?;
        let mut facts = PartitionFacts::default();
        for (model, model_facts) in &plain.models {
            facts.set_model(model, model_facts);
        }
        for ((region, model), availability) in plain.availability {
            facts.set_availability(&region, &model, availability);
        }
        Ok(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(raw: &str) -> ModelId {
        ModelId::parse(raw).unwrap()
    }

    fn region(raw: &str) -> RegionId {
        RegionId::parse(raw).unwrap()
    }

    fn facts(provider: &str, sequence: u64) -> ModelFacts {
        ModelFacts {
            provider: ProviderId::parse(provider).unwrap(),
            lifecycle: Lifecycle::Active,
            status: OperationalStatus::Degraded,
            sequence,
        }
    }

    fn served(sequence: u64) -> AvailabilityFacts {
        AvailabilityFacts {
            served: true,
            sequence,
        }
    }

    /// The encoding the compact form must keep: the derived one of the plain maps.
    #[derive(Serialize)]
    struct Plain {
        models: BTreeMap<ModelId, ModelFacts>,
        availability: BTreeMap<(RegionId, ModelId), AvailabilityFacts>,
    }

    fn sample() -> (PartitionFacts, Plain) {
        let mut compact = PartitionFacts::default();
        let mut plain = Plain {
            models: BTreeMap::new(),
            availability: BTreeMap::new(),
        };
        // Inserted out of order, a model with availability only, one served in three regions.
        for (id, provider) in [("zeta/z", "zeta"), ("acme/a", "acme"), ("acme/b", "acme")] {
            compact.set_model(&model(id), &facts(provider, 3));
            plain.models.insert(model(id), facts(provider, 3));
        }
        for (r, id, sequence) in [
            ("us-east", "acme/a", 1),
            ("eu-west", "acme/a", 2),
            ("ap-south", "acme/a", 1),
            ("eu-west", "other/only-served", 1),
            ("eu-west", "acme/a", 4),
        ] {
            compact.set_availability(&region(r), &model(id), served(sequence));
            plain
                .availability
                .insert((region(r), model(id)), served(sequence));
        }
        compact.set_model(&model("acme/b"), &facts("acme", 5));
        plain.models.insert(model("acme/b"), facts("acme", 5));
        (compact, plain)
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    #[test]
    fn encodes_as_the_plain_maps_did() {
        let (compact, plain) = sample();
        assert_eq!(encode(&compact), encode(&plain));
        assert_eq!(compact.model_count(), 3);
        assert_eq!(compact.availability_count(), 4);
    }

    #[test]
    fn decodes_what_it_encodes_and_compares_by_content() {
        let (compact, _) = sample();
        let bytes = encode(&compact);
        let (decoded, _): (PartitionFacts, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(decoded, compact);
        assert_eq!(encode(&decoded), bytes);
        let mut other = decoded.clone();
        other.set_availability(&region("eu-west"), &model("acme/a"), served(9));
        assert_ne!(other, compact, "a changed sequence makes them differ");
    }

    #[test]
    fn reads_back_what_was_set() {
        let (compact, _) = sample();
        assert_eq!(compact.model("acme/b"), Some(facts("acme", 5)));
        assert_eq!(compact.model_sequence("acme/b"), 5);
        assert_eq!(compact.model("other/only-served"), None);
        assert_eq!(compact.model_sequence("other/only-served"), 0);
        assert_eq!(
            compact.availability(&region("eu-west"), "acme/a"),
            Some(served(4))
        );
        assert_eq!(compact.availability(&region("eu-west"), "acme/b"), None);
        assert_eq!(compact.availability(&region("nowhere"), "acme/a"), None);
    }
}
