//! The MCP-style servers written for the selector's training
//! (`generator/data/mcp-style`): every query becomes a selector example,
//! every tool is called somewhere, and no tool shares a name with the MCP
//! fixture (a report-only set) or with GPT4Tools.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use loragen_generator::selector::{SelectorItem, Target};
use loragen_gpt4tools::generic::{load_queries, ToolSet};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_mcp_style_set_is_whole_and_apart_from_the_fixture() -> anyhow::Result<()> {
    let dir = root().join("generator/data/mcp-style");
    let tools = ToolSet::load(&dir.join("tools.json"))?;
    let queries = load_queries(&dir.join("queries.jsonl"))?;
    let names: HashSet<String> = serde_json::from_str::<Vec<serde_json::Value>>(
        &std::fs::read_to_string(dir.join("tools.json"))?,
    )?
    .iter()
    .filter_map(|t| Some(t.get("name")?.as_str()?.to_owned()))
    .collect();

    let mut called = HashSet::new();
    let mut no_calls = 0;
    for query in &queries {
        let item = SelectorItem::from_query(&tools, query)?
            .ok_or_else(|| anyhow::anyhow!("query {} gives no example", query.id))?;
        match item.target {
            Target::Tools(t) => called.extend(t),
            Target::NoCall => no_calls += 1,
        }
        assert!(!item.tools.is_empty(), "query {} offers no tool", query.id);
    }
    let uncalled: Vec<_> = names.difference(&called).collect();
    assert!(uncalled.is_empty(), "never called: {uncalled:?}");
    assert!(
        4 * no_calls >= queries.len(),
        "{no_calls} of {} queries need no call",
        queries.len()
    );

    let fixture: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(
        root().join("bench/suite/mcp/tools.json"),
    )?)?;
    for tool in &fixture {
        let name = tool["name"].as_str().unwrap_or_default();
        assert!(!names.contains(name), "{name} is a fixture tool");
    }
    for tool in loragen_protocol::gpt4tools::TOOLS {
        assert!(
            !names.contains(tool.name),
            "{} is a GPT4Tools tool",
            tool.name
        );
    }
    Ok(())
}
