//! Tools from real MCP servers, no mock of the protocol: the time server
//! (PyPI) and the filesystem server (npm) over stdio, the everything
//! server (npm) over streamable HTTP on 127.0.0.1. Each is listed, called
//! with valid and invalid arguments, driven by the agent loop, killed
//! mid-session; a server that cannot start, answers garbage or stalls is
//! named in a clear error. The servers come from
//! `scripts/install-mcp-servers.sh` (see `common::mcp_servers`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use std::ops::ControlFlow;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Scripted;
use loragen_agent::agent::{Agent, AgentConfig, AgentFinish, Event, Mode};
use loragen_mcp::{McpConfig, McpServers, ServerFailure};
use loragen_tools::{ToolError, ToolRegistry};
use serde_json::{json, Value};

/// Starts the servers of an `mcpServers` object.
fn start(servers: Value) -> (McpServers, Vec<ServerFailure>) {
    let config = McpConfig::parse(&json!({ "mcpServers": servers }).to_string()).unwrap();
    McpServers::start(&config).unwrap()
}

/// The servers' tools in a registry.
fn registry(servers: &McpServers) -> ToolRegistry {
    let mut registry = ToolRegistry::new();
    for tool in servers.tools(&[]) {
        registry.register_json(tool.spec, tool.tool).unwrap();
    }
    registry
}

/// Calls `name` with `args` (validated against its schema first).
fn call(registry: &ToolRegistry, name: &str, args: Value) -> Result<String, ToolError> {
    let prepared = registry.prepare(name, &args.to_string())?;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(prepared.run())
        .map(|v| v.as_str().unwrap().to_owned())
}

/// Calls `name` without our schema check, as a server's own validation
/// would see a model's bad arguments.
fn call_unchecked(servers: &McpServers, name: &str, args: Value) -> Result<Value, ToolError> {
    let tool = servers
        .tools(&[])
        .into_iter()
        .find(|t| t.spec.name == name)
        .unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(tool.tool.call_json(args))
}

fn names(servers: &McpServers, server: &str) -> Vec<String> {
    servers
        .status()
        .into_iter()
        .find(|s| s.name == server)
        .unwrap()
        .tools
        .into_iter()
        .map(|t| t.name)
        .collect()
}

#[test]
fn the_time_server_lists_converts_and_refuses_a_bad_timezone() {
    let (servers, failures) = start(json!({"time": common::time_server("Europe/Paris")}));
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        names(&servers, "time"),
        ["get_current_time", "convert_time"]
    );
    let tools = registry(&servers);
    let convert = tools.spec("convert_time").unwrap();
    assert_eq!(
        convert.parameters["required"],
        json!(["source_timezone", "time", "target_timezone"])
    );
    assert!(
        convert.parameters["properties"]["source_timezone"]["description"]
            .as_str()
            .unwrap()
            .contains("Europe/Paris")
    );

    // Paris in winter is UTC+1, Tokyo UTC+9 all year (today is in winter
    // in Paris whenever the test runs between November and March; the
    // difference field is checked either way).
    let answer = call(
        &tools,
        "convert_time",
        json!({"source_timezone": "Europe/Paris", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
    )
    .unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["target"]["timezone"], "Asia/Tokyo");
    let difference = answer["time_difference"].as_str().unwrap();
    assert!(["+8.0h", "+7.0h"].contains(&difference), "{answer}");
    let expected = if difference == "+8.0h" {
        "T20:00"
    } else {
        "T19:00"
    };
    assert!(
        answer["target"]["datetime"]
            .as_str()
            .unwrap()
            .contains(expected),
        "{answer}"
    );

    // A timezone that does not exist: the server's own error, as a failure
    // the model reads.
    let err = call(
        &tools,
        "get_current_time",
        json!({"timezone": "Mars/Olympus"}),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("time") && text.contains("Mars/Olympus"),
        "{text}"
    );
    // Arguments of the wrong type reach the server when nothing checks
    // them first: refused by it, reported, no crash.
    let err = call_unchecked(&servers, "get_current_time", json!({"timezone": 7})).unwrap_err();
    assert!(err.to_string().contains("MCP server `time`"), "{err}");
    // Our own check catches them before any call.
    let err = call(&tools, "get_current_time", json!({"zone": "UTC"})).unwrap_err();
    assert!(matches!(err, ToolError::InvalidArgs { .. }), "{err}");
    assert!(servers.status()[0].alive, "still up after the refusals");
    servers.shutdown();
}

#[test]
fn the_filesystem_server_reads_a_file_and_refuses_paths_outside_its_root() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("notes.txt"), "first line\nsecond line\n").unwrap();
    let (servers, failures) = start(json!({"fs": common::filesystem_server(root.path())}));
    assert!(failures.is_empty(), "{failures:?}");
    let listed = names(&servers, "fs");
    for expected in ["read_text_file", "list_directory", "write_file"] {
        assert!(listed.iter().any(|n| n == expected), "{listed:?}");
    }
    let tools = registry(&servers);
    assert_eq!(
        tools.spec("read_text_file").unwrap().parameters["required"],
        json!(["path"])
    );
    let path = root.path().join("notes.txt");
    let text = call(&tools, "read_text_file", json!({"path": path})).unwrap();
    assert_eq!(text, "first line\nsecond line\n");
    let listing = call(&tools, "list_directory", json!({"path": root.path()})).unwrap();
    assert!(listing.contains("[FILE] notes.txt"), "{listing}");

    let err = call(&tools, "read_text_file", json!({"path": "/etc/hostname"})).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("MCP server `fs`") && text.contains("denied"),
        "{text}"
    );
    let err = call_unchecked(&servers, "read_text_file", json!({"path": 5})).unwrap_err();
    assert!(err.to_string().contains("MCP server `fs`"), "{err}");
    let err = call_unchecked(&servers, "read_text_file", json!(["not", "an object"])).unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
    servers.shutdown();
}

/// The everything server in its streamable-HTTP mode on a free port of
/// 127.0.0.1, killed when dropped.
struct HttpServer {
    child: Child,
    url: String,
}

impl HttpServer {
    fn start() -> HttpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = common::mcp_servers()
            .join("npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let child = Command::new("node")
            .arg(script)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the everything server did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        HttpServer {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_everything_server_answers_over_streamable_http() {
    let http = HttpServer::start();
    let (servers, failures) = start(json!({"everything": {"url": http.url}}));
    assert!(failures.is_empty(), "{failures:?}");
    let status = &servers.status()[0];
    assert_eq!(status.kind, "http");
    let listed = names(&servers, "everything");
    assert!(listed.iter().any(|n| n == "echo"), "{listed:?}");
    let tools = registry(&servers);
    assert_eq!(
        tools.spec("echo").unwrap().parameters["required"],
        json!(["message"])
    );
    let echoed = call(&tools, "echo", json!({"message": "over http"})).unwrap();
    assert_eq!(echoed, "Echo: over http");
    let err = call_unchecked(&servers, "echo", json!({"message": 3})).unwrap_err();
    assert!(err.to_string().contains("MCP server `everything`"), "{err}");
    assert_eq!(
        call(&tools, "echo", json!({"message": "still up"})).unwrap(),
        "Echo: still up"
    );
    servers.shutdown();
}

#[test]
fn the_agent_loop_calls_mcp_tools_and_reads_their_real_answers() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("todo.txt"), "buy milk").unwrap();
    let (servers, failures) = start(json!({
        "time": common::time_server("UTC"),
        "fs": common::filesystem_server(root.path()),
    }));
    assert!(failures.is_empty(), "{failures:?}");
    let path = root.path().join("todo.txt");
    let script = [
        // A bad timezone first: the server's refusal is an observation.
        "Thought: Do I need to use a tool? Yes\nAction: get_current_time\nAction Input: {\"timezone\": \"Mars/Olympus\"}\nObservation:".to_owned(),
        format!(
            "Thought: Do I need to use a tool? Yes\nAction: read_text_file\nAction Input: {}\nAction: get_current_time\nAction Input: {{\"timezone\": \"Asia/Tokyo\"}}\nObservation:",
            json!({"path": path})
        ),
        "Thought: Do I need to use a tool? No\nAI: You need to buy milk.".to_owned(),
    ];
    let script: Vec<&str> = script.iter().map(String::as_str).collect();
    let model = Scripted::new(&script);
    let mut agent = Agent::new(
        model,
        Arc::new(registry(&servers)),
        AgentConfig::for_mode(Mode::InContext),
    )
    .unwrap();
    let mut observations = Vec::new();
    let outcome = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(agent.run("What is on my todo list?", &mut |event| {
            if let Event::Observation { text, failed } = event {
                observations.push((text.clone(), *failed));
            }
            ControlFlow::Continue(())
        }))
        .unwrap();
    assert_eq!(outcome.finish, AgentFinish::Answered);
    assert_eq!(outcome.answer.as_deref(), Some("You need to buy milk."));
    assert_eq!(observations.len(), 3, "{observations:?}");
    assert!(observations[0].1 && observations[0].0.contains("Mars/Olympus"));
    assert_eq!(
        observations[1].0, "buy milk",
        "the file, read by the server"
    );
    let now: Value = serde_json::from_str(&observations[2].0).unwrap();
    assert_eq!(now["timezone"], "Asia/Tokyo");
    // The definitions were in context (in-context mode), in JSON form.
    assert!(agent
        .prompt("x", "")
        .contains("\"name\":\"read_text_file\""));
    servers.shutdown();
}

#[test]
fn a_server_killed_mid_session_is_reported_gone_and_the_others_keep_working() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), "still here").unwrap();
    let pid_file = root.path().join("time.pid");
    let time = common::mcp_servers().join("py/bin/mcp-server-time");
    // The shell records its pid and becomes the server.
    let (servers, failures) = start(json!({
        "time": {"command": "sh", "args": ["-c", format!("echo $$ > {}; exec {} --local-timezone UTC", pid_file.display(), time.display())]},
        "fs": common::filesystem_server(root.path()),
    }));
    assert!(failures.is_empty(), "{failures:?}");
    let tools = registry(&servers);
    assert!(call(&tools, "get_current_time", json!({"timezone": "UTC"})).is_ok());
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let status = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));

    let err = call(&tools, "get_current_time", json!({"timezone": "UTC"})).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("MCP server `time` is gone"), "{text}");
    let status = servers.status();
    let alive = |name: &str| status.iter().find(|s| s.name == name).unwrap().alive;
    assert!(!alive("time") && alive("fs"));
    let read = call(
        &tools,
        "read_text_file",
        json!({"path": root.path().join("a.txt")}),
    );
    assert_eq!(read.unwrap(), "still here");
    servers.shutdown();
}

#[test]
fn servers_that_cannot_start_garble_or_stall_are_named() {
    let faulty = common::workspace_root().join("tests/fixtures/mcp_faulty_server.py");
    let (servers, failures) = start(json!({
        "missing": {"command": "loragen-no-such-mcp-server"},
        "crashes": {"command": "python3", "args": ["-c", "import sys; sys.stderr.write('bad flag --x\\n'); sys.exit(2)"]},
        "faulty": {"command": "python3", "args": [faulty], "timeout": 1.5},
    }));
    let messages: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let mut failed: Vec<&str> = failures.iter().map(|f| f.server.as_str()).collect();
    failed.sort_unstable();
    assert_eq!(failed, ["crashes", "missing"]);
    let missing = messages.iter().find(|m| m.contains("`missing`")).unwrap();
    assert!(missing.contains("no such command"), "{missing}");
    let crashes = messages.iter().find(|m| m.contains("`crashes`")).unwrap();
    assert!(crashes.contains("bad flag --x"), "its own words: {crashes}");

    let tools = registry(&servers);
    let started = Instant::now();
    let err = call(&tools, "garbled", json!({})).unwrap_err().to_string();
    assert!(
        err.contains("MCP server `faulty` did not answer `garbled`") && err.contains("malformed"),
        "{err}"
    );
    assert!(err.contains("garbling the answer"), "its stderr: {err}");
    let err = call(&tools, "stall", json!({})).unwrap_err().to_string();
    assert!(err.contains("within 1.5 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    servers.shutdown();
}

#[test]
fn names_two_servers_share_are_prefixed_with_the_server() {
    let (servers, failures) = start(json!({
        "paris": common::time_server("Europe/Paris"),
        "tokyo": common::time_server("Asia/Tokyo"),
    }));
    assert!(failures.is_empty(), "{failures:?}");
    let imported = servers.tools(&["convert_time"]);
    let names: Vec<(&str, &str)> = imported
        .iter()
        .map(|t| (t.spec.name.as_str(), t.remote_name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("paris_get_current_time", "get_current_time"),
            ("paris_convert_time", "convert_time"),
            ("tokyo_get_current_time", "get_current_time"),
            ("tokyo_convert_time", "convert_time"),
        ]
    );
    // Each prefixed tool still calls its own server by the server's name.
    let mut registry = ToolRegistry::new();
    for tool in imported {
        registry.register_json(tool.spec, tool.tool).unwrap();
    }
    let paris = call(
        &registry,
        "paris_get_current_time",
        json!({"timezone": "Asia/Tokyo"}),
    )
    .unwrap();
    assert!(paris.contains("Asia/Tokyo"), "{paris}");
    servers.shutdown();
}
