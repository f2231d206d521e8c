//! `loragen compile`: a registry into a GGUF adapter and its manifest,
//! through the generator library's `compile`.

use std::time::Instant;

use anyhow::Context;
use loragen_agent::store::{model_sha256, ModelChoice, ModelStore, Role};
use loragen_generator::compile::{compile, manifest_path, CompileRequest};
use loragen_tools::gpt4tools::{render_system_prompt, TOOLS};

use crate::cli::{CompileArgs, ModelArgs};

pub fn run(args: CompileArgs, models: &ModelArgs) -> anyhow::Result<()> {
    let system = match (&args.registry, &args.system_file) {
        (Some(name), None) if name == "gpt4tools" => render_system_prompt(&TOOLS),
        (Some(name), None) => anyhow::bail!("unknown registry `{name}` (known: gpt4tools)"),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?,
        _ => anyhow::bail!("give --registry or --system-file"),
    };
    let edge_path = super::resolve_model(&ModelChoice::Role(Role::Edge), models)?;
    let cloud_path = super::resolve_model(&ModelChoice::Role(Role::Cloud), models)?;
    let store = ModelStore::from_env()?;
    let started = Instant::now();
    let (edge_sha256, cloud_sha256) = (model_sha256(&edge_path)?, model_sha256(&cloud_path)?);
    let compiled = compile(
        &CompileRequest {
            system: &system,
            checkpoint: &args.checkpoint,
            edge_path: &edge_path,
            edge_sha256: &edge_sha256,
            cloud_path: &cloud_path,
            cloud_sha256: &cloud_sha256,
            home: store.home(),
            cache: true,
        },
        &args.out,
    )?;
    println!(
        "compiled {} bytes of registry into {} ({}) in {:.2} s{}",
        system.len(),
        compiled.adapter.display(),
        manifest_path(&compiled.adapter).display(),
        started.elapsed().as_secs_f64(),
        if compiled.cached {
            ", from the compile cache".to_owned()
        } else {
            format!(", {} cloud tokens encoded", compiled.cloud_tokens)
        }
    );
    println!(
        "registry fingerprint {}",
        compiled.manifest.registry_fingerprint
    );
    println!("adapter sha256 {}", compiled.manifest.adapter_sha256);
    Ok(())
}
