//! Fixtures shared by the domain's integration tests: valid ids and texts built from literals,
//! the given/when/then harness and the proptest strategies.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod gwt;
pub mod strategies;

use std::collections::BTreeMap;

use domain::{
    EventPayload, LocalizedText, ModelId, OperationalStatus, ProviderId, RegionId, RegisterModel,
    TextLimit,
};

/// The model every given/when/then scenario is about.
pub const MODEL: &str = "openai/gpt-5";
/// The model's home region: the only region that may write its lifecycle.
pub const HOME: &str = "eu-west";
/// Any region that is not the model's home.
pub const ELSEWHERE: &str = "us-east";

pub fn model_id(raw: &str) -> ModelId {
    ModelId::parse(raw).expect("fixture model id is valid")
}

pub fn region(raw: &str) -> RegionId {
    RegionId::parse(raw).expect("fixture region id is valid")
}

pub fn provider(raw: &str) -> ProviderId {
    ProviderId::parse(raw).expect("fixture provider id is valid")
}

pub fn gpt5() -> ModelId {
    model_id(MODEL)
}

/// A validated localized name, e.g. `name(&[("en", "GPT-5"), ("ko", "지피티-5")])`.
pub fn name(pairs: &[(&str, &str)]) -> LocalizedText {
    localized(pairs, TextLimit::NAME)
}

/// A validated localized description.
pub fn description(pairs: &[(&str, &str)]) -> LocalizedText {
    localized(pairs, TextLimit::DESCRIPTION)
}

fn localized(pairs: &[(&str, &str)], limit: TextLimit) -> LocalizedText {
    let entries: BTreeMap<String, String> = pairs
        .iter()
        .map(|(locale, text)| ((*locale).to_owned(), (*text).to_owned()))
        .collect();
    LocalizedText::parse(entries, limit).expect("fixture text is valid")
}

/// Registers [`MODEL`] at [`HOME`], named "GPT-5", without a description.
pub fn register_gpt5() -> RegisterModel {
    RegisterModel {
        id: gpt5(),
        provider: provider("openai"),
        name: name(&[("en", "GPT-5")]),
        description: None,
        home_region: region(HOME),
    }
}

/// The event that [`register_gpt5`] produces.
pub fn gpt5_registered() -> EventPayload {
    EventPayload::ModelRegistered {
        id: gpt5(),
        provider: provider("openai"),
        home_region: region(HOME),
        name: name(&[("en", "GPT-5")]),
        description: None,
        status: OperationalStatus::Operational,
    }
}
