//! The shape and per-architecture details of an edge model, read from its
//! GGUF metadata. Each detail follows llama.cpp's implementation of the
//! architecture (`src/models/{gemma3,qwen2,llama}.cpp` of llama.cpp).

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};

use super::lora::Target;
use crate::error::{Error, Result};

/// The decoder families loragen runs in candle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Gemma3,
    Qwen2,
    Llama,
}

impl Arch {
    /// The GGUF `general.architecture` name.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Gemma3 => "gemma3",
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
        }
    }
}

/// The FFN's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GELU, tanh approximation (llama.cpp's `ggml_gelu`).
    GeluTanh,
    Silu,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    pub rms_eps: f64,
    pub rope_base: f32,
    /// Rope base of the sliding-window layers (Gemma 3: 10,000).
    pub rope_base_swa: f32,
    /// Window of the local layers; `None` when every layer is global.
    pub sliding_window: Option<usize>,
    /// Every `swa_pattern`-th layer is global, the others local.
    pub swa_pattern: usize,
    /// Gemma multiplies the token embeddings by sqrt(n_embd).
    pub embed_scale: Option<f64>,
    /// Gemma 3 normalises q and k per head before rope.
    pub qk_norm: bool,
    /// Gemma 3 normalises the attention and FFN outputs before the residual.
    pub post_norms: bool,
    /// Qwen2 has biases on q, k and v.
    pub qkv_bias: bool,
    /// NEOX rope (rotate halves) rather than interleaved pairs.
    pub rope_neox: bool,
    pub activation: Activation,
    pub attn_scale: f64,
}

impl EdgeConfig {
    /// Reads the configuration from GGUF metadata; `n_vocab` comes from the
    /// embedding tensor's shape.
    pub fn from_gguf(path: &Path, content: &Content) -> Result<Self> {
        let bad = |detail: String| Error::Gguf {
            path: path.to_owned(),
            detail,
        };
        let arch_name = match content.metadata.get("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(bad("no general.architecture".into())),
        };
        let arch = match arch_name.as_str() {
            "gemma3" => Arch::Gemma3,
            "qwen2" => Arch::Qwen2,
            "llama" => Arch::Llama,
            other => {
                return Err(bad(format!(
                    "architecture `{other}` is not supported (gemma3, qwen2 or llama)"
                )))
            }
        };
        let get = |key: &str| content.metadata.get(&format!("{arch_name}.{key}"));
        let num = |key: &str| -> Result<f64> {
            get(key)
                .and_then(as_f64)
                .ok_or_else(|| bad(format!("no {arch_name}.{key}")))
        };
        let n_embd = num("embedding_length")? as usize;
        let n_head = num("attention.head_count")? as usize;
        let head_dim = get("attention.key_length")
            .and_then(as_f64)
            .map_or(n_embd / n_head.max(1), |v| v as usize);
        let n_vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| bad("no token_embd.weight".into()))?
            .shape
            .dims()
            .first()
            .copied()
            .ok_or_else(|| bad("token_embd.weight has no dimensions".into()))?;
        let gemma = arch == Arch::Gemma3;
        let sliding_window = if gemma {
            get("attention.sliding_window")
                .and_then(as_f64)
                .map(|v| v as usize)
        } else {
            None
        };
        let config = EdgeConfig {
            arch,
            n_layer: num("block_count")? as usize,
            n_embd,
            n_ff: num("feed_forward_length")? as usize,
            n_head,
            n_head_kv: get("attention.head_count_kv")
                .and_then(as_f64)
                .map_or(n_head, |v| v as usize),
            head_dim,
            n_vocab,
            rms_eps: num("attention.layer_norm_rms_epsilon")?,
            rope_base: get("rope.freq_base").and_then(as_f64).unwrap_or(10_000.0) as f32,
            rope_base_swa: get("rope.freq_base_swa")
                .and_then(as_f64)
                .unwrap_or(10_000.0) as f32,
            sliding_window: sliding_window.filter(|&w| w > 0),
            swa_pattern: 6,
            embed_scale: gemma.then(|| (n_embd as f64).sqrt()),
            qk_norm: gemma,
            post_norms: gemma,
            qkv_bias: arch == Arch::Qwen2,
            rope_neox: arch != Arch::Llama,
            activation: if gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            attn_scale: 1.0 / (head_dim as f64).sqrt(),
        };
        config.validate().map_err(bad)?;
        Ok(config)
    }

    /// Sizes that a forward pass can run with: metadata read from a file
    /// may say anything, and a zero or mismatched size would otherwise end
    /// in a division by zero or a shape error deep inside the model.
    fn validate(&self) -> std::result::Result<(), String> {
        let sizes = [
            ("block_count", self.n_layer),
            ("embedding_length", self.n_embd),
            ("feed_forward_length", self.n_ff),
            ("attention.head_count", self.n_head),
            ("attention.head_count_kv", self.n_head_kv),
            ("attention.key_length", self.head_dim),
            ("vocabulary (token_embd.weight)", self.n_vocab),
        ];
        let arch = self.arch.gguf_name();
        for (key, value) in sizes {
            if value == 0 || value > MAX_SIZE {
                return Err(format!(
                    "{arch}.{key} is {value}; it must be between 1 and {MAX_SIZE}"
                ));
            }
        }
        if self.n_head % self.n_head_kv != 0 {
            return Err(format!(
                "{arch}.attention.head_count ({}) is not a multiple of head_count_kv ({})",
                self.n_head, self.n_head_kv
            ));
        }
        if self.head_dim % 2 != 0 {
            return Err(format!(
                "{arch}.attention.key_length ({}) must be even for rope",
                self.head_dim
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return Err(format!(
                "{arch}.attention.layer_norm_rms_epsilon is {}; it must be positive",
                self.rms_eps
            ));
        }
        Ok(())
    }

    /// (in, out) of a projection.
    pub fn dims(&self, target: Target) -> (usize, usize) {
        match target {
            Target::Gate | Target::Up => (self.n_embd, self.n_ff),
            Target::Down => (self.n_ff, self.n_embd),
            Target::Q => (self.n_embd, self.n_head * self.head_dim),
            Target::V => (self.n_embd, self.n_head_kv * self.head_dim),
        }
    }

    /// Whether layer `il` attends within the sliding window only
    /// (llama.cpp: `il % pattern < pattern - 1`).
    pub fn is_local(&self, il: usize) -> bool {
        self.sliding_window.is_some() && il % self.swa_pattern < self.swa_pattern - 1
    }

    pub fn rope_base_of(&self, il: usize) -> f32 {
        if self.is_local(il) {
            self.rope_base_swa
        } else {
            self.rope_base
        }
    }
}

/// Largest size any metadata count may claim (the vocabulary of the
/// default edge model is 262,144).
const MAX_SIZE: usize = 1 << 24;

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::U8(x) => Some(f64::from(*x)),
        Value::I8(x) => Some(f64::from(*x)),
        Value::U16(x) => Some(f64::from(*x)),
        Value::I16(x) => Some(f64::from(*x)),
        Value::U32(x) => Some(f64::from(*x)),
        Value::I32(x) => Some(f64::from(*x)),
        Value::U64(x) => Some(*x as f64),
        Value::I64(x) => Some(*x as f64),
        Value::F32(x) => Some(f64::from(*x)),
        Value::F64(x) => Some(*x),
        _ => None,
    }
}
