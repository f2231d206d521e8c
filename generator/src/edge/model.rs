//! The edge decoder in candle, with f32 weights dequantised from its GGUF
//! file, so the generator can backpropagate through it. Frozen weights are
//! constants (no gradients are computed for them); norms, GELU, rope and
//! the masked softmax run as fused kernels (`fused`); LoRA deltas enter the
//! FFN (and optionally q/v) projections.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};

use super::config::{Activation, Arch, EdgeConfig};
use super::frozen::Frozen;
use super::fused;
use super::lora::{LayerDeltas, Target};
use crate::error::{Error, Result};
use loragen_agent::store::read_gguf;

#[derive(Debug, Clone)]
struct Block {
    attn_norm: Tensor,
    q: Frozen,
    k: Frozen,
    v: Frozen,
    o: Frozen,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    attn_post_norm: Option<Tensor>,
    ffn_norm: Tensor,
    gate: Frozen,
    up: Frozen,
    down: Frozen,
    ffn_post_norm: Option<Tensor>,
}

/// The whole model.
#[derive(Debug, Clone)]
pub struct EdgeModel {
    pub config: EdgeConfig,
    embed: Frozen,
    output: Option<Frozen>,
    out_norm: Tensor,
    blocks: Vec<Block>,
    device: Device,
}

/// How a forward pass treats LoRA dropout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Dropout with probability `dropout` on the input of every delta. Its
    /// masks are a function of `seed`, the layer and the target: give each
    /// step its own seed.
    Train {
        dropout: f32,
        seed: u64,
    },
    Eval,
}

impl EdgeModel {
    /// Loads a gemma3, qwen2 or llama GGUF file, dequantising every tensor.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (content, mut file) = read_gguf(path)?;
        let config = EdgeConfig::from_gguf(path, &content)?;
        let mut tensors = HashMap::new();
        for name in content.tensor_infos.keys() {
            let read = |e: candle_core::Error| Error::Gguf {
                path: path.to_owned(),
                detail: format!("cannot read tensor `{name}`: {e}"),
            };
            let q = content.tensor(&mut file, name, device).map_err(read)?;
            tensors.insert(
                name.clone(),
                q.dequantize(device)
                    .and_then(|t| t.to_dtype(DType::F32))
                    .map_err(read)?,
            );
        }
        let gemma = config.arch == Arch::Gemma3;
        let c = &config;
        let (q_out, kv_out) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let mut w = Weights { path, tensors };
        let mut blocks = Vec::with_capacity(c.n_layer);
        for il in 0..c.n_layer {
            let name = |stem: &str| format!("blk.{il}.{stem}.weight");
            let bias = c.qkv_bias;
            let norm = |w: &mut Weights, stem: &str, n: usize| w.take(&name(stem), &[n]);
            blocks.push(Block {
                attn_norm: norm(&mut w, "attn_norm", c.n_embd)?,
                q: w.linear(il, "attn_q", (q_out, c.n_embd), bias)?,
                k: w.linear(il, "attn_k", (kv_out, c.n_embd), bias)?,
                v: w.linear(il, "attn_v", (kv_out, c.n_embd), bias)?,
                o: w.linear(il, "attn_output", (c.n_embd, q_out), false)?,
                q_norm: if gemma {
                    Some(norm(&mut w, "attn_q_norm", c.head_dim)?)
                } else {
                    None
                },
                k_norm: if gemma {
                    Some(norm(&mut w, "attn_k_norm", c.head_dim)?)
                } else {
                    None
                },
                attn_post_norm: if gemma {
                    Some(norm(&mut w, "post_attention_norm", c.n_embd)?)
                } else {
                    None
                },
                ffn_norm: norm(&mut w, "ffn_norm", c.n_embd)?,
                gate: w.linear(il, "ffn_gate", (c.n_ff, c.n_embd), false)?,
                up: w.linear(il, "ffn_up", (c.n_ff, c.n_embd), false)?,
                down: w.linear(il, "ffn_down", (c.n_embd, c.n_ff), false)?,
                ffn_post_norm: if gemma {
                    Some(norm(&mut w, "post_ffw_norm", c.n_embd)?)
                } else {
                    None
                },
            });
        }
        let embed = w.linear_named("token_embd", (c.n_vocab, c.n_embd), false)?;
        // Tied models (Gemma) have no output matrix and reuse the embeddings.
        let output = if w.tensors.contains_key("output.weight") {
            Some(w.linear_named("output", (c.n_vocab, c.n_embd), false)?)
        } else {
            None
        };
        let out_norm = w.take("output_norm.weight", &[c.n_embd])?;
        Ok(EdgeModel {
            config,
            embed,
            output,
            out_norm,
            blocks,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// (in, out) of a projection, for building LoRA factors.
    pub fn dims(&self, target: Target) -> (usize, usize) {
        self.config.dims(target)
    }

    /// The frozen weight of a projection (out, in).
    pub fn weight(&self, layer: usize, target: Target) -> Option<&Tensor> {
        let b = self.blocks.get(layer)?;
        Some(match target {
            Target::Gate => &b.gate.weight,
            Target::Up => &b.up.weight,
            Target::Down => &b.down.weight,
            Target::Q => &b.q.weight,
            Target::V => &b.v.weight,
        })
    }

    /// The model with every weight in `dtype` (f64 for gradient checks).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let t = |w: &Tensor| w.to_dtype(dtype);
        let f = |l: &Frozen| -> Result<Frozen> {
            Ok(Frozen {
                weight: t(&l.weight)?,
                bias: l.bias.as_ref().map(t).transpose()?,
            })
        };
        let o = |w: &Option<Tensor>| w.as_ref().map(t).transpose();
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    attn_norm: t(&b.attn_norm)?,
                    q: f(&b.q)?,
                    k: f(&b.k)?,
                    v: f(&b.v)?,
                    o: f(&b.o)?,
                    q_norm: o(&b.q_norm)?,
                    k_norm: o(&b.k_norm)?,
                    attn_post_norm: o(&b.attn_post_norm)?,
                    ffn_norm: t(&b.ffn_norm)?,
                    gate: f(&b.gate)?,
                    up: f(&b.up)?,
                    down: f(&b.down)?,
                    ffn_post_norm: o(&b.ffn_post_norm)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(EdgeModel {
            config: self.config.clone(),
            embed: f(&self.embed)?,
            output: self.output.as_ref().map(f).transpose()?,
            out_norm: t(&self.out_norm)?,
            blocks,
            device: self.device.clone(),
        })
    }

    /// A copy with only the first `n_layer` layers (and the same embeddings,
    /// output norm and output matrix): a small real model for tests.
    pub fn truncated(&self, n_layer: usize) -> Result<Self> {
        if n_layer == 0 || n_layer > self.config.n_layer {
            return Err(Error::Config(format!(
                "cannot keep {n_layer} of {} layers",
                self.config.n_layer
            )));
        }
        let mut copy = self.clone();
        copy.blocks.truncate(n_layer);
        copy.config.n_layer = n_layer;
        Ok(copy)
    }

    pub fn dtype(&self) -> DType {
        self.embed.weight.dtype()
    }

    /// Final hidden states (after the output norm), shape (batch, seq,
    /// n_embd), for right-padded `tokens` (batch, seq) whose real lengths
    /// are `lengths`.
    pub fn hidden(
        &self,
        tokens: &Tensor,
        lengths: &[usize],
        deltas: Option<&[LayerDeltas]>,
        phase: Phase,
    ) -> Result<Tensor> {
        let x = self.embed(tokens)?;
        self.hidden_from(&x, 0, lengths, deltas, phase)
    }

    /// The residual stream entering layer `layer`, computed without deltas
    /// and without a graph: what the upper layers' training can cache once
    /// per example when only they carry deltas.
    pub fn lower_layers(&self, tokens: &Tensor, lengths: &[usize], layer: usize) -> Result<Tensor> {
        let x = self.embed(tokens)?;
        Ok(self
            .run_layers(&x, 0..layer, lengths, None, Phase::Eval)?
            .detach())
    }

    /// Final hidden states from the residual stream `x` (batch, seq, n_embd)
    /// entering layer `first`: layers `first..`, then the output norm.
    /// `deltas`, if any, hold one entry per layer run.
    pub fn hidden_from(
        &self,
        x: &Tensor,
        first: usize,
        lengths: &[usize],
        deltas: Option<&[LayerDeltas]>,
        phase: Phase,
    ) -> Result<Tensor> {
        let x = self.run_layers(x, first..self.config.n_layer, lengths, deltas, phase)?;
        self.norm(&x, &self.out_norm)
    }

    fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (batch, seq) = tokens.dims2()?;
        let x = self
            .embed
            .weight
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((batch, seq, c.n_embd))?;
        Ok(match c.embed_scale {
            Some(s) => (x * s)?,
            None => x,
        })
    }

    fn run_layers(
        &self,
        x: &Tensor,
        layers: std::ops::Range<usize>,
        lengths: &[usize],
        deltas: Option<&[LayerDeltas]>,
        phase: Phase,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (batch, seq, _) = x.dims3()?;
        if lengths.len() != batch || lengths.iter().any(|&l| l == 0 || l > seq) {
            return Err(Error::Config(format!(
                "lengths {lengths:?} do not fit a batch of {batch} x {seq}"
            )));
        }
        if layers.end > c.n_layer {
            return Err(Error::Config(format!(
                "layers {layers:?} of a model with {}",
                c.n_layer
            )));
        }
        if let Some(d) = deltas {
            if d.len() != layers.len() {
                return Err(Error::Config(format!(
                    "{} layers of deltas for {} layers run",
                    d.len(),
                    layers.len()
                )));
            }
        }
        let masks = [
            self.mask(lengths, seq, false)?,
            self.mask(lengths, seq, true)?,
        ];
        let mut ropes: HashMap<u32, (Tensor, Tensor)> = HashMap::new();
        let mut x = x.clone();
        for (i, il) in layers.enumerate() {
            let base = c.rope_base_of(il);
            let (cos, sin) = match ropes.entry(base.to_bits()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(rope_tables(
                    base,
                    c.head_dim,
                    seq,
                    self.dtype(),
                    &self.device,
                )?),
            };
            let mask = &masks[usize::from(c.is_local(il))];
            let block = &self.blocks[il];
            x = self.block(il, block, &x, cos, sin, mask, deltas.map(|d| &d[i]), phase)?;
        }
        Ok(x)
    }

    /// Logits of selected rows of `hidden` (n, n_embd) -> (n, n_vocab).
    /// Only the positions that carry a loss need them: the output matrix
    /// is the largest in the model.
    pub fn logits(&self, hidden_rows: &Tensor) -> Result<Tensor> {
        let w = self.output.as_ref().unwrap_or(&self.embed);
        Ok(w.forward(hidden_rows)?)
    }

    /// Rows of `hidden` (batch, seq, d) at `(batch, position)` pairs.
    pub fn select(&self, hidden: &Tensor, at: &[(usize, usize)]) -> Result<Tensor> {
        let (_, seq, d) = hidden.dims3()?;
        let idx: Vec<u32> = at.iter().map(|&(b, t)| (b * seq + t) as u32).collect();
        let idx = Tensor::new(idx.as_slice(), &self.device)?;
        Ok(hidden.reshape(((), d))?.index_select(&idx, 0)?)
    }

    fn norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        Ok(fused::rms_norm(x, w, self.config.rms_eps as f32)?)
    }

    /// Additive mask (batch, 1, seq, seq): causal, no padded keys, and for
    /// local layers only keys within the window (llama.cpp masks a key at
    /// distance >= window).
    fn mask(&self, lengths: &[usize], seq: usize, local: bool) -> Result<Tensor> {
        let window = self
            .config
            .sliding_window
            .filter(|_| local)
            .unwrap_or(usize::MAX);
        let mut m = vec![0f32; lengths.len() * seq * seq];
        for (b, &len) in lengths.iter().enumerate() {
            for i in 0..seq {
                for j in 0..seq {
                    let allowed = j <= i && j < len && i - j < window;
                    if !allowed {
                        m[(b * seq + i) * seq + j] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Ok(
            Tensor::from_vec(m, (lengths.len(), 1, seq, seq), &self.device)?
                .to_dtype(self.dtype())?,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        il: usize,
        b: &Block,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        deltas: Option<&LayerDeltas>,
        phase: Phase,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (batch, seq, _) = x.dims3()?;
        let proj = |layer: &Frozen, h: &Tensor, target: Target| -> Result<Tensor> {
            let y = layer.forward(h)?;
            let dropout = match phase {
                Phase::Train { dropout, seed } => Some((dropout, site_seed(seed, il, target))),
                Phase::Eval => None,
            };
            match deltas.and_then(|d| d.get(target)) {
                Some(delta) => Ok((y + delta.apply(h, dropout)?)?),
                None => Ok(y),
            }
        };
        let h = self.norm(x, &b.attn_norm)?;
        let heads = |t: Tensor, n: usize| -> Result<Tensor> {
            Ok(t.reshape((batch, seq, n, c.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let mut q = heads(proj(&b.q, &h, Target::Q)?, c.n_head)?;
        let mut k = heads(b.k.forward(&h)?, c.n_head_kv)?;
        let v = heads(proj(&b.v, &h, Target::V)?, c.n_head_kv)?;
        if let (Some(qn), Some(kn)) = (&b.q_norm, &b.k_norm) {
            q = self.norm(&q, qn)?;
            k = self.norm(&k, kn)?;
        }
        let q = (fused::rope(&q, cos, sin, c.rope_neox)? * c.attn_scale)?;
        let k = repeat_kv(
            fused::rope(&k, cos, sin, c.rope_neox)?,
            c.n_head / c.n_head_kv,
        )?;
        let v = repeat_kv(v, c.n_head / c.n_head_kv)?;
        let probs = fused::masked_softmax(&q.matmul(&k.t()?)?, mask)?;
        let att =
            probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((batch, seq, c.n_head * c.head_dim))?;
        let mut att = b.o.forward(&att)?;
        if let Some(n) = &b.attn_post_norm {
            att = self.norm(&att, n)?;
        }
        let x = (x + att)?;
        let h = self.norm(&x, &b.ffn_norm)?;
        let gate = proj(&b.gate, &h, Target::Gate)?;
        let gate = match c.activation {
            Activation::GeluTanh => fused::gelu_tanh(&gate)?,
            Activation::Silu => candle_nn::ops::silu(&gate)?,
        };
        let mut ffn = proj(
            &b.down,
            &(gate * proj(&b.up, &h, Target::Up)?)?,
            Target::Down,
        )?;
        if let Some(n) = &b.ffn_post_norm {
            ffn = self.norm(&ffn, n)?;
        }
        Ok((x + ffn)?)
    }
}

/// Dequantised tensors by GGUF name, taken out one by one.
struct Weights<'a> {
    path: &'a Path,
    tensors: HashMap<String, Tensor>,
}

impl Weights<'_> {
    /// Takes the tensor `name`, which must have the shape `dims` that the
    /// configuration implies.
    fn take(&mut self, name: &str, dims: &[usize]) -> Result<Tensor> {
        let bad = |detail: String| Error::Gguf {
            path: self.path.to_owned(),
            detail,
        };
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| bad(format!("no tensor `{name}`")))?;
        if t.dims() != dims {
            return Err(bad(format!(
                "tensor `{name}` has shape {:?}; the model's metadata implies {dims:?}",
                t.dims()
            )));
        }
        Ok(t)
    }

    fn linear(
        &mut self,
        il: usize,
        stem: &str,
        out_in: (usize, usize),
        bias: bool,
    ) -> Result<Frozen> {
        self.linear_named(&format!("blk.{il}.{stem}"), out_in, bias)
    }

    fn linear_named(
        &mut self,
        stem: &str,
        (n_out, n_in): (usize, usize),
        bias: bool,
    ) -> Result<Frozen> {
        let weight = self.take(&format!("{stem}.weight"), &[n_out, n_in])?;
        let bias = if bias {
            Some(self.take(&format!("{stem}.bias"), &[n_out])?)
        } else {
            None
        };
        Ok(Frozen { weight, bias })
    }
}

/// The dropout seed of one delta in one step: distinct per layer and target.
fn site_seed(step_seed: u64, layer: usize, target: Target) -> u64 {
    step_seed
        .wrapping_mul(0x100_0000_01B3)
        .wrapping_add((layer as u64) << 8 | target as u64)
}

/// cos and sin of the rope angles, (seq, head_dim / 2).
fn rope_tables(
    base: f32,
    head_dim: usize,
    seq: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32))
        .collect();
    let inv = Tensor::from_vec(inv, (1, half), device)?;
    let pos = Tensor::arange(0u32, seq as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((seq, 1))?;
    let angles = pos.broadcast_mul(&inv)?;
    Ok((
        angles.cos()?.to_dtype(dtype)?,
        angles.sin()?.to_dtype(dtype)?,
    ))
}

fn repeat_kv(x: Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x);
    }
    let (b, h, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .expand((b, h, n_rep, t, d))?
        .reshape((b, h * n_rep, t, d))?)
}
