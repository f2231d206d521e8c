//! Errors of the GPT4Tools harness.

use std::path::PathBuf;

/// Everything that can go wrong reading, building or reporting a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a GPT4Tools file: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error("{path}: item {item}: {detail}")]
    BadItem {
        path: PathBuf,
        item: String,
        detail: String,
    },
    #[error("corpus data file {file}, line {line}: {detail}")]
    CorpusData {
        file: &'static str,
        line: usize,
        detail: String,
    },
    #[error("invalid corpus settings: {0}")]
    Config(String),
    #[error("BFCL data: {0}")]
    Bfcl(String),
    #[error("{path}: record {line}: {detail}")]
    Record {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("{0}")]
    Generic(String),
    #[error("chart: {0}")]
    Chart(String),
    /// A selection of items that cannot be made (e.g. no partner).
    #[error("{0}")]
    Selection(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<loragen_protocol::atomic::WriteError> for Error {
    fn from(e: loragen_protocol::atomic::WriteError) -> Self {
        Error::Io {
            path: e.path,
            source: e.source,
        }
    }
}
