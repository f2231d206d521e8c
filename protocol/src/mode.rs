//! Where an edge model finds the tool definitions: one enum for the agent,
//! the REPL, `eval` and the benchmark.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How the edge model sees the tools.
///
/// # Examples
///
/// ```
/// use loragen_protocol::Mode;
///
/// let mode: Mode = "in-context-cached".parse()?;
/// assert!(mode.definitions_in_context() && mode.reuses_prefix());
/// assert!(!Mode::Compiled.definitions_in_context());
/// # Ok::<(), loragen_protocol::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The full system part with the definitions, computed from scratch for
    /// every prompt.
    InContext,
    /// The full system part, reusing the KV cache of the shared prefix.
    InContextCached,
    /// No definitions in the context; a generated adapter or merged model
    /// carries them.
    Compiled,
    /// A plain LoRA baseline adapter (by default without the definitions).
    Lora,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::InContext,
        Mode::InContextCached,
        Mode::Compiled,
        Mode::Lora,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::InContext => "in-context",
            Mode::InContextCached => "in-context-cached",
            Mode::Compiled => "compiled",
            Mode::Lora => "lora",
        }
    }

    /// Whether the prompt carries the tool definitions.
    pub fn definitions_in_context(self) -> bool {
        matches!(self, Mode::InContext | Mode::InContextCached)
    }

    /// Whether the KV state of the shared prompt prefix is reused.
    pub fn reuses_prefix(self) -> bool {
        self == Mode::InContextCached
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        parse_name("mode", &Mode::ALL, Mode::name, s)
    }
}

/// The member of the closed set `all` called `given` (by `name`); another
/// name is an error listing the set, `what` saying what it names.
pub(crate) fn parse_name<T: Copy>(
    what: &'static str,
    all: &[T],
    name: fn(T) -> &'static str,
    given: &str,
) -> Result<T, Error> {
    all.iter()
        .copied()
        .find(|&t| name(t) == given)
        .ok_or_else(|| Error::UnknownName {
            what,
            given: given.to_owned(),
            expected: all.iter().map(|&t| name(t)).collect::<Vec<_>>().join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_by_name_and_unknown_names_list_the_choices() {
        for m in Mode::ALL {
            assert_eq!(m.name().parse::<Mode>().unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        let err = "fast".parse::<Mode>().unwrap_err().to_string();
        assert!(
            err.contains("`fast`") && err.contains("in-context-cached"),
            "{err}"
        );
    }
}
