//! loragen: tool-using agents on small edge models, specialised by LoRA
//! adapters that a larger cloud model generates from tool definitions.
//!
//! This crate re-exports the workspace libraries and owns the `loragen`
//! command-line program.

pub mod serve;
pub mod setup;

pub use loragen_agent as agent;
pub use loragen_generator as generator;
pub use loragen_gpt4tools as gpt4tools;
pub use loragen_mcp as mcp;
pub use loragen_protocol as protocol;
pub use loragen_tools as tools;
