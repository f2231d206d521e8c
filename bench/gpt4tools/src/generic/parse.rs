//! Reading the calls out of a model message in the JSON protocol:
//! `Action:` names the function and `Action Input:` holds its arguments as
//! one JSON object, one pair per call, several calls to a message. Total: any bytes give calls and, where the message
//! could not be fully understood, the reason.

use loragen_protocol::react::{JsonCallsParser, OutputParser, Step};
use serde_json::Value;

use super::Call;

/// The calls found in one message, and why it was not a clean call (a
/// message without the protocol, or arguments that are not a JSON object).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedCalls {
    pub calls: Vec<Call>,
    pub problem: Option<String>,
}

/// The calls in `output`. An action whose input is not a JSON object still
/// counts as a call of that name, with no arguments, so that scoring sees
/// the chosen function.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::generic::parse_calls;
///
/// let p = parse_calls(b"Thought: Do I need to use a tool? Yes\nAction: add\nAction Input: {\"a\": 1}");
/// assert_eq!((p.calls[0].name.as_str(), &p.calls[0].arguments["a"]), ("add", &serde_json::json!(1)));
/// assert!(p.problem.is_none());
/// assert!(parse_calls(b"\xff nonsense").problem.is_some());
/// ```
pub fn parse_calls(output: &[u8]) -> ParsedCalls {
    match JsonCallsParser.parse(output) {
        Ok(Step::Answer { .. }) => ParsedCalls::default(),
        Ok(Step::Calls(made)) => {
            let mut parsed = ParsedCalls::default();
            for made in made {
                let arguments = match serde_json::from_str::<Value>(made.input.trim()) {
                    Ok(Value::Object(arguments)) => arguments,
                    Ok(_) | Err(_) => {
                        parsed.problem.get_or_insert_with(|| {
                            format!("the action input of `{}` is not a JSON object", made.action)
                        });
                        serde_json::Map::new()
                    }
                };
                parsed.calls.push(Call {
                    name: made.action,
                    arguments,
                });
            }
            parsed
        }
        Err(e) => ParsedCalls {
            calls: Vec::new(),
            problem: Some(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_calls_and_broken_inputs() {
        assert_eq!(
            parse_calls(b"Thought: Do I need to use a tool? No\nAI: hi"),
            ParsedCalls::default()
        );
        let multi = parse_calls(b"Action: f\nAction Input: {\"x\": [1,\n 2]}\nObservation:");
        assert_eq!(multi.calls[0].arguments["x"], serde_json::json!([1, 2]));
        let text = parse_calls(b"Action: f\nAction Input: [1, 2]");
        assert_eq!((text.calls.len(), text.calls[0].arguments.len()), (1, 0));
        assert!(text.problem.unwrap().contains("JSON object"));
        let none = parse_calls(b"Action: f\n");
        assert!(none.calls.is_empty() && none.problem.unwrap().contains("Action Input"));
    }

    #[test]
    fn parallel_calls_come_back_in_order_and_one_bad_input_is_named() {
        let two = parse_calls(
            b"Thought: Do I need to use a tool? Yes\nAction: f\nAction Input: {\"x\":1}\nAction: g\nAction Input: 7\n",
        );
        let names: Vec<&str> = two.calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["f", "g"]);
        assert_eq!(two.calls[0].arguments["x"], serde_json::json!(1));
        assert!(two.calls[1].arguments.is_empty());
        assert!(two.problem.unwrap().contains("`g`"));
    }
}
