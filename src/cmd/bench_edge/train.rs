//! LoRA training steps on the edge model in candle: forward with the
//! fixed LoRA, logits at the loss positions only, backward, AdamW.

use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use loragen_generator::edge::{
    train_step_flops, EdgeModel, FixedLora, LoraConfig, Phase, StepShape,
};
use serde::Serialize;

use crate::cli::BenchEdgeArgs;

#[derive(Debug, Serialize)]
pub struct TrainRow {
    pub seq: usize,
    pub batch: usize,
    pub loss_positions: usize,
    pub step_ms: f64,
    pub forward_ms: f64,
    pub logits_loss_ms: f64,
    pub backward_update_ms: f64,
    pub tokens_per_s: f64,
    pub gflop_per_step: f64,
    pub gflop_per_s: f64,
    pub peak_rss_mib: f64,
}

pub fn measure(
    edge: &EdgeModel,
    text: &[u32],
    args: &BenchEdgeArgs,
) -> anyhow::Result<Vec<TrainRow>> {
    let lora = LoraConfig::default()
        .with_rank(args.rank)
        .with_dropout(0.05);
    println!(
        "\nLoRA training step (r={}, FFN gate/up/down of all {} layers, AdamW; loss and logits on the last {} positions of each sequence; median of {} steps after a warm-up)",
        lora.rank, edge.config.n_layer, args.loss_tokens, args.steps
    );
    println!(
        "resident before training: {:.0} MiB (mostly the f32 weights)",
        super::super::rss_mib()
    );
    println!("| seq | batch | step ms | forward | logits + loss | backward + AdamW | tokens/s | GFLOP/step | GFLOP/s | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for &seq in &args.seq {
        for &batch in &args.batch {
            let row = shape(edge, text, &lora, seq, batch, args)?;
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} |",
                row.seq,
                row.batch,
                row.step_ms,
                row.forward_ms,
                row.logits_loss_ms,
                row.backward_update_ms,
                row.tokens_per_s,
                row.gflop_per_step,
                row.gflop_per_s,
                row.peak_rss_mib
            );
            rows.push(row);
        }
    }
    Ok(rows)
}

fn shape(
    edge: &EdgeModel,
    text: &[u32],
    lora: &LoraConfig,
    seq: usize,
    batch: usize,
    args: &BenchEdgeArgs,
) -> anyhow::Result<TrainRow> {
    anyhow::ensure!(seq >= 2, "--seq must be at least 2");
    let dev = edge.device();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev);
    let fixed = FixedLora::new(lora.clone(), edge.config.n_layer, |t| edge.dims(t), vb)?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 1e-4,
            ..ParamsAdamW::default()
        },
    )?;

    // Each sequence is a window of the text (wrapping around), so the
    // batch holds real, different token sequences.
    let ids: Vec<u32> = (0..batch)
        .flat_map(|b| (0..seq).map(move |t| text[(b * 97 + t) % text.len()]))
        .collect();
    let input = Tensor::from_vec(ids.clone(), (batch, seq), dev)?;
    let n_loss = args.loss_tokens.clamp(1, seq - 1);
    let at: Vec<(usize, usize)> = (0..batch)
        .flat_map(|b| (seq - 1 - n_loss..seq - 1).map(move |t| (b, t)))
        .collect();
    let targets: Vec<u32> = at.iter().map(|&(b, t)| ids[b * seq + t + 1]).collect();
    let targets = Tensor::from_vec(targets, at.len(), dev)?;
    let lengths = vec![seq; batch];

    super::super::reset_peak_rss();
    let mut times = Vec::with_capacity(args.steps);
    for step in 0..=args.steps {
        let started = Instant::now();
        let hidden = edge.hidden(
            &input,
            &lengths,
            Some(&fixed.layers),
            Phase::Train {
                dropout: lora.dropout,
            },
        )?;
        let forward = started.elapsed().as_secs_f64();
        let logits = edge.logits(&edge.select(&hidden, &at)?)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        let value = loss.to_scalar::<f32>()?;
        anyhow::ensure!(
            value.is_finite(),
            "the loss became {value} at step {step} (seq {seq}, batch {batch})"
        );
        let with_loss = started.elapsed().as_secs_f64();
        opt.backward_step(&loss)?;
        if step > 0 {
            times.push([
                started.elapsed().as_secs_f64(),
                forward,
                with_loss - forward,
            ]);
        }
    }
    // The step of median total time, with its own split.
    times.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let [step_s, forward_s, loss_s] = times[times.len() / 2];
    let flops = train_step_flops(
        &edge.config,
        lora,
        StepShape {
            batch,
            seq,
            loss_positions: at.len(),
        },
    );
    Ok(TrainRow {
        seq,
        batch,
        loss_positions: at.len(),
        step_ms: step_s * 1e3,
        forward_ms: forward_s * 1e3,
        logits_loss_ms: loss_s * 1e3,
        backward_update_ms: (step_s - forward_s - loss_s) * 1e3,
        tokens_per_s: (batch * seq) as f64 / step_s,
        gflop_per_step: flops / 1e9,
        gflop_per_s: flops / 1e9 / step_s,
        peak_rss_mib: super::super::peak_rss_mib(),
    })
}
