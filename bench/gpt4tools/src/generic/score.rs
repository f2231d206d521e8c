//! Scoring predicted calls: the exact function name (or one of the
//! accepted alternatives); every argument
//! compared by value with its accepted values; an argument whose accepted
//! values include `""` may be omitted; no extra arguments. Several calls
//! match in any order. Strings compare after the normalisation BFCL's
//! checker applies (case, spaces and some punctuation ignored).

use serde_json::Value;

use super::{AcceptedCall, Call, Expect, Query};

/// Whether `calls` answer `query`; `None` when the query has no expectation.
pub fn score_query(query: &Query, calls: &[Call]) -> Option<bool> {
    Some(match query.expect? {
        Expect::NoCall => calls.is_empty(),
        Expect::AnyCall => !calls.is_empty(),
        Expect::Calls => {
            calls.len() == query.answers.len()
                && assign(&query.answers, calls, &mut vec![false; calls.len()])
        }
    })
}

/// Where a scored query went right or wrong: the unseen-tools suite's
/// columns (`docs/unseen-tools.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Breakdown {
    /// A query that expects calls: whether the calls name the expected
    /// functions, one each (alternatives accepted), whatever the arguments.
    pub selection: Option<bool>,
    /// Given the right functions: whether the arguments are right as well.
    pub arguments: Option<bool>,
    /// A query that expects no call: whether none was made.
    pub no_call: Option<bool>,
}

/// The [`Breakdown`] of `calls` as an answer to `query`.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::generic::{breakdown, Call, Query};
///
/// let query: Query = serde_json::from_value(serde_json::json!({"id": "q", "messages": [],
///     "expect": "calls", "answers": [{"name": "add", "arguments": {"a": [1]}}]}))?;
/// let wrong_value: Call = serde_json::from_value(serde_json::json!({"name": "add", "arguments": {"a": 2}}))?;
/// let b = breakdown(&query, &[wrong_value]);
/// assert_eq!((b.selection, b.arguments, b.no_call), (Some(true), Some(false), None));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn breakdown(query: &Query, calls: &[Call]) -> Breakdown {
    match query.expect {
        Some(Expect::Calls) => {
            let names: Vec<AcceptedCall> = query
                .answers
                .iter()
                .map(|a| AcceptedCall {
                    arguments: Default::default(),
                    ..a.clone()
                })
                .collect();
            let by_name: Vec<Call> = calls
                .iter()
                .map(|c| Call {
                    name: c.name.clone(),
                    arguments: Default::default(),
                })
                .collect();
            let selection = calls.len() == names.len()
                && assign(&names, &by_name, &mut vec![false; calls.len()]);
            Breakdown {
                selection: Some(selection),
                arguments: selection.then(|| score_query(query, calls) == Some(true)),
                no_call: None,
            }
        }
        Some(Expect::NoCall) => Breakdown {
            no_call: Some(calls.is_empty()),
            ..Breakdown::default()
        },
        Some(Expect::AnyCall) | None => Breakdown::default(),
    }
}

/// Where a scored query went wrong, the first stage that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Calls were due and none was made.
    NoCall,
    /// Calls were made, but not as many as were due.
    CallCount,
    /// The right number of calls, but of other functions.
    WrongTool,
    /// The right functions with wrong, missing or extra arguments.
    Arguments,
    /// A call where none was due.
    FalseCall,
    /// Anything else: the right call with another thought, or a message
    /// of neither form (GPT4Tools items only).
    Other,
}

impl Stage {
    /// Every stage, in the order of a turn.
    pub const ALL: [Stage; 6] = [
        Stage::NoCall,
        Stage::CallCount,
        Stage::WrongTool,
        Stage::Arguments,
        Stage::FalseCall,
        Stage::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::NoCall => "no call where one is due",
            Stage::CallCount => "wrong number of calls",
            Stage::WrongTool => "wrong function",
            Stage::Arguments => "right function, wrong arguments",
            Stage::FalseCall => "a call where none is due",
            Stage::Other => "other (the thought, or the format)",
        }
    }
}

/// The failures of a run by stage: a table of counts, then `n` of them in
/// full (`failures` holds each one's stage and text, in item order), taken
/// in turn from each stage so that a small `n` still shows every stage.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::generic::{failure_report, Stage};
///
/// let failures = [
///     (Stage::Arguments, "q1: a=2".to_owned()),
///     (Stage::Arguments, "q2: a=3".to_owned()),
///     (Stage::NoCall, "q3: no call".to_owned()),
/// ];
/// let report = failure_report(10, &failures, 2);
/// assert!(report.contains("failures: 3 of 10 scored items"));
/// assert!(report.contains("| right function, wrong arguments | 2 |"));
/// assert!(report.contains("[no call where one is due] q3: no call\n"));
/// assert!(report.contains("[right function, wrong arguments] q1: a=2\n"));
/// assert!(!report.contains("q2"), "two shown, one per stage first");
/// ```
pub fn failure_report(scored: usize, failures: &[(Stage, String)], n: usize) -> String {
    let mut out = format!(
        "\nfailures: {} of {scored} scored items\n\n| stage | items |\n|---|---|\n",
        failures.len()
    );
    for stage in Stage::ALL {
        let count = failures.iter().filter(|(s, _)| *s == stage).count();
        out.push_str(&format!("| {} | {count} |\n", stage.label()));
    }
    let mut queues: Vec<_> = Stage::ALL
        .iter()
        .map(|stage| failures.iter().filter(move |(s, _)| s == stage))
        .collect();
    let mut shown = 0;
    while shown < n {
        let before = shown;
        for queue in &mut queues {
            if shown == n {
                break;
            }
            if let Some((stage, text)) = queue.next() {
                out.push_str(&format!("\n[{}] {text}\n", stage.label()));
                shown += 1;
            }
        }
        if shown == before {
            break;
        }
    }
    out
}

/// The stage at which `calls` fail `query`; `None` when they answer it or
/// it has no expectation.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::generic::{failed_stage, Call, Query, Stage};
///
/// let query: Query = serde_json::from_value(serde_json::json!({"id": "q", "messages": [],
///     "expect": "calls", "answers": [{"name": "add", "arguments": {"a": [1]}}]}))?;
/// let call = |name: &str, a: i64| -> Call {
///     serde_json::from_value(serde_json::json!({"name": name, "arguments": {"a": a}})).unwrap()
/// };
/// assert_eq!(failed_stage(&query, &[call("add", 1)]), None);
/// assert_eq!(failed_stage(&query, &[]), Some(Stage::NoCall));
/// assert_eq!(failed_stage(&query, &[call("add", 1), call("add", 1)]), Some(Stage::CallCount));
/// assert_eq!(failed_stage(&query, &[call("sub", 1)]), Some(Stage::WrongTool));
/// assert_eq!(failed_stage(&query, &[call("add", 2)]), Some(Stage::Arguments));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn failed_stage(query: &Query, calls: &[Call]) -> Option<Stage> {
    if score_query(query, calls)? {
        return None;
    }
    Some(match query.expect? {
        Expect::NoCall => Stage::FalseCall,
        Expect::AnyCall => Stage::NoCall,
        Expect::Calls if calls.is_empty() => Stage::NoCall,
        Expect::Calls if calls.len() != query.answers.len() => Stage::CallCount,
        Expect::Calls if breakdown(query, calls).selection == Some(false) => Stage::WrongTool,
        Expect::Calls => Stage::Arguments,
    })
}

/// Backtracking search for a one-to-one matching of answers to calls.
fn assign(answers: &[AcceptedCall], calls: &[Call], used: &mut Vec<bool>) -> bool {
    let Some((first, rest)) = answers.split_first() else {
        return true;
    };
    for i in 0..calls.len() {
        if !used[i] && call_matches(first, &calls[i]) {
            used[i] = true;
            if assign(rest, calls, used) {
                return true;
            }
            used[i] = false;
        }
    }
    false
}

pub fn call_matches(accepted: &AcceptedCall, call: &Call) -> bool {
    if !accepted.accepts_name(&call.name) {
        return false;
    }
    let given_ok = call.arguments.iter().all(|(k, v)| {
        accepted
            .arguments
            .get(k)
            .is_some_and(|values| values.iter().any(|a| value_matches(a, v)))
    });
    let omitted_ok = accepted
        .arguments
        .iter()
        .filter(|(k, _)| !call.arguments.contains_key(*k))
        .all(|(_, values)| values.iter().any(|a| a == &Value::String(String::new())));
    given_ok && omitted_ok
}

fn value_matches(accepted: &Value, given: &Value) -> bool {
    match (accepted, given) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
            _ => a == b,
        },
        (Value::String(a), Value::String(b)) => normalise(a) == normalise(b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_matches(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            // Nested ground truth lists accepted values per field.
            a.iter().all(|(k, av)| match (b.get(k), av) {
                (Some(bv), Value::Array(options)) => {
                    options.iter().any(|o| value_matches(o, bv)) || value_matches(av, bv)
                }
                (Some(bv), _) => value_matches(av, bv),
                (None, Value::Array(options)) => {
                    options.iter().any(|o| o == &Value::String(String::new()))
                }
                (None, _) => false,
            }) && b.keys().all(|k| a.contains_key(k))
        }
        (a, b) => a == b,
    }
}

fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !",./-_*^".contains(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn accepted(v: Value) -> AcceptedCall {
        serde_json::from_value(v).unwrap()
    }

    fn call(v: Value) -> Call {
        serde_json::from_value(v).unwrap()
    }

    fn query(expect: Expect, answers: Vec<AcceptedCall>) -> Query {
        Query {
            id: "q".into(),
            messages: vec![],
            tools: None,
            expect: Some(expect),
            answers,
        }
    }

    #[test]
    fn the_breakdown_separates_selection_from_arguments() {
        let q = query(
            Expect::Calls,
            vec![
                accepted(json!({"name": "a", "alternatives": ["a2"], "arguments": {"x": [1]}})),
                accepted(json!({"name": "b", "arguments": {}})),
            ],
        );
        let b = |calls: Value| breakdown(&q, &serde_json::from_value::<Vec<Call>>(calls).unwrap());
        let right =
            b(json!([{"name": "b", "arguments": {}}, {"name": "a2", "arguments": {"x": 1}}]));
        assert_eq!((right.selection, right.arguments), (Some(true), Some(true)));
        let args = b(json!([{"name": "a", "arguments": {"x": 2}}, {"name": "b", "arguments": {}}]));
        assert_eq!((args.selection, args.arguments), (Some(true), Some(false)));
        let tool = b(json!([{"name": "a", "arguments": {"x": 1}}, {"name": "c", "arguments": {}}]));
        assert_eq!((tool.selection, tool.arguments), (Some(false), None));
        let short = b(json!([{"name": "a", "arguments": {"x": 1}}]));
        assert_eq!(short.selection, Some(false), "one call too few");
        assert_eq!(right.no_call, None);

        let none = query(Expect::NoCall, vec![]);
        assert_eq!(breakdown(&none, &[]).no_call, Some(true));
        let made: Vec<Call> =
            serde_json::from_value(json!([{"name": "a", "arguments": {}}])).unwrap();
        assert_eq!(breakdown(&none, &made).no_call, Some(false));
        assert_eq!(breakdown(&none, &made).selection, None);
    }

    #[test]
    fn an_alternative_name_is_accepted_with_the_same_arguments() {
        let a = accepted(
            json!({"name": "read_file", "alternatives": ["read_text_file"],
            "arguments": {"path": ["/r/a.md"], "head": ["", 5]}}),
        );
        for name in ["read_file", "read_text_file"] {
            assert!(call_matches(
                &a,
                &call(json!({"name": name, "arguments": {"path": "/r/a.md"}}))
            ));
        }
        assert!(!call_matches(
            &a,
            &call(json!({"name": "read_media_file", "arguments": {"path": "/r/a.md"}}))
        ));
        assert!(!call_matches(
            &a,
            &call(json!({"name": "read_text_file", "arguments": {"path": "/r/b.md"}}))
        ));
    }

    #[test]
    fn values_optional_arguments_and_names() {
        let a = accepted(
            json!({"name": "weather", "arguments": {"city": ["Paris, France"], "unit": ["", "celsius"], "days": [3]}}),
        );
        assert!(call_matches(
            &a,
            &call(json!({"name": "weather", "arguments": {"city": "paris france", "days": 3.0}}))
        ));
        assert!(call_matches(
            &a,
            &call(
                json!({"name": "weather", "arguments": {"city": "Paris, France", "unit": "celsius", "days": 3}})
            )
        ));
        assert!(
            !call_matches(
                &a,
                &call(json!({"name": "weather", "arguments": {"city": "Paris", "days": 3}}))
            ),
            "wrong value"
        );
        assert!(
            !call_matches(
                &a,
                &call(json!({"name": "weather", "arguments": {"days": 3}}))
            ),
            "required city omitted"
        );
        assert!(
            !call_matches(
                &a,
                &call(
                    json!({"name": "weather", "arguments": {"city": "Paris, France", "days": 3, "x": 1}})
                )
            ),
            "extra"
        );
        assert!(
            !call_matches(
                &a,
                &call(
                    json!({"name": "Weather", "arguments": {"city": "Paris, France", "days": 3}})
                )
            ),
            "name"
        );
    }

    #[test]
    fn parallel_calls_match_in_any_order_and_no_call_items() {
        let answers = vec![
            accepted(json!({"name": "w", "arguments": {"city": ["Rome"]}})),
            accepted(json!({"name": "w", "arguments": {"city": ["Oslo"]}})),
        ];
        let q = query(Expect::Calls, answers);
        let calls = vec![
            call(json!({"name": "w", "arguments": {"city": "Oslo"}})),
            call(json!({"name": "w", "arguments": {"city": "Rome"}})),
        ];
        assert_eq!(score_query(&q, &calls), Some(true));
        assert_eq!(score_query(&q, &calls[..1]), Some(false));
        assert_eq!(score_query(&query(Expect::NoCall, vec![]), &[]), Some(true));
        assert_eq!(
            score_query(&query(Expect::NoCall, vec![]), &calls),
            Some(false)
        );
        assert_eq!(
            score_query(&query(Expect::AnyCall, vec![]), &calls[..1]),
            Some(true)
        );
    }
}
