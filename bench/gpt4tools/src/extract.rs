//! Pulling thoughts, actions, argument lists and answers out of a
//! GPT4Tools-protocol message, the way the reference evaluator's regexes
//! do: each line is searched for the first occurrence of a marker, and the
//! rest of that line, stripped, is the value.

/// The protocol lines of one message, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Answers to "Do I need to use a tool?", e.g. `Yes` or `No`.
    pub thoughts: Vec<String>,
    pub actions: Vec<String>,
    /// Each `Action Input:` split on `,` (fields are not trimmed).
    pub args: Vec<Vec<String>>,
    pub answers: Vec<String>,
}

use loragen_protocol::react::{ACTION, ACTION_INPUT, ANSWER, THOUGHT};

impl Extracted {
    pub fn from_text(text: &str) -> Self {
        let mut out = Extracted::default();
        for line in text.split('\n') {
            if let Some(v) = value_after(line, THOUGHT) {
                out.thoughts.push(v);
            }
            if let Some(v) = value_after(line, ACTION) {
                out.actions.push(v);
            }
            if let Some(v) = value_after(line, ACTION_INPUT) {
                out.args.push(v.split(',').map(str::to_owned).collect());
            }
            if let Some(v) = value_after(line, ANSWER) {
                out.answers.push(v);
            }
        }
        out
    }
}

/// The rest of `line` after the first `marker` followed by a space (the
/// reference's pattern is the marker and one space), stripped.
fn value_after(line: &str, marker: &str) -> Option<String> {
    line.match_indices(marker)
        .map(|(at, _)| &line[at + marker.len()..])
        .find_map(|rest| rest.strip_prefix(' '))
        .map(|value| value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_per_line_and_stripped() {
        let e = Extracted::from_text(
            "Thought: Do I need to use a tool?   Yes  \nAction:   Segment the Image  \nAction Input:  a.png, cat \nObservation:",
        );
        assert_eq!(e.thoughts, ["Yes"]);
        assert_eq!(e.actions, ["Segment the Image"]);
        assert_eq!(e.args, [vec!["a.png".to_owned(), " cat".to_owned()]]);
        assert!(e.answers.is_empty());
    }

    #[test]
    fn action_input_is_not_an_action() {
        let e = Extracted::from_text("Action Input: x");
        assert!(e.actions.is_empty());
        assert_eq!(e.args.len(), 1);
    }
}
