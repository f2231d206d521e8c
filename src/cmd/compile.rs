//! `loragen compile`: a registry into a GGUF adapter and its manifest,
//! through the generator library's `Compiler`.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use loragen_agent::adapter::{manifest_path, AdapterSource};
use loragen_agent::store::{model_sha256, ModelChoice, ModelStore, Role};
use loragen_generator::compile::{Compiler, CompilerSpec};
use loragen_tools::render::system_prompt;

use crate::cli::{CompileArgs, ModelArgs};

pub fn run(args: CompileArgs, models: &ModelArgs) -> anyhow::Result<()> {
    let system = match &args.system_file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?,
        None => {
            let loaded = super::toolset::Toolset::load(
                args.registry.as_deref(),
                args.mcp_config.as_deref(),
                true,
            )?;
            for warning in loaded.warnings() {
                eprintln!("warning: {warning}");
            }
            let specs = loaded.into_specs();
            anyhow::ensure!(!specs.is_empty(), "no tools to compile");
            println!("{} tools to compile", specs.len());
            system_prompt(&specs)
        }
    };
    let started = Instant::now();
    let compiled =
        open_compiler(&args.checkpoint, models, None)?.compile(&system, &args.out, true)?;
    let artifact = &compiled.artifact;
    println!(
        "compiled {} bytes of registry into {} ({}) in {:.2} s{}",
        system.len(),
        artifact.path.display(),
        manifest_path(&artifact.path).display(),
        started.elapsed().as_secs_f64(),
        if artifact.cached {
            ", from the compile cache".to_owned()
        } else {
            format!(", {} cloud tokens encoded", compiled.cloud_tokens)
        }
    );
    println!(
        "registry fingerprint {}",
        artifact.manifest.registry_fingerprint
    );
    println!("adapter sha256 {}", artifact.manifest.adapter_sha256);
    Ok(())
}

/// The generator checkpoint at `checkpoint`, for the edge and cloud models
/// that `models` selects, caching under `cache_home` (default
/// `$LORAGEN_HOME`).
pub fn open_compiler(
    checkpoint: &Path,
    models: &ModelArgs,
    cache_home: Option<&Path>,
) -> anyhow::Result<Compiler> {
    let edge_path = super::resolve_model(&ModelChoice::Role(Role::Edge), models)?;
    let cloud_path = super::resolve_model(&ModelChoice::Role(Role::Cloud), models)?;
    let store = ModelStore::from_env()?;
    Ok(Compiler::open(&CompilerSpec {
        checkpoint,
        edge_sha256: &model_sha256(&edge_path)?,
        edge_path: &edge_path,
        cloud_sha256: &model_sha256(&cloud_path)?,
        cloud_path: &cloud_path,
        home: cache_home.unwrap_or(store.home()),
    })?)
}

/// Whether `generator` names a remote cloud role rather than a checkpoint.
pub fn is_url(generator: &str) -> bool {
    generator.starts_with("http://") || generator.starts_with("https://")
}

/// The client of the cloud role at `url`; HTTPS is refused, since this
/// build's client speaks plain HTTP.
pub fn remote(url: &str) -> anyhow::Result<loragen::serve::RemoteCloud> {
    anyhow::ensure!(
        !url.starts_with("https://"),
        "{url}: this build speaks plain HTTP; put a TLS-terminating proxy in front of the cloud role"
    );
    Ok(loragen::serve::RemoteCloud::new(url))
}

/// The generator as a compiler: a checkpoint directory compiles in this
/// process, `http://host:port` asks a cloud role (`loragen serve`).
pub fn open_source(generator: &str, models: &ModelArgs) -> anyhow::Result<Box<dyn AdapterSource>> {
    if is_url(generator) {
        Ok(Box::new(remote(generator)?))
    } else {
        Ok(Box::new(open_compiler(Path::new(generator), models, None)?))
    }
}
