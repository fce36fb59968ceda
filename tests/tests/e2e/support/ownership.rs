//! The registry owner of a model id, as every node of a cluster computes it (no ownership
//! table: rendezvous hashing over the cluster's regions), so tests register where it is
//! accepted.

use std::collections::BTreeMap;

use domain::{ModelId, Ownership, ProviderId, RegionId};

fn ownership(regions: &[&str]) -> Ownership {
    Ownership::new(
        regions.iter().map(|r| RegionId::parse(r).expect("region")),
        BTreeMap::new(),
    )
    .expect("ownership of the cluster's regions")
}

/// The region that may register `id` in a cluster of `regions`.
pub fn owner_of(regions: &[&str], id: &str) -> String {
    let id = ModelId::parse(id).expect("model id");
    let provider = ProviderId::parse("any").expect("provider");
    ownership(regions).owner(&id, &provider).to_string()
}

/// `base`, or `base-k<n>` with the smallest `n` that `region` owns: an id that region may
/// register in a cluster of `regions`.
pub fn id_owned_by(regions: &[&str], region: &str, base: &str) -> String {
    if owner_of(regions, base) == region {
        return base.to_owned();
    }
    (1..)
        .map(|n| format!("{base}-k{n}"))
        .find(|id| owner_of(regions, id) == region)
        .expect("some suffix hashes to every region")
}
