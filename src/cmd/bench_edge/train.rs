//! Training steps on the edge model in candle: forward with LoRA deltas,
//! logits at the loss positions only, backward, AdamW. Two paths: one
//! LoRA shared by the batch, and per-element deltas mixed from an expert
//! pool by KeepTop-K gates (what the generator trains). Each path also runs
//! with deltas on the upper layers only, their input cached. A plain gemm
//! of the largest projection, timed in the same run, is the ceiling.

use std::time::Instant;

use candle_core::{DType, Module, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use loragen_generator::edge::{
    cross_entropy, train_step_flops, EdgeModel, ExpertLora, FixedLora, LayerDeltas, LoraConfig,
    Phase, StepShape, Target,
};
use loragen_generator::gating::keep_top_k;
use serde::Serialize;

use crate::cli::{BenchEdgeArgs, TrainPath};

#[derive(Debug, Serialize)]
pub struct TrainRow {
    pub path: TrainPath,
    /// Layers with deltas (the top ones); the rest run once and are cached.
    pub layers_with_deltas: usize,
    pub seq: usize,
    pub batch: usize,
    pub loss_positions: usize,
    pub step_ms: f64,
    pub forward_ms: f64,
    pub logits_loss_ms: f64,
    pub backward_update_ms: f64,
    /// The one-off forward of the cached lower layers for this batch.
    pub cache_ms: f64,
    pub tokens_per_s: f64,
    pub gflop_per_step: f64,
    pub gflop_per_s: f64,
    pub of_ceiling: f64,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Ceiling {
    pub rows: usize,
    pub n_in: usize,
    pub n_out: usize,
    pub gflop_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct TrainFigures {
    pub ceiling: Ceiling,
    pub rows: Vec<TrainRow>,
}

pub fn measure(
    edge: &EdgeModel,
    text: &[u32],
    args: &BenchEdgeArgs,
) -> anyhow::Result<TrainFigures> {
    let n_layer = edge.config.n_layer;
    anyhow::ensure!(
        args.upper_layers < n_layer,
        "--upper-layers must be below the model's {n_layer} layers (0 skips those rows)"
    );
    anyhow::ensure!(
        (1..=args.experts).contains(&args.top_k),
        "--top-k must be between 1 and --experts"
    );
    let lora = LoraConfig::default()
        .with_rank(args.rank)
        .with_dropout(0.05);
    let tokens = args.seq.iter().max().unwrap_or(&128) * args.batch.iter().max().unwrap_or(&1);
    let ceiling = gemm_ceiling(edge, tokens.min(512))?;
    println!(
        "\nTraining step (r={}, FFN gate/up/down, AdamW; loss and logits on the last {} positions of each sequence; median of {} steps after a warm-up). shared: one LoRA for the batch; generated: per-element deltas mixed from {} experts per layer by KeepTop-{} gates",
        lora.rank, args.loss_tokens, args.steps, args.experts, args.top_k
    );
    println!(
        "ceiling: a plain gemm ({} x {}) x ({} x {}), the largest projection, runs at {:.1} GFLOP/s",
        ceiling.rows, ceiling.n_in, ceiling.n_in, ceiling.n_out, ceiling.gflop_per_s
    );
    println!(
        "resident before training: {:.0} MiB (mostly the f32 weights)",
        super::super::rss_mib()
    );
    println!("| path | layers with deltas | seq | batch | step ms | forward | logits + loss | backward + AdamW | tokens/s | GFLOP/step | GFLOP/s | of ceiling | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut depths = vec![n_layer];
    if args.upper_layers > 0 {
        depths.push(args.upper_layers);
    }
    let mut rows = Vec::new();
    // Smallest shapes first: the allocator keeps freed memory, so a row's
    // peak includes what earlier rows left for reuse.
    for &seq in &args.seq {
        for &batch in &args.batch {
            for &depth in &depths {
                for &path in &args.path {
                    let variant = Variant {
                        path,
                        first_layer: n_layer - depth,
                    };
                    let mut row = shape(edge, text, &lora, variant, seq, batch, args)?;
                    row.of_ceiling = row.gflop_per_s / ceiling.gflop_per_s;
                    let cache = if row.cache_ms > 0.0 {
                        format!(" (cache {:.0} ms once)", row.cache_ms)
                    } else {
                        String::new()
                    };
                    println!(
                        "| {} | {}{cache} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0}% | {:.0} |",
                        row.path,
                        row.layers_with_deltas,
                        row.seq,
                        row.batch,
                        row.step_ms,
                        row.forward_ms,
                        row.logits_loss_ms,
                        row.backward_update_ms,
                        row.tokens_per_s,
                        row.gflop_per_step,
                        row.gflop_per_s,
                        100.0 * row.of_ceiling,
                        row.peak_rss_mib
                    );
                    rows.push(row);
                }
            }
        }
    }
    Ok(TrainFigures { ceiling, rows })
}

/// GFLOP/s of the FFN up projection's forward product, `rows` tokens at a
/// time, through the same frozen-product op the model uses: the fastest of
/// 40 runs (a 3 ms product is easily slowed by a thread waking late, and a
/// ceiling is what the hardware can do).
fn gemm_ceiling(edge: &EdgeModel, rows: usize) -> anyhow::Result<Ceiling> {
    let (n_in, n_out) = edge.dims(Target::Up);
    let weight = edge
        .weight(0, Target::Up)
        .ok_or_else(|| anyhow::anyhow!("the model has no layer 0"))?;
    let product = loragen_generator::edge::Frozen {
        weight: weight.clone(),
        bias: None,
    };
    let x = Tensor::randn(0f32, 1.0, (rows, n_in), edge.device())?;
    let mut best = f64::INFINITY;
    for _ in 0..40 {
        let started = Instant::now();
        let y = product.forward(&x)?;
        best = best.min(started.elapsed().as_secs_f64());
        drop(y);
    }
    let flops = 2.0 * (rows * n_in * n_out) as f64;
    Ok(Ceiling {
        rows,
        n_in,
        n_out,
        gflop_per_s: flops / 1e9 / best,
    })
}

#[derive(Debug, Clone, Copy)]
struct Variant {
    path: TrainPath,
    /// Layers below it carry no deltas and are run once, outside the step.
    first_layer: usize,
}

/// The trainable deltas of one variant, and how to make a step's deltas.
enum Trainable {
    Shared(FixedLora),
    Generated {
        experts: ExpertLora,
        gate_logits: Vec<Var>,
        top_k: usize,
    },
}

impl Trainable {
    fn deltas(&self) -> anyhow::Result<Vec<LayerDeltas>> {
        Ok(match self {
            Trainable::Shared(fixed) => fixed.layers.clone(),
            Trainable::Generated {
                experts,
                gate_logits,
                top_k,
            } => {
                let gates = gate_logits
                    .iter()
                    .map(|l| keep_top_k(l.as_tensor(), *top_k))
                    .collect::<Result<Vec<_>, _>>()?;
                experts.deltas(&gates)?
            }
        })
    }
}

fn shape(
    edge: &EdgeModel,
    text: &[u32],
    lora: &LoraConfig,
    variant: Variant,
    seq: usize,
    batch: usize,
    args: &BenchEdgeArgs,
) -> anyhow::Result<TrainRow> {
    anyhow::ensure!(seq >= 2, "--seq must be at least 2");
    let dev = edge.device();
    let depth = edge.config.n_layer - variant.first_layer;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev);
    let dims = |t| edge.dims(t);
    let trainable = match variant.path {
        TrainPath::Shared => Trainable::Shared(FixedLora::new(lora.clone(), depth, dims, vb)?),
        TrainPath::Generated => Trainable::Generated {
            experts: ExpertLora::new(lora.clone(), args.experts, depth, dims, vb)?,
            gate_logits: (0..depth)
                .map(|_| Var::randn(0f32, 1.0, (batch, args.experts), dev))
                .collect::<Result<_, _>>()?,
            top_k: args.top_k,
        },
    };
    let mut vars = varmap.all_vars();
    if let Trainable::Generated { gate_logits, .. } = &trainable {
        vars.extend(gate_logits.iter().cloned());
    }
    let mut opt = AdamW::new(
        vars,
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
    let lengths = vec![seq; batch];

    super::super::reset_peak_rss();
    let started = Instant::now();
    let cached = if variant.first_layer > 0 {
        Some(edge.lower_layers(&input, &lengths, variant.first_layer)?)
    } else {
        None
    };
    let cache_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(args.steps);
    for step in 0..=args.steps {
        let started = Instant::now();
        let phase = Phase::Train {
            dropout: lora.dropout,
            seed: step as u64,
        };
        let deltas = trainable.deltas()?;
        let hidden = match &cached {
            Some(x) => edge.hidden_from(x, variant.first_layer, &lengths, Some(&deltas), phase)?,
            None => edge.hidden(&input, &lengths, Some(&deltas), phase)?,
        };
        let forward = started.elapsed().as_secs_f64();
        let logits = edge.logits(&edge.select(&hidden, &at)?)?;
        let loss = cross_entropy(&logits, &targets)?;
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
            first_layer: variant.first_layer,
        },
    );
    Ok(TrainRow {
        path: variant.path,
        layers_with_deltas: depth,
        seq,
        batch,
        loss_positions: at.len(),
        step_ms: step_s * 1e3,
        forward_ms: forward_s * 1e3,
        logits_loss_ms: loss_s * 1e3,
        backward_update_ms: (step_s - forward_s - loss_s) * 1e3,
        cache_ms: if cached.is_some() { cache_ms } else { 0.0 },
        tokens_per_s: (batch * seq) as f64 / step_s,
        gflop_per_step: flops / 1e9,
        gflop_per_s: flops / 1e9 / step_s,
        of_ceiling: 0.0,
        peak_rss_mib: super::super::peak_rss_mib(),
    })
}
