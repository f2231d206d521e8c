//! Fixtures of the workspace's tests, through the `test-util` feature:
//! the default models (each loaded once per test binary), the MCP test
//! servers, and a scripted mock model for the agent loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::agent::LanguageModel;
use crate::runtime::{Completion, FinishReason, GenerateParams, Model, Stats};
use crate::store::{ModelStore, Role};

/// The image turn and request of the GPT4Tools prompt that the parity and
/// adapter tests read (the figures in docs/edge.md are over this text).
pub const DEMO_IMAGE: Option<(&str, &str)> =
    Some(("image/kdwpqzla.png", "Two dogs playing with a ball."));
pub const DEMO_REQUEST: &str = "Segment the dogs.";

/// The workspace's root directory (fixtures, scripts, `target/`).
pub fn workspace_root() -> &'static Path {
    // This crate sits one level below the root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the agent crate is inside the workspace")
}

/// Path of a default model, honouring the LORAGEN_*_MODEL overrides.
pub fn model_path(role: Role) -> PathBuf {
    ModelStore::from_env()
        .unwrap()
        .resolve_role(role)
        .unwrap_or_else(|e| panic!("real-model tests need the default models: {e}"))
}

pub fn edge() -> &'static Model {
    static EDGE: OnceLock<Model> = OnceLock::new();
    EDGE.get_or_init(|| Model::load(model_path(Role::Edge)).unwrap())
}

pub fn cloud() -> &'static Model {
    static CLOUD: OnceLock<Model> = OnceLock::new();
    CLOUD.get_or_init(|| Model::load(model_path(Role::Cloud)).unwrap())
}

/// The prefix holding the MCP test servers: `LORAGEN_MCP_SERVERS` when set
/// (`make test` sets it), else `target/mcp-servers`, installed there by
/// `scripts/install-mcp-servers.sh` on first use (pinned versions).
pub fn mcp_servers() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        if let Some(prefix) = std::env::var_os("LORAGEN_MCP_SERVERS") {
            return PathBuf::from(prefix);
        }
        let root = workspace_root();
        let prefix = root.join("target/mcp-servers");
        let status = std::process::Command::new(root.join("scripts/install-mcp-servers.sh"))
            .arg(&prefix)
            .status()
            .unwrap();
        assert!(status.success(), "installing the MCP test servers failed");
        prefix
    })
}

/// Runs `command` with `input` on its standard input, its output kept (a
/// REPL fed a script).
pub fn output_with_stdin(command: &mut std::process::Command, input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// An `mcpServers` entry starting the time server with `timezone` as its
/// local timezone (which its tool schemas name).
pub fn time_server(timezone: &str) -> serde_json::Value {
    serde_json::json!({
        "command": mcp_servers().join("py/bin/mcp-server-time"),
        "args": ["--local-timezone", timezone],
    })
}

/// An `mcpServers` entry starting the filesystem server on `root`.
pub fn filesystem_server(root: &Path) -> serde_json::Value {
    serde_json::json!({
        "command": mcp_servers().join("npm/node_modules/.bin/mcp-server-filesystem"),
        "args": [root],
    })
}

/// A mock model that replies with a fixed script, honouring stop strings,
/// and records its prompts and the parameters it was given.
#[derive(Debug)]
pub struct Scripted {
    pub replies: VecDeque<String>,
    pub prompts: Vec<String>,
    pub params: Vec<GenerateParams>,
    /// A context of this many characters, as a real model's is of tokens:
    /// a longer prompt is refused, a reply is cut where the context ends.
    pub context_chars: Option<usize>,
}

impl Scripted {
    pub fn new(replies: &[&str]) -> Self {
        Scripted {
            replies: replies.iter().map(|r| r.to_string()).collect(),
            prompts: Vec::new(),
            params: Vec::new(),
            context_chars: None,
        }
    }

    #[must_use]
    pub fn with_context_chars(mut self, chars: usize) -> Self {
        self.context_chars = Some(chars);
        self
    }
}

impl LanguageModel for Scripted {
    fn complete(
        &mut self,
        prompt: &str,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> crate::Result<Completion> {
        self.prompts.push(prompt.to_owned());
        self.params.push(params.clone());
        let room = match self.context_chars {
            Some(n_ctx) if prompt.len() >= n_ctx => {
                return Err(crate::Error::ContextOverflow {
                    tokens: prompt.len(),
                    n_ctx: n_ctx as u32,
                })
            }
            Some(n_ctx) => n_ctx - prompt.len(),
            None => usize::MAX,
        };
        let mut text = self.replies.pop_front().expect("script ran out of replies");
        let mut finish = FinishReason::EndOfGeneration;
        if let Some((at, stop)) = params
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
            .min()
        {
            finish = FinishReason::Stop(stop.clone());
            text.truncate(at);
        }
        if text.len() > room {
            finish = FinishReason::ContextFull;
            let cut = (0..=room).rev().find(|&i| text.is_char_boundary(i));
            text.truncate(cut.unwrap_or(0));
        }
        let _ = on_text(&text);
        Ok(Completion {
            text,
            tokens: Vec::new(),
            finish,
            stats: Stats::default(),
        })
    }
}
