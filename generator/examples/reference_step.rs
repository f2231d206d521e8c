//! Run with: cargo run --release -p loragen-generator --example reference_step [SEQ BATCH STEPS]
//!
//! Times one training step of the edge model's own forward (fused kernels,
//! LoRA deltas applied per element) against a forward and backward pass
//! through candle-transformers' Gemma 3 with a plain LoRA of the same
//! shape: rank 16 on the FFN projections, merged into the weights each
//! step (`W + s B A`, through which the gradient reaches A and B), since
//! candle-transformers' layers take plain weights. Both run on the same
//! dequantised weights and tokens, with the loss on each row's last
//! position (all candle-transformers returns), alternately in one process,
//! and the figures are the medians of STEPS timed steps after one warm-up.
//! Needs the default edge model: `loragen models fetch`.

use std::time::Instant;

use anyhow::Context as _;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::gemma3;
use loragen_agent::runtime::Model;
use loragen_agent::store::{ModelStore, Role};
use loragen_generator::edge::{cross_entropy, EdgeModel, FixedLora, LoraConfig, Phase, Target};
use loragen_generator::test_util::reference::{reference_config, reference_weights};
use loragen_protocol::gpt4tools::{render_instruction, TOOLS};

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("SEQ BATCH STEPS are numbers"))
        .collect::<anyhow::Result<_>>()?;
    let (seq, batch, steps) = match args[..] {
        [] => (128, 4, 3),
        [seq, batch, steps] => (seq, batch, steps.max(1)),
        _ => anyhow::bail!("usage: reference_step [SEQ BATCH STEPS]"),
    };
    let path = ModelStore::from_env()?.resolve_role(Role::Edge)?;
    let device = Device::Cpu;
    let edge = EdgeModel::load(&path, &device)?;
    let config = reference_config(&edge.config, seq);
    let base = reference_weights(&path);

    // Real tokens: consecutive windows of the GPT4Tools instruction.
    let text = render_instruction(&TOOLS, None, "Segment the dogs in image/a1b2c3d4.png.");
    let all: Vec<u32> = Model::load(&path)?
        .tokenize(&text, true)
        .iter()
        .map(|t| t.0 as u32)
        .collect();
    anyhow::ensure!(
        all.len() > batch * seq / 2 + seq,
        "the text has {} tokens",
        all.len()
    );
    let rows: Vec<u32> = (0..batch)
        .flat_map(|b| all[b * seq / 2..b * seq / 2 + seq].to_vec())
        .collect();
    let input = Tensor::from_vec(rows.clone(), (batch, seq), &device)?;
    let targets: Vec<u32> = (0..batch).map(|b| all[b * seq / 2 + seq]).collect();

    let varmap = VarMap::new();
    let lora = FixedLora::new(
        LoraConfig::default(),
        edge.config.n_layer,
        |t| edge.dims(t),
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
    )?;
    println!(
        "edge step at seq {seq} x batch {batch}, LoRA rank {} on {:?}, loss on the last position of each row; {steps} timed steps each after a warm-up",
        lora.config.rank, lora.config.targets
    );

    let ours = || -> anyhow::Result<f64> {
        let started = Instant::now();
        let hidden = edge.hidden(
            &input,
            &vec![seq; batch],
            Some(&lora.layers),
            Phase::Train {
                dropout: 0.0,
                seed: 0,
            },
        )?;
        let at: Vec<(usize, usize)> = (0..batch).map(|b| (b, seq - 1)).collect();
        let logits = edge.logits(&edge.select(&hidden, &at)?)?;
        let loss = cross_entropy(&logits, &targets)?;
        let grads = loss.backward()?;
        anyhow::ensure!(grads.get(&lora.layers[0].deltas[0].1.b).is_some());
        Ok(started.elapsed().as_secs_f64() * 1e3)
    };
    let theirs = || -> anyhow::Result<f64> {
        let started = Instant::now();
        let mut weights = base.clone();
        for (il, layer) in lora.layers.iter().enumerate() {
            for (target, delta) in &layer.deltas {
                let hf = match target {
                    Target::Gate => "gate_proj",
                    Target::Up => "up_proj",
                    Target::Down => "down_proj",
                    other => anyhow::bail!("{other:?} is not an FFN projection"),
                };
                let name = format!("model.layers.{il}.mlp.{hf}.weight");
                let w = weights.get(&name).context("no base weight")?;
                let merged = (w + (delta.b.matmul(&delta.a)? * delta.scale)?)?;
                weights.insert(name, merged);
            }
        }
        let vb = VarBuilder::from_tensors(weights, DType::F32, &device);
        let mut model = gemma3::Model::new(false, &config, vb)?;
        let logits = model.forward(&input, 0)?.squeeze(1)?;
        let targets = Tensor::new(targets.as_slice(), &device)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        let grads = loss.backward()?;
        anyhow::ensure!(grads.get(&lora.layers[0].deltas[0].1.b).is_some());
        Ok(started.elapsed().as_secs_f64() * 1e3)
    };

    ours()?;
    theirs()?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        a.push(ours()?);
        b.push(theirs()?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut a), median(&mut b));
    let tokens = (seq * batch) as f64;
    println!(
        "loragen edge forward: {a:.0} ms a step ({:.1} tokens/s)",
        tokens / a * 1e3
    );
    println!(
        "candle-transformers gemma3 + merged LoRA: {b:.0} ms a step ({:.1} tokens/s)",
        tokens / b * 1e3
    );
    println!("ratio: candle-transformers takes {:.2}x as long", b / a);
    Ok(())
}
