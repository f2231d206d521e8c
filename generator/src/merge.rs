//! The paper's reparameterisation: `W' = W + (alpha / r) B A` written into
//! a copy of the edge GGUF, so inference runs the plain model with no
//! adapter compute. Only the adapted tensors change; every other tensor
//! keeps its bytes. The merged tensors are stored as F32, F16 or Q8_0:
//! re-quantising to the 4-6 bit blocks of the base file would round a
//! small delta away.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use crate::error::{io_at, Error, Result};
use crate::gguf_lora::{write_gguf_atomic, LoraAdapter};
use loragen_agent::store::read_gguf;

/// Storage type of the merged tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergedType {
    F32,
    F16,
    Q8_0,
}

impl MergedType {
    pub const ALL: [MergedType; 3] = [MergedType::F32, MergedType::F16, MergedType::Q8_0];

    pub fn name(self) -> &'static str {
        match self {
            MergedType::F32 => "f32",
            MergedType::F16 => "f16",
            MergedType::Q8_0 => "q8_0",
        }
    }

    fn ggml(self) -> GgmlDType {
        match self {
            MergedType::F32 => GgmlDType::F32,
            MergedType::F16 => GgmlDType::F16,
            MergedType::Q8_0 => GgmlDType::Q8_0,
        }
    }
}

impl FromStr for MergedType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        MergedType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown merged tensor type `{s}` (f32, f16 or q8_0)"
                ))
            })
    }
}

impl std::fmt::Display for MergedType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a merge wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSummary {
    pub merged: usize,
    pub copied: usize,
    pub file_bytes: u64,
}

/// Writes `out`: the model `base` with `adapter` merged into its weights at
/// adapter scale `scale`, the merged tensors stored as `ty`.
pub fn write_merged(
    base: &Path,
    adapter: &LoraAdapter,
    scale: f32,
    ty: MergedType,
    out: &Path,
) -> Result<MergeSummary> {
    let bad = |detail: String| Error::Gguf {
        path: base.to_path_buf(),
        detail,
    };
    let (content, mut reader) = read_gguf(base)?;
    match content.metadata.get("general.architecture") {
        Some(Value::String(arch)) if *arch == adapter.arch => {}
        Some(Value::String(arch)) => {
            return Err(Error::Config(format!(
                "the adapter is for `{}` but {} is `{arch}`",
                adapter.arch,
                base.display()
            )))
        }
        _ => return Err(bad("no general.architecture".into())),
    }
    let mut deltas = HashMap::with_capacity(adapter.pairs.len());
    for pair in &adapter.pairs {
        let info = content.tensor_infos.get(&pair.weight).ok_or_else(|| {
            bad(format!(
                "the adapter adapts `{}`, which the model lacks",
                pair.weight
            ))
        })?;
        let (Ok((n_out, _)), Ok((_, n_in))) = (pair.b.dims2(), pair.a.dims2()) else {
            return Err(Error::LoraShape {
                target: pair.weight.clone(),
                a: pair.a.dims().to_vec(),
                b: pair.b.dims().to_vec(),
            });
        };
        if info.shape.dims() != [n_out, n_in] {
            return Err(bad(format!(
                "`{}` is {:?} but the adapter's B A is [{n_out}, {n_in}]",
                pair.weight,
                info.shape.dims()
            )));
        }
        deltas.insert(pair.weight.as_str(), pair);
    }

    let device = Device::Cpu;
    let (copied, file_bytes) = rewrite(&content, &mut reader, out, |name, q| {
        match deltas.get(name) {
            Some(pair) => {
                let factor = f64::from(scale * adapter.scale_of(pair));
                let merged = (q.dequantize(&device)? + (pair.b.matmul(&pair.a)? * factor)?)?;
                Ok(QTensor::quantize(&merged, ty.ggml())?)
            }
            None => Ok(q),
        }
    })?;
    Ok(MergeSummary {
        merged: deltas.len(),
        copied: copied - deltas.len(),
        file_bytes,
    })
}

/// Writes `out`: the model `base` with every quantised tensor stored as
/// `ty` instead. With F32 this is the exact dequantised model that candle
/// computes with, which lets llama.cpp and candle be compared without
/// quantisation in between.
pub fn write_dequantised(base: &Path, ty: MergedType, out: &Path) -> Result<u64> {
    let (content, mut reader) = read_gguf(base)?;
    let device = Device::Cpu;
    let (_, bytes) = rewrite(&content, &mut reader, out, |_, q| {
        if matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16) {
            Ok(q)
        } else {
            Ok(QTensor::quantize(&q.dequantize(&device)?, ty.ggml())?)
        }
    })?;
    Ok(bytes)
}

/// Copies the GGUF `content` (read from `reader`) to `out`, passing every
/// tensor, in file order, through `change`. Returns the tensor count and
/// the size of the file written.
fn rewrite<R: std::io::Read + std::io::Seek>(
    content: &Content,
    reader: &mut R,
    out: &Path,
    mut change: impl FnMut(&str, QTensor) -> Result<QTensor>,
) -> Result<(usize, u64)> {
    let mut names: Vec<(&String, u64)> = content
        .tensor_infos
        .iter()
        .map(|(n, i)| (n, i.offset))
        .collect();
    names.sort_by_key(|(_, offset)| *offset);
    let mut tensors = Vec::with_capacity(names.len());
    for (name, _) in names {
        let q = content.tensor(reader, name, &Device::Cpu)?;
        tensors.push((name.as_str(), change(name, q)?));
    }
    // The writer aligns tensor data to 32 bytes, so any other alignment the
    // base file declared would no longer hold.
    let mut metadata: Vec<(&str, &Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.sort_by_key(|(k, _)| *k);
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    write_gguf_atomic(out, &metadata, &refs)?;
    let bytes = std::fs::metadata(out).map_err(io_at(out))?.len();
    Ok((tensors.len(), bytes))
}
