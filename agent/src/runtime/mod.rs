//! A safe edge runtime over llama.cpp: models, sessions with KV-prefix
//! reuse, constrained sampling, LoRA adapters and hidden states.

mod model;
mod params;
mod sampler;
mod session;
mod stats;
mod stop;

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;

pub use llama_cpp_2::token::LlamaToken;
pub use model::{Adapter, Model};
pub use params::{GenerateParams, Sampling, SessionParams};
pub use session::{Completion, FinishReason, Session};
pub use stats::Stats;

use crate::error::{Error, Result};

/// llama.cpp allows one backend per process; every model shares it.
pub fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs go through `tracing`, so RUST_LOG controls them.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::llama("backend init", e))
}

/// Default thread count: every core of the machine.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
