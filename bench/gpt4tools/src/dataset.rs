//! GPT4Tools files as published: a JSON array of
//! `{"id", "instruction", "input", "output"}` objects.

use std::io::Write;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use loragen_protocol::react::{NEW_INPUT, PREVIOUS_CONVERSATION};

/// One benchmark item. `id` is the file's id as text, or the item's
/// position when the file has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub instruction: String,
    pub input: String,
    pub output: String,
}

#[derive(Deserialize)]
struct RawItem {
    id: Option<Value>,
    instruction: Option<String>,
    #[serde(default)]
    input: Option<String>,
    output: Option<String>,
}

impl Item {
    /// The part before `Previous conversation:`: what LoRA-Gen compiles
    /// into the adapter. Empty when the marker is missing.
    pub fn system_part(&self) -> &str {
        self.instruction
            .find(PREVIOUS_CONVERSATION)
            .map_or("", |at| &self.instruction[..at])
    }

    /// Everything the edge model still sees in compiled mode.
    pub fn rest(&self) -> &str {
        self.instruction
            .find(PREVIOUS_CONVERSATION)
            .map_or(&self.instruction, |at| &self.instruction[at..])
    }

    /// The prompt text of the full instruction plus the optional input.
    pub fn full_prompt(&self) -> String {
        join_input(&self.instruction, &self.input)
    }

    /// The prompt without the system part.
    pub fn compiled_prompt(&self) -> String {
        join_input(self.rest(), &self.input)
    }

    /// The user's request on the last `New input:` line (the marker and
    /// a space).
    pub fn request(&self) -> Option<&str> {
        let rest = self
            .instruction
            .rmatch_indices(NEW_INPUT)
            .find_map(|(at, _)| self.instruction[at + NEW_INPUT.len()..].strip_prefix(' '))?;
        Some(rest.split('\n').next().unwrap_or(rest).trim())
    }

    /// Tool names listed in the system part as `> Name: description`.
    pub fn listed_tools(&self) -> Vec<&str> {
        self.listed_tool_lines()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// `(name, description)` of every tool the system part lists.
    pub fn listed_tool_lines(&self) -> Vec<(&str, &str)> {
        self.system_part()
            .lines()
            .filter_map(|l| l.strip_prefix("> "))
            .filter_map(|l| l.split_once(':').map(|(name, d)| (name.trim(), d.trim())))
            .collect()
    }

    /// Specs of the listed tools, for constrained decoding: each takes a
    /// comma separated string with the tool's known arity, or the arity
    /// its description states ("a comma separated string of two"), else 1.
    pub fn listed_tool_specs(&self) -> Vec<loragen_protocol::ToolSpec> {
        self.listed_tool_lines()
            .into_iter()
            .map(|(name, description)| loragen_protocol::ToolSpec {
                name: name.to_owned(),
                description: description.to_owned(),
                parameters: loragen_protocol::spec::text_schema(
                    crate::corpus::arity_of(name).unwrap_or_else(|| stated_arity(description)),
                ),
            })
            .collect()
    }
}

/// Which items [`select_listing`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Items whose system part lists at least one of the tools.
    AnyOf,
    /// Items whose system part lists none of them: a training set with
    /// those tools held out, their definitions and their calls unseen.
    NoneOf,
}

/// The items that list any (or none) of `tools`, in order. A name no item
/// lists is an error, so that a typo cannot silently hold out nothing.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::dataset::{select_listing, Item, Listing};
///
/// let item = |id: &str, tool: &str| Item {
///     id: id.into(),
///     instruction: format!("Tools:\n> {tool}: does a thing\nPrevious conversation:\nNew input: hi"),
///     input: String::new(),
///     output: "Thought: Do I need to use a tool? No".into(),
/// };
/// let items = vec![item("1", "Edge Detection On Image"), item("2", "Get Photo Description")];
/// let held_out = ["Get Photo Description".to_owned()];
/// let kept = select_listing(items.clone(), &held_out, Listing::NoneOf)?;
/// assert_eq!(kept.len(), 1);
/// assert_eq!(kept[0].id, "1");
/// assert!(select_listing(items, &["No Such Tool".to_owned()], Listing::AnyOf).is_err());
/// # Ok::<(), loragen_gpt4tools::Error>(())
/// ```
pub fn select_listing(items: Vec<Item>, tools: &[String], keep: Listing) -> Result<Vec<Item>> {
    if let Some(unknown) = tools
        .iter()
        .find(|t| !items.iter().any(|i| i.listed_tools().contains(&t.as_str())))
    {
        return Err(Error::Generic(format!(
            "no item lists a tool named {unknown:?} (names are matched exactly, as in `> Name: ...`)"
        )));
    }
    Ok(items
        .into_iter()
        .filter(|i| {
            let lists = i
                .listed_tools()
                .iter()
                .any(|t| tools.iter().any(|h| h == t));
            lists == (keep == Listing::AnyOf)
        })
        .collect())
}

/// The field count a description states, as upstream GPT4Tools words it.
fn stated_arity(description: &str) -> usize {
    let lower = description.to_lowercase();
    let Some(at) = lower.find("separated string of ") else {
        return 1;
    };
    let word = lower[at + "separated string of ".len()..]
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("");
    match word {
        "two" | "2" => 2,
        "three" | "3" => 3,
        "four" | "4" => 4,
        _ => 1,
    }
}

fn join_input(text: &str, input: &str) -> String {
    if input.trim().is_empty() {
        text.to_owned()
    } else {
        format!("{text}\n{input}")
    }
}

/// Reads a GPT4Tools JSON file. Every item needs an instruction and an
/// output; items without an `id` get their position as id.
pub fn load(path: &Path) -> Result<Vec<Item>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Vec<Item>> {
    let raw: Vec<Value> = serde_json::from_str(text).map_err(|e| Error::Malformed {
        path: path.into(),
        detail: format!("expected a JSON array of items ({e})"),
    })?;
    raw.into_iter()
        .enumerate()
        .map(|(i, value)| {
            let name = match value.get("id") {
                Some(Value::String(s)) => format!("`{s}` (#{i})"),
                Some(Value::Number(n)) => format!("`{n}` (#{i})"),
                _ => format!("#{i}"),
            };
            let bad = |detail: String| Error::BadItem {
                path: path.into(),
                item: name.clone(),
                detail,
            };
            let item: RawItem = serde_json::from_value(value)
                .map_err(|e| bad(format!("not an item object ({e})")))?;
            let instruction = item
                .instruction
                .ok_or_else(|| bad("has no `instruction`".into()))?;
            let output = item.output.ok_or_else(|| bad("has no `output`".into()))?;
            let id = match item.id {
                Some(Value::String(s)) => s,
                Some(Value::Number(n)) => n.to_string(),
                None | Some(Value::Null) => i.to_string(),
                Some(other) => {
                    return Err(bad(format!("`id` must be a string or number, not {other}")))
                }
            };
            Ok(Item {
                id,
                instruction,
                input: item.input.unwrap_or_default(),
                output,
            })
        })
        .collect()
}

/// Writes items as a JSON array, one item per line, atomically. Numeric ids are written as numbers.
pub fn save(path: &Path, items: &[Item]) -> Result<()> {
    loragen_protocol::atomic::write_atomic_with(path, |tmp| {
        let write = || -> std::io::Result<()> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(tmp)?);
            out.write_all(b"[\n")?;
            for (i, item) in items.iter().enumerate() {
                let id = item
                    .id
                    .parse::<u64>()
                    .map_or_else(|_| Value::String(item.id.clone()), Value::from);
                let value = serde_json::json!({"id": id, "instruction": item.instruction, "input": item.input, "output": item.output});
                out.write_all(value.to_string().as_bytes())?;
                out.write_all(if i + 1 < items.len() { b",\n" } else { b"\n" })?;
            }
            out.write_all(b"]\n")?;
            out.flush()
        };
        write().map_err(|e| Error::io(path, e))
    })
}

/// For each item, the index of a partner item that lists none of its
/// tools, drawn uniformly with `seed`: the definitions control compiles an
/// item's adapter from its partner's system part.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::corpus::{build, CorpusConfig};
/// use loragen_gpt4tools::dataset::partners;
///
/// let corpus = build(&CorpusConfig::default().with_sizes(40, 200, 10))?;
/// let items = &corpus.val_seen;
/// let p = partners(items, 7)?;
/// assert_eq!(p, partners(items, 7)?, "a seed gives the same partners");
/// for (i, &j) in p.iter().enumerate() {
///     assert!(items[i].listed_tools().iter().all(|t| !items[j].listed_tools().contains(t)));
/// }
/// # Ok::<(), loragen_gpt4tools::Error>(())
/// ```
pub fn partners(items: &[Item], seed: u64) -> Result<Vec<usize>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let listed: Vec<std::collections::HashSet<&str>> = items
        .iter()
        .map(|i| i.listed_tools().into_iter().collect())
        .collect();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let candidates: Vec<usize> = (0..items.len())
            .filter(|&j| listed[i].is_disjoint(&listed[j]))
            .collect();
        if candidates.is_empty() {
            return Err(Error::Selection(format!(
                "item {}: no other item lists none of its tools, so it has no partner",
                item.id
            )));
        }
        out.push(candidates[rng.random_range(0..candidates.len())]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_split_at_the_conversation_and_missing_ids_are_numbered() {
        let text = r#"[{"instruction": "SYS\n> A Tool: does a.\nPrevious conversation:\n\nNew input: hi\nthink", "input": "", "output": "x"},
                       {"id": 7, "instruction": "no marker", "output": "y"}]"#;
        let items = parse(Path::new("f.json"), text).unwrap();
        assert_eq!(items[0].id, "0");
        assert_eq!(items[0].system_part(), "SYS\n> A Tool: does a.\n");
        assert!(items[0].rest().starts_with("Previous conversation:"));
        assert_eq!(items[0].listed_tools(), ["A Tool"]);
        assert_eq!(
            stated_arity(
                "The input to this tool should be a comma separated string of two, representing x"
            ),
            2
        );
        assert_eq!(
            stated_arity("Its input is a comma separated string of three fields"),
            3
        );
        assert_eq!(stated_arity("The input is the image path"), 1);
        assert_eq!(items[0].request(), Some("hi"));
        assert_eq!(items[1].id, "7");
        assert_eq!(items[1].system_part(), "");
    }

    #[test]
    fn a_missing_output_names_the_item() {
        let err = parse(Path::new("f.json"), r#"[{"id": "a1", "instruction": "x"}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`a1`") && err.contains("no `output`"), "{err}");
        let err = parse(Path::new("f.json"), r#"{"not": "an array"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a GPT4Tools file"), "{err}");
        let err = parse(
            Path::new("f.json"),
            r#"[{"instruction": "x", "output": "y"}, 3]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("#1"), "{err}");
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let items = vec![
            Item {
                id: "3".into(),
                instruction: "a\nb".into(),
                input: String::new(),
                output: "o".into(),
            },
            Item {
                id: "q".into(),
                instruction: "c".into(),
                input: "i".into(),
                output: "p".into(),
            },
        ];
        save(&path, &items).unwrap();
        assert_eq!(load(&path).unwrap(), items);
    }
}
