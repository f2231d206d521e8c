//! The tools a command works with, and where each came from: the built-in
//! GPT4Tools registry and the servers of an `mcpServers` file. `repl`,
//! `compile`, `eval`, `serve` and `tools list` all load them here, so they
//! agree on names, order and fingerprint.

use std::path::Path;
use std::sync::Arc;

use loragen_mcp::{McpConfig, McpServers};
use loragen_protocol::ToolSpec;
use loragen_tools::ToolRegistry;

use crate::error::{Error, Result};
use crate::grammar::call_grammar;

/// The built-in registries.
const BUILT_IN: [&str; 1] = ["gpt4tools"];

/// The loaded tools, their sources, and the servers behind them (kept
/// alive as long as this value; dropped, they are shut down).
#[derive(Debug)]
pub struct Toolset {
    pub registry: Arc<ToolRegistry>,
    pub sources: Vec<Source>,
    pub servers: Option<McpServers>,
}

/// One source of tools: a built-in registry or an MCP server.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    /// `built-in`, `MCP stdio` or `MCP http`.
    pub kind: String,
    /// Why none of its tools are here (a server that did not start).
    pub failure: Option<String>,
    pub tools: Vec<SourceTool>,
}

/// A tool as its source offers it.
#[derive(Debug)]
pub struct SourceTool {
    /// The name in the registry (the server's own unless it clashed).
    pub name: String,
    pub spec: ToolSpec,
    /// Why it is not in the registry, if it is not (e.g. a schema the call
    /// grammar cannot express).
    pub refused: Option<String>,
}

impl Toolset {
    /// Loads `registry` (a built-in name) and the servers of `mcp_config`;
    /// with neither, the GPT4Tools registry. With `strict`, a server that
    /// does not start is an error; otherwise it is reported here and left
    /// out, and the other tools work.
    pub fn load(
        registry: Option<&str>,
        mcp_config: Option<&Path>,
        strict: bool,
    ) -> Result<Toolset> {
        let built_in = match (registry, mcp_config) {
            (Some(name), _) if BUILT_IN.contains(&name) => true,
            (Some(name), _) => {
                return Err(Error::InvalidParam(format!(
                    "unknown registry `{name}` (known: {})",
                    BUILT_IN.join(", ")
                )))
            }
            (None, None) => true,
            (None, Some(_)) => false,
        };
        let mut tools = ToolRegistry::new();
        let mut sources = Vec::new();
        if built_in {
            let gpt4tools = loragen_tools::gpt4tools::registry()?;
            sources.push(Source {
                name: "gpt4tools".into(),
                kind: "built-in".into(),
                failure: None,
                tools: gpt4tools
                    .specs()
                    .map(|s| SourceTool {
                        name: s.name.clone(),
                        spec: s.clone(),
                        refused: None,
                    })
                    .collect(),
            });
            tools = gpt4tools;
        }
        let servers = match mcp_config {
            None => None,
            Some(path) => {
                let config = McpConfig::load(path)?;
                if config.servers.is_empty() {
                    return Err(Error::InvalidParam(format!(
                        "{}: no servers (every one is disabled or the list is empty)",
                        path.display()
                    )));
                }
                let (servers, failures) = McpServers::start(&config)?;
                if strict {
                    if let Some(first) = failures.into_iter().next() {
                        return Err(loragen_mcp::Error::from(first).into());
                    }
                } else {
                    for failure in failures {
                        sources.push(Source {
                            kind: config
                                .servers
                                .get(&failure.server)
                                .map_or("MCP".into(), |s| format!("MCP {}", s.transport.kind())),
                            name: failure.server,
                            failure: Some(failure.reason),
                            tools: Vec::new(),
                        });
                    }
                }
                import(&servers, &mut tools, &mut sources);
                Some(servers)
            }
        };
        sources
            .sort_by(|a, b| (a.kind != "built-in", &a.name).cmp(&(b.kind != "built-in", &b.name)));
        Ok(Toolset {
            registry: Arc::new(tools),
            sources,
            servers,
        })
    }

    /// The tools in registry order, as the agent offers them.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.registry.specs().cloned().collect()
    }

    /// The specs, for commands that never call the tools (compile, eval,
    /// serve): the servers are shut down at once rather than kept idle.
    pub fn into_specs(self) -> Vec<ToolSpec> {
        let specs = self.specs();
        if let Some(servers) = self.servers {
            servers.shutdown();
        }
        specs
    }

    /// Warnings to print at load time: servers that did not start and
    /// tools left out.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for source in &self.sources {
            if let Some(why) = &source.failure {
                out.push(format!("MCP server `{}` is left out: {why}", source.name));
            }
            for tool in &source.tools {
                if let Some(why) = &tool.refused {
                    out.push(format!(
                        "tool `{}` of `{}` is left out: {why}",
                        tool.spec.name, source.name
                    ));
                }
            }
        }
        out
    }
}

/// Registers the servers' tools that the registry and the call grammar
/// accept, and records every tool, accepted or not, under its server.
fn import(servers: &McpServers, tools: &mut ToolRegistry, sources: &mut Vec<Source>) {
    let taken: Vec<String> = tools.specs().map(|s| s.name.clone()).collect();
    let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
    let imported = servers.tools(&taken);
    for status in servers.status() {
        let mut source = Source {
            name: status.name.clone(),
            kind: format!("MCP {}", status.kind),
            failure: None,
            tools: Vec::new(),
        };
        for tool in imported.iter().filter(|t| t.server == status.name) {
            let refused = expressible(&tool.spec)
                .and_then(|()| {
                    tools
                        .register_json(tool.spec.clone(), Arc::clone(&tool.tool))
                        .map_err(|e| e.to_string())
                })
                .err();
            let mut spec = tool.spec.clone();
            spec.name = tool.remote_name.clone();
            source.tools.push(SourceTool {
                name: tool.spec.name.clone(),
                spec,
                refused,
            });
        }
        sources.push(source);
    }
}

/// Whether the call grammar can constrain calls of `spec`; the reason when
/// it cannot.
fn expressible(spec: &ToolSpec) -> std::result::Result<(), String> {
    call_grammar(std::slice::from_ref(spec))
        .map(drop)
        .map_err(|e| e.to_string())
}
