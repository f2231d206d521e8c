//! `ToolSpec`: a tool's name, description and argument schema, in the
//! OpenAI-style JSON tool list format.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// What a model needs to know to call a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// How the text after `Action Input:` becomes arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// The raw text is the (string) argument, with this many comma fields.
    Text { fields: usize },
    /// The text is a JSON value.
    Json,
}

impl ToolSpec {
    pub fn input_kind(&self) -> InputKind {
        if self.parameters.get("type") == Some(&json!("string")) {
            let fields = self
                .parameters
                .get("x-fields")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            InputKind::Text {
                fields: usize::try_from(fields).unwrap_or(1).max(1),
            }
        } else {
            InputKind::Json
        }
    }

    /// The OpenAI-style `{"type": "function", "function": {...}}` form.
    pub fn to_openai(&self) -> Value {
        json!({"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}})
    }
}

/// Schema of a free-text input with `fields` comma-separated fields: a
/// string with at least `fields - 1` commas (the last field may hold more).
pub fn text_schema(fields: usize) -> Value {
    let fields = fields.max(1);
    let pattern = if fields == 1 {
        "\\S".to_owned()
    } else {
        format!("^[^,]+(,[^,]+){{{}}}", fields - 1)
    };
    serde_json::json!({"type": "string", "pattern": pattern, "x-fields": fields})
}

/// Writes specs as an OpenAI-style JSON tool list.
pub fn to_openai_json(specs: &[ToolSpec]) -> Result<String> {
    Ok(serde_json::to_string_pretty(
        &specs.iter().map(ToolSpec::to_openai).collect::<Vec<_>>(),
    )?)
}

/// Reads an OpenAI-style tool list: an array of `{"type": "function",
/// "function": {...}}` objects or of bare `{name, description, parameters}`.
pub fn from_openai_json(text: &str) -> Result<Vec<ToolSpec>> {
    let value: Value = serde_json::from_str(text).map_err(|e| Error::Import(e.to_string()))?;
    from_openai_value(&value)
}

/// [`from_openai_json`] on a parsed value, such as a chat request's
/// `tools` field.
pub fn from_openai_value(value: &Value) -> Result<Vec<ToolSpec>> {
    let items = value
        .as_array()
        .ok_or_else(|| Error::Import("expected a JSON array of tools".into()))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let f = item.get("function").unwrap_or(item);
            let name = f.get("name").and_then(Value::as_str);
            let Some(name) = name else {
                return Err(Error::Import(format!("tool {i} has no string `name`")));
            };
            Ok(ToolSpec {
                name: name.to_owned(),
                description: f
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                parameters: f
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
        })
        .collect()
}
