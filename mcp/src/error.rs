//! Errors of the `loragen-mcp` crate. What a tool call's failure tells the
//! model is a [`loragen_tools::ToolError`]; these are for the developer.

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A config or server problem, naming the file or the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("MCP config {path}: {detail}")]
    Config { path: String, detail: String },

    /// An MCP server failed to start, to list its tools or to stop.
    #[error("MCP server `{server}`: {detail}")]
    Server { server: String, detail: String },
}
