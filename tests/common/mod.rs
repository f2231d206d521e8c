//! Shared fixtures of the real-model tests: each default model is loaded
//! once per test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use loragen::agent::runtime::Model;
use loragen::agent::store::{ModelChoice, ModelStore, Role};

/// Path of a default model, honouring the LORAGEN_*_MODEL overrides.
pub fn model_path(role: Role) -> PathBuf {
    let store = ModelStore::from_env().unwrap();
    let override_path = std::env::var_os(role.env_var()).map(PathBuf::from);
    store
        .resolve(&ModelChoice::Role(role), override_path.as_deref())
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
