//! The edge model in candle: configuration from GGUF, the decoder forward
//! with LoRA hooks, and LoRA deltas.

pub mod config;
pub mod flops;
pub mod frozen;
pub mod fused;
pub mod lora;
pub mod model;
pub mod parity;
pub mod random;

pub use config::{Activation, Arch, EdgeConfig};
pub use flops::{train_step_flops, StepShape};
pub use frozen::Frozen;
pub use fused::cross_entropy;
pub use lora::{Delta, ExpertLora, ExpertPool, FixedLora, LayerDeltas, LoraConfig, Target};
pub use model::{EdgeModel, Phase};
pub use parity::{agreement, Agreement};
pub use random::random_lora;
