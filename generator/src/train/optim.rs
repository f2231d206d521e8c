//! AdamW whose state can be saved and restored, so a resumed run continues
//! exactly (candle-nn's `AdamW` keeps its moments private). The update is
//! candle-nn's: decoupled weight decay, bias-corrected moments.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use crate::checkpoint::take_fitting;
use crate::error::{Error, Result};
use loragen_protocol::atomic::write_atomic_with;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        AdamWParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

#[derive(Debug)]
pub struct AdamW {
    /// By name, sorted: the order of the saved state.
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    steps: usize,
    pub params: AdamWParams,
}

impl AdamW {
    pub fn new(mut vars: Vec<(String, Var)>, params: AdamWParams) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |v: &Var| v.zeros_like();
        let m = vars
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<candle_core::Result<_>>()?;
        let v = vars
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<candle_core::Result<_>>()?;
        Ok(AdamW {
            vars,
            m,
            v,
            steps: 0,
            params,
        })
    }

    /// The global L2 norm of the gradients, and the gradients scaled down
    /// to `max_norm` when it is larger.
    pub fn clip(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        let mut sum = 0.0;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var) {
                sum += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        let norm = sum.sqrt();
        if norm > max_norm && norm.is_finite() {
            let scale = max_norm / norm;
            for (_, var) in &self.vars {
                if let Some(g) = grads.get(var) {
                    let scaled = (g * scale)?;
                    grads.insert(var, scaled);
                }
            }
        }
        Ok(norm)
    }

    /// One update from `grads`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let p = self.params;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - p.beta1.powi(t), 1.0 - p.beta2.powi(t));
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let m = ((&self.m[i] * p.beta1)? + (g * (1.0 - p.beta1))?)?;
            let v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + p.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - p.lr * p.weight_decay))?;
            var.set(&(decayed - (update * p.lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Moments and step count to a safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            tensors.insert(format!("m.{name}"), self.m[i].clone());
            tensors.insert(format!("v.{name}"), self.v[i].clone());
        }
        tensors.insert(
            "steps".to_owned(),
            Tensor::new(&[self.steps as u32], &Device::Cpu)?,
        );
        write_atomic_with(path, |tmp| {
            candle_core::safetensors::save(&tensors, tmp).map_err(Error::from)
        })
    }

    /// Restores what `save` wrote; every variable must have its moments,
    /// of its shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |what: String| Error::Config(format!("{}: {what}", path.display()));
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| bad(format!("not an optimiser state ({e})")))?;
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (kind, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                *slot = take_fitting(&mut tensors, &format!("{kind}.{name}"), var).map_err(bad)?;
            }
        }
        let steps = tensors
            .remove("steps")
            .ok_or_else(|| bad("no `steps`".into()))?
            .to_vec1::<u32>()?;
        self.steps = steps.first().copied().unwrap_or(0) as usize;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_nn::Optimizer;

    #[test]
    fn matches_candle_nn_adamw_and_resumes_exactly() {
        let dev = Device::Cpu;
        let start = Tensor::new(&[1.0f64, -2.0, 0.5], &dev).unwrap();
        let loss = |x: &Var| {
            (x.as_tensor().sqr().unwrap() * 3.0)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let params = AdamWParams {
            lr: 0.1,
            ..AdamWParams::default()
        };
        let (ours, theirs) = (
            Var::from_tensor(&start).unwrap(),
            Var::from_tensor(&start).unwrap(),
        );
        let mut a = AdamW::new(vec![("x".into(), ours.clone())], params).unwrap();
        let mut b = candle_nn::AdamW::new(
            vec![theirs.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.1,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
            },
        )
        .unwrap();
        for _ in 0..3 {
            a.step(&loss(&ours).backward().unwrap()).unwrap();
            b.backward_step(&loss(&theirs)).unwrap();
        }
        let diff = (ours.as_tensor() - theirs.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f64>().unwrap() < 1e-12);

        // Save after 3 steps, run 2 more; a fresh optimiser loaded from the
        // file continues to the same values.
        let dir = tempfile::tempdir().unwrap();
        a.save(&dir.path().join("opt.safetensors")).unwrap();
        let saved = ours.as_tensor().copy().unwrap();
        for _ in 0..2 {
            a.step(&loss(&ours).backward().unwrap()).unwrap();
        }
        let resumed = Var::from_tensor(&saved).unwrap();
        let mut c = AdamW::new(vec![("x".into(), resumed.clone())], params).unwrap();
        c.load(&dir.path().join("opt.safetensors")).unwrap();
        assert_eq!(c.steps(), 3);
        for _ in 0..2 {
            c.step(&loss(&resumed).backward().unwrap()).unwrap();
        }
        assert_eq!(
            ours.as_tensor().to_vec1::<f64>().unwrap(),
            resumed.as_tensor().to_vec1::<f64>().unwrap()
        );
    }

    #[test]
    fn clipping_scales_the_gradients_to_the_bound() {
        let x = Var::new(&[3.0f64, 4.0], &Device::Cpu).unwrap();
        let opt = AdamW::new(vec![("x".into(), x.clone())], AdamWParams::default()).unwrap();
        // d/dx of (x . x) / 2 is x: norm 5.
        let mut grads = (x.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5)
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(opt.clip(&mut grads, 1.0).unwrap(), 5.0);
        let g = grads.get(&x).unwrap().to_vec1::<f64>().unwrap();
        assert!(
            (g[0] - 0.6).abs() < 1e-12 && (g[1] - 0.8).abs() < 1e-12,
            "{g:?}"
        );
    }
}
