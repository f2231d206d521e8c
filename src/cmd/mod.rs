//! One module per subcommand.

pub mod bench_gpt4tools;
pub mod bench_runtime;
pub mod bfcl;
pub mod data;
pub mod eval;
pub mod generate;
pub mod models;
pub mod repl;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

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

/// A flag that Ctrl-C sets, so long runs stop between items and keep
/// what they finished.
pub fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    Ok(stop)
}

/// A streaming callback that ends generation once `stop` is set.
pub fn until(stop: &AtomicBool) -> impl FnMut(&str) -> ControlFlow<()> + '_ {
    move |_| if stop.load(Ordering::SeqCst) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
}

/// Writes `bytes` to a temporary file beside `path` and renames it into
/// place, so readers never see a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
