//! Which region may register a model id: one deterministic owner per id, the same on every node.
//!
//! Two regions accepting the same id at once (or during a broker outage or a partition) would
//! each count it, and no coordination-free counter can take one of them back. So only one
//! region may ever register a given id: the region configured for its provider, else the
//! region chosen by rendezvous hashing of the id over the deployment's regions. A non-owner
//! refuses at once (409 `wrong-owner`, naming the owner), without asking anyone.
//!
//! Rendezvous hashing keeps most ids where they are when a region is added (only ids that now
//! hash to the new region move). Every node must be configured with the same regions and
//! provider table; [`Ownership::fingerprint`] lets operators compare them.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::error::ValidationError;
use crate::ids::{ModelId, ProviderId, RegionId};

/// The registry owner of every model id in one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// Sorted, without duplicates, never empty.
    regions: Vec<RegionId>,
    /// The first region: what an (impossible) empty hash would fall back to.
    anchor: RegionId,
    providers: BTreeMap<ProviderId, RegionId>,
}

impl Ownership {
    /// `regions`: every region of the deployment; `providers`: providers pinned to a region.
    pub fn new(
        regions: impl IntoIterator<Item = RegionId>,
        providers: BTreeMap<ProviderId, RegionId>,
    ) -> Result<Self, ValidationError> {
        let mut regions: Vec<RegionId> = regions.into_iter().collect();
        regions.sort();
        regions.dedup();
        let Some(anchor) = regions.first().cloned() else {
            return Err(ValidationError::new(
                "regions",
                "a deployment has at least one region",
            ));
        };
        if let Some((provider, region)) = providers
            .iter()
            .find(|(_, region)| regions.binary_search(region).is_err())
        {
            return Err(ValidationError::new(
                "ownership.providers",
                format!(
                    "provider {provider} is pinned to {region}, which is not a region of the deployment"
                ),
            ));
        }
        Ok(Self {
            regions,
            anchor,
            providers,
        })
    }

    /// A deployment of one region: it owns everything.
    pub fn single(region: RegionId) -> Self {
        Self {
            regions: vec![region.clone()],
            anchor: region,
            providers: BTreeMap::new(),
        }
    }

    /// The only region that may register `id` of `provider`.
    pub fn owner(&self, id: &ModelId, provider: &ProviderId) -> &RegionId {
        if let Some(region) = self.providers.get(provider) {
            return region;
        }
        self.hashed_owner(id)
    }

    /// The rendezvous-hash owner, ignoring the provider table.
    pub fn hashed_owner(&self, id: &ModelId) -> &RegionId {
        self.regions
            .iter()
            .max_by_key(|region| score(region, id))
            .unwrap_or(&self.anchor)
    }

    pub fn regions(&self) -> &[RegionId] {
        &self.regions
    }

    /// A short digest of the regions and the provider table: equal on every correctly
    /// configured node (logged at start).
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for region in &self.regions {
            hasher.update(region.as_str().as_bytes());
            hasher.update([0]);
        }
        hasher.update([1]);
        for (provider, region) in &self.providers {
            hasher.update(provider.as_str().as_bytes());
            hasher.update([0]);
            hasher.update(region.as_str().as_bytes());
            hasher.update([0]);
        }
        let digest = hasher.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// The rendezvous weight of `region` for `id`: the first 8 bytes of SHA-256(region, 0, id).
/// SHA-256 rather than std's `Hash`, whose output may change between Rust releases.
fn score(region: &RegionId, id: &ModelId) -> (u64, RegionId) {
    let mut hasher = Sha256::new();
    hasher.update(region.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(id.as_str().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    for (slot, byte) in first.iter_mut().zip(digest.iter()) {
        *slot = *byte;
    }
    // Ties (astronomically unlikely) go to the greater region name: still deterministic.
    (u64::from_be_bytes(first), region.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(r: &str) -> RegionId {
        RegionId::parse(r).unwrap()
    }
    fn model(m: &str) -> ModelId {
        ModelId::parse(m).unwrap()
    }
    fn provider(p: &str) -> ProviderId {
        ProviderId::parse(p).unwrap()
    }
    fn three() -> Ownership {
        Ownership::new(
            [region("us-east"), region("eu-west"), region("ap-northeast")],
            BTreeMap::from([(provider("openai"), region("us-east"))]),
        )
        .unwrap()
    }

    #[test]
    fn a_pinned_provider_is_owned_by_its_region() {
        let ownership = three();
        for n in 0..50 {
            let id = model(&format!("openai/m{n}"));
            assert_eq!(
                ownership.owner(&id, &provider("openai")),
                &region("us-east")
            );
        }
    }

    #[test]
    fn hashing_spreads_ids_and_ignores_the_order_regions_are_given_in() {
        let ownership = three();
        let reordered = Ownership::new(
            [
                region("ap-northeast"),
                region("us-east"),
                region("eu-west"),
                region("us-east"),
            ],
            BTreeMap::from([(provider("openai"), region("us-east"))]),
        )
        .unwrap();
        let mut per_region = BTreeMap::new();
        for n in 0..300 {
            let id = model(&format!("acme/m{n}"));
            let owner = ownership.owner(&id, &provider("acme"));
            assert_eq!(owner, reordered.owner(&id, &provider("acme")));
            *per_region.entry(owner.clone()).or_insert(0) += 1;
        }
        assert_eq!(per_region.len(), 3, "{per_region:?}");
        assert!(per_region.values().all(|n| *n > 50), "{per_region:?}");
        assert_eq!(ownership.fingerprint(), reordered.fingerprint());
    }

    #[test]
    fn adding_a_region_moves_ids_only_to_the_new_region() {
        let before = three();
        let after = Ownership::new(
            [
                region("us-east"),
                region("eu-west"),
                region("ap-northeast"),
                region("sa-east"),
            ],
            BTreeMap::from([(provider("openai"), region("us-east"))]),
        )
        .unwrap();
        for n in 0..300 {
            let id = model(&format!("acme/m{n}"));
            let (old, new) = (before.hashed_owner(&id), after.hashed_owner(&id));
            assert!(
                old == new || new == &region("sa-east"),
                "{id}: {old} -> {new}"
            );
        }
        assert_ne!(before.fingerprint(), after.fingerprint());
    }

    #[test]
    fn a_provider_pinned_outside_the_deployment_is_refused() {
        let error = Ownership::new(
            [region("eu-west")],
            BTreeMap::from([(provider("openai"), region("us-east"))]),
        )
        .unwrap_err();
        assert_eq!(error.field, "ownership.providers");
        assert!(Ownership::new([], BTreeMap::new()).is_err());
    }

    #[test]
    fn a_single_region_owns_everything() {
        let ownership = Ownership::single(region("local"));
        assert_eq!(
            ownership.owner(&model("x/y"), &provider("x")),
            &region("local")
        );
    }
}
