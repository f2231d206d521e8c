//! `loragen compile`: a registry into a GGUF adapter and its manifest,
//! through the generator library's `Compiler`.

use std::time::Instant;

use anyhow::Context;
use loragen_protocol::artifact::{manifest_path, selector_path};
use loragen_protocol::render::system_prompt;

use crate::cli::CompileArgs;
use loragen::setup::Setup;

pub fn run(args: CompileArgs, models: Setup) -> anyhow::Result<()> {
    let system = match &args.system_file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?,
        None => {
            let loaded = loragen_agent::toolset::Toolset::load(
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
    let models = models
        .with_generator(args.checkpoint)
        .with_selector(args.selector);
    let generator = models.generator()?;
    println!(
        "generator {} ({})",
        generator.dir.display(),
        generator.origin
    );
    let started = Instant::now();
    let compiled = models.compiler()?.compile(&system, &args.out, true)?;
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
    if let Some(part) = &artifact.manifest.selector {
        println!(
            "tool selector part {} (selector {})",
            selector_path(&artifact.path).display(),
            part.selector_sha256
        );
    }
    Ok(())
}
