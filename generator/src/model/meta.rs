//! Meta tokens: one learned query per edge layer, cross-attending over the
//! frozen cloud model's hidden states of a registry's system part. Each
//! output T_i is what layer i's router sees. This is the trainable part
//! that LoRA-Gen gets by fine-tuning the cloud model; the cloud model here
//! stays frozen (see docs/generator.md).

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::config::GeneratorConfig;
use crate::edge::fused;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct MetaTokens {
    queries: Tensor,
    feature_norm: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    out_norm: Norm,
    heads: usize,
}

impl MetaTokens {
    pub fn new(cfg: &GeneratorConfig, vb: VarBuilder) -> Result<Self> {
        let (c, d) = (cfg.cloud_dim, cfg.meta_dim);
        let queries = vb.get_with_hints(
            (cfg.edge_layers, d),
            "queries",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let norm = |n, vb: VarBuilder| -> Result<Norm> {
            Ok(Norm {
                weight: vb.get_with_hints(n, "weight", candle_nn::Init::Const(1.0))?,
                bias: vb.get_with_hints(n, "bias", candle_nn::Init::Const(0.0))?,
            })
        };
        Ok(MetaTokens {
            queries,
            feature_norm: norm(c, vb.pp("feature_norm"))?,
            q: candle_nn::linear(d, d, vb.pp("q"))?,
            k: candle_nn::linear(c, d, vb.pp("k"))?,
            v: candle_nn::linear(c, d, vb.pp("v"))?,
            o: candle_nn::linear(d, d, vb.pp("o"))?,
            out_norm: norm(d, vb.pp("out_norm"))?,
            heads: cfg.meta_heads,
        })
    }

    /// T (batch, layers, meta_dim) from each element's features (tokens,
    /// cloud_dim); elements may differ in length.
    pub fn forward(&self, features: &[Tensor]) -> Result<Tensor> {
        let batch = features.len();
        let (layers, d) = self.queries.dims2()?;
        let dtype = self.queries.dtype();
        let longest = features
            .iter()
            .map(|f| f.dims2().map(|(t, _)| t))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let keys = longest.iter().copied().max().unwrap_or(0);
        if batch == 0 || longest.contains(&0) {
            return Err(Error::Config(
                "meta tokens need at least one element, each with at least one feature row".into(),
            ));
        }
        // Right-pad to the longest element; padded keys are masked out.
        let padded = features
            .iter()
            .map(|f| {
                let t = f.dim(0)?;
                let f = f.to_dtype(dtype)?;
                if t == keys {
                    Ok(f)
                } else {
                    Tensor::cat(
                        &[
                            &f,
                            &Tensor::zeros((keys - t, f.dim(1)?), dtype, f.device())?,
                        ],
                        0,
                    )
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let x = self.feature_norm.forward(&Tensor::stack(&padded, 0)?)?;
        let mut mask = vec![0f32; batch * layers * keys];
        for (b, &t) in longest.iter().enumerate() {
            for l in 0..layers {
                let row = (b * layers + l) * keys;
                mask[row + t..row + keys].fill(f32::NEG_INFINITY);
            }
        }
        let mask = Tensor::from_vec(mask, (batch, 1, layers, keys), x.device())?.to_dtype(dtype)?;
        let dh = d / self.heads;
        let split = |t: Tensor, n: usize| -> Result<Tensor> {
            Ok(t.reshape((batch, n, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = self
            .q
            .forward(&self.queries)?
            .unsqueeze(0)?
            .broadcast_as((batch, layers, d))?
            .contiguous()?;
        let q = (split(q, layers)? / (dh as f64).sqrt())?;
        let k = split(self.k.forward(&x)?, keys)?;
        let v = split(self.v.forward(&x)?, keys)?;
        let probs = fused::masked_softmax(&q.matmul(&k.t()?)?, &mask)?;
        let att = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, layers, d))?;
        let out = self.o.forward(&att)?.broadcast_add(&self.queries)?;
        Ok(self.out_norm.forward(&out)?)
    }
}

/// Layer norm through candle's composed ops: candle-nn's `LayerNorm` takes
/// a fused kernel that has no backward and no f64.
#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, 1e-5)
    }
}
