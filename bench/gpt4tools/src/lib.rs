//! The GPT4Tools evaluation harness of loragen: the reference metrics
//! (SR_t, SR_act, SR_args, SR, IoU) and, on top of them, the benchmark.

pub mod bleu;
pub mod extract;
pub mod metrics;

pub use metrics::{score_item, Aggregate, ItemScores};
