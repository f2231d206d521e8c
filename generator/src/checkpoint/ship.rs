//! Shipping a generator checkpoint: its weights in f16 (BatchNorm running
//! statistics stay f32, being the few numbers whose scale f16 would
//! distort), with the training log and the commands that made it. Loading
//! ([`super::load_weights`]) converts either precision to the variables'.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::weights::keeps_f32;
use super::{log_until, read_state, LOG_FILE, MODEL_FILE, STATE_FILE};
use crate::error::{io_at, Error, Result};
use loragen_protocol::atomic::{copy_atomic, write_atomic_with};

/// The commands that trained a shipped checkpoint (which carries its run's
/// log, [`LOG_FILE`], up to the shipped step).
pub const COMMAND_FILE: &str = "command.sh";

/// What [`ship`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipped {
    pub dir: PathBuf,
    /// Bytes of the f16 weights file.
    pub weights_bytes: u64,
    /// Tensors stored in f16 and kept in f32.
    pub f16_tensors: usize,
    pub f32_tensors: usize,
    /// Log lines kept (those up to the shipped step).
    pub log_lines: usize,
    pub step: usize,
}

/// Writes the generator snapshot or checkpoint `from` as a shipped
/// checkpoint in `to`: the weights in f16 (BatchNorm statistics in f32),
/// `config.json`, the training log `log` up to the snapshot's step, and
/// the commands that trained it (`command`, copied). `to` is replaced as a
/// whole, or left as it was when anything fails.
pub fn ship(from: &Path, to: &Path, log: &Path, command: &Path) -> Result<Shipped> {
    let state = read_state(from)?;
    if state.generator.is_none() {
        return Err(Error::NotAGenerator {
            path: from.to_path_buf(),
            reason: "a plain LoRA checkpoint".into(),
        });
    }
    let weights = from.join(MODEL_FILE);
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| {
        Error::WeightsMisfit {
            path: weights.clone(),
            detail: format!("cannot read it: {e}"),
        }
    })?;
    let (mut f16, mut f32) = (0, 0);
    let stored: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(name, t)| {
            let dtype = if keeps_f32(&name) {
                f32 += 1;
                DType::F32
            } else {
                f16 += 1;
                DType::F16
            };
            Ok((name, t.to_dtype(dtype)?))
        })
        .collect::<Result<_>>()?;
    let log_text = std::fs::read_to_string(log).map_err(io_at(log))?;
    let kept = log_until(&log_text, state.step);

    let parent = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    let partial = tempfile::Builder::new()
        .prefix(".ship-")
        .tempdir_in(parent)
        .map_err(io_at(parent))?;
    let staged = partial.path();
    write_atomic_with(&staged.join(MODEL_FILE), |tmp| {
        candle_core::safetensors::save(&stored, tmp).map_err(Error::from)
    })?;
    copy_atomic(&from.join(STATE_FILE), &staged.join(STATE_FILE))?;
    let mut log_out = kept.join("\n");
    log_out.push('\n');
    std::fs::write(staged.join(LOG_FILE), log_out).map_err(io_at(&staged.join(LOG_FILE)))?;
    copy_atomic(command, &staged.join(COMMAND_FILE))?;
    let weights_bytes = std::fs::metadata(staged.join(MODEL_FILE))
        .map_err(io_at(&staged.join(MODEL_FILE)))?
        .len();
    // Swap: the old directory goes only once the new one is complete.
    let old = parent.join(".ship-old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_at(&old))?;
    }
    if to.exists() {
        std::fs::rename(to, &old).map_err(io_at(to))?;
    }
    let staged = partial.keep();
    std::fs::rename(&staged, to).map_err(io_at(to))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_at(&old))?;
    }
    Ok(Shipped {
        dir: to.to_path_buf(),
        weights_bytes,
        f16_tensors: f16,
        f32_tensors: f32,
        log_lines: kept.len(),
        step: state.step,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use candle_nn::{VarBuilder, VarMap};

    use super::*;
    use crate::checkpoint::{load_weights, CheckpointState};
    use crate::model::Generator;
    use crate::test_util::{tiny_config as small, tiny_dims as dims};
    use crate::train::TrainConfig;

    /// A generator whose every weight, BatchNorm statistics included, has
    /// more precision than f16 holds.
    fn trained(dir: &Path, step: usize) -> VarMap {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        Generator::new(small(), dims, vb).unwrap();
        for (i, var) in varmap.all_vars().iter().enumerate() {
            let noise = Tensor::randn(0f32, 1.0, var.shape(), &Device::Cpu).unwrap();
            let fine = (noise * (1.0 + 1e-4 * i as f64)).unwrap();
            var.set(&(fine + 1e-5).unwrap()).unwrap();
        }
        std::fs::create_dir_all(dir).unwrap();
        varmap.save(dir.join(MODEL_FILE)).unwrap();
        let state = CheckpointState {
            generator: Some(small()),
            lora_baseline: None,
            train: TrainConfig::default(),
            step,
            edge_arch: "gemma3".into(),
            edge_sha256: "e".repeat(64),
            examples_sha256: None,
        };
        std::fs::write(dir.join(STATE_FILE), serde_json::to_vec(&state).unwrap()).unwrap();
        varmap
    }

    #[test]
    fn a_shipped_checkpoint_is_f16_with_f32_batchnorm_statistics_and_loads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("snapshots/step-3");
        let original = trained(&from, 3);
        let log = tmp.path().join("train.jsonl");
        let lines: Vec<String> = (1..=5).map(|s| format!("{{\"step\":{s}}}")).collect();
        std::fs::write(&log, lines.join("\n")).unwrap();
        let command = tmp.path().join("train.sh");
        std::fs::write(&command, "loragen train generator ...\n").unwrap();
        let to = tmp.path().join("checkpoints/default");
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(to.join("stale"), "from an older ship").unwrap();

        let shipped = ship(&from, &to, &log, &command).unwrap();
        assert_eq!((shipped.step, shipped.log_lines), (3, 3));
        assert_eq!(shipped.f32_tensors, 3 * 2, "two statistics a layer");
        assert!(
            !to.join("stale").exists(),
            "the directory is replaced whole"
        );
        assert_eq!(
            std::fs::read_to_string(to.join(COMMAND_FILE)).unwrap(),
            "loragen train generator ...\n"
        );
        let stored = candle_core::safetensors::load(to.join(MODEL_FILE), &Device::Cpu).unwrap();
        for (name, t) in &stored {
            let want = if keeps_f32(name) {
                DType::F32
            } else {
                DType::F16
            };
            assert_eq!(t.dtype(), want, "{name}");
        }

        let loaded = VarMap::new();
        let vb = VarBuilder::from_varmap(&loaded, DType::F32, &Device::Cpu);
        Generator::new(small(), dims, vb).unwrap();
        load_weights(&loaded, &to.join(MODEL_FILE)).unwrap();
        let (want, got) = (
            original.data().lock().unwrap(),
            loaded.data().lock().unwrap(),
        );
        for (name, var) in want.iter() {
            let diff = crate::test_util::max_diff(var.as_tensor(), got[name].as_tensor());
            if keeps_f32(name) {
                assert_eq!(diff, 0.0, "{name} must round-trip exactly");
            } else {
                let scale = var.as_tensor().abs().unwrap().max_all().unwrap();
                let scale = f64::from(scale.to_scalar::<f32>().unwrap());
                assert!(diff > 0.0 && diff <= scale / 1024.0, "{name}: {diff}");
            }
        }
    }

    #[test]
    fn a_lora_or_a_misfit_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("lora");
        trained(&from, 1);
        let state = std::fs::read_to_string(from.join(STATE_FILE)).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&state).unwrap();
        json["generator"] = serde_json::Value::Null;
        std::fs::write(from.join(STATE_FILE), json.to_string()).unwrap();
        let log = tmp.path().join("log");
        std::fs::write(&log, "").unwrap();
        let to = tmp.path().join("out");
        let err = ship(&from, &to, &log, &log).unwrap_err().to_string();
        assert!(err.contains("not a generator"), "{err}");
        assert!(!to.exists());

        let other = VarMap::new();
        let vb = VarBuilder::from_varmap(&other, DType::F32, &Device::Cpu);
        Generator::new(small().with_experts(3), dims, vb).unwrap();
        let err = load_weights(&other, &from.join(MODEL_FILE))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not fit") && err.contains("model.safetensors"),
            "{err}"
        );
    }
}
