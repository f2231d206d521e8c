//! `loragen tools list`: every tool of the chosen sources, where it comes
//! from, whether it can run, and its schema.

use crate::cli::ToolSourceArgs;

pub fn list(args: &ToolSourceArgs) -> anyhow::Result<()> {
    let toolset =
        super::toolset::Toolset::load(args.registry.as_deref(), args.mcp_config.as_deref(), false)?;
    print!("{}", toolset.describe(true));
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
