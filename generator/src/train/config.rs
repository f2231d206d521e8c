//! The optimisation settings of a training run.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    /// Optimiser steps of the run (at least 1); the cosine schedule ends
    /// at the last.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::train::TrainConfig;
    ///
    /// let c = TrainConfig::default().with_steps(3000);
    /// assert_eq!(c.lr_at(3000), 0.0);
    /// ```
    #[must_use]
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
    /// Examples per step; at least 2, for the routers' BatchNorm.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::train::TrainConfig;
    ///
    /// assert!(TrainConfig::default().with_batch(8).validate().is_ok());
    /// assert!(TrainConfig::default().with_batch(1).validate().is_err());
    /// ```
    #[must_use]
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }
    /// The peak learning rate, reached after the warm-up (finite, above 0).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::train::TrainConfig;
    ///
    /// let c = TrainConfig::default().with_lr(1e-3).with_warmup(10);
    /// assert!((c.lr_at(9) - 1e-3).abs() < 1e-12, "the peak at the end of the warm-up");
    /// ```
    #[must_use]
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }
    /// Steps of the linear warm-up to the peak learning rate.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::train::TrainConfig;
    ///
    /// let c = TrainConfig::default().with_lr(1e-3).with_warmup(4);
    /// assert_eq!(c.lr_at(1), 0.5e-3);
    /// ```
    #[must_use]
    pub fn with_warmup(mut self, warmup: usize) -> Self {
        self.warmup = warmup;
        self
    }
    /// The seed of the batches, the dropout masks and the initial weights:
    /// a run is replayed exactly from it.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::train::TrainConfig;
    ///
    /// let c = TrainConfig::default().with_seed(7);
    /// assert_eq!(c.seed, 7);
    /// ```
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Steps between checkpoints (at least 1): a stopped run loses at most
    /// this many.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::train::TrainConfig;
    ///
    /// assert!(TrainConfig::default().with_checkpoint_every(0).validate().is_err());
    /// ```
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
