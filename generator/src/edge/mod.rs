//! The edge model in candle: configuration from GGUF, the decoder forward
//! with LoRA hooks, and LoRA deltas.

pub mod config;
pub mod lora;
pub mod model;
pub mod parity;

pub use config::{Activation, Arch, EdgeConfig};
pub use lora::{Delta, FixedLora, LayerDeltas, LoraConfig, Target};
pub use model::{EdgeModel, Phase};
pub use parity::{agreement, Agreement};
