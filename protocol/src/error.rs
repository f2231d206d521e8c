//! Errors of the `loragen-protocol` crate.

use std::path::PathBuf;

use crate::atomic::WriteError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A spec, mode or compiled-artifact problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tool list is not valid OpenAI-style JSON: {0}")]
    Import(String),

    /// A name of a closed set (a mode, a name hint) that is not in it.
    #[error("unknown {what} `{given}`; expected one of {expected}")]
    UnknownName {
        what: &'static str,
        given: String,
        expected: String,
    },

    #[error("cannot serialise tool specs: {0}")]
    Json(#[from] serde_json::Error),

    /// A compiled adapter that does not fit what runs it, or whose manifest
    /// is unreadable.
    #[error("{}: {detail}", path.display())]
    Adapter { path: PathBuf, detail: String },

    /// Reading a compiled adapter or its manifest failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(transparent)]
    Write(#[from] WriteError),

    /// Compiling a registry into an adapter failed (in an
    /// [`AdapterSource`](crate::artifact::AdapterSource)).
    #[error("compiling the tools failed: {0}")]
    Compile(#[source] Box<dyn std::error::Error + Send + Sync>),
}
