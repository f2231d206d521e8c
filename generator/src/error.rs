//! The one error type of the `loragen-generator` crate.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),

    /// From the runtime crate: unreadable or malformed GGUF files.
    #[error(transparent)]
    Runtime(#[from] loragen_agent::Error),

    /// A compiled adapter's manifest could not be written or read.
    #[error(transparent)]
    Artifact(#[from] loragen_protocol::Error),

    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A LoRA pair whose shapes cannot belong together.
    #[error("LoRA tensors for `{target}` do not fit: A is {a:?}, B is {b:?} (expected A (r, in) and B (out, r))")]
    LoraShape {
        target: String,
        a: Vec<usize>,
        b: Vec<usize>,
    },

    /// A directory that is not a generator checkpoint: no readable
    /// `config.json`, or a plain LoRA's.
    #[error("{}: not a generator checkpoint ({reason})", path.display())]
    NotAGenerator { path: PathBuf, reason: String },

    /// A generator trained for another edge model than the one in use
    /// (sha256s cut to 12 characters).
    #[error("{}: the generator was trained for the edge model {trained}, not {edge} ({})", path.display(), edge_path.display())]
    OtherEdgeModel {
        path: PathBuf,
        trained: String,
        edge: String,
        edge_path: PathBuf,
    },

    /// Weights that do not fit the learner their checkpoint's `config.json`
    /// describes: unreadable, a tensor missing, or another shape.
    #[error("{}: does not fit the generator its config.json describes ({detail})", path.display())]
    WeightsMisfit { path: PathBuf, detail: String },

    /// A checkpoint made with other settings (or examples) than the run
    /// that would resume it; each difference as `key: saved -> now`.
    #[error("{}: the checkpoint was made with other settings ({}); use the same settings to resume, or another --out", path.display(), differences.join(", "))]
    OtherSettings {
        path: PathBuf,
        differences: Vec<String>,
    },

    /// Settings or inputs that cannot work together.
    #[error("{0}")]
    Config(String),

    /// No generator was named and none is shipped.
    #[error("no generator checkpoint: give --generator DIR, set LORAGEN_GENERATOR=DIR, or train the shipped one into {} (scripts/train-default-generator.sh)", shipped.display())]
    NoGenerator { shipped: PathBuf },

    /// A GGUF file lacks something the caller needs.
    #[error("{}: {detail}", path.display())]
    Gguf { path: PathBuf, detail: String },
}

/// Maps an I/O error to [`Error::Io`] at `path`: `.map_err(io_at(path))`.
pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, source }
}

impl From<loragen_protocol::atomic::WriteError> for Error {
    fn from(e: loragen_protocol::atomic::WriteError) -> Self {
        Error::Io {
            path: e.path,
            source: e.source,
        }
    }
}
