//! Warm starts: every expert of a fresh generator set to a plain LoRA
//! checkpoint, plus seeded noise.

use std::path::Path;

use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};

use crate::edge::LoraConfig;
use crate::error::{Error, Result};

/// Sets every expert factor in `varmap` (a generator whose experts are
/// LoRAs of the shape `ours`) to the plain LoRA checkpoint in `lora_dir`,
/// plus Gaussian noise of `noise` times each factor's standard deviation,
/// seeded by `seed`. The KeepTop-K gates sum to one and the adapter mixes A
/// and B factors, so with `noise` 0 the generated adapter is that LoRA for
/// every registry.
pub(crate) fn warm_start_experts(
    varmap: &VarMap,
    ours: &LoraConfig,
    lora_dir: &Path,
    noise: f64,
    seed: u64,
) -> Result<()> {
    let lora = super::lora::to_adapter(lora_dir)?;
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| Error::Config("the variable map's lock is poisoned".into()))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5741_524d);
    let mut started = 0;
    for pair in &lora.pairs {
        let stem = pair.weight.trim_end_matches(".weight");
        // B carries the ratio of the two scales (alpha / r), so that
        // the expert's product equals the LoRA's.
        let ratio = f64::from(lora.scale_of(pair)) * ours.rank as f64 / ours.alpha;
        for (suffix, base, factor) in [("lora_a", &pair.a, 1.0), ("lora_b", &pair.b, ratio)] {
            let name = format!("experts.{stem}.{suffix}");
            let Some(var) = vars.get(&name) else {
                return Err(Error::Config(format!(
                    "{}: the LoRA has `{stem}`, which the generator's experts lack",
                    lora_dir.display()
                )));
            };
            let (n, rest) = match var.dims() {
                [n, rest @ ..] if rest == base.dims() => (*n, rest.to_vec()),
                dims => {
                    return Err(Error::Config(format!(
                        "{}: `{stem}.{suffix}` is {:?}, the experts' {dims:?}",
                        lora_dir.display(),
                        base.dims()
                    )))
                }
            };
            let base = (base.to_dtype(DType::F32)? * factor)?;
            let values: Vec<f32> = base.flatten_all()?.to_vec1()?;
            let mean = values.iter().sum::<f32>() / values.len().max(1) as f32;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>()
                / values.len().max(1) as f32)
                .sqrt();
            let sigma = std * noise as f32;
            let noisy: Vec<f32> = (0..n)
                .flat_map(|_| {
                    values
                        .iter()
                        .map(|v| v + sigma * gaussian(&mut rng))
                        .collect::<Vec<_>>()
                })
                .collect();
            let mut shape = vec![n];
            shape.extend(rest);
            var.set(&Tensor::from_vec(noisy, shape, base.device())?)?;
            started += 1;
        }
    }
    let expected = vars
        .keys()
        .filter(|k| k.starts_with("experts.") && (k.ends_with(".lora_a") || k.ends_with(".lora_b")))
        .count();
    if started != expected {
        return Err(Error::Config(format!(
            "{}: the LoRA covers {started} of the experts' {expected} factors",
            lora_dir.display()
        )));
    }
    Ok(())
}

/// A standard normal sample (Box-Muller).
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
