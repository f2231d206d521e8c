//! Checkpoints of the generator and of the plain LoRA baseline, in one
//! place: the files of a checkpoint directory, its `config.json`
//! ([`CheckpointState`]), finding one to resume and refusing one that does
//! not fit, the swap that replaces a run's checkpoint whole, snapshots,
//! warm starts from a LoRA, and shipping in f16 ([`ship`]).
//!
//! A checkpoint directory holds `model.safetensors` (every variable) and
//! `config.json`; a run's `checkpoint/` adds `optimizer.safetensors`
//! (snapshots leave it out). A plain LoRA's also holds its factors as a
//! LoRA checkpoint ([`lora`]), for `loragen adapter export`.

pub mod lora;
pub mod ship;
mod warm;
mod weights;

use std::path::{Path, PathBuf};

use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::edge::LoraConfig;
use crate::error::{io_at, Error, Result};
use crate::model::GeneratorConfig;
use crate::train::TrainConfig;
use loragen_protocol::atomic::{write_atomic, write_atomic_with};
use loragen_protocol::digest::short;

pub(crate) use warm::warm_start_experts;
pub use weights::load_weights;
pub(crate) use weights::take_fitting;

/// The variables.
pub const MODEL_FILE: &str = "model.safetensors";
/// AdamW's moments and step count (a run's `checkpoint/` only).
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// [`CheckpointState`] as JSON.
pub const STATE_FILE: &str = "config.json";

/// A run's training log, a JSON line per step.
pub const LOG_FILE: &str = "train.jsonl";
/// A run's snapshots, `step-N` each.
const SNAPSHOTS: &str = "snapshots";
/// The run directory's checkpoint, and where a save puts the next one and
/// the previous one while it swaps them.
const CURRENT: &str = "checkpoint";
const PARTIAL: &str = "checkpoint.partial";
const OLD: &str = "checkpoint.old";

/// What a trainer trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Learner {
    /// The LoRA generator.
    Generator(GeneratorConfig),
    /// One fixed LoRA, the vanilla baseline; `with_tools` records whether
    /// its prompts kept the system part.
    Lora { lora: LoraConfig, with_tools: bool },
}

/// `config.json` of a checkpoint. Exactly one of `generator` and
/// `lora_baseline` is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_baseline: Option<LoraBaseline>,
    pub train: TrainConfig,
    /// Steps done.
    pub step: usize,
    /// The edge model's GGUF architecture and file sha256.
    pub edge_arch: String,
    pub edge_sha256: String,
    /// sha256 of the training examples in order (system parts, tokens and
    /// output offsets): resuming on other data would change the order the
    /// run replays. Absent in checkpoints made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples_sha256: Option<String>,
}

/// The plain LoRA baseline's settings in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraBaseline {
    pub lora: LoraConfig,
    pub with_tools: bool,
}

impl CheckpointState {
    pub fn learner(&self) -> Result<Learner> {
        match (&self.generator, &self.lora_baseline) {
            (Some(g), None) => Ok(Learner::Generator(g.clone())),
            (None, Some(b)) => Ok(Learner::Lora {
                lora: b.lora.clone(),
                with_tools: b.with_tools,
            }),
            _ => Err(Error::Config(
                "a checkpoint config.json names exactly one of `generator` and `lora_baseline`"
                    .into(),
            )),
        }
    }
}

/// Where the run in `run` keeps its checkpoint.
pub fn checkpoint_path(run: &Path) -> PathBuf {
    run.join(CURRENT)
}

/// Where the run in `run` keeps its snapshot of step `step`.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use loragen_generator::checkpoint::snapshot_dir;
///
/// assert_eq!(snapshot_dir(Path::new("runs/a"), 250), Path::new("runs/a/snapshots/step-250"));
/// ```
pub fn snapshot_dir(run: &Path, step: usize) -> PathBuf {
    run.join(SNAPSHOTS).join(format!("step-{step}"))
}

/// The lines of a training log that record steps up to `step`.
pub fn log_until(text: &str, step: usize) -> Vec<&str> {
    text.lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .collect()
}

/// Cuts the run's log back to `step`, the step it resumes from: the steps
/// after it are run, and logged, again.
pub fn trim_log(run: &Path, step: usize) -> Result<()> {
    let path = run.join(LOG_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let kept: String = log_until(&text, step)
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        write_atomic(&path, kept.as_bytes())?;
    }
    Ok(())
}

/// The checkpoint directory of the run in `run`: `checkpoint`, or
/// `checkpoint.old` when a save was cut between its renames.
pub fn checkpoint_dir(run: &Path) -> Option<PathBuf> {
    [CURRENT, OLD]
        .iter()
        .map(|n| run.join(n))
        .find(|p| p.join(STATE_FILE).exists())
}

/// A checkpoint's `config.json`.
///
/// # Errors
///
/// [`Error::NotAGenerator`] when it is missing or is not a checkpoint's.
pub fn read_state(ckpt: &Path) -> Result<CheckpointState> {
    let path = ckpt.join(STATE_FILE);
    let not_one = |reason: String| Error::NotAGenerator {
        path: ckpt.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| not_one(format!("cannot read {STATE_FILE}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| not_one(format!("{STATE_FILE}: {e}")))
}

/// The generator configuration of the checkpoint `ckpt`, which must be a
/// generator's (not a plain LoRA's) trained for the edge model whose file
/// is `edge_path` with sha256 `edge_sha256`.
pub fn open_generator(ckpt: &Path, edge_sha256: &str, edge_path: &Path) -> Result<GeneratorConfig> {
    let state = read_state(ckpt)?;
    let Some(config) = state.generator else {
        return Err(Error::NotAGenerator {
            path: ckpt.to_path_buf(),
            reason: "a plain LoRA checkpoint; export it with `loragen adapter export`".into(),
        });
    };
    if state.edge_sha256 != edge_sha256 {
        return Err(Error::OtherEdgeModel {
            path: ckpt.to_path_buf(),
            trained: short(&state.edge_sha256).to_owned(),
            edge: short(edge_sha256).to_owned(),
            edge_path: edge_path.to_path_buf(),
        });
    }
    Ok(config)
}

/// The checkpoint of the run in `run` that a trainer whose state is `now`
/// resumes: it must have been made with the same settings and examples.
pub fn resumable(run: &Path, now: &CheckpointState) -> Result<(PathBuf, CheckpointState)> {
    let ckpt = checkpoint_dir(run)
        .ok_or_else(|| Error::Config(format!("{}: no checkpoint to resume from", run.display())))?;
    let state = read_state(&ckpt)?;
    let differences = differing_keys(&state, now);
    if !differences.is_empty() {
        return Err(Error::OtherSettings {
            path: ckpt,
            differences,
        });
    }
    Ok((ckpt, state))
}

/// Writes a snapshot into `dir`: the variables of `varmap` and `state`,
/// and for a plain LoRA its LoRA checkpoint too. Each file is written
/// atomically.
pub fn write_snapshot(
    dir: &Path,
    varmap: &VarMap,
    state: &CheckpointState,
    lora: Option<&lora::CheckpointConfig>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    write_atomic_with(&dir.join(MODEL_FILE), |tmp| {
        varmap.save(tmp).map_err(Error::from)
    })?;
    if let Some(config) = lora {
        lora::save(dir, config, varmap)?;
    }
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Config(e.to_string()))?;
    Ok(write_atomic(&dir.join(STATE_FILE), &json)?)
}

/// Replaces the checkpoint of the run in `run` with what `write` puts into
/// a fresh directory: that directory is complete before it takes the
/// checkpoint's place, so a kill at any moment leaves one whole checkpoint
/// ([`checkpoint_dir`] finds it).
pub fn save(run: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (partial, current, old) = (run.join(PARTIAL), run.join(CURRENT), run.join(OLD));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io_at(&partial))?;
    }
    write(&partial)?;
    if current.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io_at(&old))?;
        }
        std::fs::rename(&current, &old).map_err(io_at(&current))?;
    }
    std::fs::rename(&partial, &current).map_err(io_at(&partial))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_at(&old))?;
    }
    Ok(())
}

/// The settings in which two checkpoint states differ (the step aside), as
/// `key: saved -> now`.
fn differing_keys(saved: &CheckpointState, now: &CheckpointState) -> Vec<String> {
    let flat = |s: &CheckpointState| {
        let mut out = Vec::new();
        if let Ok(serde_json::Value::Object(top)) = serde_json::to_value(s) {
            for (k, v) in top {
                match v {
                    serde_json::Value::Object(inner) => {
                        out.extend(inner.into_iter().map(|(ik, iv)| (format!("{k}.{ik}"), iv)))
                    }
                    v if k != "step" => out.push((k, v)),
                    _ => {}
                }
            }
        }
        out
    };
    let now = flat(now);
    flat(saved)
        .into_iter()
        .filter_map(|(k, v)| {
            let current = now.iter().find(|(n, _)| *n == k).map(|(_, c)| c);
            (current != Some(&v)).then(|| {
                format!(
                    "{k}: {v} -> {}",
                    current.map_or("none".to_owned(), |c| c.to_string())
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state() -> CheckpointState {
        CheckpointState {
            generator: None,
            lora_baseline: Some(LoraBaseline {
                lora: LoraConfig::default(),
                with_tools: false,
            }),
            train: TrainConfig::default(),
            step: 3,
            edge_arch: "gemma3".into(),
            edge_sha256: "e".repeat(64),
            examples_sha256: None,
        }
    }

    fn write(dir: &Path, state: &CheckpointState) -> Result<()> {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(STATE_FILE), serde_json::to_vec(state).unwrap()).unwrap();
        Ok(())
    }

    #[test]
    fn a_save_replaces_the_checkpoint_whole_and_a_cut_one_is_found() {
        let run = tempfile::tempdir().unwrap();
        let mut s = state();
        save(run.path(), |d| write(d, &s)).unwrap();
        s.step = 4;
        save(run.path(), |d| write(d, &s)).unwrap();
        let found = checkpoint_dir(run.path()).unwrap();
        assert_eq!(found, run.path().join(CURRENT));
        assert_eq!(read_state(&found).unwrap().step, 4);
        assert!(!run.path().join(OLD).exists() && !run.path().join(PARTIAL).exists());

        // A save that failed while writing leaves the last checkpoint.
        let failed = save(run.path(), |_| Err(Error::Config("disk".into())));
        assert!(failed.is_err());
        assert_eq!(
            read_state(&checkpoint_dir(run.path()).unwrap())
                .unwrap()
                .step,
            4
        );

        // Cut between its two renames: only `checkpoint.old` is left.
        std::fs::rename(run.path().join(CURRENT), run.path().join(OLD)).unwrap();
        assert_eq!(checkpoint_dir(run.path()).unwrap(), run.path().join(OLD));
    }

    #[test]
    fn checkpoints_that_do_not_fit_are_told_apart() {
        let run = tempfile::tempdir().unwrap();
        let saved = state();
        save(run.path(), |d| write(d, &saved)).unwrap();
        let mut now = saved.clone();
        now.step = 0;
        assert!(resumable(run.path(), &now).is_ok(), "the step may differ");
        now.train.lr = 1e-3;
        match resumable(run.path(), &now) {
            Err(Error::OtherSettings { differences, .. }) => {
                assert_eq!(differences, ["train.lr: 0.0005 -> 0.001"])
            }
            other => panic!("{other:?}"),
        }

        let ckpt = checkpoint_dir(run.path()).unwrap();
        let edge = Path::new("edge.gguf");
        assert!(matches!(
            open_generator(&ckpt, &saved.edge_sha256, edge),
            Err(Error::NotAGenerator { .. })
        ));
        let mut generator = saved.clone();
        generator.lora_baseline = None;
        generator.generator = Some(GeneratorConfig::default());
        write(&ckpt, &generator).unwrap();
        assert!(open_generator(&ckpt, &saved.edge_sha256, edge).is_ok());
        let other = open_generator(&ckpt, &"f".repeat(64), edge).unwrap_err();
        assert!(
            matches!(&other, Error::OtherEdgeModel { trained, edge, .. } if trained == "eeeeeeeeeeee" && edge == "ffffffffffff"),
            "{other}"
        );
        assert!(matches!(
            read_state(&run.path().join("nowhere")),
            Err(Error::NotAGenerator { .. })
        ));
    }
}
