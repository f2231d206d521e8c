//! The cloud side of loragen: generating LoRA adapters for the edge model,
//! and writing them in formats llama.cpp loads.

pub mod checkpoint;
pub mod compile;
pub mod edge;
pub mod error;
pub mod features;
pub mod gating;
pub mod gguf_lora;
pub mod merge;
pub mod model;
pub mod selector;
pub mod shipped;
pub mod train;

pub use error::{Error, Result};

/// Helpers for tests, in this crate and in the workspace's integration tests.
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
