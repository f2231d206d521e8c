//! Tools for loragen agents: the `Tool` trait, a validating registry,
//! OpenAI-style specs, and prompt rendering with the registry fingerprint.

pub mod atomic;
pub mod digest;
pub mod error;
pub mod gpt4tools;
pub mod mcp;
pub mod mode;
pub mod protocol;
pub mod registry;
pub mod render;
pub mod spec;
pub mod tool;

pub use async_trait::async_trait;
pub use error::{Error, Result, ToolError};
pub use mode::Mode;
pub use registry::{PreparedCall, ToolRegistry};
pub use spec::{InputKind, ToolSpec};
pub use tool::{JsonTool, TextInput, Tool};
