//! The OpenAI chat-completions request as `loragen serve` reads it, and the
//! response and stream-chunk bodies it writes. Unknown request fields are
//! ignored, as OpenAI-compatible servers do; a known field of the wrong
//! type is a 400 naming it.

use serde::Deserialize;
use serde_json::{json, Value};

use loragen_tools::protocol::Call;
use loragen_tools::ToolSpec;

use super::error::ApiError;

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Vec<ToolDef>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// OpenAI's newer name for `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub seed: Option<u32>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// `false` allows one call per message, else up to the server's limit.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
}

impl ChatRequest {
    /// Parses a body; the error says which field is wrong and how.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let request: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    ApiError::invalid(format!("the body is not valid JSON: {inner}"))
                }
                _ if path == "." => ApiError::invalid(format!("the chat request: {inner}")),
                _ => ApiError::invalid(format!("`{path}`: {inner}")).with_param(path),
            }
        })?;
        de.end()
            .map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))?;
        Ok(request)
    }

    /// The request's tools as specs, in order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|t| ToolSpec {
                name: t.function.name.clone(),
                description: t.function.description.clone().unwrap_or_default(),
                parameters: t
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// One message, by role.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: Content,
    },
    /// OpenAI's newer name for a system message.
    Developer {
        content: Content,
    },
    User {
        content: Content,
    },
    Assistant {
        #[serde(default)]
        content: Option<Content>,
        #[serde(default)]
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        content: Content,
        #[serde(default)]
        tool_call_id: Option<String>,
    },
}

/// A message's content: a string or a list of text parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl Content {
    /// The text, parts joined by newlines.
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => parts
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: String,
}

/// A call the assistant made earlier in the conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as a JSON text.
    pub arguments: String,
}

/// `{"type": "function", "function": {...}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolDef {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDef,
}

fn function_type() -> String {
    "function".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `auto`, `none`, `required`, or `{"type": "function", "function": {"name": ..}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named { function: NamedFunction },
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

/// Token counts of one completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

impl Usage {
    pub fn json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

/// What the model's message amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Content(String),
    ToolCalls(Vec<Call>),
}

/// OpenAI's `tool_calls` array; ids are `call_<completion id>_<n>`.
pub fn tool_calls_json(id: &str, calls: &[Call], with_index: bool) -> Value {
    Value::Array(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut v = json!({
                    "id": format!("call_{id}_{i}"),
                    "type": "function",
                    "function": {"name": c.action, "arguments": c.input},
                });
                if with_index {
                    v["index"] = json!(i);
                }
                v
            })
            .collect(),
    )
}

/// The `finish_reason` of an answer.
pub fn finish_reason(answer: &Answer, truncated: bool) -> &'static str {
    match answer {
        _ if truncated => "length",
        Answer::ToolCalls(_) => "tool_calls",
        Answer::Content(_) => "stop",
    }
}

/// The non-streaming response body.
pub fn completion_json(
    id: &str,
    model: &str,
    created: u64,
    answer: &Answer,
    truncated: bool,
    usage: Usage,
) -> Value {
    let message = match answer {
        Answer::Content(text) => json!({"role": "assistant", "content": text}),
        Answer::ToolCalls(calls) => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": tool_calls_json(id, calls, false),
        }),
    };
    json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(answer, truncated),
        }],
        "usage": usage.json(),
    })
}

/// One `chat.completion.chunk` with this delta and finish reason.
pub fn chunk_json(
    id: &str,
    model: &str,
    created: u64,
    delta: Value,
    finish: Option<&str>,
) -> Value {
    json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

/// The last chunk of a stream with `include_usage`: no choices, the usage.
pub fn usage_chunk_json(id: &str, model: &str, created: u64, usage: Usage) -> Value {
    json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage.json(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_full_request_parses_and_unknown_fields_are_ignored() {
        let r = ChatRequest::parse(
            br#"{"model": "m", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
              "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
              "tool_choice": {"type": "function", "function": {"name": "w"}},
              "stream": true, "stream_options": {"include_usage": true}, "logprobs": false}"#,
        )
        .unwrap();
        assert_eq!(r.messages.len(), 4);
        assert_eq!(r.specs()[0].name, "w");
        assert!(matches!(r.tool_choice, Some(ToolChoice::Named { .. })));
        assert!(r.stream);
    }

    #[test]
    fn bad_bodies_name_their_problem() {
        let err = ChatRequest::parse(b"{not json").unwrap_err();
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
        let err = ChatRequest::parse(br#"{"model": "m", "messages": [], "max_tokens": "ten"}"#)
            .unwrap_err();
        assert!(err.message.contains("invalid type"), "{}", err.message);
        assert_eq!(err.param.as_deref(), Some("max_tokens"));
        let err = ChatRequest::parse(br#"{"model": "m"}"#).unwrap_err();
        assert!(err.message.contains("messages"), "{}", err.message);
        let err =
            ChatRequest::parse(br#"{"model": "m", "messages": [{"role": "robot"}]}"#).unwrap_err();
        assert!(err.message.contains("robot"), "{}", err.message);
    }

    #[test]
    fn tool_calls_take_openai_shape() {
        let answer = Answer::ToolCalls(vec![Call::new("w", r#"{"city":"Oslo"}"#)]);
        let body = completion_json("x", "m", 1, &answer, false, Usage::default());
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["arguments"], r#"{"city":"Oslo"}"#);
        assert_eq!(call["id"], "call_x_0");
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    }
}
