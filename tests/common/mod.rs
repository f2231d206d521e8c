//! Shared fixtures of the real-model tests: each default model is loaded
//! once per test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use loragen::agent::runtime::Model;
use loragen::agent::store::{ModelStore, Role};

/// The image turn and request of the GPT4Tools prompt that the parity and
/// adapter tests read (the figures in docs/edge.md are over this text).
pub const DEMO_IMAGE: Option<(&str, &str)> =
    Some(("image/kdwpqzla.png", "Two dogs playing with a ball."));
pub const DEMO_REQUEST: &str = "Segment the dogs.";

/// Path of a default model, honouring the LORAGEN_*_MODEL overrides.
pub fn model_path(role: Role) -> PathBuf {
    ModelStore::from_env()
        .unwrap()
        .resolve_role(role)
        .unwrap_or_else(|e| panic!("real-model tests need the default models: {e}"))
}

pub fn edge() -> &'static Model {
    static EDGE: OnceLock<Model> = OnceLock::new();
    EDGE.get_or_init(|| Model::load(model_path(Role::Edge)).unwrap())
}

pub fn cloud() -> &'static Model {
    static CLOUD: OnceLock<Model> = OnceLock::new();
    CLOUD.get_or_init(|| Model::load(model_path(Role::Cloud)).unwrap())
}
