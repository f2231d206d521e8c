//! The OpenAI chat-completions request as `loragen serve` reads it, and the
//! response and stream-chunk bodies it writes. Unknown request fields are
//! ignored, as OpenAI-compatible servers do; a known field of the wrong
//! type is a 400 naming it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use loragen_protocol::react::Call;
use loragen_protocol::ToolSpec;

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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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

/// Token counts of one completion, in OpenAI's `usage` shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

impl Usage {
    pub fn new(prompt_tokens: usize, completion_tokens: usize) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// What the model's message amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Content(String),
    ToolCalls(Vec<Call>),
}

/// The `finish_reason` of an answer.
pub fn finish_reason(answer: &Answer, truncated: bool) -> &'static str {
    match answer {
        _ if truncated => "length",
        Answer::ToolCalls(_) => "tool_calls",
        Answer::Content(_) => "stop",
    }
}

/// One entry of the `tool_calls` the server sends; ids are
/// `call_<completion id>_<n>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseToolCall {
    /// Set in stream chunks, where calls arrive by index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

impl ResponseToolCall {
    /// The calls of completion `id`, indexed for a stream when `with_index`.
    pub fn list(id: &str, calls: &[Call], with_index: bool) -> Vec<ResponseToolCall> {
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| ResponseToolCall {
                index: with_index.then_some(i),
                id: format!("call_{id}_{i}"),
                kind: "function",
                function: FunctionCall {
                    name: c.action.clone(),
                    arguments: c.input.clone(),
                },
            })
            .collect()
    }
}

/// The assistant's message in a non-streaming response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseMessage {
    pub role: &'static str,
    /// `null` when the message calls tools.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ResponseToolCall>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub index: usize,
    pub message: ResponseMessage,
    pub finish_reason: &'static str,
}

/// A `chat.completion`: the non-streaming response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

impl ChatCompletion {
    pub fn new(
        id: &str,
        model: &str,
        created: u64,
        answer: &Answer,
        truncated: bool,
        usage: Usage,
    ) -> Self {
        let message = match answer {
            Answer::Content(text) => ResponseMessage {
                role: "assistant",
                content: Some(text.clone()),
                tool_calls: None,
            },
            Answer::ToolCalls(calls) => ResponseMessage {
                role: "assistant",
                content: None,
                tool_calls: Some(ResponseToolCall::list(id, calls, false)),
            },
        };
        ChatCompletion {
            id: format!("chatcmpl-{id}"),
            object: "chat.completion",
            created,
            model: model.to_owned(),
            choices: vec![Choice {
                index: 0,
                message,
                finish_reason: finish_reason(answer, truncated),
            }],
            usage,
        }
    }
}

/// What a stream chunk adds to the message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ResponseToolCall>>,
}

impl Delta {
    /// The first chunk's: the role, and empty content.
    pub fn start() -> Self {
        Delta {
            role: Some("assistant"),
            content: Some(String::new()),
            tool_calls: None,
        }
    }

    pub fn content(text: impl Into<String>) -> Self {
        Delta {
            content: Some(text.into()),
            ..Delta::default()
        }
    }

    pub fn tool_calls(calls: Vec<ResponseToolCall>) -> Self {
        Delta {
            tool_calls: Some(calls),
            ..Delta::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: Delta,
    /// `null` until the last content chunk.
    pub finish_reason: Option<&'static str>,
}

/// A `chat.completion.chunk`: one server-sent event of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    /// Empty in the usage chunk that ends a stream with `include_usage`.
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl ChatCompletionChunk {
    /// A chunk of completion `id` with this delta and finish reason.
    pub fn new(
        id: &str,
        model: &str,
        created: u64,
        delta: Delta,
        finish: Option<&'static str>,
    ) -> Self {
        ChatCompletionChunk {
            id: format!("chatcmpl-{id}"),
            object: "chat.completion.chunk",
            created,
            model: model.to_owned(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
            }],
            usage: None,
        }
    }

    /// The last chunk of a stream with `include_usage`: no choices, the usage.
    pub fn usage(id: &str, model: &str, created: u64, usage: Usage) -> Self {
        ChatCompletionChunk {
            choices: Vec::new(),
            usage: Some(usage),
            ..ChatCompletionChunk::new(id, model, created, Delta::default(), None)
        }
    }
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
        let body = serde_json::to_value(ChatCompletion::new(
            "x",
            "m",
            1,
            &answer,
            false,
            Usage::new(3, 4),
        ))
        .unwrap();
        let message = &body["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null, "present, and null");
        let call = &message["tool_calls"][0];
        assert_eq!(call["function"]["arguments"], r#"{"city":"Oslo"}"#);
        assert_eq!(call["id"], "call_x_0");
        assert_eq!(call["type"], "function");
        assert!(call.get("index").is_none(), "no index outside a stream");
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(body["usage"]["total_tokens"], 7);
        assert_eq!(body["object"], "chat.completion");
    }

    #[test]
    fn chunks_take_openai_shape() {
        let start =
            serde_json::to_value(ChatCompletionChunk::new("x", "m", 1, Delta::start(), None))
                .unwrap();
        assert_eq!(
            start["choices"][0],
            json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null})
        );
        assert!(start.get("usage").is_none());
        let calls = ResponseToolCall::list("x", &[Call::new("w", "{}")], true);
        let chunk = serde_json::to_value(ChatCompletionChunk::new(
            "x",
            "m",
            1,
            Delta::tool_calls(calls),
            None,
        ))
        .unwrap();
        assert_eq!(chunk["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        let last = serde_json::to_value(ChatCompletionChunk::new(
            "x",
            "m",
            1,
            Delta::default(),
            Some("stop"),
        ))
        .unwrap();
        assert_eq!(last["choices"][0]["delta"], json!({}));
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        let usage = serde_json::to_value(ChatCompletionChunk::usage("x", "m", 1, Usage::new(1, 2)))
            .unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 3);
        assert_eq!(usage["object"], "chat.completion.chunk");
    }
}
