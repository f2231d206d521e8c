//! The trainer of the generator and of the plain LoRA baselines: batches
//! of examples (for the generator with different system parts, hence
//! different generated deltas), the LM loss on output tokens (plus the CV
//! load-balancing loss for the generator), AdamW with warm-up and cosine
//! decay, gradient clipping, and checkpoints a resumed run continues from
//! exactly.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::data::{batch_of, Example};
use super::optim::{AdamW, AdamWParams};
use super::seeded::seeded_var_builder;
use crate::checkpoint::{self, CheckpointState, Learner, LoraBaseline, MODEL_FILE, OPTIMIZER_FILE};
use crate::edge::{cross_entropy, EdgeModel, FixedLora, Phase};
use crate::error::{Error, Result};
use crate::features::RegistryFeatures;
use crate::model::{cv_loss, utilisation, GatePass, Generator};

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

/// The trainable part.
#[derive(Debug)]
enum Model {
    Generator(Box<Generator>),
    Lora { lora: FixedLora, with_tools: bool },
}

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
    /// (seeded by the run's seed): with `noise` 0 the generated adapter is
    /// that LoRA for every registry, so training starts from the baseline
    /// and only has to learn what depends on the tools. Only a generator at
    /// step 0 can be warm-started.
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
        checkpoint::warm_start_experts(
            &self.varmap,
            &generator.config.lora,
            lora_dir,
            noise,
            self.config.seed,
        )
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
                let generated = tracing::debug_span!("generate")
                    .in_scope(|| generator.generate(&features, GatePass::Train { noise_seed }))?;
                let c = &generator.config;
                (
                    generated.deltas,
                    generated.gates,
                    c.lora.dropout,
                    c.cv_weight,
                )
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
        let lm =
            tracing::debug_span!("edge_forward", tokens = at.len()).in_scope(|| -> Result<_> {
                let hidden = self.edge.hidden(&input, &lengths, Some(&deltas), phase)?;
                let logits = self.edge.logits(&self.edge.select(&hidden, &at)?)?;
                Ok(cross_entropy(&logits, &targets)?)
            })?;
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
        let mut grads = tracing::debug_span!("backward").in_scope(|| loss.backward())?;
        let lr = self.config.lr_at(step);
        let grad_norm = tracing::debug_span!("optimizer").in_scope(|| -> Result<f64> {
            let grad_norm = self.opt.clip(&mut grads, self.config.clip)?;
            self.opt.params.lr = lr;
            self.opt.step(&grads)?;
            Ok(grad_norm)
        })?;
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

    /// Writes the checkpoint of the run in `dir` (`dir/checkpoint`),
    /// replacing the last one only once it is whole.
    pub fn save(&self, dir: &Path) -> Result<()> {
        checkpoint::save(dir, |partial| {
            self.snapshot(partial)?;
            self.opt.save(&partial.join(OPTIMIZER_FILE))
        })
    }

    /// The weights and `config.json` alone (no optimiser state) in `dir`:
    /// what `loragen compile` needs, kept along the run for validation.
    pub fn snapshot(&self, dir: &Path) -> Result<()> {
        let lora = match &self.model {
            Model::Lora { lora, .. } => Some(checkpoint::lora::CheckpointConfig {
                arch: self.edge.config.arch.gguf_name().to_owned(),
                n_layer: self.edge.config.n_layer,
                lora: lora.config.clone(),
            }),
            Model::Generator(_) => None,
        };
        checkpoint::write_snapshot(dir, &self.varmap, &self.state(), lora.as_ref())
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

    /// Continues from the checkpoint of the run in `dir`, which must come
    /// from the same settings, examples and edge model.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        let (ckpt, state) = checkpoint::resumable(dir, &self.state())?;
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
