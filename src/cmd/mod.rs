//! One module per subcommand.

pub mod bench_gpt4tools;
pub mod bench_runtime;
pub mod bfcl;
pub mod data;
pub mod eval;
pub mod generate;
pub mod models;
pub mod repl;

use std::path::PathBuf;

use loragen_agent::store::{ModelChoice, ModelStore, Role};

use crate::cli::ModelArgs;

/// Resolves edge/cloud/PATH to a GGUF file, honouring the override flags.
pub fn resolve_model(choice: &ModelChoice, models: &ModelArgs) -> anyhow::Result<PathBuf> {
    let store = ModelStore::from_env()?;
    let override_path = match choice {
        ModelChoice::Role(Role::Edge) => models.edge_model.as_deref(),
        ModelChoice::Role(Role::Cloud) => models.cloud_model.as_deref(),
        ModelChoice::Path(_) => None,
    };
    Ok(store.resolve(choice, override_path)?)
}
