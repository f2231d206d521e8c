//! Tools for loragen agents: the `Tool` trait, a validating registry and
//! the GPT4Tools tools. Specs, rendering and the call formats live one
//! floor down, in `loragen-protocol`; MCP servers one floor up, in
//! `loragen-mcp`.

pub mod error;
pub mod gpt4tools;
pub mod registry;
pub mod tool;

pub use async_trait::async_trait;
pub use error::{Error, Result, ToolError};
pub use loragen_protocol::{InputKind, ToolSpec};
pub use registry::{PreparedCall, ToolRegistry};
pub use tool::{JsonTool, TextInput, Tool};
