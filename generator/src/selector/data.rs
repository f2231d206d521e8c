//! The selector's examples: a compiled-mode prompt, where its request sits,
//! the registry's tool blocks, and what the next message calls.

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use loragen_gpt4tools::generic::{Expect, Query, ToolSet};
use loragen_gpt4tools::Item;
use loragen_protocol::react::{conversation_prompt, request_span, ACTION, NO, THOUGHT};
use loragen_protocol::render::system_prompt;

use crate::error::{Error, Result};
use crate::features::system_blocks;

/// One tool of a registry: its name and the block of the system part that
/// defines it (the text whose cloud features are cached).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolBlock {
    pub name: String,
    pub block: String,
}

/// What a masked tool's name becomes in its block.
pub const MASKED_NAME: &str = "tool";

impl ToolBlock {
    /// The block with the tool's name, where the block states it, replaced
    /// by [`MASKED_NAME`], so that the tool side has to read the
    /// description (name masking, as Hammer trains it, ICLR 2025). The
    /// tool keeps its name: it is still the answer it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::selector::tool_blocks;
    ///
    /// let s = "Intro.\n> Segment: cuts.\n{\"name\":\"f\",\"description\":\"f does\"}\nRules.";
    /// let masked: Vec<_> = tool_blocks(s).iter().map(|t| t.masked()).collect();
    /// assert_eq!(masked[0].block, "> tool: cuts.\n");
    /// assert_eq!(masked[1].block, "{\"name\":\"tool\",\"description\":\"f does\"}\n");
    /// assert_eq!((masked[0].name.as_str(), masked[1].name.as_str()), ("Segment", "f"));
    /// ```
    #[must_use]
    pub fn masked(&self) -> ToolBlock {
        let (from, to) = if self.block.starts_with("> ") {
            (format!("> {}:", self.name), format!("> {MASKED_NAME}:"))
        } else {
            let quoted = serde_json::Value::from(self.name.as_str()).to_string();
            (
                format!("\"name\":{quoted}"),
                format!("\"name\":\"{MASKED_NAME}\""),
            )
        };
        ToolBlock {
            name: self.name.clone(),
            block: self.block.replacen(&from, &to, 1),
        }
    }
}

/// Masks each tool of each item's registry with probability `share`, in a
/// draw seeded by `seed` (so a rerun masks the same ones); returns how many
/// tool mentions were masked. A tool masked in one item may be plain in
/// the next, so the tool side sees both.
pub fn mask_names(items: &mut [SelectorItem], share: f64, seed: u64) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut masked = 0;
    for tool in items.iter_mut().flat_map(|i| i.tools.iter_mut()) {
        if rng.random::<f64>() < share {
            *tool = tool.masked();
            masked += 1;
        }
    }
    masked
}

/// What the next message does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Calls these tools (any of them is a right first choice).
    Tools(Vec<String>),
    /// Answers without a call.
    NoCall,
}

/// One example: what the edge model reads in compiled mode and what its
/// next message should call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorItem {
    pub id: String,
    /// The prompt without the system part.
    pub prompt: String,
    /// The request's bytes in `prompt`.
    pub request: Range<usize>,
    pub tools: Vec<ToolBlock>,
    pub target: Target,
}

/// The tool blocks of a system part, in order: GPT4Tools' `> Name:
/// description` lines and the JSON protocol's spec lines.
///
/// # Examples
///
/// ```
/// use loragen_generator::selector::tool_blocks;
///
/// let s = "Intro.\n> Segment: cuts.\n{\"name\":\"f\",\"description\":\"d\"}\nRules.";
/// let names: Vec<_> = tool_blocks(s).into_iter().map(|t| t.name).collect();
/// assert_eq!(names, ["Segment", "f"]);
/// ```
pub fn tool_blocks(system: &str) -> Vec<ToolBlock> {
    system_blocks(system)
        .into_iter()
        .filter_map(|block| {
            let name = if let Some(line) = block.strip_prefix("> ") {
                line.split_once(':')?.0.trim().to_owned()
            } else if block.starts_with("{\"") {
                let spec: serde_json::Value = serde_json::from_str(block.trim_end()).ok()?;
                spec.get("name")?.as_str()?.to_owned()
            } else {
                return None;
            };
            Some(ToolBlock { name, block })
        })
        .collect()
}

/// The target of a model message: the names on its `Action:` lines, or no
/// call when it answers `No`; `None` for anything else.
fn target_of(output: &str) -> Option<Target> {
    let names: Vec<String> = output
        .lines()
        .filter_map(|l| l.strip_prefix(ACTION))
        .map(|n| n.trim().to_owned())
        .collect();
    if !names.is_empty() {
        return Some(Target::Tools(names));
    }
    output
        .starts_with(&format!("{THOUGHT} {NO}"))
        .then_some(Target::NoCall)
}

impl SelectorItem {
    /// A training or validation item in the GPT4Tools layout (BFCL items
    /// made by `generic::training_items` included); `None` when its
    /// prompt has no request, its registry no tools, or its output is
    /// neither a call nor an answer.
    pub fn from_item(item: &Item) -> Option<Self> {
        let prompt = item.compiled_prompt();
        let request = request_span(&prompt)?;
        let tools = tool_blocks(item.system_part());
        if tools.is_empty() {
            return None;
        }
        Some(SelectorItem {
            id: item.id.clone(),
            prompt,
            request,
            tools,
            target: target_of(&item.output)?,
        })
    }

    /// A query in the generic format over `tools`, with the prompt `loragen
    /// eval` gives it in compiled mode; `None` for a query that accepts
    /// any answer.
    pub fn from_query(tools: &ToolSet, query: &Query) -> Result<Option<Self>> {
        let offered = tools
            .for_query(query)
            .map_err(|e| Error::Config(e.to_string()))?;
        let target = match query.expect {
            Some(Expect::NoCall) => Target::NoCall,
            Some(Expect::Calls) if !query.answers.is_empty() => Target::Tools(
                query
                    .answers
                    .iter()
                    .flat_map(|a| std::iter::once(&a.name).chain(&a.alternatives))
                    .cloned()
                    .collect(),
            ),
            _ => return Ok(None),
        };
        let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
        let input: Vec<&str> = query.messages.iter().map(|m| m.content.as_str()).collect();
        let prompt = conversation_prompt(None, &[], &input.join("\n"), "");
        let request = request_span(&prompt)
            .ok_or_else(|| Error::Config(format!("query {}: no request", query.id)))?;
        Ok(Some(SelectorItem {
            id: query.id.clone(),
            prompt,
            request,
            tools: tool_blocks(&system_prompt(&specs)),
            target,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn gpt4tools_items_give_the_call_or_no_call_and_the_request() {
        let system = "Persona.\n\nTOOLS:\n> Segment the Image: cuts. Its input is the image path.\n> Get Photo Description: says what is in it.\n\nTo use a tool:\nAction: one of [Segment the Image, Get Photo Description]\n\n";
        let item = |conversation: &str, output: &str| Item {
            id: "1".into(),
            instruction: format!("{system}{conversation}"),
            input: String::new(),
            output: output.into(),
        };
        let conversation = conversation_prompt(None, &[], "what is in a.png?", "");
        let call = item(
            &conversation,
            "Thought: Do I need to use a tool? Yes\nAction: Get Photo Description\nAction Input: a.png\nObservation:",
        );
        let s = SelectorItem::from_item(&call).unwrap();
        assert_eq!(&s.prompt[s.request.clone()], "what is in a.png?");
        assert_eq!(
            s.target,
            Target::Tools(vec!["Get Photo Description".into()])
        );
        assert_eq!(
            s.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["Segment the Image", "Get Photo Description"]
        );
        assert!(s.tools[1].block.starts_with("> Get Photo Description:"));

        let answer = item(
            &conversation,
            "Thought: Do I need to use a tool? No\nAI: hi",
        );
        assert_eq!(
            SelectorItem::from_item(&answer).unwrap().target,
            Target::NoCall
        );
        assert_eq!(
            SelectorItem::from_item(&item(&conversation, "garbage")),
            None
        );
    }

    #[test]
    fn masking_draws_per_mention_and_keeps_the_answers() {
        let system = "P.\n> Segment the Image: cuts.\n> Get Photo Description: says.\n\nRules.";
        let fresh = || {
            let item = SelectorItem {
                id: "1".into(),
                prompt: String::new(),
                request: 0..0,
                tools: tool_blocks(system),
                target: Target::Tools(vec!["Segment the Image".into()]),
            };
            vec![item; 200]
        };
        let blocks = |items: &[SelectorItem]| -> Vec<String> {
            items
                .iter()
                .flat_map(|i| i.tools.iter().map(|t| t.block.clone()))
                .collect()
        };
        let mut items = fresh();
        let masked = mask_names(&mut items, 0.25, 7);
        // 400 mentions at a quarter: binomial, sd about 8.7.
        assert!((70..=130).contains(&masked), "{masked}");
        let shown = blocks(&items);
        assert_eq!(
            shown.iter().filter(|b| b.starts_with("> tool:")).count(),
            masked
        );
        assert!(items.iter().all(|i| i.tools[0].name == "Segment the Image"
            && i.tools[1].name == "Get Photo Description"));
        let mut again = fresh();
        assert_eq!(mask_names(&mut again, 0.25, 7), masked);
        assert_eq!(blocks(&again), shown, "the same seed masks the same");
        let mut other = fresh();
        mask_names(&mut other, 0.25, 8);
        assert_ne!(blocks(&other), shown);
        assert_eq!(mask_names(&mut fresh(), 0.0, 7), 0);
        assert_eq!(mask_names(&mut fresh(), 1.0, 7), 400);
    }

    #[test]
    fn generic_queries_give_their_answers_names_and_alternatives() {
        let tools: Vec<loragen_gpt4tools::generic::ToolDef> = serde_json::from_value(serde_json::json!([
            {"name": "read_file", "description": "Reads a file.", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}},
            {"name": "get_time", "description": "The time.", "parameters": {"type": "object", "properties": {}}}
        ]))
        .unwrap();
        let tools = ToolSet::new(tools).unwrap();
        let query = |expect: &str, answers: serde_json::Value| -> Query {
            serde_json::from_value(serde_json::json!({
                "id": "q", "messages": [{"role": "user", "content": "show notes.txt"}],
                "expect": expect, "answers": answers
            }))
            .unwrap()
        };
        let calls = query(
            "calls",
            serde_json::json!([{"name": "read_file", "alternatives": ["read_text_file"], "arguments": {"path": ["notes.txt"]}}]),
        );
        let item = SelectorItem::from_query(&tools, &calls).unwrap().unwrap();
        assert_eq!(
            item.target,
            Target::Tools(vec!["read_file".into(), "read_text_file".into()])
        );
        assert_eq!(&item.prompt[item.request.clone()], "show notes.txt");
        assert_eq!(
            item.tools
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["read_file", "get_time"]
        );
        assert!(
            item.tools[0].block.starts_with("{\""),
            "{}",
            item.tools[0].block
        );
        let none = query("no-call", serde_json::json!([]));
        assert_eq!(
            SelectorItem::from_query(&tools, &none)
                .unwrap()
                .unwrap()
                .target,
            Target::NoCall
        );
        assert_eq!(
            SelectorItem::from_query(&tools, &query("any-call", serde_json::json!([]))).unwrap(),
            None
        );
    }
}
