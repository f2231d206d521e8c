//! The compact JSON call grammar, checked by llama.cpp's own grammar engine
//! on the real edge model's tokenizer: for a corpus of schemas (every
//! distinct schema shape of the allowed BFCL split, plus hand-written ones
//! for the features BFCL lacks), values generated from the schema by
//! proptest are admitted, and mutated invalid ones are refused.
//!
//! `tests/fixtures/bfcl_schema_shapes.json` holds one schema per distinct
//! shape (annotations dropped; shape = structure, types, required
//! positions and enum sizes) of `loragen data bfcl`'s train and val tools.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use loragen::agent::grammar::{call_grammar_with, CallChoice, GrammarParams};
use loragen::tools::ToolSpec;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// Compact JSON texts of values of `schema`, keys in the schema map's
/// order (required first), as the grammar writes them.
fn values(schema: &Value) -> BoxedStrategy<String> {
    values_at(schema, 0)
}

/// `values`, `depth` references deep: past three, a `$ref` (only the
/// recursive tree node uses one) yields a leaf.
fn values_at(schema: &Value, depth: usize) -> BoxedStrategy<String> {
    let values = |s: &Value| values_at(s, depth);
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return proptest::sample::select(options.clone())
            .prop_map(|v| v.to_string())
            .boxed();
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        return Union::new(options.iter().map(values)).boxed();
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        if depth >= 3 {
            return Just(r#"{"name":"leaf"}"#.to_owned()).boxed();
        }
        let name = target.rsplit('/').next().unwrap();
        return values_at(&SHARED_DEFS[name], depth + 1);
    }
    let typed = |t: &str| {
        let mut s = schema.clone();
        s["type"] = json!(t);
        values_at(&s, depth)
    };
    match schema.get("type") {
        Some(Value::Array(types)) => {
            Union::new(types.iter().map(|t| typed(t.as_str().unwrap()))).boxed()
        }
        Some(Value::String(t)) => match t.as_str() {
            "string" => {
                let max = schema
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .unwrap_or(24);
                // Quotes, backslashes, control characters and non-ASCII
                // text, all escaped or kept as serde_json writes them.
                proptest::collection::vec(
                    prop_oneof![
                        4 => proptest::char::range('a', 'z'),
                        1 => Just('"'), 1 => Just('\\'), 1 => Just('\n'), 1 => Just('é'), 1 => Just('東'),
                        1 => Just(' '), 1 => Just('/'),
                    ],
                    0..=max as usize,
                )
                .prop_map(|cs| Value::String(cs.into_iter().collect()).to_string())
                .boxed()
            }
            "integer" if schema.get("minimum").is_some() => {
                (0u32..1_000_000).prop_map(|n| n.to_string()).boxed()
            }
            "integer" => any::<i32>().prop_map(|n| n.to_string()).boxed(),
            "number" => (-1.0e6..1.0e6f64)
                .prop_map(|x| json!(x).to_string())
                .boxed(),
            "boolean" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
            "null" => Just("null".to_owned()).boxed(),
            "array" => {
                let item = schema.get("items").map_or_else(any_json, values);
                let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
                let max = schema.get("maxItems").and_then(Value::as_u64).unwrap_or(4) as usize;
                proptest::collection::vec(item, min..=max.min(min + 4))
                    .prop_map(|xs| format!("[{}]", xs.join(",")))
                    .boxed()
            }
            "object" => object(schema, depth),
            other => panic!("no generator for type {other}"),
        },
        _ if schema.get("properties").is_some() => object(schema, depth),
        _ => any_json(),
    }
}

fn object(schema: &Value, depth: usize) -> BoxedStrategy<String> {
    let empty = serde_json::Map::new();
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if props.is_empty() {
        return proptest::collection::vec(("[a-z]{1,6}", any_json()), 0..3)
            .prop_map(|kv| {
                let pairs: Vec<String> = kv
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", json!(k)))
                    .collect();
                format!("{{{}}}", pairs.join(","))
            })
            .boxed();
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let keyed = |name: &String, s: &Value| {
        let key = json!(name).to_string();
        values_at(s, depth).prop_map(move |v| format!("{key}:{v}"))
    };
    let req: Vec<BoxedStrategy<Option<String>>> = props
        .iter()
        .filter(|(n, _)| required.contains(&n.as_str()))
        .map(|(n, s)| keyed(n, s).prop_map(Some).boxed())
        .collect();
    let opt: Vec<BoxedStrategy<Option<String>>> = props
        .iter()
        .filter(|(n, _)| !required.contains(&n.as_str()))
        .map(|(n, s)| proptest::option::of(keyed(n, s)).boxed())
        .collect();
    (req, opt)
        .prop_map(|(r, o)| {
            let pairs: Vec<String> = r.into_iter().chain(o).flatten().collect();
            format!("{{{}}}", pairs.join(","))
        })
        .boxed()
}

fn any_json() -> BoxedStrategy<String> {
    prop_oneof![
        any::<i16>().prop_map(|n| n.to_string()),
        "[a-z ]{0,8}".prop_map(|s| json!(s).to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("null".to_owned()),
        Just("[1,\"a\",{\"k\":[]}]".to_owned()),
    ]
    .boxed()
}

/// `$defs` of the hand-written recursive schema.
static SHARED_DEFS: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({"node": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
        "children": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/node"}}}, "required": ["name"]}})
});

/// Schemas for the features the BFCL conversion does not use.
fn hand_written() -> Vec<Value> {
    vec![
        json!({"type": "object", "properties": {
            "when": {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "integer"}]},
            "tags": {"type": "array", "items": {"enum": ["a", "b c", "\"q\""]}, "minItems": 1, "maxItems": 3},
            "maybe": {"type": ["number", "null"]},
            "nested": {"type": "object", "properties": {"deep": {"type": "object",
                "properties": {"x": {"type": "integer", "minimum": 0}}, "required": ["x"]}}},
            "map": {"type": "object", "additionalProperties": {"type": "integer"}},
            "closed": {"type": "object", "properties": {"k": {"type": "boolean"}}, "additionalProperties": false}
        }, "required": ["when"]}),
        json!({"type": "object", "properties": {"tree": {"$ref": "#/$defs/node"}}, "required": ["tree"],
            "$defs": SHARED_DEFS.clone()}),
        json!({"type": "object", "properties": {"only_optional_a": {"type": "string"}, "only_optional_b": {"type": "integer"}}}),
        json!({"type": "object", "properties": {}}),
    ]
}

fn corpus() -> Vec<Value> {
    let bfcl: Vec<Value> =
        serde_json::from_str(include_str!("fixtures/bfcl_schema_shapes.json")).unwrap();
    assert!(bfcl.len() > 800, "the fixture holds every BFCL shape");
    bfcl.into_iter().chain(hand_written()).collect()
}

/// The grammar of a one-tool registry, and the message that calls it.
fn grammar_of(schema: &Value) -> String {
    let spec = ToolSpec {
        name: "tool".into(),
        description: "a tool".into(),
        parameters: schema.clone(),
    };
    call_grammar_with(&[spec], &GrammarParams::default()).unwrap()
}

fn message(args: &str) -> String {
    format!("Thought: Do I need to use a tool? Yes\nAction: tool\nAction Input: {args}\n")
}

/// Invalid variants of a valid compact text: whitespace padding, a wrong
/// value type, an undeclared key, a missing closing brace.
fn mutants(text: &str) -> Vec<String> {
    let mut out = vec![
        format!("{text} "),
        text.replacen(':', ": ", 1),
        text.replacen(',', ", ", 1),
    ];
    if text.starts_with('{') && text.len() > 2 {
        out.push(format!("{{\"undeclared_key_zz\":1,{}", &text[1..]));
        out.push(text[..text.len() - 1].to_owned());
    }
    out.retain(|m| m != text);
    out
}

#[test]
fn compact_grammar_admits_generated_values_and_refuses_mutants() {
    let model = common::edge();
    let mut runner = TestRunner::new(Config {
        cases: 3,
        failure_persistence: None,
        ..Config::default()
    });
    let mut checked = 0;
    for schema in corpus() {
        let grammar = grammar_of(&schema);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let strategy = values(&schema);
        runner
            .run(&strategy, |text| {
                let value: Value = serde_json::from_str(&text).unwrap();
                prop_assert!(
                    validator.is_valid(&value),
                    "generator made an invalid value {text}"
                );
                prop_assert!(
                    model.grammar_admits(&grammar, &message(&text)).unwrap(),
                    "refused valid {text} of {schema}"
                );
                for bad in mutants(&text) {
                    prop_assert!(
                        !model.grammar_admits(&grammar, &message(&bad)).unwrap(),
                        "admitted invalid {bad} of {schema}"
                    );
                }
                Ok(())
            })
            .unwrap();
        checked += 1;
    }
    assert!(checked > 800);
}

#[test]
fn required_keys_enums_and_types_are_enforced() {
    let model = common::edge();
    let schema = json!({"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"enum": ["c", "f"]}, "days": {"type": "integer"}},
        "required": ["city", "days"]});
    let g = grammar_of(&schema);
    let admits = |args: &str| model.grammar_admits(&g, &message(args)).unwrap();
    // Required keys in map order (city, days), then the optional one.
    assert!(admits(r#"{"city":"Oslo","days":3}"#));
    assert!(admits(r#"{"city":"Oslo","days":3,"unit":"c"}"#));
    assert!(!admits(r#"{"days":3,"city":"Oslo"}"#), "order is fixed");
    assert!(!admits(r#"{"city":"Oslo"}"#), "a required key is missing");
    assert!(
        !admits(r#"{"city":"Oslo","days":3,"unit":"k"}"#),
        "not in the enum"
    );
    assert!(!admits(r#"{"city":"Oslo","days":3.5}"#), "not an integer");
    assert!(
        !admits(r#"{"city":"Oslo","days":007}"#),
        "not a JSON number"
    );
}

#[test]
fn json_messages_may_make_up_to_the_allowed_number_of_calls() {
    let model = common::edge();
    let specs = [
        ToolSpec {
            name: "weather".into(),
            description: "w".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        },
        ToolSpec {
            name: "time".into(),
            description: "t".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ];
    let call = |name: &str, args: &str| format!("Action: {name}\nAction Input: {args}\n");
    let three = format!(
        "Thought: Do I need to use a tool? Yes\n{}{}{}",
        call("weather", r#"{"city":"Paris"}"#),
        call("time", "{}"),
        call("weather", r#"{"city":"Tokyo"}"#)
    );
    for (max_calls, admitted) in [(1, false), (2, false), (3, true), (8, true)] {
        let g =
            call_grammar_with(&specs, &GrammarParams::default().with_max_calls(max_calls)).unwrap();
        assert_eq!(
            model.grammar_admits(&g, &three).unwrap(),
            admitted,
            "max {max_calls}"
        );
    }
    let answer = "Thought: Do I need to use a tool? No\nAI: hello\n";
    let g = call_grammar_with(&specs, &GrammarParams::default().with_max_calls(3)).unwrap();
    assert!(model.grammar_admits(&g, answer).unwrap());
}

#[test]
fn inexpressible_schemas_are_errors_naming_the_tool_and_keyword() {
    for (schema, keyword) in [
        (
            json!({"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}}}),
            "pattern",
        ),
        (
            json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 5}}}),
            "minimum",
        ),
        (
            json!({"type": "object", "properties": {"n": {"allOf": [{"type": "integer"}, {"type": "number"}]}}}),
            "allOf",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true}),
            "additionalProperties",
        ),
    ] {
        let spec = ToolSpec {
            name: "picky".into(),
            description: "p".into(),
            parameters: schema,
        };
        let err = call_grammar_with(&[spec], &GrammarParams::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`picky`") && err.contains(keyword), "{err}");
    }
}

#[test]
fn twenty_constrained_bfcl_queries_all_end_with_schema_valid_calls() {
    use loragen::agent::runtime::{GenerateParams, SessionParams};
    use loragen::protocol::react::{conversation_prompt, STEP_STOPS};
    use loragen::protocol::render::json_system_prompt;
    use loragen_gpt4tools::generic::{load_queries, parse_calls, ToolSet};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let tools = ToolSet::load(&dir.join("bfcl_val20_tools.json")).unwrap();
    let queries = load_queries(&dir.join("bfcl_val20_queries.jsonl")).unwrap();
    assert_eq!(queries.len(), 20);
    let model = common::edge();
    let mut session = model
        .session(SessionParams::default().with_prefix_reuse(false))
        .unwrap();
    let mut forced = 0;
    // Every query plainly constrained; every fourth also with jump-forward,
    // whose output must be a message the grammar admits as well.
    for (i, query) in queries.iter().enumerate() {
        let offered = tools.for_query(query).unwrap();
        let specs: Vec<ToolSpec> = offered.iter().map(|t| t.spec()).collect();
        // A call is required: whether the model would call at all is a
        // decision that processors' rounding can tip (one query answered
        // "No" under AVX-512 here); what is tested is that every call the
        // grammar lets through fits its schema.
        let grammar = call_grammar_with(
            &specs,
            &GrammarParams::default()
                .with_max_calls(8)
                .with_choice(CallChoice::Required),
        )
        .unwrap();
        let input: Vec<&str> = query.messages.iter().map(|m| m.content.as_str()).collect();
        let prompt = conversation_prompt(
            Some(&json_system_prompt(&specs)),
            &[],
            &input.join("\n"),
            "",
        );
        let params = GenerateParams::default()
            .with_max_tokens(256)
            .with_stop(STEP_STOPS)
            .with_grammar(Some(grammar.clone()));
        if i % 4 == 0 {
            session.clear_cache();
            let jumped = session
                .generate(&prompt, &params.clone().with_jump_forward(true))
                .unwrap();
            forced += jumped.stats.forced_tokens;
            // The message stops before `Observation:`, which the grammar
            // allows after the calls.
            assert!(
                model
                    .grammar_admits(&grammar, &format!("{}Observation:", jumped.text))
                    .unwrap(),
                "{}: jump-forward made a message the grammar refuses\n{}",
                query.id,
                jumped.text
            );
            assert!(
                !parse_calls(jumped.text.as_bytes()).calls.is_empty(),
                "{}",
                jumped.text
            );
        }
        session.clear_cache();
        let out = session.generate(&prompt, &params).unwrap();
        let parsed = parse_calls(out.text.as_bytes());
        assert!(
            parsed.problem.is_none(),
            "{}: {:?}\n{}",
            query.id,
            parsed.problem,
            out.text
        );
        assert!(
            !parsed.calls.is_empty(),
            "{}: no call\n{}",
            query.id,
            out.text
        );
        for call in &parsed.calls {
            let tool = offered.iter().find(|t| t.name == call.name).unwrap();
            let args = Value::Object(call.arguments.clone());
            assert!(
                jsonschema::is_valid(&tool.parameters, &args),
                "{}: {} does not fit its schema\n{}",
                query.id,
                args,
                out.text
            );
        }
    }
    assert!(forced > 0, "jump-forward never forced a token");
}

/// The field-aware GPT4Tools grammar on every tool of the corpus catalogue
/// (the 23 training tools and the 8 unseen ones): a call with a path where
/// the tool takes an image and text elsewhere is admitted; a path with a
/// space, or a last-field path given a second field, is refused, where the
/// plain grammar admits both.
#[test]
fn the_field_aware_grammar_keeps_path_fields_to_a_path_on_every_catalogue_tool() {
    use loragen::gpt4tools::corpus::{all_tools, Slot};
    let model = common::edge();
    for tool in all_tools() {
        let spec = ToolSpec {
            name: tool.info.name.into(),
            description: tool.info.description.into(),
            parameters: loragen::protocol::spec::text_schema(tool.info.arity),
        };
        let grammar = |field_aware| {
            call_grammar_with(
                std::slice::from_ref(&spec),
                &GrammarParams::default().with_field_aware(field_aware),
            )
            .unwrap()
        };
        let (aware, plain) = (grammar(true), grammar(false));
        let call = |input: &str| {
            format!(
                "Thought: Do I need to use a tool? Yes\nAction: {}\nAction Input: {input}\n",
                spec.name
            )
        };
        let fields: Vec<&str> = tool
            .slots
            .iter()
            .map(|s| match s {
                Slot::Image => "image/4b1f7c2e.png",
                _ => "a red, shiny apple",
            })
            .collect();
        let good = call(&fields.join(", "));
        assert!(model.grammar_admits(&aware, &good).unwrap(), "{good}");
        assert!(model.grammar_admits(&plain, &good).unwrap(), "{good}");
        if let Some(i) = tool.slots.iter().rposition(|s| *s == Slot::Image) {
            let mut extra = fields.clone();
            extra[i] = "image/4b1f7c2e.png, pancakes";
            let mut spaced = fields.clone();
            spaced[i] = "image/my photo.png";
            let last = i + 1 == fields.len();
            // A second field after a path is caught where the path is the
            // last field; before a free-text last field it reads as text.
            let mut bad = vec![call(&spaced.join(", "))];
            if last {
                bad.push(call(&extra.join(", ")));
            }
            for bad in bad {
                // The plain grammar's last field takes the rest of the
                // line, so there these are admitted.
                if last {
                    assert!(model.grammar_admits(&plain, &bad).unwrap(), "{bad}");
                }
                assert!(
                    !model.grammar_admits(&aware, &bad).unwrap(),
                    "{}: {bad}",
                    spec.name
                );
            }
        }
    }
}

/// Whole-name scoring on the real edge model. At `Action:` every listed
/// tool's ` {name}\n` is scored in batched decodes, and the name forced is
/// the one an independent reference ranks first: each line scored alone
/// through `Session::logits`, by mean log-probability per token. Items
/// alternate between the compiled prompt (no definitions) and the full one,
/// and between plain and jump-forward decoding; a batch of 48 tokens splits
/// the candidates over several decodes.
#[test]
fn whole_name_scoring_forces_the_name_a_one_at_a_time_reference_ranks_first() {
    use loragen::agent::runtime::{GenerateParams, NameChoice, SessionParams};
    use loragen::gpt4tools::corpus::{build, CorpusConfig};
    use loragen::protocol::react::{ACTION, STEP_STOPS};

    let corpus = build(&CorpusConfig::default().with_sizes(40, 60, 0)).unwrap();
    let calls: Vec<_> = corpus
        .val_seen
        .iter()
        .filter(|i| i.output.contains(ACTION))
        .take(6)
        .collect();
    assert_eq!(calls.len(), 6);
    let model = common::edge();
    let log_prob = |row: &[f32], token: usize| {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&l| f64::from(l - max).exp()).sum();
        f64::from(row[token] - max) - sum.ln()
    };
    for (k, item) in calls.into_iter().enumerate() {
        let specs = item.listed_tool_specs();
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let grammar = call_grammar_with(
            &specs,
            &GrammarParams::default().with_choice(CallChoice::Required),
        )
        .unwrap();
        let prompt = if k % 2 == 0 {
            item.compiled_prompt()
        } else {
            item.full_prompt()
        };
        let n_batch = if k < 3 { 48 } else { 2048 };
        let mut session = model
            .session(SessionParams::default().with_n_batch(n_batch))
            .unwrap();
        let params = GenerateParams::default()
            .with_max_tokens(160)
            .with_stop(STEP_STOPS)
            .with_grammar(Some(grammar.clone()))
            .with_jump_forward(k % 2 == 1)
            .with_name_choice(Some(NameChoice::react(names.clone())));
        let out = session.generate(&prompt, &params).unwrap();
        assert_eq!(out.stats.name_choices, 1, "{}: {}", item.id, out.text);
        assert!(
            model
                .grammar_admits(&grammar, &format!("{}Observation:", out.text))
                .unwrap(),
            "{}: {}",
            item.id,
            out.text
        );
        let chosen = out.text.split(&format!("{ACTION} ")).nth(1).unwrap();
        let chosen = chosen.split('\n').next().unwrap();

        // The reference: the prompt and the output up to the anchor, then
        // each line on its own.
        let anchor = (1..=out.tokens.len())
            .find(|&n| model.detokenize(&out.tokens[..n]).ends_with(ACTION))
            .unwrap();
        let mut prefix = model.tokenize(&prompt, true);
        prefix.extend_from_slice(&out.tokens[..anchor]);
        let mut reference = model.session(SessionParams::default()).unwrap();
        let scores: Vec<f64> = names
            .iter()
            .map(|name| {
                let line = model.tokenize(&format!(" {name}\n"), false);
                let all = [prefix.clone(), line.clone()].concat();
                let positions: Vec<usize> = (prefix.len() - 1..all.len() - 1).collect();
                let rows = reference.logits(&all, &positions).unwrap();
                let sum: f64 = rows
                    .iter()
                    .zip(&line)
                    .map(|(row, t)| log_prob(row, t.0 as usize))
                    .sum();
                sum / line.len() as f64
            })
            .collect();
        let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let at = names.iter().position(|n| n == chosen).unwrap();
        // Batched and one-at-a-time decoding round differently; a near tie
        // may go either way.
        assert!(
            scores[at] >= best - 1e-3,
            "{}: forced {chosen} ({:.4}); the reference ranks {} first ({best:.4})",
            item.id,
            scores[at],
            names[scores.iter().position(|&s| s == best).unwrap()]
        );

        // A prior lifts the reference's last-ranked name just above the
        // best by the sum of both; keeping one name forces the prior's
        // first whatever the model thinks of it.
        let worst = (0..names.len())
            .min_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        let lifted: Vec<f64> = (0..names.len())
            .map(|i| {
                if i == worst {
                    best - scores[worst] + 0.5
                } else {
                    0.0
                }
            })
            .collect();
        let kept_only: Vec<f64> = (0..names.len())
            .map(|i| if i == worst { 0.0 } else { -1.0 })
            .collect();
        for (prior, keep) in [(lifted, None), (kept_only, Some(1))] {
            let choice = NameChoice::react(names.clone())
                .with_prior(prior)
                .with_keep(keep);
            let out = session
                .generate(&prompt, &params.clone().with_name_choice(Some(choice)))
                .unwrap();
            assert!(
                out.text.contains(&format!("{ACTION} {}\n", names[worst])),
                "{}, keep {keep:?}: expected {}, got {}",
                item.id,
                names[worst],
                out.text
            );
        }
    }
}
