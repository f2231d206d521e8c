//! A router per edge layer: R_i = BN(f2(SiLU(f1(T_i)))) over the experts.
//! BatchNorm uses the batch's statistics in training (and updates its
//! running ones) and the running statistics at inference.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Linear, VarBuilder};

use super::config::GeneratorConfig;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Router {
    f1: Linear,
    f2: Linear,
    bn: BatchNorm,
}

impl Router {
    pub fn new(cfg: &GeneratorConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Router {
            f1: candle_nn::linear(cfg.meta_dim, cfg.router_hidden, vb.pp("f1"))?,
            f2: candle_nn::linear(cfg.router_hidden, cfg.n_experts, vb.pp("f2"))?,
            bn: candle_nn::batch_norm(cfg.n_experts, BatchNormConfig::default(), vb.pp("bn"))?,
        })
    }

    /// Router logits (batch, n_experts) from meta tokens (batch, meta_dim).
    /// Training needs at least two elements: BatchNorm's statistics come
    /// from the batch.
    pub fn forward_t(&self, t: &Tensor, train: bool) -> Result<Tensor> {
        if train && t.dim(0)? < 2 {
            return Err(Error::Config(
                "router training needs a batch of at least 2: BatchNorm normalises over the batch"
                    .into(),
            ));
        }
        let h = candle_nn::ops::silu(&self.f1.forward(t)?)?;
        Ok(self.bn.forward_t(&self.f2.forward(&h)?, train)?)
    }
}
