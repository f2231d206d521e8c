//! Shared fixtures of the real-model tests: each default model is loaded
//! once per test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod scripted;

use std::path::PathBuf;
use std::sync::OnceLock;

use loragen::agent::runtime::Model;
use loragen::agent::store::{ModelStore, Role};

/// The image turn and request of the GPT4Tools prompt that the parity and
/// adapter tests read (the figures in docs/edge.md are over this text).
pub const DEMO_IMAGE: Option<(&str, &str)> =
    Some(("image/kdwpqzla.png", "Two dogs playing with a ball."));
pub const DEMO_REQUEST: &str = "Segment the dogs.";

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
pub fn mcp_servers() -> &'static std::path::Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        if let Some(prefix) = std::env::var_os("LORAGEN_MCP_SERVERS") {
            return PathBuf::from(prefix);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let prefix = root.join("target/mcp-servers");
        let status = std::process::Command::new(root.join("scripts/install-mcp-servers.sh"))
            .arg(&prefix)
            .status()
            .unwrap();
        assert!(status.success(), "installing the MCP test servers failed");
        prefix
    })
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
pub fn filesystem_server(root: &std::path::Path) -> serde_json::Value {
    serde_json::json!({
        "command": mcp_servers().join("npm/node_modules/.bin/mcp-server-filesystem"),
        "args": [root],
    })
}
