//! OpenAI messages onto loragen's protocol prompt (documented in
//! `docs/serving.md`):
//!
//! - system and developer messages: the persona, before the conversation;
//! - each earlier user message and the assistant's final text of its turn:
//!   a `Human:` / `AI:` pair of `Previous conversation:`;
//! - the last user message: `New input:`;
//! - after it, assistant `tool_calls`: the `Thought: ... Yes` line and one
//!   `Action:` / `Action Input:` pair per call, and tool messages: one
//!   `Observation:` line each, in order.
//!
//! The tool definitions never enter the prompt: they are compiled into the
//! adapter.

use loragen_protocol::react::{calls_message, conversation_prompt, observation_lines};

use super::error::ApiError;
use super::openai::Message;

/// The prompt the edge model continues for `messages`.
pub fn render(messages: &[Message]) -> Result<String, ApiError> {
    let last_user = messages
        .iter()
        .rposition(|m| matches!(m, Message::User { .. }))
        .ok_or_else(|| {
            ApiError::invalid("the messages hold no user message").with_param("messages")
        })?;
    let mut persona = Vec::new();
    let mut history: Vec<(String, String)> = Vec::new();
    for message in &messages[..last_user] {
        match message {
            Message::System { content } | Message::Developer { content } => {
                persona.push(content.text());
            }
            Message::User { content } => history.push((content.text(), String::new())),
            Message::Assistant {
                content: Some(content),
                ..
            } => {
                if let Some(turn) = history.last_mut() {
                    turn.1 = content.text();
                }
            }
            // Earlier turns keep their answers; their calls are done.
            Message::Assistant { content: None, .. } | Message::Tool { .. } => {}
        }
    }
    let Message::User { content: input } = &messages[last_user] else {
        return Err(ApiError::internal("the last user message moved"));
    };
    let mut trace = String::new();
    let mut open_calls = 0usize;
    for (i, message) in messages.iter().enumerate().skip(last_user + 1) {
        let param = format!("messages[{i}]");
        match message {
            Message::Assistant { tool_calls, .. } if !tool_calls.is_empty() => {
                trace.push_str(&calls_message(tool_calls.iter().map(|call| {
                    (call.function.name.as_str(), call.function.arguments.trim())
                })));
                trace.push('\n');
                open_calls = tool_calls.len();
            }
            Message::Tool { content, .. } => {
                if open_calls == 0 {
                    return Err(ApiError::invalid(
                        "a tool message must answer a call of the assistant message before it",
                    )
                    .with_param(param));
                }
                open_calls -= 1;
                trace.push_str(&observation_lines(&[content.text()]));
            }
            Message::Assistant { .. } => {
                return Err(ApiError::invalid(
                    "the conversation already ends with the assistant's answer; add a user message",
                )
                .with_param(param))
            }
            Message::System { content } | Message::Developer { content } => {
                persona.push(content.text());
            }
            Message::User { .. } => return Err(ApiError::internal("a later user message")),
        }
    }
    let persona = persona.join("\n");
    let system = (!persona.trim().is_empty()).then(|| format!("{}\n\n", persona.trim()));
    Ok(conversation_prompt(
        system.as_deref(),
        &history,
        &input.text(),
        &trace,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::serve::openai::ChatRequest;

    fn messages(json: &str) -> Vec<Message> {
        ChatRequest::parse(format!(r#"{{"model": "m", "messages": {json}}}"#).as_bytes())
            .unwrap()
            .messages
    }

    #[test]
    fn roles_map_onto_the_protocol() {
        let prompt = render(&messages(
            r#"[{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "weather in Oslo and Rome?"},
                {"role": "assistant", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "b", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "a", "content": "12 C"},
                {"role": "tool", "tool_call_id": "b", "content": "25 C"}]"#,
        ))
        .unwrap();
        assert!(
            prompt.starts_with("You are terse.\n\nPrevious conversation:\nHuman: hi\nAI: hello\n"),
            "{prompt}"
        );
        assert!(
            prompt.contains("New input: weather in Oslo and Rome?\n"),
            "{prompt}"
        );
        assert!(prompt.ends_with(
            "Thought: Do I need to use a tool? Yes\nAction: w\nAction Input: {\"city\":\"Oslo\"}\nAction: w\nAction Input: {\"city\":\"Rome\"}\nObservation: 12 C\nObservation: 25 C\n"
        ), "{prompt}");
    }

    #[test]
    fn impossible_conversations_are_refused_by_position() {
        let err = render(&messages(r#"[{"role": "system", "content": "x"}]"#)).unwrap_err();
        assert!(err.message.contains("no user message"));
        let err = render(&messages(
            r#"[{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}]"#,
        ))
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1]"));
        let err = render(&messages(
            r#"[{"role": "user", "content": "x"}, {"role": "assistant", "content": "done"}]"#,
        ))
        .unwrap_err();
        assert!(err.message.contains("already ends"));
    }
}
