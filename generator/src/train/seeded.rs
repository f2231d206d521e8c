//! Variables initialised from a seeded generator, so that a training run
//! is a function of its `--seed`. candle's own initialisers draw from a
//! thread RNG that the CPU device cannot seed.

use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A `VarMap` backend whose new variables come from a seeded RNG, drawn in
/// the order the model asks for them (its construction order, fixed).
struct Seeded {
    varmap: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

/// A `VarBuilder` over `varmap` that initialises new variables from `seed`.
pub fn seeded_var_builder(
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let backend = Seeded {
        varmap: varmap.clone(),
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
    };
    VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
}

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl SimpleBackend for Seeded {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data =
            self.varmap.data().lock().map_err(|_| {
                candle_core::Error::Msg("the variable map's lock is poisoned".into())
            })?;
        if let Some(var) = data.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("shape mismatch on {name}: {shape:?} <> {:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let n = shape.elem_count();
        let mut rng = self
            .rng
            .lock()
            .map_err(|_| candle_core::Error::Msg("the seeded RNG's lock is poisoned".into()))?;
        let values: Vec<f64> = match init {
            Init::Const(c) => vec![c; n],
            Init::Uniform { lo, up } => (0..n).map(|_| rng.random_range(lo..up)).collect(),
            Init::Randn { mean, stdev } => {
                (0..n).map(|_| mean + stdev * normal(&mut rng)).collect()
            }
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(&shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                    }
                    NormalOrUniform::Normal => (0..n).map(|_| std * normal(&mut rng)).collect(),
                }
            }
        };
        let tensor = Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_owned(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("`{name}`: a seeded variable map needs a shape and an initialiser")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .is_ok_and(|data| data.contains_key(name))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn build(seed: u64) -> Vec<f32> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, seed, DType::F32, &Device::Cpu);
        let l = candle_nn::linear(3, 4, vb.pp("l")).unwrap();
        let q = vb
            .get_with_hints(
                (2, 3),
                "q",
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )
            .unwrap();
        let mut v = l.bias().unwrap().to_vec1::<f32>().unwrap();
        v.extend(l.weight().flatten_all().unwrap().to_vec1::<f32>().unwrap());
        v.extend(q.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        v
    }

    #[test]
    fn the_same_seed_gives_the_same_variables_and_another_seed_others() {
        let (a, b, c) = (build(1), build(1), build(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // A linear layer's bias is uniform within 1 / sqrt(fan_in).
        assert!(a[..4].iter().all(|v| v.abs() <= 1.0 / 3f32.sqrt()));
    }
}
