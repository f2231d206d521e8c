//! The LoRA-Gen generator: meta tokens over cloud features, a router per
//! edge layer, KeepTop-K gates and an expert pool per layer, whose gated
//! mix is the edge model's LoRA (or, for the ablation, a direct head that
//! generates the factors). One assembly rule everywhere: the deltas of
//! [`Generator::generate`] are what training applies and what the exported
//! adapter holds.

mod config;
mod direct;
mod meta;
mod router;

use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

pub use config::{Gating, GeneratorConfig, Head, MetaSource};
pub use direct::DirectHead;
pub use meta::{Meta, MetaProjection, MetaTokens};
pub use router::Router;

use crate::edge::{ExpertLora, LayerDeltas};
use crate::error::{Error, Result};
use crate::gating::keep_top_k;
use crate::gguf_lora::{LoraAdapter, LoraPair};

/// How gates are computed: at inference (BatchNorm's running statistics,
/// no noise), or in training (batch statistics; Gumbel noise from
/// `noise_seed` when the gating samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatePass {
    Eval,
    Train { noise_seed: u64 },
}

/// Standard Gumbel noise -ln(-ln u) of `shape`, from `seed`, in the dtype
/// and on the device of `like`.
fn gumbel_noise(shape: (usize, usize), seed: u64, like: &Tensor) -> Result<Tensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f64> = (0..shape.0 * shape.1)
        .map(|_| {
            let u: f64 = rng.random::<f64>().clamp(1e-12, 1.0 - 1e-12);
            -(-u.ln()).ln()
        })
        .collect();
    Ok(Tensor::from_vec(values, shape, like.device())?.to_dtype(like.dtype())?)
}

/// What turns the meta tokens into deltas.
#[derive(Debug, Clone)]
enum Heads {
    Experts {
        routers: Vec<Router>,
        experts: ExpertLora,
    },
    Direct(DirectHead),
}

/// One batch's generated LoRA: every layer's deltas, and the gates they
/// were mixed with (none for the direct head).
#[derive(Debug, Clone)]
pub struct Generated {
    pub deltas: Vec<LayerDeltas>,
    pub gates: Option<Vec<Tensor>>,
}

/// The trainable generator.
#[derive(Debug, Clone)]
pub struct Generator {
    pub config: GeneratorConfig,
    meta: Meta,
    heads: Heads,
}

impl Generator {
    /// Builds the generator; `dims(target)` gives an edge projection's (in, out).
    pub fn new(
        config: GeneratorConfig,
        dims: impl Fn(crate::edge::Target) -> (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        config.validate()?;
        let meta = Meta::new(&config, vb.pp("meta"))?;
        let heads = match config.head {
            Head::Experts => Heads::Experts {
                routers: (0..config.edge_layers)
                    .map(|il| Router::new(&config, vb.pp(format!("router.{il}"))))
                    .collect::<Result<_>>()?,
                experts: ExpertLora::new(
                    config.lora.clone(),
                    config.n_experts,
                    config.edge_layers,
                    dims,
                    vb.pp("experts"),
                )?,
            },
            Head::Direct { width } => {
                Heads::Direct(DirectHead::new(&config, width, dims, vb.pp("direct"))?)
            }
        };
        Ok(Generator {
            config,
            meta,
            heads,
        })
    }

    /// The expert head's routers and experts; `None` for the direct head.
    pub fn expert_head(&self) -> Option<(&[Router], &ExpertLora)> {
        match &self.heads {
            Heads::Experts { routers, experts } => Some((routers, experts)),
            Heads::Direct(_) => None,
        }
    }

    /// Every layer's deltas for each element's cloud features (tokens,
    /// cloud_dim), with the gates that mixed them.
    pub fn generate(&self, features: &[Tensor], pass: GatePass) -> Result<Generated> {
        match &self.heads {
            Heads::Experts { .. } => {
                let gates = self.gates(features, pass)?;
                Ok(Generated {
                    deltas: self.deltas(&gates)?,
                    gates: Some(gates),
                })
            }
            Heads::Direct(head) => Ok(Generated {
                deltas: head.deltas(&self.meta.forward(features)?)?,
                gates: None,
            }),
        }
    }

    /// Each layer's gates (batch, n_experts), from each element's cloud
    /// features (tokens, cloud_dim); the direct head has none.
    pub fn gates(&self, features: &[Tensor], pass: GatePass) -> Result<Vec<Tensor>> {
        let (routers, _) = self.expert_head().ok_or_else(no_experts)?;
        let t = self.meta.forward(features)?;
        let train = matches!(pass, GatePass::Train { .. });
        routers
            .iter()
            .enumerate()
            .map(|(il, router)| {
                let logits = router.forward_t(&t.narrow(1, il, 1)?.squeeze(1)?, train)?;
                let logits = match (self.config.gating, pass) {
                    (Gating::KeepTopK, _) => logits,
                    (Gating::GumbelTopK { tau }, GatePass::Eval) => (logits / tau)?,
                    (Gating::GumbelTopK { tau }, GatePass::Train { noise_seed }) => {
                        let noise = gumbel_noise(logits.dims2()?, noise_seed ^ il as u64, &logits)?;
                        ((logits + noise)? / tau)?
                    }
                };
                keep_top_k(&logits, self.config.top_k)
            })
            .collect()
    }

    /// Per-element deltas of every edge layer, mixed by `gates`.
    pub fn deltas(&self, gates: &[Tensor]) -> Result<Vec<LayerDeltas>> {
        let (_, experts) = self.expert_head().ok_or_else(no_experts)?;
        experts.deltas(gates)
    }

    /// The compiled adapter of one registry: its deltas at inference
    /// (running BatchNorm statistics, no noise), one rank-r LoRA per
    /// projection.
    pub fn adapter(&self, features: &Tensor, arch: &str) -> Result<LoraAdapter> {
        let generated = self.generate(std::slice::from_ref(features), GatePass::Eval)?;
        let mut pairs = Vec::new();
        for (il, layer) in generated.deltas.iter().enumerate() {
            for (target, delta) in &layer.deltas {
                pairs.push(LoraPair {
                    weight: format!("blk.{il}.{}.weight", target.gguf_stem()),
                    a: delta.a.squeeze(0)?.to_dtype(DType::F32)?,
                    b: delta.b.squeeze(0)?.to_dtype(DType::F32)?,
                });
            }
        }
        Ok(LoraAdapter {
            arch: arch.to_owned(),
            alpha: self.config.lora.alpha as f32,
            pairs,
        })
    }
}

fn no_experts() -> Error {
    Error::Config("a generator with the direct head has no gates or experts".into())
}

/// The load-balancing loss: per layer, the squared coefficient of variation
/// (population variance over squared mean) of each expert's gate mass over
/// the batch, averaged over layers.
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// use loragen_generator::model::cv_loss;
///
/// // Masses 1.5 and 0.5: mean 1, variance 0.25.
/// let g = Tensor::new(&[[1f32, 0.0], [0.5, 0.5]], &Device::Cpu)?;
/// let cv = cv_loss(&[g])?.to_scalar::<f32>()?;
/// assert!((cv - 0.25).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cv_loss(gates: &[Tensor]) -> Result<Tensor> {
    if gates.is_empty() {
        return Err(Error::Config("the CV loss needs at least one layer".into()));
    }
    let per_layer = gates
        .iter()
        .map(|g| {
            let mass = g.sum(0)?;
            let mean = mass.mean_keepdim(D::Minus1)?;
            let var = mass.broadcast_sub(&mean)?.sqr()?.mean_keepdim(D::Minus1)?;
            var.broadcast_div(&(mean.sqr()? + 1e-10)?)?.squeeze(0)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::stack(&per_layer, 0)?.mean(0)?)
}

/// Each expert's share of the gate mass over a batch, per layer: the
/// utilisation that training logs.
pub fn utilisation(gates: &[Tensor]) -> Result<Vec<Vec<f32>>> {
    gates
        .iter()
        .map(|g| {
            let mass = g.sum(0)?;
            let total = mass.sum_all()?;
            Ok(mass
                .broadcast_div(&total)?
                .to_dtype(DType::F32)?
                .to_vec1()?)
        })
        .collect()
}

#[cfg(test)]
mod tests;
