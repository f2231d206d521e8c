//! The unseen-tools suite's MCP fixture describes its tools exactly as the
//! pinned servers do (the time server with UTC as its local timezone,
//! which its schemas name), so a server upgrade that renames a tool or
//! changes a schema fails here instead of moving the suite's scores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use loragen::gpt4tools::suite::{mcp_dir, mcp_fixture, MCP_SCORED_ROOT};
use loragen::mcp::{McpConfig, McpServers};
use loragen_agent::test_util as common;
use serde_json::{json, Value};

#[test]
fn the_fixture_tools_are_the_pinned_servers_tools() {
    let root = tempfile::tempdir().unwrap();
    let config = json!({"mcpServers": {
        "time": common::time_server("UTC"),
        "files": common::filesystem_server(root.path()),
    }});
    let (servers, failures) =
        McpServers::start(&McpConfig::parse(&config.to_string()).unwrap()).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let live: BTreeMap<String, (String, Value)> = servers
        .tools(&[])
        .into_iter()
        .map(|t| (t.spec.name, (t.spec.description, t.spec.parameters)))
        .collect();
    servers.shutdown();
    let (fixture, _) = mcp_fixture(&mcp_dir(), MCP_SCORED_ROOT).unwrap();
    let committed: BTreeMap<String, (String, Value)> = fixture
        .tools
        .into_iter()
        .map(|t| (t.name, (t.description, t.parameters)))
        .collect();
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>()
    );
    for (name, tool) in &live {
        assert_eq!(tool, &committed[name], "{name}");
    }
}
