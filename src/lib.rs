//! loragen: tool-using agents on small edge models, specialised by LoRA
//! adapters that a larger cloud model generates from tool definitions.
//!
//! This crate re-exports the workspace libraries and owns the `loragen`
//! command-line program.
//!
//! # Examples
//!
//! Compile a registry once with the generator (the shipped one,
//! `LORAGEN_GENERATOR`, or a given directory) and run the agent on the edge
//! model without the definitions in its prompt. `no_run`: it needs the
//! default models (`loragen models fetch`); `examples/agent_demo.rs` is the
//! whole program.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use std::sync::Arc;
//!
//! use loragen::agent::agent::{Agent, AgentConfig, Event};
//! use loragen::agent::runtime::SessionParams;
//! use loragen::protocol::{render::system_prompt, Mode};
//! use loragen::setup::Setup;
//!
//! # async fn turn() -> anyhow::Result<()> {
//! let setup = Setup::from_env(None, None, None)?;
//! let tools = Arc::new(loragen::tools::gpt4tools::registry()?);
//! let specs: Vec<_> = tools.specs().cloned().collect();
//!
//! // Once per registry: the cloud model reads the definitions and the
//! // generator turns them into an adapter, cached by the registry's fingerprint.
//! let mut host = setup.edge_host()?;
//! let mut adapters = setup.adapter_cache(setup.adapter_source(None)?);
//! let adapter = adapters.ensure(&mut host, &system_prompt(&specs))?.key;
//!
//! let session = host.session_with(&SessionParams::default(), Some(&adapter))?;
//! let mut agent = Agent::new(session, tools, AgentConfig::for_mode(Mode::Compiled))?;
//! let outcome = agent
//!     .run("Show me the edges of image/a.png.", &mut |event| {
//!         if let Event::Action { tool, input } = event {
//!             println!("{tool}: {input}");
//!         }
//!         ControlFlow::Continue(())
//!     })
//!     .await?;
//! println!("{:?}", outcome.answer);
//! # Ok(())
//! # }
//! ```

pub mod serve;
pub mod setup;

pub use loragen_agent as agent;
pub use loragen_generator as generator;
pub use loragen_gpt4tools as gpt4tools;
pub use loragen_mcp as mcp;
pub use loragen_protocol as protocol;
pub use loragen_tools as tools;
