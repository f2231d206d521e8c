//! The ground floor of loragen: what every layer agrees on, with no
//! network, process or image dependency.
//!
//! - [`spec`]: a tool's name, description and argument schema;
//! - [`render`]: the system part that shows tools to a model, and its
//!   fingerprint;
//! - [`react`]: the ReAct and JSON call formats, their strings, writers and
//!   parsers;
//! - [`gpt4tools`]: the GPT4Tools training tools and prompt layout;
//! - [`mode`]: where a model finds the tool definitions;
//! - [`artifact`]: the compiled adapter's manifest and the trait of what
//!   compiles one.
//!
//! Its only I/O is local files: [`atomic`] writes and [`digest`] hashes,
//! which the manifest needs and every layer shares.

pub mod artifact;
pub mod atomic;
pub mod digest;
pub mod error;
pub mod gpt4tools;
pub mod mode;
pub mod react;
pub mod render;
pub mod spec;

pub use error::{Error, Result};
pub use mode::Mode;
pub use spec::{FieldKind, InputKind, ToolSpec};
