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

    /// Model messages per user turn before the agent gives up (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::agent::AgentConfig;
    ///
    /// let config = AgentConfig::default().with_max_steps(3);
    /// assert_eq!(config.max_steps, 3);
    /// ```
    #[must_use]
    pub fn with_max_steps(mut self, n: usize) -> Self {
        self.max_steps = n;
        self
    }

    /// Failed steps (bad format, unknown tool, invalid arguments, tool
    /// errors) tolerated per turn; each is shown to the model as an observation.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::agent::AgentConfig;
    ///
    /// let config = AgentConfig::default().with_max_retries(0);
    /// assert_eq!(config.max_retries, 0);
    /// ```
    #[must_use]
    pub fn with_max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// How long one tool call may take before it fails (more than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use loragen_agent::agent::AgentConfig;
    ///
    /// let config = AgentConfig::default().with_tool_timeout(Duration::from_secs(5));
    /// assert_eq!(config.tool_timeout, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn with_tool_timeout(mut self, timeout: Duration) -> Self {
        self.tool_timeout = timeout;
        self
    }

    /// Token limit of one model message (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::agent::AgentConfig;
    ///
    /// let config = AgentConfig::default().with_max_tokens(96);
    /// assert_eq!(config.max_tokens, 96);
    /// ```
    #[must_use]
    pub fn with_max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n;
        self
    }

    /// Whether a grammar holds tool names and arguments to the registry;
    /// on by default in the modes whose prompt has no definitions.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::agent::AgentConfig;
    /// use loragen_protocol::Mode;
    ///
    /// assert!(AgentConfig::for_mode(Mode::Compiled).constrained);
    /// let free = AgentConfig::for_mode(Mode::Compiled).with_constrained(false);
    /// assert!(!free.constrained);
    /// ```
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
