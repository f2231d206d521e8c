//! A fixed LoRA on disk: its factors in `lora.safetensors` and, beside
//! them, `lora.json` with the configuration and the model it belongs to.
//! Exported to llama.cpp's GGUF adapter layout by `to_adapter`, and the
//! starting point of a warm-started generator's experts.

use std::path::Path;

use candle_core::Device;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::edge::LoraConfig;
use crate::error::{io_at, Error, Result};
use crate::gguf_lora::{LoraAdapter, LoraPair};
use loragen_protocol::atomic::{write_atomic, write_atomic_with};

pub const WEIGHTS_FILE: &str = "lora.safetensors";
pub const CONFIG_FILE: &str = "lora.json";

/// What `lora.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// GGUF architecture of the edge model (e.g. `gemma3`).
    pub arch: String,
    pub n_layer: usize,
    pub lora: LoraConfig,
}

/// Saves the variables of a `FixedLora` built on `varmap`, with its config.
pub fn save(dir: &Path, config: &CheckpointConfig, varmap: &VarMap) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    write_atomic_with(&dir.join(WEIGHTS_FILE), |tmp| {
        varmap.save(tmp).map_err(Error::from)
    })?;
    let json = serde_json::to_vec_pretty(config).map_err(|e| Error::Config(e.to_string()))?;
    Ok(write_atomic(&dir.join(CONFIG_FILE), &json)?)
}

/// Reads a checkpoint directory back as an adapter: every layer and
/// target of the config must be present, with A `(r, in)` and B `(out, r)`.
pub fn to_adapter(dir: &Path) -> Result<LoraAdapter> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(io_at(&config_path))?;
    let config: CheckpointConfig = serde_json::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "{}: not a LoRA checkpoint config ({e})",
            config_path.display()
        ))
    })?;
    config.lora.validate()?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let mut tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu).map_err(|e| {
        Error::Config(format!(
            "{}: cannot read the LoRA weights ({e})",
            weights_path.display()
        ))
    })?;
    let mut pairs = Vec::with_capacity(config.n_layer * config.lora.targets.len());
    for il in 0..config.n_layer {
        for target in &config.lora.targets {
            let stem = format!("blk.{il}.{}", target.gguf_stem());
            let mut take = |suffix: &str| {
                tensors.remove(&format!("{stem}.{suffix}")).ok_or_else(|| {
                    Error::Config(format!(
                        "{}: no `{stem}.{suffix}` although {CONFIG_FILE} lists it",
                        weights_path.display()
                    ))
                })
            };
            let (a, b) = (take("lora_a")?, take("lora_b")?);
            if a.dims().len() != 2
                || b.dims().len() != 2
                || a.dims()[0] != config.lora.rank
                || b.dims()[1] != config.lora.rank
            {
                return Err(Error::LoraShape {
                    target: stem,
                    a: a.dims().to_vec(),
                    b: b.dims().to_vec(),
                });
            }
            pairs.push(LoraPair {
                weight: format!("{stem}.weight"),
                a,
                b,
            });
        }
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(Error::Config(format!(
            "{}: `{extra}` is not part of the LoRA that {CONFIG_FILE} describes",
            weights_path.display()
        )));
    }
    Ok(LoraAdapter {
        arch: config.arch,
        alpha: config.lora.alpha as f32,
        pairs,
    })
}
