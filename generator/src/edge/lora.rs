//! LoRA deltas on the edge model's projections: `W x + (alpha / r) B (A x)`.
//! A delta either is shared by the whole batch (a fixed, trainable LoRA:
//! A is (r, in), B is (out, r)) or differs per batch element (generated:
//! A is (batch, r, in), B is (batch, out, r)). Generated deltas are mixed
//! from a pool of experts by per-element gates (`ExpertLora`).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::{Error, Result};

/// The projections a LoRA may adapt.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Gate,
    Up,
    Down,
    Q,
    V,
}

impl Target {
    pub const FFN: [Target; 3] = [Target::Gate, Target::Up, Target::Down];

    /// The GGUF tensor name stem (`blk.N.{stem}.weight`).
    pub fn gguf_stem(self) -> &'static str {
        match self {
            Target::Gate => "ffn_gate",
            Target::Up => "ffn_up",
            Target::Down => "ffn_down",
            Target::Q => "attn_q",
            Target::V => "attn_v",
        }
    }
}

/// Rank, scale, dropout and where to apply.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f32,
    pub targets: Vec<Target>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 16,
            alpha: 32.0,
            dropout: 0.0,
            targets: Target::FFN.to_vec(),
        }
    }
}

impl LoraConfig {
    #[must_use]
    pub fn with_rank(mut self, rank: usize) -> Self {
        self.rank = rank;
        self
    }

    #[must_use]
    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    #[must_use]
    pub fn with_dropout(mut self, dropout: f32) -> Self {
        self.dropout = dropout;
        self
    }

    #[must_use]
    pub fn with_targets(mut self, targets: Vec<Target>) -> Self {
        self.targets = targets;
        self
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 || !(0.0..1.0).contains(&self.dropout) || self.targets.is_empty() {
            return Err(Error::Config(format!(
                "LoRA needs rank > 0, dropout in [0, 1) and at least one target; got rank {}, dropout {}, {} target(s)",
                self.rank,
                self.dropout,
                self.targets.len()
            )));
        }
        Ok(())
    }
}

/// One projection's delta.
#[derive(Debug, Clone)]
pub struct Delta {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
}

impl Delta {
    /// `scale * B (A dropout(x))` for `x` of shape (batch, seq, in), with
    /// dropout (`Some((p, seed))`) only in training.
    pub fn apply(&self, x: &Tensor, dropout: Option<(f32, u64)>) -> Result<Tensor> {
        let x = match dropout {
            Some((p, seed)) if p > 0.0 => super::fused::dropout(x, p, seed)?,
            _ => x.clone(),
        };
        let (batch, seq, n_in) = x.dims3()?;
        // The scale goes on the rank-r intermediate, the smallest tensor.
        if self.a.rank() == 2 {
            // Shared factors: one plain product over all batch x seq rows
            // (broadcasting the factors over the batch costs more than the
            // rank-16 products themselves).
            let h = (x.reshape((batch * seq, n_in))?.matmul(&self.a.t()?)? * self.scale)?;
            let y = h.matmul(&self.b.t()?)?;
            return Ok(y.reshape((batch, seq, ()))?);
        }
        let h = (x.matmul(&self.a.transpose(1, 2)?)? * self.scale)?;
        Ok(h.matmul(&self.b.transpose(1, 2)?)?)
    }
}

/// The deltas of one layer, by target.
#[derive(Debug, Clone, Default)]
pub struct LayerDeltas {
    pub deltas: Vec<(Target, Delta)>,
}

impl LayerDeltas {
    pub fn get(&self, target: Target) -> Option<&Delta> {
        self.deltas
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, d)| d)
    }
}

/// A fixed LoRA with trainable A and B for every layer: the vanilla
/// baseline. A starts small and random, B at zero, so training starts
/// from the base model.
#[derive(Debug, Clone)]
pub struct FixedLora {
    pub config: LoraConfig,
    pub layers: Vec<LayerDeltas>,
}

impl FixedLora {
    /// `dims(target)` gives (in, out) of a projection.
    pub fn new(
        config: LoraConfig,
        n_layer: usize,
        dims: impl Fn(Target) -> (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        config.validate()?;
        let mut layers = Vec::with_capacity(n_layer);
        for il in 0..n_layer {
            let vb = vb.pp(format!("blk.{il}"));
            let mut deltas = Vec::new();
            for &target in &config.targets {
                let (a, b) =
                    init_factors(&vb.pp(target.gguf_stem()), &[], config.rank, dims(target))?;
                deltas.push((
                    target,
                    Delta {
                        a,
                        b,
                        scale: config.scale(),
                    },
                ));
            }
            layers.push(LayerDeltas { deltas });
        }
        Ok(FixedLora { config, layers })
    }
}

/// The initial factors of a LoRA (or of one expert): A small and
/// uniform, B zero, so the delta starts at zero. `lead` prefixes both
/// shapes (the expert axis of a pool).
fn init_factors(
    vb: &VarBuilder,
    lead: &[usize],
    rank: usize,
    (n_in, n_out): (usize, usize),
) -> Result<(Tensor, Tensor)> {
    let shape = |dims: [usize; 2]| [lead, &dims].concat();
    let bound = 1.0 / (n_in as f64).sqrt();
    let a = vb.get_with_hints(
        shape([rank, n_in]),
        "lora_a",
        candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        },
    )?;
    let b = vb.get_with_hints(shape([n_out, rank]), "lora_b", candle_nn::Init::Const(0.0))?;
    Ok((a, b))
}

/// A pool of LoRA experts for one projection: A (n, r, in), B (n, out, r).
#[derive(Debug, Clone)]
pub struct ExpertPool {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
}

impl ExpertPool {
    /// Each batch element's delta from gates (batch, n): A_b = sum_j g_bj
    /// A_j and B_b = sum_j g_bj B_j. Mixing the factors (rather than summing
    /// the K products) keeps rank r, so a generated adapter exports as the
    /// same GGUF LoRA as a fixed one, and costs the same FLOPs to apply.
    pub fn mix(&self, gates: &Tensor) -> Result<Delta> {
        let (n, rank, n_in) = self.a.dims3()?;
        let (_, n_out, _) = self.b.dims3()?;
        let batch = match gates.dims2()? {
            (batch, g) if g == n => batch,
            (_, g) => {
                return Err(Error::Config(format!(
                    "gates over {g} experts for a pool of {n}"
                )))
            }
        };
        let mix = |t: &Tensor, dims: (usize, usize, usize)| -> Result<Tensor> {
            Ok(gates.matmul(&t.reshape((n, ()))?)?.reshape(dims)?)
        };
        Ok(Delta {
            a: mix(&self.a, (batch, rank, n_in))?,
            b: mix(&self.b, (batch, n_out, rank))?,
            scale: self.scale,
        })
    }
}

/// A pool of `n_experts` LoRA experts per layer and target: the trainable
/// part of the generator on the edge side. Given per-layer gates it yields
/// per-element deltas for `EdgeModel::hidden`.
#[derive(Debug, Clone)]
pub struct ExpertLora {
    pub config: LoraConfig,
    pub n_experts: usize,
    /// By layer, then by target.
    pub layers: Vec<Vec<(Target, ExpertPool)>>,
}

impl ExpertLora {
    /// Experts for the layers `0..n_layer`, named `blk.{layer}.{stem}.lora_{a,b}`
    /// with a leading expert axis.
    pub fn new(
        config: LoraConfig,
        n_experts: usize,
        n_layer: usize,
        dims: impl Fn(Target) -> (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        config.validate()?;
        if n_experts == 0 {
            return Err(Error::Config(
                "an expert pool needs at least one expert".into(),
            ));
        }
        let mut layers = Vec::with_capacity(n_layer);
        for il in 0..n_layer {
            let vb = vb.pp(format!("blk.{il}"));
            let mut pools = Vec::with_capacity(config.targets.len());
            for &target in &config.targets {
                let (a, b) = init_factors(
                    &vb.pp(target.gguf_stem()),
                    &[n_experts],
                    config.rank,
                    dims(target),
                )?;
                pools.push((
                    target,
                    ExpertPool {
                        a,
                        b,
                        scale: config.scale(),
                    },
                ));
            }
            layers.push(pools);
        }
        Ok(ExpertLora {
            config,
            n_experts,
            layers,
        })
    }

    /// Per-element deltas of every layer from its gates (batch, n_experts).
    pub fn deltas(&self, gates: &[Tensor]) -> Result<Vec<LayerDeltas>> {
        if gates.len() != self.layers.len() {
            return Err(Error::Config(format!(
                "gates for {} layers, experts for {}",
                gates.len(),
                self.layers.len()
            )));
        }
        self.layers
            .iter()
            .zip(gates)
            .map(|(pools, g)| {
                let deltas = pools
                    .iter()
                    .map(|(t, pool)| Ok((*t, pool.mix(g)?)))
                    .collect::<Result<_>>()?;
                Ok(LayerDeltas { deltas })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::Device;

    #[test]
    fn shared_and_per_element_factors_give_the_same_delta() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, 5, 8), &dev).unwrap();
        let (a, b) = (
            Tensor::randn(0f32, 1.0, (2, 8), &dev).unwrap(),
            Tensor::randn(0f32, 1.0, (6, 2), &dev).unwrap(),
        );
        let shared = Delta {
            a: a.clone(),
            b: b.clone(),
            scale: 0.5,
        }
        .apply(&x, None)
        .unwrap();
        let stacked = |t: &Tensor| Tensor::stack(&[t, t, t], 0).unwrap();
        let per_element = Delta {
            a: stacked(&a),
            b: stacked(&b),
            scale: 0.5,
        }
        .apply(&x, None)
        .unwrap();
        // scale * B (A x) for the first row, by hand.
        let row = x.get(0).unwrap().get(0).unwrap();
        let by_hand = (b
            .matmul(&a.matmul(&row.unsqueeze(1).unwrap()).unwrap())
            .unwrap()
            .squeeze(1)
            .unwrap()
            * 0.5)
            .unwrap();
        assert_eq!(shared.dims(), &[3, 5, 6]);
        let diff = |p: &Tensor, q: &Tensor| {
            (p - q)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(&shared, &per_element) < 1e-5);
        assert!(diff(&shared.get(0).unwrap().get(0).unwrap(), &by_hand) < 1e-5);
    }
}
