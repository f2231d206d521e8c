//! The edge side of loragen: a model store for the default GGUF models and a
//! safe runtime over llama.cpp that the agent loop, the benchmark and the
//! generator share.

pub mod adapter;
pub mod agent;
pub mod error;
pub mod grammar;
pub mod runtime;
pub mod selector;
pub mod store;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod toolset;

pub use error::{ContextLimit, Error, LlamaFailure, Result};
