//! The unseen-tools evaluation suite's MCP fixture, frozen before any
//! method work: its sha256 ([`MCP_FIXTURE_SHA256`]) is recorded in
//! `docs/unseen-tools.md`, and a test fails if a byte of it changes.
//!
//! `bench/suite/mcp` holds
//! - `tools.json`: the 16 tools of the pinned time and filesystem MCP
//!   servers (`scripts/install-mcp-servers.sh`), in the generic format, as
//!   the servers describe them;
//! - `queries.jsonl`: 44 requests, 12 of them (27%) needing no call, every
//!   tool expected at least once; `read_file` and `read_text_file` are
//!   accepted for each other;
//! - `root/`: the seeded directory the filesystem server serves when the
//!   calls are run.
//!
//! Requests and answers name paths as `{root}/...`; [`mcp_fixture`] puts
//! the root in. Scoring alone runs nothing, so it uses [`MCP_SCORED_ROOT`],
//! the same text on every machine.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::generic::{load_queries, Query, ToolSet};

/// What the requests write for the served directory.
pub const ROOT_PLACEHOLDER: &str = "{root}";

/// The root the requests name when their calls are scored, not run.
pub const MCP_SCORED_ROOT: &str = "/srv/notes";

/// sha256 of the fixture as committed ([`fixture_sha256`]).
pub const MCP_FIXTURE_SHA256: &str =
    "fdb716030be01a0439a988c733b59e046ea3396a746a69fdc6b3cd5c3eb4bc06";

/// The fixture's directory in this checkout.
pub fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../suite/mcp")
}

/// The fixture's tools and its requests with `root` in place of
/// [`ROOT_PLACEHOLDER`], in messages and accepted values alike.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::suite::{mcp_dir, mcp_fixture, MCP_SCORED_ROOT};
///
/// let (tools, queries) = mcp_fixture(&mcp_dir(), MCP_SCORED_ROOT)?;
/// assert_eq!(tools.tools.len(), 16);
/// assert!(queries[0].messages[0].content.contains("/srv/notes/notes/todo.md"));
/// # Ok::<(), loragen_gpt4tools::Error>(())
/// ```
pub fn mcp_fixture(dir: &Path, root: &str) -> Result<(ToolSet, Vec<Query>)> {
    let tools = ToolSet::load(&dir.join("tools.json"))?;
    let mut queries = load_queries(&dir.join("queries.jsonl"))?;
    for q in &mut queries {
        for m in &mut q.messages {
            m.content = m.content.replace(ROOT_PLACEHOLDER, root);
        }
        for a in &mut q.answers {
            for values in a.arguments.values_mut() {
                values.iter_mut().for_each(|v| put_root(v, root));
            }
        }
    }
    Ok((tools, queries))
}

fn put_root(v: &mut Value, root: &str) {
    match v {
        Value::String(s) => *s = s.replace(ROOT_PLACEHOLDER, root),
        Value::Array(items) => items.iter_mut().for_each(|i| put_root(i, root)),
        Value::Object(fields) => fields.values_mut().for_each(|f| put_root(f, root)),
        _ => {}
    }
}

/// sha256 over the fixture: `tools.json`, `queries.jsonl` and every file
/// under `root/`, each as its relative path and its bytes,
/// length-prefixed, in path order.
pub fn fixture_sha256(dir: &Path) -> Result<String> {
    let mut files = vec![PathBuf::from("tools.json"), PathBuf::from("queries.jsonl")];
    let mut under_root = Vec::new();
    walk(&dir.join("root"), Path::new("root"), &mut under_root)?;
    under_root.sort();
    files.extend(under_root);
    let mut bytes = Vec::new();
    for rel in files {
        let content = std::fs::read(dir.join(&rel)).map_err(|e| Error::io(dir.join(&rel), e))?;
        let name = rel.to_string_lossy().into_owned();
        for part in [name.as_bytes(), content.as_slice()] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part);
        }
    }
    Ok(loragen_protocol::digest::sha256_hex(&bytes))
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        if path.is_dir() {
            walk(&path, &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use super::*;
    use crate::generic::Expect;

    #[test]
    fn the_fixture_is_as_recorded() {
        assert_eq!(fixture_sha256(&mcp_dir()).unwrap(), MCP_FIXTURE_SHA256);
    }

    /// What the issue asks of the fixture: 40 requests or more, a quarter
    /// needing no call, every tool expected, each answer a call its tool's
    /// schema allows, and every path under the root.
    #[test]
    fn the_fixture_covers_every_tool_with_valid_answers() {
        let (tools, queries) = mcp_fixture(&mcp_dir(), MCP_SCORED_ROOT).unwrap();
        assert!(queries.len() >= 40, "{}", queries.len());
        let no_call = queries
            .iter()
            .filter(|q| q.expect == Some(Expect::NoCall))
            .count();
        assert!(
            4 * no_call >= queries.len(),
            "{no_call} of {}",
            queries.len()
        );
        let ids: BTreeSet<&str> = queries.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids.len(), queries.len(), "ids are unique");

        let mut expected = BTreeSet::new();
        for q in &queries {
            assert!(q.expect.is_some(), "{}", q.id);
            assert!(!q.messages[0].content.contains(ROOT_PLACEHOLDER));
            for a in &q.answers {
                for name in std::iter::once(&a.name).chain(&a.alternatives) {
                    expected.insert(name.as_str());
                    let tool = tools.tools.iter().find(|t| &t.name == name).unwrap();
                    let properties = tool.parameters["properties"].as_object().unwrap();
                    for arg in a.arguments.keys() {
                        assert!(properties.contains_key(arg), "{}: {name}.{arg}", q.id);
                    }
                    for required in tool.parameters["required"].as_array().into_iter().flatten() {
                        let values = &a.arguments[required.as_str().unwrap()];
                        assert!(
                            !values.iter().any(|v| v == ""),
                            "{}: required {required} marked optional",
                            q.id
                        );
                    }
                }
                let text = serde_json::to_string(&a.arguments).unwrap();
                assert!(!text.contains(ROOT_PLACEHOLDER), "{}", q.id);
            }
        }
        let all: BTreeSet<&str> = tools.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(expected, all, "every tool is expected at least once");
        // Unseen: no GPT4Tools tool has a fixture tool's name.
        let squash = |n: &str| n.to_lowercase().replace([' ', '_'], "");
        for t in &loragen_protocol::gpt4tools::TOOLS {
            assert!(
                !all.iter().any(|n| squash(n) == squash(t.name)),
                "{}",
                t.name
            );
        }
    }
}
