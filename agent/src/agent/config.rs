//! Settings of the agent loop.

use std::time::Duration;

use loragen_protocol::Mode;

use crate::error::{Error, Result};

/// Limits and switches of the loop.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub mode: Mode,
    /// Model messages per user turn.
    pub max_steps: usize,
    /// Failed steps (bad format, unknown tool, invalid arguments, tool
    /// errors) tolerated per turn before giving up.
    pub max_retries: usize,
    pub tool_timeout: Duration,
    /// Token limit of one model message.
    pub max_tokens: usize,
    /// Constrain tool names and arguments with a grammar.
    pub constrained: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            mode: Mode::InContext,
            max_steps: 5,
            max_retries: 2,
            tool_timeout: Duration::from_secs(30),
            max_tokens: 256,
            constrained: false,
        }
    }
}

impl AgentConfig {
    /// Defaults for a mode: constrained decoding is on wherever the model
    /// no longer sees the tool names.
    pub fn for_mode(mode: Mode) -> Self {
        AgentConfig {
            mode,
            constrained: !mode.definitions_in_context(),
            ..Self::default()
        }
    }

    #[must_use]
    pub fn with_max_steps(mut self, n: usize) -> Self {
        self.max_steps = n;
        self
    }

    #[must_use]
    pub fn with_max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    #[must_use]
    pub fn with_tool_timeout(mut self, timeout: Duration) -> Self {
        self.tool_timeout = timeout;
        self
    }

    #[must_use]
    pub fn with_max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n;
        self
    }

    #[must_use]
    pub fn with_constrained(mut self, on: bool) -> Self {
        self.constrained = on;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_steps == 0 || self.max_tokens == 0 {
            return Err(Error::InvalidParam(
                "max_steps and max_tokens must be positive".into(),
            ));
        }
        if self.tool_timeout.is_zero() {
            return Err(Error::InvalidParam("tool_timeout must be positive".into()));
        }
        Ok(())
    }
}
