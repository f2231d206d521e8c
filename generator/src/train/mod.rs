//! Training the generator: seeded initialisation, examples and batches,
//! AdamW with saved state, and the trainer with exact resume (its
//! checkpoints are the `checkpoint` module's).

pub mod config;
pub mod data;
pub mod optim;
pub mod seeded;
pub mod trainer;

pub use config::TrainConfig;
pub use data::{batch_of, examples, Example};
pub use optim::{AdamW, AdamWParams};
pub use seeded::seeded_var_builder;
pub use trainer::{StepLog, Trainer};
