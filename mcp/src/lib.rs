//! Tools from Model Context Protocol servers: the `mcpServers`
//! configuration, and clients (rmcp, over stdio or streamable HTTP) whose
//! tools register as callable tools.
//!
//! A server's tool keeps its name, description and input schema; a call
//! goes to the server, and its answer, or its error, becomes the
//! observation. Every error names the server it concerns.

mod client;
mod config;
pub mod error;

pub use client::{ImportedTool, McpServers, ServerFailure, ServerStatus, START_TIMEOUT};
pub use config::{McpConfig, ServerConfig, Transport, DEFAULT_CALL_TIMEOUT};
pub use error::{Error, Result};
