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

/// What one comma-separated field of a free-text input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A file path (an image's, a map's): no commas, no spaces.
    Path,
    /// Free text, which may hold commas if it is the last field.
    Text,
}

impl ToolSpec {
    /// The kinds of a free-text input's fields, as its description states
    /// them ([`stated_field_kinds`]); `None` for a JSON input.
    pub fn field_kinds(&self) -> Option<Vec<FieldKind>> {
        match self.input_kind() {
            InputKind::Text { fields } => Some(stated_field_kinds(&self.description, fields)),
            InputKind::Json => None,
        }
    }

    /// How the text after `Action Input:` becomes arguments: a string
    /// schema (GPT4Tools' free-text tools, `x-fields` comma fields) takes
    /// the raw text, any other schema a JSON value.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_protocol::spec::{text_schema, InputKind, ToolSpec};
    ///
    /// let spec = |parameters| ToolSpec { name: "t".into(), description: String::new(), parameters };
    /// assert_eq!(spec(text_schema(2)).input_kind(), InputKind::Text { fields: 2 });
    /// let json = serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}});
    /// assert_eq!(spec(json).input_kind(), InputKind::Json);
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_protocol::ToolSpec;
    ///
    /// let spec = ToolSpec {
    ///     name: "get_time".into(),
    ///     description: "The current time in a city.".into(),
    ///     parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    /// };
    /// let openai = spec.to_openai();
    /// assert_eq!(openai["type"], "function");
    /// assert_eq!(openai["function"]["name"], "get_time");
    /// ```
    pub fn to_openai(&self) -> Value {
        json!({"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}})
    }
}

/// Schema of a free-text input with `fields` comma-separated fields: a
/// string with at least `fields - 1` commas (the last field may hold more).
///
/// # Examples
///
/// ```
/// use loragen_protocol::spec::text_schema;
///
/// let schema = text_schema(2);
/// assert_eq!(schema["type"], "string");
/// assert_eq!(schema["x-fields"], 2);
/// assert_eq!(schema["pattern"], "^[^,]+(,[^,]+){1}");
/// ```
pub fn text_schema(fields: usize) -> Value {
    let fields = fields.max(1);
    let pattern = if fields == 1 {
        "\\S".to_owned()
    } else {
        format!("^[^,]+(,[^,]+){{{}}}", fields - 1)
    };
    serde_json::json!({"type": "string", "pattern": pattern, "x-fields": fields})
}

/// The kinds of the `fields` fields of a free-text input, as a tool's
/// description states them: the phrase after "fields:", "representing" or
/// "holding only" (loragen's and GPT4Tools' wordings: "two fields: the
/// image path, then the question", "representing the image_path and the
/// text"), split at ", then ", ", " and " and ", is one part per field, and a
/// part that names a path makes a [`FieldKind::Path`]. A description that
/// states no such list, or one of another length, gives every field
/// [`FieldKind::Text`], the kind that admits anything.
///
/// # Examples
///
/// ```
/// use loragen_protocol::spec::{stated_field_kinds, FieldKind::{Path, Text}};
///
/// let two = "Its input is a comma separated string of two fields: the image path, then the question.";
/// assert_eq!(stated_field_kinds(two, 2), [Path, Text]);
/// let gpt4tools = "The input to this tool should be a string, representing the image_path";
/// assert_eq!(stated_field_kinds(gpt4tools, 1), [Path]);
/// assert_eq!(stated_field_kinds("Paints a picture from a description.", 1), [Text]);
/// assert_eq!(stated_field_kinds(two, 3), [Text, Text, Text], "the count must agree");
/// ```
pub fn stated_field_kinds(description: &str, fields: usize) -> Vec<FieldKind> {
    let fields = fields.max(1);
    let lower = description.to_lowercase();
    let phrase = ["fields:", "representing", "holding only"]
        .iter()
        .find_map(|marker| lower.rfind(marker).map(|at| &lower[at + marker.len()..]));
    let Some(phrase) = phrase else {
        return vec![FieldKind::Text; fields];
    };
    // The list ends with its sentence.
    let phrase = phrase.split(". ").next().unwrap_or(phrase);
    let phrase = phrase.trim().trim_end_matches('.');
    let parts: Vec<&str> = phrase
        .split(", then ")
        .flat_map(|p| p.split(", "))
        .flat_map(|p| p.split(" and "))
        .collect();
    if parts.len() != fields {
        return vec![FieldKind::Text; fields];
    }
    parts
        .iter()
        .map(|p| {
            if p.contains("path") {
                FieldKind::Path
            } else {
                FieldKind::Text
            }
        })
        .collect()
}

/// Writes specs as an OpenAI-style JSON tool list.
///
/// # Examples
///
/// ```
/// use loragen_protocol::spec::{from_openai_json, to_openai_json};
/// use loragen_protocol::ToolSpec;
///
/// let spec = ToolSpec {
///     name: "get_time".into(),
///     description: "The current time in a city.".into(),
///     parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
/// };
/// let text = to_openai_json(std::slice::from_ref(&spec))?;
/// assert_eq!(from_openai_json(&text)?, [spec], "a round trip keeps every field");
/// # Ok::<(), loragen_protocol::Error>(())
/// ```
pub fn to_openai_json(specs: &[ToolSpec]) -> Result<String> {
    Ok(serde_json::to_string_pretty(
        &specs.iter().map(ToolSpec::to_openai).collect::<Vec<_>>(),
    )?)
}

/// Reads an OpenAI-style tool list: an array of `{"type": "function",
/// "function": {...}}` objects or of bare `{name, description, parameters}`.
///
/// # Examples
///
/// ```
/// use loragen_protocol::spec::from_openai_json;
///
/// let wrapped = r#"[{"type": "function", "function": {"name": "get_time", "description": "Time in a city.",
///     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]"#;
/// let bare = r#"[{"name": "get_time"}]"#;
/// assert_eq!(from_openai_json(wrapped)?[0].name, "get_time");
/// // A tool without parameters takes an empty object.
/// assert_eq!(from_openai_json(bare)?[0].parameters["properties"], serde_json::json!({}));
/// let err = from_openai_json(r#"[{"description": "no name"}]"#).unwrap_err();
/// assert!(err.to_string().contains("tool 0 has no string `name`"));
/// assert!(from_openai_json("{}").is_err(), "not an array");
/// # Ok::<(), loragen_protocol::Error>(())
/// ```
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
