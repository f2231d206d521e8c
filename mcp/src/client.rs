//! Live connections to MCP servers (rmcp clients) and their tools as
//! [`JsonTool`]s.
//!
//! The connections run on a runtime of their own, so a tool call can be
//! awaited from any runtime (the agent's, the server's) or from none, and
//! a caller that blocks its own runtime cannot stall a server's protocol.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ResourceContents};
use rmcp::service::{Peer, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tracing::Instrument;

use crate::config::{McpConfig, ServerConfig, Transport};
use crate::error::{Error, Result};
use loragen_protocol::ToolSpec;
use loragen_tools::{JsonTool, ToolError};

/// How long a server may take to start, shake hands and list its tools.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server may take to close before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Lines of a stdio server's standard error kept for error messages.
const STDERR_LINES: usize = 8;

/// Connected MCP servers. Dropping them (or [`McpServers::shutdown`])
/// closes every connection and stops every child process.
pub struct McpServers {
    runtime: Option<tokio::runtime::Runtime>,
    servers: Vec<Arc<Server>>,
}

impl std::fmt::Debug for McpServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.servers.iter().map(|s| &s.name))
            .finish()
    }
}

/// One connected server.
struct Server {
    name: String,
    kind: &'static str,
    call_timeout: Duration,
    peer: Peer<RoleClient>,
    service: Mutex<Option<RunningService<RoleClient, ()>>>,
    tools: Vec<ToolSpec>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// A connected server as `loragen tools list` and the REPL show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStatus {
    pub name: String,
    /// `stdio` or `http`.
    pub kind: &'static str,
    /// False once the connection has closed (the process exited or the
    /// server went away): its tools can no longer run.
    pub alive: bool,
    /// Its tools under the server's own names.
    pub tools: Vec<ToolSpec>,
}

/// A server that did not start or list its tools: its name in the config
/// and why. It converts into [`Error::Server`] for callers that give up on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFailure {
    pub server: String,
    pub reason: String,
}

impl std::fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MCP server `{}`: {}", self.server, self.reason)
    }
}

impl From<ServerFailure> for Error {
    fn from(f: ServerFailure) -> Self {
        Error::Server {
            server: f.server,
            detail: f.reason,
        }
    }
}

/// A server's tool, ready to register: `spec.name` is unique among all
/// servers and the names given as taken (prefixed with the server's name
/// on a clash); `remote_name` is the server's own.
pub struct ImportedTool {
    pub server: String,
    pub remote_name: String,
    pub spec: ToolSpec,
    pub tool: Arc<dyn JsonTool>,
}

impl std::fmt::Debug for ImportedTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedTool")
            .field("server", &self.server)
            .field("name", &self.spec.name)
            .finish()
    }
}

impl McpServers {
    /// Starts (or connects to) every server of `config` at once and lists
    /// its tools. A server that fails is left out and returned beside the
    /// others as a [`ServerFailure`]; only a failure to create the
    /// connections' runtime is an error of the whole.
    ///
    /// It blocks until every server has answered or failed, so it must be
    /// called outside an async runtime (in one, use `spawn_blocking`).
    pub fn start(config: &McpConfig) -> Result<(Self, Vec<ServerFailure>)> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Server {
                server: "*".into(),
                detail: "McpServers::start blocks: call it outside an async runtime".into(),
            });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mcp")
            .enable_all()
            .build()
            .map_err(|e| Error::Server {
                server: "*".into(),
                detail: format!("cannot start the client runtime ({e})"),
            })?;
        let tasks: Vec<_> = config
            .servers
            .iter()
            .map(|(name, server)| {
                let (name, server) = (name.clone(), server.clone());
                runtime.spawn(async move { connect(name, server).await })
            })
            .collect();
        let mut servers = Vec::new();
        let mut failures = Vec::new();
        for (task, name) in tasks.into_iter().zip(config.servers.keys()) {
            match runtime.block_on(task) {
                Ok(Ok(server)) => servers.push(Arc::new(server)),
                Ok(Err(reason)) => failures.push(ServerFailure {
                    server: name.clone(),
                    reason,
                }),
                Err(e) => failures.push(ServerFailure {
                    server: name.clone(),
                    reason: format!("the start-up task failed ({e})"),
                }),
            }
        }
        Ok((
            McpServers {
                runtime: Some(runtime),
                servers,
            },
            failures,
        ))
    }

    /// Every connected server, in name order.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.servers
            .iter()
            .map(|s| ServerStatus {
                name: s.name.clone(),
                kind: s.kind,
                alive: s.alive(),
                tools: s.tools.clone(),
            })
            .collect()
    }

    /// Every server's tools as callable tools. A name that two servers
    /// share, or that `taken` holds, becomes `SERVER_NAME` for each
    /// server that has it, so no tool shadows another.
    pub fn tools(&self, taken: &[&str]) -> Vec<ImportedTool> {
        let Some(runtime) = &self.runtime else {
            return Vec::new();
        };
        let mut count: HashMap<&str, usize> = HashMap::new();
        for name in taken.iter().copied().chain(
            self.servers
                .iter()
                .flat_map(|s| s.tools.iter().map(|t| t.name.as_str())),
        ) {
            *count.entry(name).or_default() += 1;
        }
        let mut out = Vec::new();
        for server in &self.servers {
            for spec in &server.tools {
                let mut local = spec.clone();
                if count.get(spec.name.as_str()).copied().unwrap_or(0) > 1 {
                    local.name = format!("{}_{}", server.name, spec.name);
                }
                out.push(ImportedTool {
                    server: server.name.clone(),
                    remote_name: spec.name.clone(),
                    spec: local,
                    tool: Arc::new(McpTool {
                        server: Arc::clone(server),
                        remote_name: spec.name.clone(),
                        runtime: runtime.handle().clone(),
                    }),
                });
            }
        }
        out
    }

    /// Closes every connection (a stdio server gets its stdin closed, then
    /// SIGTERM, then SIGKILL) and waits for it, a few seconds at most each.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let services: Vec<_> = self
            .servers
            .iter()
            .filter_map(|s| s.service.lock().ok().and_then(|mut g| g.take()))
            .collect();
        // Blocking on the runtime is not allowed from inside another one
        // (e.g. when dropped in an async handler): there the connections
        // are only cancelled, and rmcp kills the children as they drop.
        if tokio::runtime::Handle::try_current().is_err() {
            runtime.block_on(async move {
                for service in services {
                    let _ = tokio::time::timeout(STOP_TIMEOUT, service.cancel()).await;
                }
            });
            runtime.shutdown_timeout(STOP_TIMEOUT);
        } else {
            drop(services);
            runtime.shutdown_background();
        }
    }
}

impl Drop for McpServers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts or connects to one server and lists its tools; a failure is the
/// reason, which the caller pairs with the server's name.
async fn connect(name: String, config: ServerConfig) -> std::result::Result<Server, String> {
    let fail = |detail: String| detail;
    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    let started = async {
        match &config.transport {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env);
                if let Some(cwd) = cwd {
                    cmd.current_dir(cwd);
                }
                // Its own process group: Ctrl-C at the terminal interrupts
                // loragen's turn, not the servers.
                #[cfg(unix)]
                cmd.process_group(0);
                let (transport, err) = TokioChildProcess::builder(cmd)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => {
                            fail(format!("cannot run `{command}`: no such command (is it installed and on PATH?)"))
                        }
                        _ => fail(format!("cannot run `{command}`: {e}")),
                    })?;
                if let Some(err) = err {
                    tokio::spawn(keep_stderr(name.clone(), err, Arc::clone(&stderr)));
                }
                ().serve(transport).await.map_err(|e| fail(format!("{e}")))
            }
            Transport::Http { url, headers } => {
                let mut map = HashMap::new();
                for (k, v) in headers {
                    let key = http::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| fail(format!("header `{k}`: {e}")))?;
                    let value = http::HeaderValue::from_str(v)
                        .map_err(|e| fail(format!("header `{k}`: {e}")))?;
                    map.insert(key, value);
                }
                let transport = StreamableHttpClientTransport::from_config(
                    StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(map),
                );
                ().serve(transport)
                    .await
                    .map_err(|e| fail(format!("cannot connect to {url}: {e}")))
            }
        }
    };
    let service = tokio::time::timeout(START_TIMEOUT, started)
        .await
        .map_err(|_| {
            fail(format!(
                "did not finish starting within {} s{}",
                START_TIMEOUT.as_secs(),
                last_words(&stderr)
            ))
        })?
        .map_err(|detail| format!("{detail}{}", last_words(&stderr)))?;
    let listed = tokio::time::timeout(START_TIMEOUT, service.list_all_tools())
        .await
        .map_err(|_| {
            fail(format!(
                "did not list its tools within {} s",
                START_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| fail(format!("cannot list its tools: {e}{}", last_words(&stderr))))?;
    let tools = listed
        .into_iter()
        .map(|t| ToolSpec {
            name: t.name.to_string(),
            description: t
                .description
                .map(|d| d.to_string())
                .or(t.title)
                .unwrap_or_default(),
            parameters: Value::Object((*t.input_schema).clone()),
        })
        .collect();
    Ok(Server {
        kind: config.transport.kind(),
        call_timeout: config.call_timeout,
        peer: service.peer().clone(),
        service: Mutex::new(Some(service)),
        tools,
        stderr,
        name,
    })
}

/// Keeps the last lines a stdio server writes to its standard error (for
/// error messages) and logs every one; the server never blocks on a full
/// pipe.
async fn keep_stderr(
    server: String,
    stderr: tokio::process::ChildStderr,
    kept: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(server = %server, "{line}");
        if let Ok(mut kept) = kept.lock() {
            if kept.len() == STDERR_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    }
}

/// `; its last output: ...` from a server's kept standard error, if any.
fn last_words(stderr: &Mutex<VecDeque<String>>) -> String {
    let lines: Vec<String> = stderr
        .lock()
        .map(|k| k.iter().filter(|l| !l.trim().is_empty()).cloned().collect())
        .unwrap_or_default();
    if lines.is_empty() {
        String::new()
    } else {
        format!("; its last output: {}", lines.join(" | "))
    }
}

impl Server {
    fn alive(&self) -> bool {
        !self.peer.is_transport_closed()
    }

    fn gone(&self) -> ToolError {
        ToolError::Failed(format!(
            "MCP server `{}` is gone (its connection closed){}; its tools cannot run until loragen restarts",
            self.name,
            last_words(&self.stderr)
        ))
    }

    async fn call(&self, tool: &str, args: Value) -> std::result::Result<Value, ToolError> {
        let arguments = match args {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                return Err(ToolError::InvalidArgs {
                    tool: tool.to_owned(),
                    message: format!("MCP tools take a JSON object, got {other}"),
                })
            }
        };
        if !self.alive() {
            return Err(self.gone());
        }
        let request = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        let answer = tokio::time::timeout(self.call_timeout, self.peer.call_tool(request)).await;
        let result = match answer {
            Err(_) => {
                return Err(ToolError::Failed(format!(
                    "MCP server `{}` did not answer `{tool}` within {:.1} s (it may be stuck or writing malformed output){}",
                    self.name,
                    self.call_timeout.as_secs_f64(),
                    last_words(&self.stderr)
                )))
            }
            Ok(Err(ServiceError::McpError(e))) => {
                return Err(ToolError::Failed(format!(
                    "MCP server `{}` refused `{tool}`: {}",
                    self.name, e.message
                )))
            }
            Ok(Err(ServiceError::TransportClosed | ServiceError::TransportSend(_))) => {
                return Err(self.gone())
            }
            Ok(Err(e)) if !self.alive() => {
                tracing::debug!(server = %self.name, "call failed as the server went: {e}");
                return Err(self.gone());
            }
            Ok(Err(e)) => {
                return Err(ToolError::Failed(format!(
                    "MCP server `{}` failed on `{tool}`: {e}",
                    self.name
                )))
            }
            Ok(Ok(result)) => result,
        };
        let text = result_text(&result);
        if result.is_error == Some(true) {
            return Err(ToolError::Failed(format!(
                "`{tool}` failed on MCP server `{}`: {text}",
                self.name
            )));
        }
        Ok(Value::String(text))
    }
}

/// A tool result as the text the model reads: the content blocks in
/// order, each by [`block_text`]; the structured content when there is no
/// block at all.
fn result_text(result: &CallToolResult) -> String {
    if result.content.is_empty() {
        return result
            .structured_content
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
    }
    let parts: Vec<String> = result.content.iter().map(block_text).collect();
    parts.join("\n")
}

/// One content block as text: a text block as it is; an image or audio
/// clip by its type and size; an embedded resource by its text, or its
/// address when it holds binary data; a resource link by its address; a
/// kind this client does not know as its JSON.
fn block_text(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(text) => text.text.clone(),
        ContentBlock::Image(image) => media("image", &image.mime_type, &image.data),
        ContentBlock::Audio(audio) => media("audio", &audio.mime_type, &audio.data),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::TextResourceContents { text, .. } => text.clone(),
            ResourceContents::BlobResourceContents { uri, .. } => uri.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        },
        ContentBlock::ResourceLink(link) => format!("[resource {}]", link.uri),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn media(kind: &str, mime_type: &str, base64: &str) -> String {
    format!("[{kind} {mime_type}, {} bytes of base64]", base64.len())
}

/// A server's tool as a registry sees it.
struct McpTool {
    server: Arc<Server>,
    remote_name: String,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl JsonTool for McpTool {
    async fn call_json(&self, args: Value) -> std::result::Result<Value, ToolError> {
        let server = Arc::clone(&self.server);
        let tool = self.remote_name.clone();
        let name = server.name.clone();
        let span = tracing::debug_span!("mcp_call", server = %name, tool = %tool);
        self.runtime
            .spawn(async move { server.call(&tool, args).await }.instrument(span))
            .await
            .unwrap_or_else(|e| {
                Err(ToolError::Failed(format!(
                    "MCP server `{name}`: the call was lost ({e})"
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A result as a server sends it, through rmcp's types.
    fn result(json: Value) -> CallToolResult {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn results_read_as_text_block_by_block() {
        let text = result_text(&result(json!({"content": [
            {"type": "text", "text": "line one"},
            {"type": "image", "mimeType": "image/png", "data": "AAAA"},
            {"type": "resource", "resource": {"uri": "file:///a", "text": "contents"}},
            {"type": "resource", "resource": {"uri": "file:///b", "blob": "AA=="}},
            {"type": "resource_link", "uri": "file:///c", "name": "c"},
            {"type": "audio", "mimeType": "audio/wav", "data": "AAAAAA=="}
        ]})));
        assert_eq!(
            text,
            "line one\n[image image/png, 4 bytes of base64]\ncontents\nfile:///b\n[resource file:///c]\n[audio audio/wav, 8 bytes of base64]"
        );
        assert_eq!(
            result_text(&result(
                json!({"content": [], "structuredContent": {"x": 1}})
            )),
            "{\"x\":1}"
        );
        assert_eq!(result_text(&result(json!({"content": []}))), "");
    }
}
