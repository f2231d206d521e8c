//! A safe edge runtime over llama.cpp: models, sessions with KV-prefix
//! reuse, constrained sampling, LoRA adapters and hidden states.

mod host;
mod load_log;
mod model;
mod names;
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
pub use params::{GenerateParams, NameChoice, Sampling, SessionParams};
pub use session::{Completion, FinishReason, Session};
pub use stats::Stats;

use crate::error::{Error, LlamaFailure, Result};

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
        .map_err(|e| Error::llama("backend init", LlamaFailure::Backend(e.clone())))
}

/// The environment variable that sets the runtime's thread count.
pub const THREADS_ENV: &str = "LORAGEN_THREADS";

/// Default thread count: `LORAGEN_THREADS` when it holds a positive
/// number, else every core of the machine. (An invalid value is reported
/// by [`env_threads`], which the program calls once at start, and by every
/// session's parameter check.)
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
/// an error naming the variable when it is not a positive integer. The
/// variable is read once per process.
pub fn env_threads() -> Result<Option<usize>> {
    static SETTING: OnceLock<std::result::Result<Option<usize>, String>> = OnceLock::new();
    SETTING
        .get_or_init(|| parse_threads(std::env::var_os(THREADS_ENV)))
        .clone()
        .map_err(Error::InvalidParam)
}

/// `LORAGEN_THREADS`' value as a thread count.
fn parse_threads(value: Option<std::ffi::OsString>) -> std::result::Result<Option<usize>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let bad = || format!("{THREADS_ENV}={value:?} is not a positive thread count");
    let text = value.to_str().ok_or_else(bad)?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_thread_count_is_a_positive_integer_or_unset() {
        let parse = |v: &str| parse_threads(Some(v.into()));
        assert_eq!(parse_threads(None), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse(" 3 "), Ok(Some(3)));
        for bad in ["0", "two", "-1", "1.5"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(THREADS_ENV) && err.contains(bad), "{err}");
        }
    }
}
