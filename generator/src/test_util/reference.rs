//! candle-transformers' Gemma 3, built from the same GGUF as the edge
//! model: the independent reference its forward is checked against
//! (`tests/candle_reference.rs`) and timed against
//! (`examples/reference_step.rs`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_transformers::models::gemma3;

use crate::edge::EdgeConfig;
use loragen_agent::store::read_gguf;

/// candle-transformers' configuration of the model `c` describes, with
/// rope tables and KV caches for `max_positions`.
pub fn reference_config(c: &EdgeConfig, max_positions: usize) -> gemma3::Config {
    gemma3::Config {
        attention_bias: c.qkv_bias,
        head_dim: c.head_dim,
        hidden_activation: candle_nn::Activation::GeluPytorchTanh,
        hidden_size: c.n_embd,
        intermediate_size: c.n_ff,
        num_attention_heads: c.n_head,
        num_hidden_layers: c.n_layer,
        num_key_value_heads: c.n_head_kv,
        rms_norm_eps: c.rms_eps,
        rope_theta: f64::from(c.rope_base),
        rope_local_base_freq: f64::from(c.rope_base_swa),
        vocab_size: c.n_vocab,
        final_logit_softcapping: None,
        attn_logit_softcapping: None,
        // candle-transformers scales by 1/sqrt(head_dim); Gemma 3 270M's
        // query_pre_attn_scalar is head_dim, so the two agree.
        query_pre_attn_scalar: c.head_dim,
        sliding_window: c.sliding_window.unwrap_or(max_positions),
        sliding_window_pattern: c.swa_pattern,
        max_position_embeddings: max_positions,
    }
}

/// Every tensor of a Gemma 3 GGUF file, dequantised to f32 and named as
/// Hugging Face names them, which candle-transformers loads.
pub fn reference_weights(path: &Path) -> HashMap<String, Tensor> {
    let (content, mut file) = read_gguf(path).unwrap();
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let t = content
            .tensor(&mut file, name, &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let (hf, norm) = hf_name(name);
        let t = if norm { (t - 1.0).unwrap() } else { t };
        tensors.insert(hf, t);
    }
    tensors
}

/// The GGUF tensor name in Hugging Face's naming, which candle-transformers
/// loads, and whether it is a norm weight (stored in GGUF as 1 + w, since
/// llama.cpp's RMS norm multiplies by the weight as it is).
pub fn hf_name(gguf: &str) -> (String, bool) {
    let top = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        _ => None,
    };
    if let Some(name) = top {
        return (name.to_owned(), gguf.ends_with("norm.weight"));
    }
    let rest = gguf.strip_prefix("blk.").unwrap();
    let (layer, stem) = rest.split_once('.').unwrap();
    let stem = stem.strip_suffix(".weight").unwrap();
    let (hf, norm) = match stem {
        "attn_norm" => ("input_layernorm", true),
        "attn_q" => ("self_attn.q_proj", false),
        "attn_k" => ("self_attn.k_proj", false),
        "attn_v" => ("self_attn.v_proj", false),
        "attn_output" => ("self_attn.o_proj", false),
        "attn_q_norm" => ("self_attn.q_norm", true),
        "attn_k_norm" => ("self_attn.k_norm", true),
        "post_attention_norm" => ("post_attention_layernorm", true),
        "ffn_norm" => ("pre_feedforward_layernorm", true),
        "ffn_gate" => ("mlp.gate_proj", false),
        "ffn_up" => ("mlp.up_proj", false),
        "ffn_down" => ("mlp.down_proj", false),
        "post_ffw_norm" => ("post_feedforward_layernorm", true),
        other => panic!("unmapped GGUF tensor {other}"),
    };
    (format!("model.layers.{layer}.{hf}.weight"), norm)
}
