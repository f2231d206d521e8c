//! Training the compiled tool selector (`loragen_agent::selector`): its
//! examples from GPT4Tools and BFCL items, its cached inputs (the base
//! edge model's query states and the cloud features of tool blocks), and
//! a contrastive fit over registries drawn from thousands of tools.

mod data;
mod states;
mod train;

pub use data::{mask_names, tool_blocks, SelectorItem, Target, ToolBlock, MASKED_NAME};
pub use states::{compile_tools, tool_inputs, QueryStates};
pub use train::{fit, rank, Ranked, Selection, SelectorSet, SelectorTraining, SetExample};
