//! Errors of the `loragen-tools` crate.
//!
//! [`ToolError`] is what the model gets to see as an observation; [`Error`]
//! is for the developer (a broken registry, an unreadable tool file).

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A registry or spec problem: a programming or configuration error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a tool named `{0}` is already registered")]
    DuplicateName(String),

    #[error("tool name must not be empty or contain a newline or comma: {0:?}")]
    BadName(String),

    #[error("the JSON Schema of tool `{tool}` does not compile: {detail}")]
    BadSchema { tool: String, detail: String },

    #[error("cannot serialise the schema of a tool: {0}")]
    Json(#[from] serde_json::Error),

    #[error(transparent)]
    Protocol(#[from] loragen_protocol::Error),
}

/// A failure the model should see and can react to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("unknown tool `{name}`; available tools: {available}")]
    UnknownTool { name: String, available: String },

    #[error("invalid arguments for `{tool}`: {message}")]
    InvalidArgs { tool: String, message: String },

    /// The tool ran and reported a failure.
    #[error("{0}")]
    Failed(String),

    /// The tool is known but has no implementation here.
    #[error("tool `{0}` is not available offline")]
    Unavailable(String),
}
