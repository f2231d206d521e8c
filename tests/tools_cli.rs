//! `loragen tools list` over real MCP servers: tools grouped by source,
//! what cannot run marked, and a broken config named in one line. The
//! servers are the pinned ones of `scripts/install-mcp-servers.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use loragen_agent::test_util as common;
use serde_json::json;

/// `loragen` with `args`, in the given home.
fn loragen(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loragen"))
        .args(args)
        .env("LORAGEN_HOME", home)
        .output()
        .unwrap()
}

#[test]
fn tools_list_groups_by_source_and_marks_what_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mcp.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {
            "time": common::time_server("UTC"),
            "fs": common::filesystem_server(dir.path()),
            "gone": {"command": "loragen-no-such-mcp-server"},
            "faulty": {"command": "python3", "args": [Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp_faulty_server.py")]},
        }})
        .to_string(),
    )
    .unwrap();
    let out = loragen(
        dir.path(),
        &[
            "tools",
            "list",
            "--mcp-config",
            config.to_str().unwrap(),
            "--registry",
            "gpt4tools",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("gpt4tools (built-in, 23 tools, 19 cannot run)"),
        "{text}"
    );
    assert!(text.contains("time (MCP stdio, 2 tools)"), "{text}");
    assert!(
        text.contains("gone (MCP stdio, not started: cannot run `loragen-no-such-mcp-server`"),
        "{text}"
    );
    assert!(text.contains("  convert_time"), "{text}");
    assert!(
        text.contains("\"required\":[\"timezone\"]"),
        "the schema: {text}"
    );
    assert!(
        text.contains("[cannot run: not available offline]"),
        "{text}"
    );
    // 23 + 2 + the filesystem server's tools.
    let count: usize = text
        .lines()
        .find_map(|l| {
            l.split(" tools in the registry")
                .next()
                .filter(|_| l.contains("in the registry"))
        })
        .unwrap()
        .parse()
        .unwrap();
    assert!(count > 25, "{text}");

    // A broken file is one clear line naming the file and the mistake.
    std::fs::write(&config, r#"{"mcpServers": {"time": {"comand": "x"}}}"#).unwrap();
    let out = loragen(
        dir.path(),
        &["tools", "list", "--mcp-config", config.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mcp.json") && err.contains("comand"), "{err}");
}
