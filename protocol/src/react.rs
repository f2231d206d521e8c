//! The GPT4Tools / ReAct protocol: its strings, the writers of prompts and
//! messages, and the parsers of the model's next message. One parser per
//! output format, behind [`OutputParser`]; every parser is total: any bytes
//! give a [`Step`] or a [`ParseError`], never a panic.
//!
//! Every string of the protocol is a constant here, and everything that
//! writes or reads a message (the agent, its grammar, the server, the
//! benchmark's targets and scorer, the generator's data) uses them.

use crate::render::REMINDER;

// Macros for the strings that also appear inside other constants, since
// `concat!` takes only literals.
macro_rules! question {
    () => {
        "Do I need to use a tool?"
    };
}
macro_rules! thought {
    () => {
        "Thought:"
    };
}
macro_rules! human {
    () => {
        "Human:"
    };
}
macro_rules! new_input {
    () => {
        "New input:"
    };
}

/// The question every message opens with, answered [`YES`] or [`NO`].
pub const QUESTION: &str = question!();
/// The opening of every message, before ` Yes` or ` No`.
pub const THOUGHT: &str = concat!(thought!(), " ", question!());
/// The answer to [`QUESTION`] when the message calls tools.
pub const YES: &str = "Yes";
/// The answer to [`QUESTION`] when the message answers the user.
pub const NO: &str = "No";
/// Starts the line naming the tool to call.
pub const ACTION: &str = "Action:";
/// Starts the line holding the call's input.
pub const ACTION_INPUT: &str = "Action Input:";
/// Starts the answer to the user.
pub const ANSWER: &str = "AI:";
/// Starts the line that brings a tool's result back.
pub const OBSERVATION: &str = "Observation:";
/// Starts a user turn of the previous conversation.
pub const HUMAN: &str = human!();
/// Starts the user's request of this turn.
pub const NEW_INPUT: &str = new_input!();
/// Heads the earlier turns.
pub const PREVIOUS_CONVERSATION: &str = "Previous conversation:";

/// A whole message calling `calls` (name and input each): the thought,
/// then an `Action:` and an `Action Input:` line per call. Like every
/// message, it ends without a newline; what follows (`Observation:` lines)
/// starts on the next line.
///
/// # Examples
///
/// ```
/// use loragen_protocol::react::{calls_message, Call, JsonCallsParser, OutputParser, Step};
///
/// let message = calls_message([("f", "{}"), ("g", "{\"x\":1}")]);
/// assert_eq!(
///     message,
///     "Thought: Do I need to use a tool? Yes\nAction: f\nAction Input: {}\nAction: g\nAction Input: {\"x\":1}"
/// );
/// assert_eq!(
///     JsonCallsParser.parse(message.as_bytes()),
///     Ok(Step::Calls(vec![Call::new("f", "{}"), Call::new("g", "{\"x\":1}")]))
/// );
/// ```
pub fn calls_message<'a>(calls: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = format!("{THOUGHT} {YES}");
    for (action, input) in calls {
        out.push_str(&format!("\n{ACTION} {action}\n{ACTION_INPUT} {input}"));
    }
    out
}

/// A whole message answering the user with `text`.
///
/// # Examples
///
/// ```
/// use loragen_protocol::react::{answer_message, OutputParser, ReactParser, Step};
///
/// let message = answer_message("Paris.");
/// assert_eq!(message, "Thought: Do I need to use a tool? No\nAI: Paris.");
/// assert_eq!(ReactParser.parse(message.as_bytes()), Ok(Step::Answer { text: "Paris.".into() }));
/// ```
pub fn answer_message(text: &str) -> String {
    format!("{THOUGHT} {NO}\n{ANSWER} {text}")
}

/// One tool call in a message: the tool's name and its raw input text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub action: String,
    pub input: String,
}

impl Call {
    pub fn new(action: impl Into<String>, input: impl Into<String>) -> Self {
        Call {
            action: action.into(),
            input: input.into(),
        }
    }
}

/// What the model decided in one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Call these tools, never none: exactly one in the GPT4Tools protocol
    /// ([`ReactParser`]), one or more in the JSON protocol
    /// ([`JsonCallsParser`]), whose calls run concurrently and whose
    /// observations come back in call order.
    Calls(Vec<Call>),
    /// Reply to the user without a tool.
    Answer { text: String },
}

/// Why a message could not be understood; shown to the model so it can
/// correct itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the reply is empty")]
    Empty,
    #[error("the reply follows neither the tool format ({ACTION} / {ACTION_INPUT}) nor the answer format ({ANSWER})")]
    NoProtocol,
    #[error("`{ACTION} {action}` has no `{ACTION_INPUT}` line")]
    MissingInput { action: String },
    #[error("the `{ACTION}` line names no tool")]
    EmptyAction,
    #[error("the thought says a tool is needed but no `{ACTION}` follows")]
    MissingAction,
}

/// A parser for one output format.
pub trait OutputParser: Send + Sync {
    fn parse(&self, output: &[u8]) -> Result<Step, ParseError>;
}

/// The GPT4Tools / ReAct text protocol:
/// `Thought: Do I need to use a tool? Yes|No`, then either
/// `Action:` + `Action Input:` or `AI:`.
///
/// # Examples
///
/// ```
/// use loragen_protocol::react::{OutputParser, ReactParser, Step};
///
/// let step = ReactParser.parse(b"Thought: Do I need to use a tool? No\nAI: Paris.");
/// assert_eq!(step, Ok(Step::Answer { text: "Paris.".into() }));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ReactParser;

/// The JSON function-calling protocol: the GPT4Tools layout, with the
/// arguments as one JSON object, and any number of calls in one message:
///
/// ```text
/// Thought: Do I need to use a tool? Yes
/// Action: get_weather
/// Action Input: {"city":"Paris"}
/// Action: get_weather
/// Action Input: {"city":"Tokyo"}
/// ```
///
/// The agent runs the calls concurrently and answers with one
/// `Observation:` line per call, in call order ([`observation_lines`]).
/// Each input runs to the next `Action:` or `Observation:` line.
///
/// # Examples
///
/// ```
/// use loragen_protocol::react::{Call, JsonCallsParser, OutputParser, Step};
///
/// let step = JsonCallsParser.parse(
///     b"Thought: Do I need to use a tool? Yes\nAction: f\nAction Input: {\"x\":1}\nAction: g\nAction Input: {}",
/// );
/// assert_eq!(step, Ok(Step::Calls(vec![Call::new("f", "{\"x\":1}"), Call::new("g", "{}")])));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCallsParser;

impl OutputParser for ReactParser {
    fn parse(&self, output: &[u8]) -> Result<Step, ParseError> {
        parse_message(output, false)
    }
}

impl OutputParser for JsonCallsParser {
    fn parse(&self, output: &[u8]) -> Result<Step, ParseError> {
        parse_message(output, true)
    }
}

/// Parses one message; with `parallel`, every `Action:` / `Action Input:`
/// pair is a call, else only the first.
fn parse_message(output: &[u8], parallel: bool) -> Result<Step, ParseError> {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let lines: Vec<&str> = text.lines().collect();
    let wants_tool = lines
        .iter()
        .find_map(|l| {
            l.find(QUESTION)
                .map(|at| l[at + QUESTION.len()..].trim().to_ascii_lowercase())
        })
        .map(|answer| answer.starts_with("yes"));
    let action_at = lines
        .iter()
        .position(|l| l.trim_start().starts_with(ACTION));
    let answer_at = lines
        .iter()
        .position(|l| l.trim_start().starts_with(ANSWER));

    // An explicit "No" with an answer is an answer; otherwise whichever
    // of action and answer comes first decides.
    let is_call = match (action_at, answer_at) {
        (Some(_), Some(_)) if wants_tool == Some(false) => false,
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if let (true, Some(first)) = (is_call, action_at) {
        let mut calls = Vec::new();
        let mut a = first;
        loop {
            let (call, next) = parse_call(&lines, a, parallel)?;
            calls.push(call);
            match next {
                Some(n) if parallel => a = n,
                _ => return Ok(Step::Calls(calls)),
            }
        }
    }
    if let Some(b) = answer_at {
        let mut answer = vec![after(lines[b], ANSWER)];
        answer.extend(lines[b + 1..].iter().copied());
        return Ok(Step::Answer {
            text: answer.join("\n").trim().to_owned(),
        });
    }
    if wants_tool == Some(true) {
        return Err(ParseError::MissingAction);
    }
    Err(ParseError::NoProtocol)
}

/// The call whose `Action:` line is `lines[a]`, and the line of the next
/// call's `Action:` when `parallel` lets one follow. The input runs to the
/// next `Observation:` line (JSON may span lines) or, with `parallel`, to
/// the next `Action:` line.
fn parse_call(
    lines: &[&str],
    a: usize,
    parallel: bool,
) -> Result<(Call, Option<usize>), ParseError> {
    let action = after(lines[a], ACTION).trim().to_owned();
    if action.is_empty() {
        return Err(ParseError::EmptyAction);
    }
    let starts = |l: &&str, marker: &str| l.trim_start().starts_with(marker);
    let Some(i) = lines[a + 1..]
        .iter()
        .take_while(|l| !(parallel && starts(l, ACTION)))
        .position(|l| starts(l, ACTION_INPUT))
        .map(|i| i + a + 1)
    else {
        return Err(ParseError::MissingInput { action });
    };
    let mut input = vec![after(lines[i], ACTION_INPUT)];
    let mut next = None;
    for (j, line) in lines.iter().enumerate().skip(i + 1) {
        if starts(line, OBSERVATION) {
            break;
        }
        if parallel && starts(line, ACTION) {
            next = Some(j);
            break;
        }
        input.push(line);
    }
    let input = input.join("\n").trim().to_owned();
    Ok((Call { action, input }, next))
}

/// The observations of a message's calls, one `Observation:` line each, in
/// call order: what the model reads after its calls.
///
/// # Examples
///
/// ```
/// use loragen_protocol::react::observation_lines;
///
/// assert_eq!(
///     observation_lines(&["12 C".into(), "25 C".into()]),
///     "Observation: 12 C\nObservation: 25 C\n"
/// );
/// ```
pub fn observation_lines(observations: &[String]) -> String {
    observations
        .iter()
        .map(|o| format!("{OBSERVATION} {o}\n"))
        .collect()
}

/// Where one model message ends: before the tool's observation, where
/// the model starts writing the user's next turn, or where it starts a
/// second thought. A message holds one thought; a learner trained on
/// messages without an end token goes on after its answer with another
/// "Thought: ... No / AI: ..." pair, up to the token limit, which the
/// answer would otherwise include and the GPT4Tools scorer counts as extra
/// thoughts.
pub const STEP_STOPS: [&str; 4] = [
    OBSERVATION,
    concat!("\n", new_input!()),
    concat!("\n", human!()),
    concat!("\n", thought!()),
];

/// The GPT4Tools-style prompt: the system part (absent in compiled mode),
/// the conversation so far, the new input and this turn's partial trace.
///
/// # Examples
///
/// ```
/// use loragen_protocol::react::conversation_prompt;
///
/// let p = conversation_prompt(None, &[("hi".into(), "hello".into())], "draw a cat", "");
/// assert!(p.starts_with("Previous conversation:\nHuman: hi\nAI: hello\n\nNew input: draw a cat\n"));
/// ```
pub fn conversation_prompt(
    system: Option<&str>,
    history: &[(String, String)],
    input: &str,
    trace: &str,
) -> String {
    let mut p = String::from(system.unwrap_or_default());
    p.push_str(PREVIOUS_CONVERSATION);
    p.push('\n');
    for (human, ai) in history {
        p.push_str(&format!("{HUMAN} {human}\n{ANSWER} {ai}\n"));
    }
    p.push_str(&format!("\n{NEW_INPUT} {input}\n{REMINDER}\n{trace}"));
    p
}

/// Where this turn's request sits in a prompt written by
/// [`conversation_prompt`]: after the last `New input: `, up to the
/// reminder line that follows it (the request may span lines), or to the
/// end. `None` without a `New input:`.
///
/// # Examples
///
/// ```
/// use loragen_protocol::react::{conversation_prompt, request_span};
///
/// let p = conversation_prompt(None, &[], "draw a cat\nin red", "Thought: x");
/// assert_eq!(&p[request_span(&p).unwrap()], "draw a cat\nin red");
/// assert_eq!(request_span("no marker"), None);
/// ```
pub fn request_span(prompt: &str) -> Option<std::ops::Range<usize>> {
    let start = prompt.rfind(NEW_INPUT)? + NEW_INPUT.len();
    let start = start + usize::from(prompt[start..].starts_with(' '));
    let end = prompt[start..]
        .find(&format!("\n{REMINDER}"))
        .map_or(prompt.len(), |e| start + e);
    Some(start..end)
}

/// The rest of `line` after the first `marker` (which the caller has seen
/// at its start, after whitespace).
fn after<'a>(line: &'a str, marker: &str) -> &'a str {
    line.find(marker)
        .map_or("", |at| &line[at + marker.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Step, ParseError> {
        ReactParser.parse(s.as_bytes())
    }

    #[test]
    fn tool_call_and_answer() {
        assert_eq!(
            parse("Thought: Do I need to use a tool? Yes\nAction: Segment the Image\nAction Input: a.png\nObservation:"),
            Ok(Step::Calls(vec![Call::new("Segment the Image", "a.png")]))
        );
        assert_eq!(
            parse("Thought: Do I need to use a tool? No\nAI: Paris.\nIt is in France."),
            Ok(Step::Answer {
                text: "Paris.\nIt is in France.".into()
            })
        );
    }

    #[test]
    fn json_input_may_span_lines() {
        let step = parse("Action: add\nAction Input: {\"a\": 1,\n \"b\": 2}\nObservation: 3");
        assert_eq!(
            step,
            Ok(Step::Calls(vec![Call::new(
                "add",
                "{\"a\": 1,\n \"b\": 2}"
            )]))
        );
    }

    #[test]
    fn the_gpt4tools_protocol_takes_one_call_the_json_protocol_all() {
        let two = "Thought: Do I need to use a tool? Yes\nAction: f\nAction Input: {\"a\":\n1}\nAction: g\nAction Input: {}\nObservation: x";
        assert_eq!(
            JsonCallsParser.parse(two.as_bytes()),
            Ok(Step::Calls(vec![
                Call::new("f", "{\"a\":\n1}"),
                Call::new("g", "{}")
            ]))
        );
        // One call per message: the second pair is part of the first input.
        assert_eq!(
            parse(two),
            Ok(Step::Calls(vec![Call::new(
                "f",
                "{\"a\":\n1}\nAction: g\nAction Input: {}"
            )]))
        );
        // A later call without its input is an error, not a dropped call.
        assert_eq!(
            JsonCallsParser
                .parse(b"Action: f\nAction Input: {}\nAction: g\nAction: h\nAction Input: {}"),
            Err(ParseError::MissingInput { action: "g".into() })
        );
        assert_eq!(
            JsonCallsParser.parse(b"Action: f\nAction Input: {}\nAction:  \nAction Input: {}"),
            Err(ParseError::EmptyAction)
        );
    }

    #[test]
    fn broken_replies_are_typed_errors() {
        assert_eq!(parse("  \n"), Err(ParseError::Empty));
        assert_eq!(parse("hello there"), Err(ParseError::NoProtocol));
        assert_eq!(
            parse("Thought: Do I need to use a tool? Yes\n"),
            Err(ParseError::MissingAction)
        );
        assert_eq!(
            parse("Action: x\n"),
            Err(ParseError::MissingInput { action: "x".into() })
        );
        assert_eq!(
            parse("Action:   \nAction Input: y"),
            Err(ParseError::EmptyAction)
        );
        assert_eq!(
            ReactParser.parse(b"\xff\xfe\nAI: hi \xc3"),
            Ok(Step::Answer {
                text: "hi \u{fffd}".into()
            })
        );
    }
}
