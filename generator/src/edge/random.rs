//! Random LoRA deltas of a chosen size, for measurements: parity of the
//! candle and llama.cpp paths, merged-export agreement and decode speed
//! with an adapter attached. The size is set relative to the weights, so
//! the same setting means the same perturbation on any model.

use candle_core::Tensor;
use rand::{Rng, SeedableRng};

use super::lora::{Delta, LayerDeltas, Target};
use super::model::EdgeModel;
use crate::error::{Error, Result};
use crate::gguf_lora::LoraPair;

/// Rank-`rank` deltas on `targets` of every layer, each with
/// `‖B A‖ = relative ‖W‖` at scale 1 (so an adapter written with
/// `alpha = rank` applies them exactly). Returned as candle deltas and as
/// adapter pairs holding the same factors.
pub fn random_lora(
    edge: &EdgeModel,
    targets: &[Target],
    rank: usize,
    relative: f32,
    seed: u64,
) -> Result<(Vec<LayerDeltas>, Vec<LoraPair>)> {
    if rank == 0 || !(relative.is_finite() && relative >= 0.0) {
        return Err(Error::Config(format!("a random LoRA needs rank > 0 and a finite relative size >= 0; got rank {rank}, {relative}")));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = |shape: (usize, usize)| -> Result<Tensor> {
        let values: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Ok(Tensor::from_vec(values, shape, edge.device())?)
    };
    let norm = |t: &Tensor| -> Result<f32> { Ok(t.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt()) };
    let mut layers = Vec::with_capacity(edge.config.n_layer);
    let mut pairs = Vec::new();
    for il in 0..edge.config.n_layer {
        let mut deltas = Vec::with_capacity(targets.len());
        for &target in targets {
            let (n_in, n_out) = edge.dims(target);
            let weight = edge
                .weight(il, target)
                .ok_or_else(|| Error::Config(format!("the model has no layer {il}")))?;
            let a = uniform((rank, n_in))?;
            let b = uniform((n_out, rank))?;
            let to_size = relative * norm(weight)? / norm(&b.matmul(&a)?)?;
            let b = (b * f64::from(to_size))?;
            pairs.push(LoraPair {
                weight: format!("blk.{il}.{}.weight", target.gguf_stem()),
                a: a.clone(),
                b: b.clone(),
            });
            deltas.push((target, Delta { a, b, scale: 1.0 }));
        }
        layers.push(LayerDeltas { deltas });
    }
    Ok((layers, pairs))
}
