//! `loragen adapter export|merge`: LoRA checkpoints to llama.cpp GGUF
//! adapters, and adapters merged into a copy of the model.

use std::time::Instant;

use anyhow::Context;
use loragen_generator::checkpoint::lora as checkpoint;
use loragen_generator::gguf_lora::{read_lora_adapter, write_lora_adapter};
use loragen_generator::merge::write_merged;

use super::file_mib;
use crate::cli::{AdapterCommand, AdapterExportArgs, AdapterMergeArgs};
use loragen::setup::Setup;

pub fn run(cmd: AdapterCommand, models: &Setup) -> anyhow::Result<()> {
    match cmd {
        AdapterCommand::Export(args) => export(&args),
        AdapterCommand::Merge(args) => merge(&args, models),
    }
}

fn export(args: &AdapterExportArgs) -> anyhow::Result<()> {
    let adapter = checkpoint::to_adapter(&args.checkpoint)
        .with_context(|| format!("cannot read the checkpoint {}", args.checkpoint.display()))?;
    write_lora_adapter(&args.out, &adapter.arch, adapter.alpha, &adapter.pairs)?;
    let rank = adapter.pairs.first().map_or(0, |p| p.a.dims()[0]);
    println!(
        "wrote {}: {} LoRA pairs, rank {rank}, alpha {}, architecture {} ({:.1} MiB)",
        args.out.display(),
        adapter.pairs.len(),
        adapter.alpha,
        adapter.arch,
        file_mib(&args.out)
    );
    Ok(())
}

fn merge(args: &AdapterMergeArgs, models: &Setup) -> anyhow::Result<()> {
    anyhow::ensure!(args.scale.is_finite(), "--scale must be a finite number");
    let base = models.model(&args.model)?;
    anyhow::ensure!(
        base != args.out,
        "--out must not be the model being merged into ({})",
        base.display()
    );
    let adapter = read_lora_adapter(&args.adapter)
        .with_context(|| format!("cannot read the adapter {}", args.adapter.display()))?;
    let started = Instant::now();
    let summary = write_merged(&base, &adapter, args.scale, args.tensor_type, &args.out)
        .with_context(|| {
            format!(
                "cannot merge {} into {}",
                args.adapter.display(),
                base.display()
            )
        })?;
    println!(
        "wrote {}: {} tensors merged as {}, {} copied unchanged, {:.1} MiB (base {:.1} MiB), {:.1} s",
        args.out.display(),
        summary.merged,
        args.tensor_type,
        summary.copied,
        summary.file_bytes as f64 / super::MIB,
        file_mib(&base),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
