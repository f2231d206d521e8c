//! `loragen tools list`: every tool of the chosen sources, where it comes
//! from, whether it can run, and its schema.

use std::fmt::Write as _;

use console::style;
use loragen_agent::toolset::Toolset;
use loragen_mcp::McpServers;

use crate::cli::ToolSourceArgs;

pub fn list(args: &ToolSourceArgs) -> anyhow::Result<()> {
    let toolset = Toolset::load(args.registry.as_deref(), args.mcp_config.as_deref(), false)?;
    print!("{}", describe(&toolset, true));
    // The fingerprint `loragen compile` gives the same tools.
    println!(
        "{} tools in the registry; registry fingerprint {}",
        toolset.registry.len(),
        toolset.registry.fingerprint()
    );
    if let Some(servers) = toolset.servers {
        servers.shutdown();
    }
    Ok(())
}

/// The tools grouped by source, with what cannot run marked; with
/// `schemas`, each tool's description and input schema too.
pub fn describe(toolset: &Toolset, schemas: bool) -> String {
    let status = toolset
        .servers
        .as_ref()
        .map(McpServers::status)
        .unwrap_or_default();
    let mut out = String::new();
    for source in &toolset.sources {
        let gone = status.iter().any(|s| s.name == source.name && !s.alive);
        let runnable = source
            .tools
            .iter()
            .filter(|t| t.refused.is_none() && !gone && toolset.registry.can_run(&t.name))
            .count();
        let head = match (&source.failure, gone) {
            (Some(why), _) => format!("not started: {why}"),
            (None, true) => "gone: its connection closed".into(),
            (None, false) if runnable == source.tools.len() => {
                format!("{} tools", source.tools.len())
            }
            (None, false) => format!(
                "{} tools, {} cannot run",
                source.tools.len(),
                source.tools.len() - runnable
            ),
        };
        let _ = writeln!(
            out,
            "{} ({}, {head})",
            style(&source.name).bold(),
            source.kind
        );
        for tool in &source.tools {
            let mark = if let Some(why) = &tool.refused {
                format!("  [cannot run: {why}]")
            } else if gone {
                "  [cannot run: server gone]".into()
            } else if !toolset.registry.can_run(&tool.name) {
                "  [cannot run: not available offline]".into()
            } else {
                String::new()
            };
            let renamed = if tool.name == tool.spec.name {
                String::new()
            } else {
                format!(" (the server's `{}`)", tool.spec.name)
            };
            let _ = writeln!(out, "  {}{renamed}{}", tool.name, style(mark).yellow());
            if schemas {
                let _ = writeln!(out, "    {}", tool.spec.description);
                let _ = writeln!(out, "    schema: {}", tool.spec.parameters);
            }
        }
    }
    out
}
