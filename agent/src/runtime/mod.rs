//! A safe edge runtime over llama.cpp: models, sessions with KV-prefix
//! reuse, constrained sampling, LoRA adapters and hidden states.

mod host;
mod load_log;
mod model;
mod params;
mod sampler;
mod session;
mod stats;
mod stop;

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;

pub use host::{AdapterHost, ADAPTERS_PER_MODEL_LOAD};
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

/// The environment variable that sets the runtime's thread count.
pub const THREADS_ENV: &str = "LORAGEN_THREADS";

/// Default thread count: `LORAGEN_THREADS` when it holds a positive
/// number, else every core of the machine. (An invalid value is reported
/// when a session is created; see [`env_threads`].)
///
/// # Examples
///
/// ```
/// assert!(loragen_agent::runtime::default_threads() >= 1);
/// ```
pub fn default_threads() -> usize {
    env_threads().ok().flatten().unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// The thread count set by `LORAGEN_THREADS`: `None` when unset or empty,
/// an error naming the variable when it is not a positive integer.
pub fn env_threads() -> Result<Option<usize>> {
    match std::env::var(THREADS_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::InvalidParam(format!(
                "{THREADS_ENV}={v:?} is not a positive thread count"
            ))),
        },
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::InvalidParam(format!(
            "{THREADS_ENV}={v:?} is not a positive thread count"
        ))),
    }
}
