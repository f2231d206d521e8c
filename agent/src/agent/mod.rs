//! The agent loop: the GPT4Tools / ReAct protocol over any
//! [`LanguageModel`], with validated, time-limited tool calls whose
//! failures become observations the model sees.

mod config;
mod model;
mod names;
mod run;

pub use config::AgentConfig;
pub use loragen_protocol::Mode;
pub use model::LanguageModel;
pub use names::{NameDecision, NamePolicy, SelectorParams, SelectorPolicy, WholeNames};
pub use run::{Agent, AgentFinish, Event, Outcome, StepRecord};
