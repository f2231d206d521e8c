//! Matmul FLOPs of a LoRA training step on the edge model, for reporting
//! achieved GFLOP/s. Elementwise work (norms, rope, softmax, activations)
//! is left out: it is a few percent of the total at these widths.

use super::config::EdgeConfig;
use super::lora::LoraConfig;

/// The shape of one training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepShape {
    pub batch: usize,
    pub seq: usize,
    /// Positions with a loss, over the whole batch: only they get logits.
    pub loss_positions: usize,
    /// The first layer with deltas. The layers below it run once per
    /// example, outside the step, and their outputs are cached.
    pub first_layer: usize,
}

/// FLOPs of the forward and backward pass. Backward counts what is
/// computed: the input gradient of every frozen product (as much as its
/// forward), both operands' gradients of the attention products and of
/// the LoRA factors (twice their forward).
pub fn train_step_flops(c: &EdgeConfig, lora: &LoraConfig, step: StepShape) -> f64 {
    let tokens = (step.batch * step.seq) as f64;
    let (d, ff) = (c.n_embd as f64, c.n_ff as f64);
    let (q, kv) = (
        (c.n_head * c.head_dim) as f64,
        (c.n_head_kv * c.head_dim) as f64,
    );
    let layers = c.n_layer.saturating_sub(step.first_layer) as f64;

    let frozen_per_token = 2.0 * (d * q + 2.0 * d * kv + q * d + 3.0 * d * ff);
    let frozen = layers * tokens * frozen_per_token
        + 2.0 * d * c.n_vocab as f64 * step.loss_positions as f64;
    // Scores and weighted values over the full (masked) seq x seq square.
    let attention = layers * step.batch as f64 * 4.0 * (step.seq * step.seq) as f64 * q;
    let lora_per_token: f64 = lora
        .targets
        .iter()
        .map(|&t| {
            let (n_in, n_out) = c.dims(t);
            2.0 * lora.rank as f64 * (n_in + n_out) as f64
        })
        .sum();
    let lora_fwd = layers * tokens * lora_per_token;
    2.0 * frozen + 3.0 * attention + 3.0 * lora_fwd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::config::{Activation, Arch};
    use crate::edge::lora::Target;

    #[test]
    fn counts_a_small_model_by_hand() {
        let c = EdgeConfig {
            arch: Arch::Llama,
            n_layer: 2,
            n_embd: 4,
            n_ff: 8,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 2,
            n_vocab: 10,
            rms_eps: 1e-6,
            rope_base: 1e4,
            rope_base_swa: 1e4,
            sliding_window: None,
            swa_pattern: 6,
            embed_scale: None,
            qk_norm: false,
            post_norms: false,
            qkv_bias: false,
            rope_neox: false,
            activation: Activation::Silu,
            attn_scale: 0.5,
        };
        let lora = LoraConfig::default()
            .with_rank(1)
            .with_targets(vec![Target::Up]);
        let step = StepShape {
            batch: 1,
            seq: 3,
            loss_positions: 1,
            first_layer: 0,
        };
        // Per token and layer: q 4x4, k 4x2, v 4x2, o 4x4, gate/up/down 4x8.
        // Layers x tokens x 2 x weights, plus the logits of one position.
        let frozen_fwd = 2.0 * 3.0 * 2.0 * (16.0 + 8.0 + 8.0 + 16.0 + 96.0) + 2.0 * 4.0 * 10.0;
        let attention_fwd = 2.0 * 4.0 * 9.0 * 4.0;
        let lora_fwd = 2.0 * 3.0 * 2.0 * (4.0 + 8.0);
        let expected = 2.0 * frozen_fwd + 3.0 * attention_fwd + 3.0 * lora_fwd;
        assert_eq!(train_step_flops(&c, &lora, step), expected);
        // With the lower layer cached, one layer's work remains, and all of
        // the logits.
        let logits_fwd = 2.0 * 4.0 * 10.0;
        let upper = StepShape {
            first_layer: 1,
            ..step
        };
        assert_eq!(
            train_step_flops(&c, &lora, upper),
            2.0 * ((frozen_fwd - logits_fwd) / 2.0 + logits_fwd)
                + 3.0 * attention_fwd / 2.0
                + 3.0 * lora_fwd / 2.0
        );
    }
}
