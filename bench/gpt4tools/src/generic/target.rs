//! BFCL queries as training examples for the edge model in the JSON
//! protocol (see `docs/generator.md`, "BFCL training targets"). The rules:
//!
//! - **Values.** Each argument takes the first of its accepted values,
//!   nested objects likewise key by key. An argument whose first accepted
//!   value is `""` (BFCL's "may be omitted") is left out; so is one with
//!   no accepted value.
//! - **Layout.** Arguments are compact JSON with keys in the order the call
//!   grammar fixes: the schema's required keys, then its optional ones,
//!   each in the schema map's order. The target is therefore a string the
//!   constrained decoder can produce.
//! - **Parallel calls.** One `Action:` / `Action Input:` pair per call, in
//!   the ground truth's order, then `Observation:`.
//! - **Irrelevance.** A query whose answer is no call gets
//!   `Thought: Do I need to use a tool? No` and [`IRRELEVANT_ANSWER`].
//! - **Left out.** Queries without an expected answer or that accept any
//!   call (relevance) have no single target; targets whose arguments fail
//!   the tool's own schema are dropped and counted.

use serde_json::{Map, Value};

use super::{Expect, Query, ToolSet};
use crate::dataset::Item;
use crate::error::{Error, Result};
use loragen_protocol::react::{answer_message, calls_message, conversation_prompt, OBSERVATION};
use loragen_protocol::render::system_prompt;

/// The answer text of a query that no offered function serves.
pub const IRRELEVANT_ANSWER: &str = "None of the available functions can do that.";

/// Why queries gave no training item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// No expected answer, or any call accepted.
    pub no_single_target: usize,
    /// Target arguments that fail the tool's schema.
    pub invalid: usize,
}

/// Training items (GPT4Tools layout: the JSON system part, the
/// conversation, the target output) for `queries` over `tools`.
pub fn training_items(tools: &ToolSet, queries: &[Query]) -> Result<(Vec<Item>, Skipped)> {
    let mut items = Vec::new();
    let mut skipped = Skipped::default();
    for query in queries {
        let offered = tools.for_query(query)?;
        let output = match query.expect {
            Some(Expect::NoCall) => answer_message(IRRELEVANT_ANSWER),
            Some(Expect::Calls) if !query.answers.is_empty() => {
                let mut calls = Vec::new();
                let mut valid = true;
                for call in &query.answers {
                    let Some(tool) = offered.iter().find(|t| t.name == call.name) else {
                        return Err(Error::Config(format!(
                            "query {}: the answer calls `{}`, which is not offered",
                            query.id, call.name
                        )));
                    };
                    let arguments = first_accepted(&Value::Object(
                        call.arguments
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::Array(v.clone())))
                            .collect(),
                    ));
                    valid &= jsonschema::is_valid(&tool.parameters, &arguments);
                    calls.push((call.name.as_str(), compact(&arguments, &tool.parameters)));
                }
                if !valid {
                    skipped.invalid += 1;
                    continue;
                }
                let message = calls_message(calls.iter().map(|(n, a)| (*n, a.as_str())));
                format!("{message}\n{OBSERVATION}")
            }
            _ => {
                skipped.no_single_target += 1;
                continue;
            }
        };
        let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
        let input: Vec<&str> = query.messages.iter().map(|m| m.content.as_str()).collect();
        items.push(Item {
            id: query.id.clone(),
            instruction: conversation_prompt(
                Some(&system_prompt(&specs)),
                &[],
                &input.join("\n"),
                "",
            ),
            input: String::new(),
            output,
        });
    }
    Ok((items, skipped))
}

/// An object of accepted-value lists resolved to one value per key: the
/// first accepted, recursively; keys whose first is `""` or that have none
/// are left out.
fn first_accepted(accepted: &Value) -> Value {
    let Value::Object(map) = accepted else {
        return accepted.clone();
    };
    let mut out = Map::new();
    for (key, options) in map {
        let first = match options {
            Value::Array(options) => options.first(),
            other => Some(other),
        };
        match first {
            None => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(v @ Value::Object(_)) => {
                out.insert(key.clone(), first_accepted(v));
            }
            Some(v) => {
                out.insert(key.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// `value` as compact JSON with object keys in the call grammar's order
/// for `schema`: required keys, then the others, each in the schema map's
/// order; keys the schema does not declare last, in map order.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::generic::compact;
/// use serde_json::json;
///
/// let schema = json!({"type": "object", "properties": {"a": {}, "b": {}}, "required": ["b"]});
/// assert_eq!(compact(&json!({"a": 1, "b": [2, 3]}), &schema), r#"{"b":[2,3],"a":1}"#);
/// ```
pub fn compact(value: &Value, schema: &Value) -> String {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let declared: Vec<&String> = props.map(|p| p.keys().collect()).unwrap_or_default();
            let mut order: Vec<&String> = declared
                .iter()
                .filter(|k| required.contains(&k.as_str()))
                .chain(declared.iter().filter(|k| !required.contains(&k.as_str())))
                .copied()
                .collect();
            order.extend(map.keys().filter(|k| !declared.contains(k)));
            let pairs: Vec<String> = order
                .into_iter()
                .filter_map(|k| {
                    let v = map.get(k)?;
                    let sub = props.and_then(|p| p.get(k)).unwrap_or(&Value::Null);
                    Some(format!("{}:{}", Value::String(k.clone()), compact(v, sub)))
                })
                .collect();
            format!("{{{}}}", pairs.join(","))
        }
        Value::Array(items) => {
            let sub = schema.get("items").unwrap_or(&Value::Null);
            let parts: Vec<String> = items.iter().map(|v| compact(v, sub)).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::generic::{AcceptedCall, Message, ToolDef};
    use serde_json::json;

    fn tools() -> ToolSet {
        ToolSet::new(vec![ToolDef {
            id: None,
            name: "weather".into(),
            description: "Weather of a city.".into(),
            parameters: json!({"type": "object", "properties": {
                "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]},
                "when": {"type": "object", "properties": {"day": {"type": "integer"}, "hour": {"type": "integer"}}, "required": ["day"]}},
                "required": ["city"]}),
        }])
        .unwrap()
    }

    fn query(expect: Option<Expect>, answers: Vec<AcceptedCall>) -> Query {
        Query {
            id: "q_1".into(),
            messages: vec![Message {
                role: "user".into(),
                content: "Weather in Paris and Oslo?".into(),
            }],
            tools: None,
            expect,
            answers,
        }
    }

    fn call(city: &str, unit: Vec<Value>) -> AcceptedCall {
        AcceptedCall {
            name: "weather".into(),
            alternatives: Vec::new(),
            arguments: [
                ("city".to_owned(), vec![json!(city)]),
                ("unit".to_owned(), unit),
                (
                    "when".to_owned(),
                    vec![json!({"hour": ["", 3], "day": [2]})],
                ),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn parallel_calls_take_first_values_omit_optional_ones_and_keep_grammar_order() {
        let q = query(
            Some(Expect::Calls),
            vec![
                call("Paris", vec![json!(""), json!("c")]),
                call("Oslo", vec![json!("f"), json!("")]),
            ],
        );
        let (items, skipped) = training_items(&tools(), &[q]).unwrap();
        assert_eq!(skipped, Skipped::default());
        assert_eq!(
            items[0].output,
            "Thought: Do I need to use a tool? Yes\nAction: weather\nAction Input: {\"city\":\"Paris\",\"when\":{\"day\":2}}\nAction: weather\nAction Input: {\"city\":\"Oslo\",\"unit\":\"f\",\"when\":{\"day\":2}}\nObservation:"
        );
        assert!(items[0].system_part().contains("\"name\":\"weather\""));
        assert!(items[0]
            .compiled_prompt()
            .contains("New input: Weather in Paris and Oslo?"));
    }

    #[test]
    fn irrelevance_answers_relevance_and_invalid_targets_are_skipped() {
        let (items, skipped) = training_items(
            &tools(),
            &[
                query(Some(Expect::NoCall), vec![]),
                query(Some(Expect::AnyCall), vec![]),
                query(None, vec![]),
                query(
                    Some(Expect::Calls),
                    vec![call("Paris", vec![json!("kelvin")])],
                ),
            ],
        )
        .unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0].output.ends_with(IRRELEVANT_ANSWER));
        assert_eq!(
            skipped,
            Skipped {
                no_single_target: 2,
                invalid: 1
            }
        );
    }
}
