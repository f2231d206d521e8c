//! Writing LoRA adapters in the GGUF layout that llama.cpp loads.
//!
//! llama.cpp pairs `<weight>.lora_a` with `<weight>.lora_b` and checks, in
//! GGUF dimension order (innermost first), that A is `[n_in, r]` and B is
//! `[r, n_out]` for a weight of `[n_in, n_out]`. In candle's outermost-first
//! order that is A `(r, n_in)` and B `(n_out, r)`: the usual PEFT layout.
//! The delta applied is `scale * alpha / r * B A`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;

use crate::error::{Error, Result};

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
            return Err(Error::LoraShape { target: pair.weight.clone(), a: a.to_vec(), b: b.to_vec() });
        }
        named.push((format!("{}.lora_a", pair.weight), QTensor::quantize(&pair.a, GgmlDType::F32)?));
        named.push((format!("{}.lora_b", pair.weight), QTensor::quantize(&pair.b, GgmlDType::F32)?));
    }
    let metadata = [
        ("general.type", Value::String("adapter".into())),
        ("general.architecture", Value::String(arch.into())),
        ("adapter.type", Value::String("lora".into())),
        ("adapter.lora.alpha", Value::F32(alpha)),
    ];
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();

    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    let mut out = BufWriter::new(tmp.as_file());
    gguf_file::write(&mut out, &metadata, &tensors)?;
    out.flush().map_err(io)?;
    drop(out);
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Shapes `(n_out, n_in)` of the named 2-D tensors of a GGUF model, in file
/// order, for the names that `keep` accepts.
pub fn weight_shapes(path: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, (usize, usize))>> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|e| Error::Gguf { path: path.to_path_buf(), detail: e.to_string() })?;
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
    Ok(shapes.into_iter().map(|(_, name, shape)| (name, shape)).collect())
}
