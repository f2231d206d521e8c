//! The `mcpServers` configuration file, in the format desktop MCP clients
//! use: `{"mcpServers": {"NAME": {"command": ..., "args": [...], "env":
//! {...}}}}` for a server started over stdio, `{"url": ...}` for one
//! reached over streamable HTTP.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// How long one tool call may take when the config does not say.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The servers of one configuration file, by name (in name order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct McpConfig {
    pub servers: BTreeMap<String, ServerConfig>,
}

/// One server: how to reach it and how long its calls may take.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub transport: Transport,
    /// Per tool call; a slower answer is reported as a timeout naming the
    /// server.
    pub call_timeout: Duration,
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A child process speaking MCP over its stdin and stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        /// Added to (or overriding) the environment loragen runs in.
        env: BTreeMap<String, String>,
        /// Working directory; loragen's own when absent.
        cwd: Option<String>,
    },
    /// A server listening for streamable HTTP at `url`.
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

impl Transport {
    /// `stdio` or `http`, as `loragen tools list` shows a source.
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Stdio { .. } => "stdio",
            Transport::Http { .. } => "http",
        }
    }
}

/// The file as written. Unknown keys are refused, so a misspelt `arg`
/// is an error rather than a silently ignored setting.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    mcp_servers: BTreeMap<String, RawServer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    /// `stdio` or `http` (also `streamable-http`); inferred when absent.
    #[serde(rename = "type")]
    kind: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Seconds per tool call.
    timeout: Option<f64>,
    /// Left out of the session when true.
    #[serde(default)]
    disabled: bool,
}

impl McpConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.display().to_string(),
            detail: format!("cannot read it ({e})"),
        })?;
        Self::parse(&text).map_err(|detail| Error::Config {
            path: path.display().to_string(),
            detail,
        })
    }

    /// Parses the text of a configuration file; the error says what is
    /// wrong and where.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_mcp::{McpConfig, Transport};
    ///
    /// let config = McpConfig::parse(r#"{"mcpServers": {
    ///     "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
    ///     "everything": {"url": "http://127.0.0.1:3001/mcp", "timeout": 5}
    /// }}"#)?;
    /// assert_eq!(config.servers.len(), 2);
    /// assert!(matches!(config.servers["time"].transport, Transport::Stdio { .. }));
    /// assert_eq!(config.servers["everything"].call_timeout.as_secs(), 5);
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            if at == "." {
                e.inner().to_string()
            } else {
                format!("at `{at}`: {}", e.inner())
            }
        })?;
        let mut servers = BTreeMap::new();
        for (name, server) in raw.mcp_servers {
            if server.disabled {
                continue;
            }
            let config = server
                .into_config()
                .map_err(|e| format!("server `{name}`: {e}"))?;
            check_name(&name).map_err(|e| format!("server `{name}`: {e}"))?;
            servers.insert(name, config);
        }
        Ok(McpConfig { servers })
    }
}

/// Server names prefix clashing tool names, so they follow the tool-name
/// rules of OpenAI-style clients.
fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("a server name may hold only ASCII letters, digits, `_` and `-`".into());
    }
    Ok(())
}

impl RawServer {
    fn into_config(self) -> std::result::Result<ServerConfig, String> {
        let call_timeout = match self.timeout {
            None => DEFAULT_CALL_TIMEOUT,
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
            Some(s) => return Err(format!("`timeout` must be seconds in (0, 86400], got {s}")),
        };
        let kind = match (self.kind.as_deref(), &self.command, &self.url) {
            (Some("stdio"), _, _) | (None, Some(_), None) => "stdio",
            (Some("http" | "streamable-http" | "streamableHttp"), _, _) | (None, None, Some(_)) => {
                "http"
            }
            (Some(other), _, _) => {
                return Err(format!(
                    "unknown `type` `{other}` (stdio or http; the older SSE transport is not supported)"
                ))
            }
            (None, Some(_), Some(_)) => return Err("give `command` or `url`, not both".into()),
            (None, None, None) => {
                return Err("give `command` (a stdio server) or `url` (a streamable HTTP server)".into())
            }
        };
        let transport = if kind == "stdio" {
            let Some(command) = self.command.filter(|c| !c.trim().is_empty()) else {
                return Err("a stdio server needs a non-empty `command`".into());
            };
            if self.url.is_some() || !self.headers.is_empty() {
                return Err("`url` and `headers` are for http servers".into());
            }
            Transport::Stdio {
                command,
                args: self.args,
                env: self.env,
                cwd: self.cwd,
            }
        } else {
            let Some(url) = self.url else {
                return Err("an http server needs a `url`".into());
            };
            if !url.starts_with("http://") {
                return Err(format!(
                    "`url` must be an http:// address (this build speaks plain HTTP), got `{url}`"
                ));
            }
            if self.command.is_some() || !self.args.is_empty() || !self.env.is_empty() {
                return Err("`command`, `args` and `env` are for stdio servers".into());
            }
            Transport::Http {
                url,
                headers: self.headers,
            }
        };
        Ok(ServerConfig {
            transport,
            call_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_and_http_servers_parse_with_their_settings() {
        let config = McpConfig::parse(
            r#"{"mcpServers": {
                "fs": {"command": "npx", "args": ["-y", "server-filesystem", "/tmp"], "env": {"A": "1"}},
                "web": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer x"}, "timeout": 2.5},
                "off": {"command": "nothing", "disabled": true}
            }}"#,
        )
        .unwrap();
        assert_eq!(config.servers.len(), 2, "a disabled server is left out");
        let Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } = &config.servers["fs"].transport
        else {
            panic!("fs is a stdio server")
        };
        assert_eq!(command, "npx");
        assert_eq!(args.len(), 3);
        assert_eq!(env["A"], "1");
        assert_eq!(cwd, &None);
        assert_eq!(config.servers["fs"].call_timeout, DEFAULT_CALL_TIMEOUT);
        let web = &config.servers["web"];
        assert_eq!(web.transport.kind(), "http");
        assert_eq!(web.call_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn mistakes_are_named_with_their_place() {
        let cases = [
            ("{}", "mcpServers"),
            (
                r#"{"mcpServers": {"a": {"command": "x", "arg": []}}}"#,
                "arg",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "args": "y"}}}"#,
                "mcpServers.a.args",
            ),
            (r#"{"mcpServers": {"a": {}}}"#, "server `a`: give `command`"),
            (
                r#"{"mcpServers": {"a": {"command": "x", "url": "http://h"}}}"#,
                "not both",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "https://h/mcp"}}}"#,
                "plain HTTP",
            ),
            (
                r#"{"mcpServers": {"a": {"type": "sse", "url": "http://h"}}}"#,
                "unknown `type`",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "timeout": 0}}}"#,
                "timeout",
            ),
            (
                r#"{"mcpServers": {"a b": {"command": "x"}}}"#,
                "server `a b`",
            ),
            (
                r#"{"mcpServers": {"a": {"command": " "}}}"#,
                "non-empty `command`",
            ),
            ("not json", "expected"),
        ];
        for (text, needle) in cases {
            let err = McpConfig::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = McpConfig::load(Path::new("/nonexistent/mcp.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/mcp.json"), "{err}");
    }
}
