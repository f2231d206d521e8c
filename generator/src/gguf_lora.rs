//! Writing LoRA adapters in the GGUF layout that llama.cpp loads.
//!
//! llama.cpp pairs `<weight>.lora_a` with `<weight>.lora_b` and checks, in
//! GGUF dimension order (innermost first), that A is `[n_in, r]` and B is
//! `[r, n_out]` for a weight of `[n_in, n_out]`. In candle's outermost-first
//! order that is A `(r, n_in)` and B `(n_out, r)`: the usual PEFT layout.
//! The delta applied is `scale * alpha / r * B A`.
//!
//! The file itself is written by candle's `gguf_file::write`, not by hand:
//! its metadata values express all llama.cpp reads of an adapter
//! (`general.type`, `general.architecture`, `adapter.type`,
//! `adapter.lora.alpha`), and `tests/edge_parity.rs` loads what it writes
//! into llama.cpp and compares the logits with the candle forward.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;

use crate::error::{io_at, Error, Result};
use loragen_agent::store::read_gguf;
use loragen_protocol::atomic::write_atomic_with;

/// One adapted weight: the base tensor name (e.g. `blk.3.ffn_up.weight`)
/// and its low-rank factors.
#[derive(Debug, Clone)]
pub struct LoraPair {
    pub weight: String,
    /// `(r, n_in)`.
    pub a: Tensor,
    /// `(n_out, r)`.
    pub b: Tensor,
}

/// Writes `pairs` as a GGUF LoRA adapter for a model of architecture
/// `arch`. The file appears under its final name only when complete.
pub fn write_lora_adapter(path: &Path, arch: &str, alpha: f32, pairs: &[LoraPair]) -> Result<()> {
    let mut named = Vec::with_capacity(pairs.len() * 2);
    for pair in pairs {
        let (a, b) = (pair.a.dims(), pair.b.dims());
        if a.len() != 2 || b.len() != 2 || a[0] != b[1] {
            return Err(Error::LoraShape {
                target: pair.weight.clone(),
                a: a.to_vec(),
                b: b.to_vec(),
            });
        }
        named.push((
            format!("{}.lora_a", pair.weight),
            QTensor::quantize(&pair.a, GgmlDType::F32)?,
        ));
        named.push((
            format!("{}.lora_b", pair.weight),
            QTensor::quantize(&pair.b, GgmlDType::F32)?,
        ));
    }
    let metadata = [
        ("general.type", Value::String("adapter".into())),
        ("general.architecture", Value::String(arch.into())),
        ("adapter.type", Value::String("lora".into())),
        ("adapter.lora.alpha", Value::F32(alpha)),
    ];
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    write_gguf_atomic(path, &metadata, &tensors)
}

/// A LoRA adapter read back from GGUF.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    pub arch: String,
    pub alpha: f32,
    pub pairs: Vec<LoraPair>,
}

impl LoraAdapter {
    /// The factor llama.cpp applies to `B A` at adapter scale 1: `alpha / r`
    /// (1 when alpha is 0, as in llama.cpp).
    pub fn scale_of(&self, pair: &LoraPair) -> f32 {
        let rank = pair.a.dims().first().copied().unwrap_or(1).max(1);
        if self.alpha == 0.0 {
            1.0
        } else {
            self.alpha / rank as f32
        }
    }
}

/// Reads a GGUF LoRA adapter as llama.cpp would: `general.type` must be
/// `adapter`, `adapter.type` `lora`, and every `X.lora_a` needs its `X.lora_b`.
pub fn read_lora_adapter(path: &Path) -> Result<LoraAdapter> {
    let bad = |detail: String| Error::Gguf {
        path: path.to_path_buf(),
        detail,
    };
    let (content, mut reader) = read_gguf(path)?;
    let text = |key: &str| match content.metadata.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    if text("general.type").as_deref() != Some("adapter")
        || text("adapter.type").as_deref() != Some("lora")
    {
        return Err(bad(
            "not a LoRA adapter (general.type must be `adapter` and adapter.type `lora`)".into(),
        ));
    }
    let arch = text("general.architecture").ok_or_else(|| bad("no general.architecture".into()))?;
    let alpha = match content.metadata.get("adapter.lora.alpha") {
        Some(Value::F32(a)) => *a,
        None => 0.0,
        Some(other) => return Err(bad(format!("adapter.lora.alpha is {other:?}, not an f32"))),
    };
    let mut names: Vec<&String> = content
        .tensor_infos
        .keys()
        .filter(|n| n.ends_with(".lora_a"))
        .collect();
    names.sort();
    let mut pairs = Vec::with_capacity(names.len());
    for name in names {
        let weight = name.trim_end_matches(".lora_a").to_owned();
        let b_name = format!("{weight}.lora_b");
        if !content.tensor_infos.contains_key(&b_name) {
            return Err(bad(format!("`{name}` has no `{b_name}`")));
        }
        let device = candle_core::Device::Cpu;
        let a = content
            .tensor(&mut reader, name, &device)?
            .dequantize(&device)?;
        let b = content
            .tensor(&mut reader, &b_name, &device)?
            .dequantize(&device)?;
        if a.dims().len() != 2 || b.dims().len() != 2 || a.dims()[0] != b.dims()[1] {
            let shape = Error::LoraShape {
                target: weight,
                a: a.dims().to_vec(),
                b: b.dims().to_vec(),
            };
            return Err(bad(shape.to_string()));
        }
        pairs.push(LoraPair { weight, a, b });
    }
    if pairs.len() * 2 != content.tensor_infos.len() {
        return Err(bad(
            "holds tensors that are not `.lora_a`/`.lora_b` pairs".into()
        ));
    }
    Ok(LoraAdapter { arch, alpha, pairs })
}

/// Writes a GGUF file that appears under `path` only once complete.
pub(crate) fn write_gguf_atomic(
    path: &Path,
    metadata: &[(&str, &Value)],
    tensors: &[(&str, &QTensor)],
) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut out = BufWriter::new(File::create(tmp).map_err(io_at(tmp))?);
        gguf_file::write(&mut out, metadata, tensors)?;
        out.flush().map_err(io_at(tmp))
    })
}

/// Shapes `(n_out, n_in)` of the named 2-D tensors of a GGUF model, in file
/// order, for the names that `keep` accepts.
pub fn weight_shapes(
    path: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(String, (usize, usize))>> {
    let (content, _) = read_gguf(path)?;
    let mut shapes: Vec<(u64, String, (usize, usize))> = content
        .tensor_infos
        .iter()
        .filter(|(name, info)| keep(name) && info.shape.dims().len() == 2)
        .map(|(name, info)| {
            let dims = info.shape.dims();
            (info.offset, name.clone(), (dims[0], dims[1]))
        })
        .collect();
    shapes.sort_by_key(|(offset, ..)| *offset);
    Ok(shapes
        .into_iter()
        .map(|(_, name, shape)| (name, shape))
        .collect())
}
