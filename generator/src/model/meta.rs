//! Meta tokens: one learned query per edge layer, cross-attending over the
//! frozen cloud model's hidden states of a registry's system part. Each
//! output T_i is what layer i's router sees. This is the trainable part
//! that LoRA-Gen gets by fine-tuning the cloud model; the cloud model here
//! stays frozen (see docs/generator.md). The paper's own variant, for the
//! ablation, is [`MetaProjection`]: the cloud's states at literal
//! meta-token strings, projected.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use loragen_agent::selector::Norm;

use super::config::{GeneratorConfig, MetaSource};
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
        Ok(MetaTokens {
            queries,
            feature_norm: Norm::new(c, vb.pp("feature_norm"))?,
            q: candle_nn::linear(d, d, vb.pp("q"))?,
            k: candle_nn::linear(c, d, vb.pp("k"))?,
            v: candle_nn::linear(c, d, vb.pp("v"))?,
            o: candle_nn::linear(d, d, vb.pp("o"))?,
            out_norm: Norm::new(d, vb.pp("out_norm"))?,
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

/// The paper's variant: element b's features are the frozen cloud's states
/// at the L meta-token strings (layers, cloud_dim), and T_i is their
/// normalised projection plus a learned per-layer offset.
#[derive(Debug, Clone)]
pub struct MetaProjection {
    offsets: Tensor,
    feature_norm: Norm,
    proj: Linear,
    out_norm: Norm,
}

impl MetaProjection {
    pub fn new(cfg: &GeneratorConfig, vb: VarBuilder) -> Result<Self> {
        let (c, d) = (cfg.cloud_dim, cfg.meta_dim);
        Ok(MetaProjection {
            offsets: vb.get_with_hints(
                (cfg.edge_layers, d),
                "offsets",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )?,
            feature_norm: Norm::new(c, vb.pp("feature_norm"))?,
            proj: candle_nn::linear(c, d, vb.pp("proj"))?,
            out_norm: Norm::new(d, vb.pp("out_norm"))?,
        })
    }

    /// T (batch, layers, meta_dim) from each element's (layers, cloud_dim).
    pub fn forward(&self, features: &[Tensor]) -> Result<Tensor> {
        let (layers, _) = self.offsets.dims2()?;
        if features.is_empty() {
            return Err(Error::Config(
                "meta tokens need at least one element".into(),
            ));
        }
        if let Some(f) = features.iter().find(|f| f.dim(0).ok() != Some(layers)) {
            return Err(Error::Config(format!(
                "meta-token features must have one row per edge layer ({layers}), got {:?}; were they encoded for a cross-attention generator?",
                f.dims()
            )));
        }
        let dtype = self.offsets.dtype();
        let x = Tensor::stack(
            &features
                .iter()
                .map(|f| f.to_dtype(dtype))
                .collect::<candle_core::Result<Vec<_>>>()?,
            0,
        )?;
        let t = self
            .proj
            .forward(&self.feature_norm.forward(&x)?)?
            .broadcast_add(&self.offsets)?;
        Ok(self.out_norm.forward(&t)?)
    }
}

/// Where the meta tokens come from, as the config says.
#[derive(Debug, Clone)]
pub enum Meta {
    CrossAttention(MetaTokens),
    CloudTokens(MetaProjection),
}

impl Meta {
    pub fn new(cfg: &GeneratorConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg.meta_source {
            MetaSource::CrossAttention => Meta::CrossAttention(MetaTokens::new(cfg, vb)?),
            MetaSource::CloudTokens => Meta::CloudTokens(MetaProjection::new(cfg, vb)?),
        })
    }

    /// T (batch, layers, meta_dim).
    pub fn forward(&self, features: &[Tensor]) -> Result<Tensor> {
        match self {
            Meta::CrossAttention(m) => m.forward(features),
            Meta::CloudTokens(m) => m.forward(features),
        }
    }
}
