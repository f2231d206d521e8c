//! LoRA deltas on the edge model's projections: `W x + (alpha / r) B (A x)`.
//! A delta either is shared by the whole batch (a fixed, trainable LoRA:
//! A is (r, in), B is (out, r)) or differs per batch element (generated:
//! A is (batch, r, in), B is (batch, out, r)).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::{Error, Result};

/// The projections a LoRA may adapt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
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
        LoraConfig { rank: 16, alpha: 32.0, dropout: 0.0, targets: Target::FFN.to_vec() }
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
    /// `scale * B (A x)` for `x` of shape (batch, seq, in).
    pub fn apply(&self, x: &Tensor, dropout: f32, train: bool) -> Result<Tensor> {
        let x = if train && dropout > 0.0 { candle_nn::ops::dropout(x, dropout)? } else { x.clone() };
        // Works for shared (r, in) and per-element (batch, r, in) factors.
        let a_t = self.a.transpose(candle_core::D::Minus1, candle_core::D::Minus2)?;
        let b_t = self.b.transpose(candle_core::D::Minus1, candle_core::D::Minus2)?;
        let h = x.broadcast_matmul(&a_t)?;
        Ok((h.broadcast_matmul(&b_t)? * self.scale)?)
    }

}

/// The deltas of one layer, by target.
#[derive(Debug, Clone, Default)]
pub struct LayerDeltas {
    pub deltas: Vec<(Target, Delta)>,
}

impl LayerDeltas {
    pub fn get(&self, target: Target) -> Option<&Delta> {
        self.deltas.iter().find(|(t, _)| *t == target).map(|(_, d)| d)
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
    pub fn new(config: LoraConfig, n_layer: usize, dims: impl Fn(Target) -> (usize, usize), vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let mut layers = Vec::with_capacity(n_layer);
        for il in 0..n_layer {
            let vb = vb.pp(format!("blk.{il}"));
            let mut deltas = Vec::new();
            for &target in &config.targets {
                let (n_in, n_out) = dims(target);
                let vb = vb.pp(target.gguf_stem());
                let bound = 1.0 / (n_in as f64).sqrt();
                let a = vb.get_with_hints((config.rank, n_in), "lora_a", candle_nn::Init::Uniform { lo: -bound, up: bound })?;
                let b = vb.get_with_hints((n_out, config.rank), "lora_b", candle_nn::Init::Const(0.0))?;
                deltas.push((target, Delta { a, b, scale: config.scale() }));
            }
            layers.push(LayerDeltas { deltas });
        }
        Ok(FixedLora { config, layers })
    }
}
