//! loragen's generic tool-calling format, used by `loragen eval` and
//! produced by the BFCL conversion.
//!
//! - A **tools file** is a JSON array of function specs
//!   `{"name", "description", "parameters"}` (JSON Schema), each with an
//!   optional unique `"id"` (default: the name). Two specs may share a
//!   name when their ids differ.
//! - A **queries file** holds one JSON object per line:
//!   `{"id", "messages": [{"role", "content"}], "tools": [tool ids]?,
//!   "expect": "calls" | "no-call" | "any-call"?, "answers": [accepted calls]?}`.
//!   Without `tools` every tool is offered; without `expect` the query is
//!   run but not scored. An accepted call is
//!   `{"name", "alternatives": [other names]?, "arguments": {"arg":
//!   [accepted values]}}`; an empty string among the accepted values marks
//!   the argument as optional.

mod parse;
mod score;
mod target;

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use parse::{parse_calls, ParsedCalls};
pub use score::{
    breakdown, call_matches, failed_stage, failure_report, score_query, Breakdown, Stage,
};
pub use target::{compact, training_items, Skipped, IRRELEVANT_ANSWER};

use crate::error::{Error, Result};

/// One function a query may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub parameters: Value,
}

impl ToolDef {
    pub fn key(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }

    pub fn spec(&self) -> loragen_protocol::ToolSpec {
        loragen_protocol::ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.parameters.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// What a right answer to a query looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Exactly the calls in `answers`, in any order.
    Calls,
    /// No call at all.
    NoCall,
    /// At least one call, of any function.
    AnyCall,
}

/// A call with the accepted values of each argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedCall {
    pub name: String,
    /// Other functions accepted in place of `name`, with the same
    /// arguments: `read_text_file` for `read_file`, say, where a server
    /// offers both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<String>,
    pub arguments: BTreeMap<String, Vec<Value>>,
}

impl AcceptedCall {
    /// Whether a call of the function `name` can be this call.
    pub fn accepts_name(&self, name: &str) -> bool {
        self.name == name || self.alternatives.iter().any(|a| a == name)
    }
}

/// One scored query of a `loragen eval` run, as its records file keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub id: String,
    pub calls: Vec<Call>,
    /// `None` for a query that carries no expectation.
    pub correct: Option<bool>,
    /// Why the output could not be read as a call, if it could not.
    pub problem: Option<String>,
    pub output: String,
    pub prompt_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// The tool selector's pass over the prompt, when one ran (`--selector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector_ms: Option<f64>,
    /// The selector's "no call" vetoed a call (`--selector-veto`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vetoed: bool,
    /// The selector required a call (`--selector-require`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The selector's "no call" log-probability less the best offered
    /// tool's, when it ran: a veto margin below it vetoes the call, so one
    /// run gives every margin's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none_margin: Option<f64>,
}

impl EvalRecord {
    /// Model time for the query: prefill plus decode and the selector's
    /// pass, as in [`Record::latency_ms`](crate::record::Record::latency_ms).
    pub fn latency_ms(&self) -> f64 {
        self.prefill_ms + self.decode_ms + self.selector_ms.unwrap_or(0.0)
    }
}

impl crate::record::Keyed for EvalRecord {
    type Key = String;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub name: String,
    pub arguments: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub id: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<AcceptedCall>,
}

/// Tools by key, in file order.
#[derive(Debug, Clone, Default)]
pub struct ToolSet {
    pub tools: Vec<ToolDef>,
    index: HashMap<String, usize>,
}

impl ToolSet {
    pub fn new(tools: Vec<ToolDef>) -> Result<Self> {
        let mut index = HashMap::new();
        for (i, t) in tools.iter().enumerate() {
            if index.insert(t.key().to_owned(), i).is_some() {
                return Err(Error::Generic(format!(
                    "two tools have the id `{}`",
                    t.key()
                )));
            }
        }
        Ok(ToolSet { tools, index })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let tools: Vec<ToolDef> = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            path: path.into(),
            detail: format!("expected a JSON array of tool specs ({e})"),
        })?;
        Self::new(tools).map_err(|e| Error::Malformed {
            path: path.into(),
            detail: e.to_string(),
        })
    }

    /// The tools offered to `query`.
    pub fn for_query(&self, query: &Query) -> Result<Vec<&ToolDef>> {
        match &query.tools {
            None => Ok(self.tools.iter().collect()),
            Some(keys) => keys
                .iter()
                .map(|k| {
                    self.index.get(k).map(|&i| &self.tools[i]).ok_or_else(|| {
                        Error::Generic(format!(
                            "query `{}` offers tool `{k}`, which the tools file does not define",
                            query.id
                        ))
                    })
                })
                .collect(),
        }
    }
}

/// Reads a queries file (JSON lines; blank lines are skipped).
pub fn load_queries(path: &Path) -> Result<Vec<Query>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let q: Query = serde_json::from_str(&line).map_err(|e| Error::BadItem {
            path: path.into(),
            item: format!("line {}", i + 1),
            detail: e.to_string(),
        })?;
        if q.expect == Some(Expect::Calls) && q.answers.is_empty() {
            return Err(Error::BadItem {
                path: path.into(),
                item: q.id,
                detail: "expects calls but lists no answers".into(),
            });
        }
        out.push(q);
    }
    Ok(out)
}
