//! The GPT4Tools training tools as a registry: the ones that run offline
//! (edge, line, sketch and soft-edge detection, with the `images` feature)
//! and the rest by spec only.

#[cfg(feature = "images")]
mod images;

#[cfg(feature = "images")]
pub use images::{output_path, ImageTool, Operation};

use loragen_protocol::gpt4tools::TOOLS;

use crate::error::Result;
use crate::registry::ToolRegistry;

/// The 23 tools as a registry. With the `images` feature, edge, line,
/// sketch and soft-edge detection run offline; the other tools (all of
/// them without it) are registered by spec only and answer that they are
/// not available offline.
pub fn registry() -> Result<ToolRegistry> {
    let mut registry = ToolRegistry::new();
    for info in &TOOLS {
        #[cfg(feature = "images")]
        if let Some(op) = Operation::ALL
            .into_iter()
            .find(|op| op.tool_name() == info.name)
        {
            registry.register(ImageTool(op))?;
            continue;
        }
        registry.register_spec(info.spec())?;
    }
    Ok(registry)
}
