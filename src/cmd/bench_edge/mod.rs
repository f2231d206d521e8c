//! `loragen bench edge`: what training and inference cost on the edge
//! model. Training: LoRA steps (forward, backward, AdamW) in candle at
//! several shapes, with tokens/s, achieved GFLOP/s and peak RSS. Inference:
//! llama.cpp decode speed of the base model, the base with a GGUF adapter,
//! and the adapter merged (F16 and Q8_0), side by side in rotated rounds,
//! plus how closely each merged copy agrees with the adapter path.

mod decode;
mod train;

use anyhow::Context;
use candle_core::Device;
use loragen_agent::runtime::Model;
use loragen_generator::edge::EdgeModel;
use loragen_protocol::gpt4tools::{render_instruction, TOOLS};
use serde_json::json;

use crate::cli::BenchEdgeArgs;
use loragen::setup::Setup;

pub fn run(args: BenchEdgeArgs, models: &Setup) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.no_train || (args.steps > 0 && !args.seq.is_empty() && !args.batch.is_empty()),
        "--steps, --seq and --batch must be positive and non-empty"
    );
    anyhow::ensure!(
        args.seq.iter().chain(&args.batch).all(|&n| n > 0),
        "--seq and --batch values must be positive"
    );
    anyhow::ensure!(
        args.no_decode || (args.rounds > 0 && args.decode_tokens > 0),
        "--rounds and --decode-tokens must be positive"
    );
    anyhow::ensure!(args.rank > 0, "--rank must be positive");
    let path = models.edge()?.path.clone();
    println!("edge model {}", path.display());
    let llama = Model::load(&path)?;
    let text = tokens_of_text(&llama);
    let edge = EdgeModel::load(&path, &Device::Cpu)
        .with_context(|| format!("cannot load {} in candle", path.display()))?;

    let mut doc = json!({ "model": path.display().to_string() });
    if !args.no_train {
        let figures = train::measure(&edge, &text, &args)?;
        doc["train"] = serde_json::to_value(&figures)?;
    }
    if !args.no_decode {
        let figures = decode::measure(&edge, llama, &path, &text, &args)?;
        doc["decode"] = figures;
    }
    if let Some(file) = &args.json {
        super::write_atomic(file, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    }
    Ok(())
}

/// A real text for training steps and agreement checks: the 23-tool
/// GPT4Tools prompt, as the edge model's token ids.
fn tokens_of_text(model: &Model) -> Vec<u32> {
    let text = render_instruction(
        &TOOLS,
        Some((
            "image/kdwpqzla.png",
            "Two dogs playing with a ball on the grass.",
        )),
        "Segment the dogs.",
    );
    model
        .tokenize(&text, true)
        .iter()
        .map(|t| t.0 as u32)
        .collect()
}
