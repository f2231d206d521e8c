//! The trainer of the generator and of the plain LoRA baselines: batches
//! of examples (for the generator with different system parts, hence
//! different generated deltas), the LM loss on output tokens (plus the CV
//! load-balancing loss for the generator), AdamW with warm-up and cosine
//! decay, gradient clipping, and checkpoints a resumed run continues from
//! exactly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::data::{batch_of, Example};
use super::optim::{AdamW, AdamWParams};
use super::seeded::seeded_var_builder;
use crate::edge::{cross_entropy, EdgeModel, FixedLora, LoraConfig, Phase};
use crate::error::{Error, Result};
use crate::features::RegistryFeatures;
use crate::model::{cv_loss, utilisation, GatePass, Generator, GeneratorConfig};
use loragen_protocol::atomic::write_atomic_with;

/// Optimisation settings.
///
/// # Examples
///
/// ```
/// use loragen_generator::train::TrainConfig;
///
/// let c = TrainConfig::default().with_steps(300).with_lr(5e-4);
/// assert!(c.validate().is_ok());
/// assert!(c.with_batch(1).validate().is_err(), "BatchNorm needs 2 or more");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub steps: usize,
    /// Examples per step; at least 2 (the routers' BatchNorm).
    pub batch: usize,
    pub lr: f64,
    pub warmup: usize,
    pub weight_decay: f64,
    /// Largest global gradient norm.
    pub clip: f64,
    pub seed: u64,
    pub checkpoint_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 1000,
            batch: 4,
            lr: 5e-4,
            warmup: 50,
            weight_decay: 0.1,
            clip: 1.0,
            seed: 0,
            checkpoint_every: 25,
        }
    }
}

impl TrainConfig {
    #[must_use]
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
    #[must_use]
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }
    #[must_use]
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }
    #[must_use]
    pub fn with_warmup(mut self, warmup: usize) -> Self {
        self.warmup = warmup;
        self
    }
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    #[must_use]
    pub fn with_checkpoint_every(mut self, every: usize) -> Self {
        self.checkpoint_every = every;
        self
    }

    pub fn validate(&self) -> Result<()> {
        let ok = self.steps > 0
            && self.batch >= 2
            && self.lr > 0.0
            && self.lr.is_finite()
            && (0.0..1.0).contains(&self.weight_decay)
            && self.clip > 0.0
            && self.checkpoint_every > 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "training needs steps > 0, batch >= 2, a finite lr > 0, weight decay in [0, 1), clip > 0 and checkpoint_every > 0; got {self:?}"
            )))
        }
    }

    /// Linear warm-up to `lr`, then cosine decay to zero at `steps`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
        let done = ((step - self.warmup) as f64 / span).min(1.0);
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * done).cos())
    }
}

/// What one step did; a line of the training log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepLog {
    pub step: usize,
    pub loss: f64,
    pub lm_loss: f64,
    pub cv_loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub ms: f64,
    /// Per layer, each expert's share of the batch's gate mass.
    pub utilisation: Vec<Vec<f32>>,
}

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

/// The trainable part.
#[derive(Debug)]
enum Model {
    Generator(Box<Generator>),
    Lora { lora: FixedLora, with_tools: bool },
}

/// A standard normal sample (Box-Muller).
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "config.json";

pub struct Trainer<'e> {
    pub config: TrainConfig,
    edge: &'e EdgeModel,
    edge_sha256: String,
    examples_sha256: String,
    model: Model,
    varmap: VarMap,
    opt: AdamW,
    examples: Vec<Example>,
    /// Cloud features of the system parts' blocks.
    features: RegistryFeatures,
}

impl std::fmt::Debug for Trainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("step", &self.step())
            .field("examples", &self.examples.len())
            .field("feature_units", &self.features.unit_count())
            .finish_non_exhaustive()
    }
}

impl<'e> Trainer<'e> {
    /// A fresh learner, initialised from the seed. For the generator, every
    /// example's system part must have features.
    pub fn new(
        learner: Learner,
        config: TrainConfig,
        edge: &'e EdgeModel,
        edge_sha256: String,
        examples: Vec<Example>,
        features: RegistryFeatures,
    ) -> Result<Self> {
        config.validate()?;
        if examples.len() < config.batch {
            return Err(Error::Config(format!(
                "{} examples for batches of {}",
                examples.len(),
                config.batch
            )));
        }
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, config.seed, DType::F32, edge.device());
        let model = match learner {
            Learner::Generator(generator) => {
                if let Some(e) = examples.iter().find(|e| !features.covers(&e.system)) {
                    return Err(Error::Config(format!(
                        "no cloud features for the system part of an example ({} bytes)",
                        e.system.len()
                    )));
                }
                if generator.edge_layers != edge.config.n_layer {
                    return Err(Error::Config(format!(
                        "the generator has {} layers, the edge model {}",
                        generator.edge_layers, edge.config.n_layer
                    )));
                }
                Model::Generator(Box::new(Generator::new(generator, |t| edge.dims(t), vb)?))
            }
            Learner::Lora { lora, with_tools } => Model::Lora {
                lora: FixedLora::new(lora, edge.config.n_layer, |t| edge.dims(t), vb)?,
                with_tools,
            },
        };
        // BatchNorm's running statistics change in the forward, not by
        // gradients: they stay out of the optimiser.
        let trainable = varmap
            .data()
            .lock()
            .map_err(|_| Error::Config("the variable map's lock is poisoned".into()))?
            .iter()
            .filter(|(name, _)| !name.contains(".running_"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let opt = AdamW::new(
            trainable,
            AdamWParams {
                lr: config.lr_at(0),
                weight_decay: config.weight_decay,
                ..AdamWParams::default()
            },
        )?;
        Ok(Trainer {
            config,
            edge,
            edge_sha256,
            examples_sha256: examples_sha256(&examples),
            model,
            varmap,
            opt,
            examples,
            features,
        })
    }

    /// Steps done so far.
    pub fn step(&self) -> usize {
        self.opt.steps()
    }

    /// The generator being trained, if that is what this trainer trains.
    pub fn generator(&self) -> Option<&Generator> {
        match &self.model {
            Model::Generator(g) => Some(g),
            Model::Lora { .. } => None,
        }
    }

    /// Starts every expert at the plain LoRA checkpoint in `lora_dir`, plus
    /// Gaussian noise of `noise` times each factor's standard deviation
    /// (seeded by the run's seed). The KeepTop-K gates sum to one and the
    /// adapter mixes A and B factors, so with `noise` 0 the generated
    /// adapter is that LoRA for every registry: training starts from the
    /// baseline and only has to learn what depends on the tools. Only a
    /// generator at step 0 can be warm-started.
    pub fn warm_start_experts(&mut self, lora_dir: &Path, noise: f64) -> Result<()> {
        let Model::Generator(generator) = &self.model else {
            return Err(Error::Config(
                "only a generator's experts can be warm-started".into(),
            ));
        };
        if self.step() > 0 {
            return Err(Error::Config(format!(
                "a warm start replaces the initial weights; this run is at step {}",
                self.step()
            )));
        }
        let lora = crate::edge::checkpoint::to_adapter(lora_dir)?;
        let ours = &generator.config.lora;
        let vars = self
            .varmap
            .data()
            .lock()
            .map_err(|_| Error::Config("the variable map's lock is poisoned".into()))?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x5741_524d);
        let mut started = 0;
        for pair in &lora.pairs {
            let stem = pair.weight.trim_end_matches(".weight");
            // B carries the ratio of the two scales (alpha / r), so that
            // the expert's product equals the LoRA's.
            let ratio = f64::from(lora.scale_of(pair)) * ours.rank as f64 / ours.alpha;
            for (suffix, base, factor) in [("lora_a", &pair.a, 1.0), ("lora_b", &pair.b, ratio)] {
                let name = format!("experts.{stem}.{suffix}");
                let Some(var) = vars.get(&name) else {
                    return Err(Error::Config(format!(
                        "{}: the LoRA has `{stem}`, which the generator's experts lack",
                        lora_dir.display()
                    )));
                };
                let (n, rest) = match var.dims() {
                    [n, rest @ ..] if rest == base.dims() => (*n, rest.to_vec()),
                    dims => {
                        return Err(Error::Config(format!(
                            "{}: `{stem}.{suffix}` is {:?}, the experts' {dims:?}",
                            lora_dir.display(),
                            base.dims()
                        )))
                    }
                };
                let base = (base.to_dtype(DType::F32)? * factor)?;
                let values: Vec<f32> = base.flatten_all()?.to_vec1()?;
                let mean = values.iter().sum::<f32>() / values.len().max(1) as f32;
                let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>()
                    / values.len().max(1) as f32)
                    .sqrt();
                let sigma = std * noise as f32;
                let noisy: Vec<f32> = (0..n)
                    .flat_map(|_| {
                        values
                            .iter()
                            .map(|v| v + sigma * gaussian(&mut rng))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let mut shape = vec![n];
                shape.extend(rest);
                var.set(&Tensor::from_vec(noisy, shape, base.device())?)?;
                started += 1;
            }
        }
        let expected = vars
            .keys()
            .filter(|k| {
                k.starts_with("experts.") && (k.ends_with(".lora_a") || k.ends_with(".lora_b"))
            })
            .count();
        if started != expected {
            return Err(Error::Config(format!(
                "{}: the LoRA covers {started} of the experts' {expected} factors",
                lora_dir.display()
            )));
        }
        Ok(())
    }

    pub fn parameter_count(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// One optimiser step on the next batch.
    pub fn train_step(&mut self) -> Result<StepLog> {
        let started = Instant::now();
        let step = self.step();
        let _span = tracing::info_span!("train_step", step = step + 1).entered();
        let idx = batch_of(
            step,
            self.config.batch,
            self.examples.len(),
            self.config.seed,
        );
        let batch: Vec<&Example> = idx.iter().map(|&i| &self.examples[i]).collect();
        let (deltas, gates, dropout, cv_weight) = match &self.model {
            Model::Generator(generator) => {
                let features: Vec<Tensor> = batch
                    .iter()
                    .map(|e| self.features.of(&e.system))
                    .collect::<Result<_>>()?;
                // Gumbel noise (if the gating samples) is a function of
                // (seed, step), so a resumed run draws the same.
                let noise_seed =
                    self.config.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let gates = generator.gates(&features, GatePass::Train { noise_seed })?;
                let deltas = generator.deltas(&gates)?;
                let c = &generator.config;
                (deltas, Some(gates), c.lora.dropout, c.cv_weight)
            }
            Model::Lora { lora, .. } => (lora.layers.clone(), None, lora.config.dropout, 0.0),
        };

        let seq = batch.iter().map(|e| e.tokens.len()).max().unwrap_or(1);
        let mut ids = vec![0u32; batch.len() * seq];
        let mut at = Vec::new();
        let mut targets = Vec::new();
        for (b, e) in batch.iter().enumerate() {
            ids[b * seq..b * seq + e.tokens.len()].copy_from_slice(&e.tokens);
            for t in e.output_from - 1..e.tokens.len() - 1 {
                at.push((b, t));
                targets.push(e.tokens[t + 1]);
            }
        }
        let lengths: Vec<usize> = batch.iter().map(|e| e.tokens.len()).collect();
        let input = Tensor::from_vec(ids, (batch.len(), seq), self.edge.device())?;
        let phase = Phase::Train {
            dropout,
            seed: self
                .config
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(step as u64),
        };
        let hidden = self.edge.hidden(&input, &lengths, Some(&deltas), phase)?;
        let logits = self.edge.logits(&self.edge.select(&hidden, &at)?)?;
        let lm = cross_entropy(&logits, &targets)?;
        let (loss, cv) = match &gates {
            Some(gates) => {
                let cv = cv_loss(gates)?;
                ((&lm + (&cv * cv_weight)?)?, cv.to_scalar::<f32>()? as f64)
            }
            None => (lm.clone(), 0.0),
        };
        let loss_value = loss.to_scalar::<f32>()? as f64;
        if !loss_value.is_finite() {
            return Err(Error::Config(format!(
                "the loss became {loss_value} at step {step}; lower the learning rate"
            )));
        }
        let mut grads = loss.backward()?;
        let grad_norm = self.opt.clip(&mut grads, self.config.clip)?;
        let lr = self.config.lr_at(step);
        self.opt.params.lr = lr;
        self.opt.step(&grads)?;
        Ok(StepLog {
            step: step + 1,
            loss: loss_value,
            lm_loss: lm.to_scalar::<f32>()? as f64,
            cv_loss: cv,
            lr,
            grad_norm,
            tokens: lengths.iter().sum(),
            ms: started.elapsed().as_secs_f64() * 1e3,
            utilisation: gates
                .as_deref()
                .map(utilisation)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// Writes the checkpoint into `dir/checkpoint`: the files go to a
    /// partial directory first, which then replaces the old checkpoint, so
    /// a kill at any moment leaves one whole checkpoint.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let partial = dir.join("checkpoint.partial");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
        }
        self.snapshot(&partial)?;
        self.opt.save(&partial.join(OPTIMIZER_FILE))?;
        let (current, old) = (dir.join("checkpoint"), dir.join("checkpoint.old"));
        if current.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(io(&old))?;
            }
            std::fs::rename(&current, &old).map_err(io(&current))?;
        }
        std::fs::rename(&partial, &current).map_err(io(&partial))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        Ok(())
    }

    /// The weights and `config.json` alone (no optimiser state) in `dir`:
    /// what `loragen compile` needs, kept along the run for validation.
    pub fn snapshot(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write_atomic_with(&dir.join(MODEL_FILE), |tmp| {
            self.varmap.save(tmp).map_err(Error::from)
        })?;
        if let Model::Lora { lora, .. } = &self.model {
            // Also as a LoRA checkpoint, for `loragen adapter export`.
            let config = crate::edge::checkpoint::CheckpointConfig {
                arch: self.edge.config.arch.gguf_name().to_owned(),
                n_layer: self.edge.config.n_layer,
                lora: lora.config.clone(),
            };
            crate::edge::checkpoint::save(dir, &config, &self.varmap)?;
        }
        let json =
            serde_json::to_vec_pretty(&self.state()).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic_with(&dir.join(STATE_FILE), |tmp| {
            std::fs::write(tmp, &json).map_err(|source| Error::Io {
                path: tmp.to_path_buf(),
                source,
            })
        })
    }

    fn state(&self) -> CheckpointState {
        let (generator, lora_baseline) = match &self.model {
            Model::Generator(g) => (Some(g.config.clone()), None),
            Model::Lora { lora, with_tools } => (
                None,
                Some(LoraBaseline {
                    lora: lora.config.clone(),
                    with_tools: *with_tools,
                }),
            ),
        };
        CheckpointState {
            generator,
            lora_baseline,
            train: self.config.clone(),
            step: self.step(),
            edge_arch: self.edge.config.arch.gguf_name().to_owned(),
            edge_sha256: self.edge_sha256.clone(),
            examples_sha256: Some(self.examples_sha256.clone()),
        }
    }

    /// Continues from the checkpoint in `dir`, which must come from the same
    /// settings and edge model.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        let ckpt = checkpoint_dir(dir).ok_or_else(|| {
            Error::Config(format!("{}: no checkpoint to resume from", dir.display()))
        })?;
        let state = read_state(&ckpt)?;
        let differences = differing_keys(&state, &self.state());
        if !differences.is_empty() {
            return Err(Error::Config(format!(
                "{}: the checkpoint was made with other settings ({}); use the same settings to resume, or another --out",
                ckpt.display(),
                differences.join(", ")
            )));
        }
        self.varmap.load(ckpt.join(MODEL_FILE))?;
        self.opt.load(&ckpt.join(OPTIMIZER_FILE))?;
        if self.opt.steps() != state.step {
            return Err(Error::Config(format!(
                "{}: the optimiser has {} steps, config.json {}",
                ckpt.display(),
                self.opt.steps(),
                state.step
            )));
        }
        Ok(())
    }
}

/// The fingerprint of a training set: every example's system part, tokens
/// and output offset, in order, length-prefixed so no two sets collide by
/// concatenation.
fn examples_sha256(examples: &[Example]) -> String {
    let mut bytes = Vec::new();
    for e in examples {
        bytes.extend_from_slice(&(e.system.len() as u64).to_le_bytes());
        bytes.extend_from_slice(e.system.as_bytes());
        bytes.extend_from_slice(&(e.tokens.len() as u64).to_le_bytes());
        bytes.extend(e.tokens.iter().flat_map(|t| t.to_le_bytes()));
        bytes.extend_from_slice(&(e.output_from as u64).to_le_bytes());
    }
    loragen_protocol::digest::sha256_hex(&bytes)
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

/// The checkpoint directory under `dir`: `checkpoint`, or `checkpoint.old`
/// when a save was cut between its renames.
pub fn checkpoint_dir(dir: &Path) -> Option<PathBuf> {
    ["checkpoint", "checkpoint.old"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.join(STATE_FILE).exists())
}

/// A checkpoint's `config.json`.
pub fn read_state(ckpt: &Path) -> Result<CheckpointState> {
    let path = ckpt.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Config(format!(
            "{}: not a generator checkpoint (cannot read {STATE_FILE}: {e})",
            ckpt.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "{}: not a generator checkpoint ({e})",
            path.display()
        ))
    })
}
