//! `POST /v1/chat/completions`: the request's tools become the compiled
//! adapter's system part and the call grammar, never prompt text; the
//! message is generated on the model thread and returned as `tool_calls`
//! or content, whole or as server-sent events.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use loragen_agent::grammar::{call_grammar_with, CallChoice, GrammarParams};
use loragen_agent::runtime::{GenerateParams, Sampling};
use loragen_protocol::react::{
    answer_message, JsonCallsParser, OutputParser, Step, ACTION, STEP_STOPS,
};
use loragen_protocol::ToolSpec;
use loragen_tools::ToolRegistry;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::edge::{ChoiceGrammars, EdgeEvent, EdgeJob, Generated};
use super::error::ApiError;
use super::openai::{
    finish_reason, Answer, ChatCompletion, ChatCompletionChunk, ChatRequest, Delta,
    ResponseToolCall, ToolChoice, Usage,
};
use super::{body, AppState, ServeConfig};

/// How an answer message starts under the call grammar; what follows it is
/// the content streamed to the client.
/// What the stream holds back before an answer's content starts.
static ANSWER_PREFIX: LazyLock<String> = LazyLock::new(|| answer_message(""));

pub(super) async fn completions(
    State(state): State<Arc<AppState>>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(bytes, state.config.max_body)?;
    let request = ChatRequest::parse(&bytes)?;
    let edge = state
        .edge
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this server has no edge role"))?;
    if request.model != state.config.model_id {
        return Err(ApiError::not_found(format!(
            "the model `{}` does not exist here; this server serves `{}`",
            request.model, state.config.model_id
        ))
        .with_param("model"));
    }
    let job = job(&request, &state.config)?;
    let mut events = edge.submit(job)?;
    let id = completion_id();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let model = request.model.clone();
    if !request.stream {
        let generated = loop {
            match events.recv().await {
                Some(EdgeEvent::Text(_)) => {}
                Some(EdgeEvent::Done(result)) => break result?,
                None => return Err(ApiError::internal("the model thread dropped the request")),
            }
        };
        let answer = answer_of(&generated);
        let usage = usage(&generated);
        return Ok(Json(ChatCompletion::new(
            &id,
            &model,
            created,
            &answer,
            generated.truncated,
            usage,
        ))
        .into_response());
    }
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let (tx, rx) = mpsc::unbounded_channel::<Result<Event, Infallible>>();
    tokio::spawn(async move {
        let send = |chunk: &ChatCompletionChunk| match Event::default().json_data(chunk) {
            Ok(event) => tx.send(Ok(event)).map_err(drop),
            Err(_) => Err(()),
        };
        let mut shaper = ContentStream::default();
        let chunk = |delta| ChatCompletionChunk::new(&id, &model, created, delta, None);
        if send(&chunk(Delta::start())).is_err() {
            return;
        }
        while let Some(event) = events.recv().await {
            match event {
                EdgeEvent::Text(piece) => {
                    if let Some(delta) = shaper.push(&piece) {
                        // A closed stream drops `events`, which stops the generation.
                        if send(&chunk(Delta::content(delta))).is_err() {
                            return;
                        }
                    }
                }
                EdgeEvent::Done(Ok(generated)) => {
                    let answer = answer_of(&generated);
                    match &answer {
                        Answer::ToolCalls(calls) => {
                            let _ = send(&chunk(Delta::tool_calls(ResponseToolCall::list(
                                &id, calls, true,
                            ))));
                        }
                        Answer::Content(text) => {
                            if let Some(rest) = text.strip_prefix(shaper.sent.as_str()) {
                                if !rest.is_empty() {
                                    let _ = send(&chunk(Delta::content(rest)));
                                }
                            }
                        }
                    }
                    let finish = finish_reason(&answer, generated.truncated);
                    let _ = send(&ChatCompletionChunk::new(
                        &id,
                        &model,
                        created,
                        Delta::default(),
                        Some(finish),
                    ));
                    if include_usage {
                        let _ = send(&ChatCompletionChunk::usage(
                            &id,
                            &model,
                            created,
                            usage(&generated),
                        ));
                    }
                    break;
                }
                EdgeEvent::Done(Err(e)) => {
                    let _ = tx.send(Ok(Event::default().data(e.body().to_string())));
                    break;
                }
            }
        }
        let _ = tx.send(Ok(Event::default().data("[DONE]")));
    });
    // Comments on an idle stream (queued behind other requests, or a slow
    // prefill) keep proxies from closing it.
    Ok(Sse::new(UnboundedReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The generation job of a request: prompt, system part, grammar, limits.
fn job(request: &ChatRequest, config: &ServeConfig) -> Result<EdgeJob, ApiError> {
    let prompt = super::prompt::render(&request.messages)?;
    let mut specs = request.specs();
    if specs.is_empty() {
        specs.clone_from(&config.default_tools);
    }
    let (choice, offered) = match &request.tool_choice {
        None => (CallChoice::Auto, specs.clone()),
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => (CallChoice::Auto, specs.clone()),
            "none" => (CallChoice::None, Vec::new()),
            "required" if specs.is_empty() => {
                return Err(ApiError::invalid("tool_choice `required` needs tools")
                    .with_param("tool_choice"))
            }
            "required" => (CallChoice::Required, specs.clone()),
            other => {
                return Err(ApiError::invalid(format!(
                    "tool_choice `{other}` is none of auto, none, required or a named function"
                ))
                .with_param("tool_choice"))
            }
        },
        Some(ToolChoice::Named { function }) => {
            let named: Vec<ToolSpec> = specs
                .iter()
                .filter(|s| s.name == function.name)
                .cloned()
                .collect();
            if named.is_empty() {
                return Err(ApiError::invalid(format!(
                    "tool_choice names `{}`, which is not among the tools",
                    function.name
                ))
                .with_param("tool_choice"));
            }
            (CallChoice::Required, named)
        }
    };
    let max_calls = if request.parallel_tool_calls == Some(false) {
        1
    } else {
        config.max_calls
    };
    // Every tool must compile, offered or not; when all are offered, the
    // message's own grammar is that check.
    if offered.len() == specs.len() {
        check_count(&specs, config)?;
    } else {
        check_tools(&specs, config)?;
    }
    // A selector may veto or require only a call the request leaves to
    // the model.
    let choice_grammars = match choice {
        CallChoice::Auto if !offered.is_empty() => Some(ChoiceGrammars {
            none: grammar(&offered, CallChoice::None, max_calls)?,
            required: grammar(&offered, CallChoice::Required, max_calls)?,
        }),
        _ => None,
    };
    let grammar = grammar(&offered, choice, max_calls)?;
    let max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .map_or(config.default_max_tokens, |n| n as usize);
    if max_tokens == 0 || max_tokens > config.max_max_tokens {
        return Err(ApiError::invalid(format!(
            "max_tokens must be in 1..={}",
            config.max_max_tokens
        ))
        .with_param("max_tokens"));
    }
    Ok(EdgeJob {
        prompt,
        system: (!specs.is_empty()).then(|| loragen_protocol::render::system_prompt(&specs)),
        params: GenerateParams::default()
            .with_max_tokens(max_tokens)
            .with_stop(STEP_STOPS)
            .with_grammar(Some(grammar))
            .with_jump_forward(true)
            .with_sampling(sampling(request)?),
        names: offered.iter().map(|s| s.name.clone()).collect(),
        choice_grammars,
    })
}

/// Refuses more tools than allowed, duplicate names, and schemas the call
/// grammar cannot express, naming the tool.
pub(super) fn check_tools(specs: &[ToolSpec], config: &ServeConfig) -> Result<(), ApiError> {
    check_count(specs, config)?;
    grammar(specs, CallChoice::Auto, 1).map(drop)
}

fn check_count(specs: &[ToolSpec], config: &ServeConfig) -> Result<(), ApiError> {
    if specs.len() > config.max_tools {
        return Err(ApiError::invalid(format!(
            "{} tools, more than the {} this server takes",
            specs.len(),
            config.max_tools
        ))
        .with_param("tools"));
    }
    Ok(())
}

fn grammar(specs: &[ToolSpec], choice: CallChoice, max_calls: usize) -> Result<String, ApiError> {
    // OpenAI's rule, and what keeps the system part in the JSON style that
    // `render::system_prompt` gives any tool list with JSON arguments.
    if let Some(spec) = specs
        .iter()
        .find(|s| s.input_kind() != loragen_protocol::spec::InputKind::Json)
    {
        return Err(ApiError::invalid(format!(
            "the parameters of `{}` must be a JSON Schema of type object",
            spec.name
        ))
        .with_param("tools"));
    }
    // Names and schemas are checked as the agent's registry checks them.
    ToolRegistry::from_specs(specs.iter().cloned())
        .map_err(|e| ApiError::invalid(e.to_string()).with_param("tools"))?;
    call_grammar_with(
        specs,
        &GrammarParams::default()
            .with_max_calls(max_calls)
            .with_choice(choice),
    )
    .map_err(|e| {
        ApiError::invalid(format!("a tool schema does not compile: {e}")).with_param("tools")
    })
}

fn sampling(request: &ChatRequest) -> Result<Sampling, ApiError> {
    let temperature = request.temperature.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid("temperature must be in 0..=2").with_param("temperature"));
    }
    let top_p = request.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid("top_p must be in (0, 1]").with_param("top_p"));
    }
    if temperature == 0.0 {
        return Ok(Sampling::Greedy);
    }
    let seed = request.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    });
    Ok(Sampling::Random {
        temperature,
        top_p,
        seed,
    })
}

/// The message as calls or content. Under the grammar a message always
/// parses; should one not, its text is returned as content. A message cut
/// by the token limit keeps only its complete calls (see [`complete_calls`]).
fn answer_of(generated: &Generated) -> Answer {
    let text = if generated.truncated {
        complete_calls(&generated.text)
    } else {
        &generated.text
    };
    match JsonCallsParser.parse(text.as_bytes()) {
        Ok(Step::Calls(calls)) => Answer::ToolCalls(calls),
        Ok(Step::Answer { text }) => Answer::Content(text),
        // Cut before its first call was complete: nothing to return.
        Err(_) if generated.truncated => Answer::Content(String::new()),
        Err(_) => Answer::Content(generated.text.trim().to_owned()),
    }
}

/// The part of a cut message up to its last complete call. Under the call
/// grammar every call ends with a newline after its input, so a line
/// without one is cut, and an `Action:` line left without its input line
/// is dropped with it. Answers (`AI:` lines) are kept as they are.
fn complete_calls(text: &str) -> &str {
    let action = format!("{ACTION} ");
    if !text.contains(&format!("\n{action}")) {
        return text;
    }
    let mut end = text.rfind('\n').map_or(0, |i| i + 1);
    let last_line_start = text[..end.saturating_sub(1)]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    if text[last_line_start..end].starts_with(&action) {
        end = last_line_start;
    }
    &text[..end]
}

fn usage(generated: &Generated) -> Usage {
    Usage::new(generated.prompt_tokens, generated.completion_tokens)
}

fn completion_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Turns the raw message, as it is generated, into content deltas: once
/// the message is known to be an answer, the text after `AI: ` streams,
/// trailing whitespace held back until more text follows it.
#[derive(Debug, Default)]
struct ContentStream {
    raw: String,
    /// Content already sent.
    sent: String,
}

impl ContentStream {
    fn push(&mut self, piece: &str) -> Option<String> {
        self.raw.push_str(piece);
        let content = self.raw.strip_prefix(ANSWER_PREFIX.as_str())?.trim_end();
        let delta = content.strip_prefix(self.sent.as_str())?;
        if delta.is_empty() {
            return None;
        }
        let delta = delta.to_owned();
        self.sent.push_str(&delta);
        Some(delta)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cut_message_keeps_only_its_complete_calls() {
        let generated = |text: &str| Generated {
            text: text.into(),
            truncated: true,
            prompt_tokens: 1,
            completion_tokens: 1,
            adapter_cached: None,
            selector_call: CallChoice::Auto,
        };
        let head = "Thought: Do I need to use a tool? Yes\nAction: f\nAction Input: {\"a\":1}\n";
        for cut in [
            format!("{head}Action: f\nAction Input: {{\"a\":"),
            format!("{head}Action: f\nAction Inp"),
            format!("{head}Action: f\n"),
            format!("{head}Act"),
            head.to_owned(),
        ] {
            assert_eq!(
                answer_of(&generated(&cut)),
                Answer::ToolCalls(vec![loragen_protocol::react::Call::new("f", "{\"a\":1}")]),
                "{cut:?}"
            );
        }
        let first_cut = "Thought: Do I need to use a tool? Yes\nAction: f\nAction Input: {\"a";
        assert_eq!(
            answer_of(&generated(first_cut)),
            Answer::Content(String::new())
        );
        let answer = "Thought: Do I need to use a tool? No\nAI: It is sun";
        assert_eq!(
            answer_of(&generated(answer)),
            Answer::Content("It is sun".into())
        );
    }

    #[test]
    fn content_streams_only_for_answers_and_holds_back_trailing_space() {
        let mut s = ContentStream::default();
        let mut out = String::new();
        for piece in [
            "Thought: Do I need",
            " to use a tool? No\nAI:",
            " Paris",
            " is",
            " big. ",
            "\n",
        ] {
            if let Some(d) = s.push(piece) {
                out.push_str(&d);
            }
        }
        assert_eq!(out, "Paris is big.");
        let mut calls = ContentStream::default();
        assert_eq!(
            calls.push("Thought: Do I need to use a tool? Yes\nAction: f\n"),
            None
        );
    }

    fn request(json: &str) -> ChatRequest {
        ChatRequest::parse(json.as_bytes()).unwrap()
    }

    const TOOLS: &str = r#"[{"type": "function", "function": {"name": "w", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                            {"type": "function", "function": {"name": "t", "parameters": {"type": "object", "properties": {}}}}]"#;

    #[test]
    fn tool_choice_shapes_the_grammar() {
        let config = ServeConfig::default();
        let with = |choice: &str| {
            job(
                &request(&format!(
                    r#"{{"model": "m", "messages": [{{"role": "user", "content": "hi"}}], "tools": {TOOLS}, "tool_choice": {choice}}}"#
                )),
                &config,
            )
        };
        let auto = with(r#""auto""#).unwrap();
        // Only a call left to the model may be vetoed or required; it then
        // decodes as tool_choice "none" or "required" would.
        assert_eq!(auto.names, ["w", "t"]);
        let none_job = with(r#""none""#).unwrap();
        assert!(none_job.names.is_empty() && none_job.choice_grammars.is_none());
        let required_job = with(r#""required""#).unwrap();
        let grammars = auto.choice_grammars.as_ref().unwrap();
        assert_eq!(Some(&grammars.none), none_job.params.grammar.as_ref());
        assert_eq!(
            Some(&grammars.required),
            required_job.params.grammar.as_ref()
        );
        let grammar = auto.params.grammar.unwrap();
        assert!(grammar.contains("(yes | no)") && grammar.contains("\"w\""));
        assert!(
            !auto.prompt.contains("\"w\""),
            "definitions stay out of the prompt"
        );
        assert!(auto.system.unwrap().contains("\"name\":\"w\""));
        let none = with(r#""none""#).unwrap().params.grammar.unwrap();
        assert!(none.starts_with(r#"root ::= "Thought: Do I need to use a tool? " no"#));
        let named = with(r#"{"type": "function", "function": {"name": "t"}}"#).unwrap();
        assert_eq!(named.names, ["t"]);
        assert!(named.choice_grammars.is_none());
        let named = named.params.grammar.unwrap();
        assert!(
            named.contains(" yes\n") && !named.contains("\"w\""),
            "{named}"
        );
        assert_eq!(
            with(r#""sometimes""#).unwrap_err().param.as_deref(),
            Some("tool_choice")
        );
        assert!(with(r#"{"type": "function", "function": {"name": "x"}}"#).is_err());
    }

    #[test]
    fn too_many_tools_and_uncompilable_schemas_are_refused() {
        let config = ServeConfig::default().with_max_tools(1);
        let err = job(
            &request(&format!(
                r#"{{"model": "m", "messages": [{{"role": "user", "content": "hi"}}], "tools": {TOOLS}}}"#
            )),
            &config,
        )
        .unwrap_err();
        assert!(err.message.contains("more than the 1"), "{}", err.message);
        let err = job(
            &request(r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "p", "parameters": {"type": "object", "properties": {"s": {"type": "string", "pattern": "^a+$"}}}}}]}"#),
            &ServeConfig::default(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("pattern") && err.message.contains('p'),
            "{}",
            err.message
        );
    }
}
