//! The agent loop against a scripted mock model: named conformance
//! scenarios for calls, answers and every kind of failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use common::Scripted;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use loragen::agent::agent::{
    Agent, AgentConfig, AgentFinish, Event, Mode, NameDecision, NamePolicy, Outcome,
};
use loragen::agent::grammar::CallChoice;
use loragen::agent::runtime::NameChoice;
use loragen::protocol::react::JsonCallsParser;
use loragen::tools::{async_trait, TextInput, Tool, ToolError, ToolRegistry};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

struct Add;

#[async_trait]
impl Tool for Add {
    type Args = AddArgs;
    type Output = i64;
    fn name(&self) -> String {
        "Add".into()
    }
    fn description(&self) -> String {
        "Adds two integers a and b.".into()
    }
    async fn call(&self, args: AddArgs) -> Result<i64, ToolError> {
        Ok(args.a + args.b)
    }
}

struct EdgeDetection;

#[async_trait]
impl Tool for EdgeDetection {
    type Args = TextInput;
    type Output = String;
    fn name(&self) -> String {
        "Edge Detection On Image".into()
    }
    fn description(&self) -> String {
        "Finds edges. Input: the image path.".into()
    }
    async fn call(&self, args: TextInput) -> Result<String, ToolError> {
        let path = args.fields()[0].to_owned();
        Ok(format!(
            "Result saved as {}",
            path.replace(".png", "_edge.png")
        ))
    }
}

struct CannyToImage;

#[async_trait]
impl Tool for CannyToImage {
    type Args = TextInput<2>;
    type Output = String;
    fn name(&self) -> String {
        "Generate Image Condition On Canny Image".into()
    }
    fn description(&self) -> String {
        "Draws from an edge map. Input: the edge map path, then a prompt.".into()
    }
    async fn call(&self, args: TextInput<2>) -> Result<String, ToolError> {
        let f = args.fields();
        if !f[0].ends_with("_edge.png") {
            return Err(ToolError::Failed(format!("{} is not an edge map", f[0])));
        }
        Ok(format!("image/new_{}.png", f[1].replace(' ', "_")))
    }
}

struct Slow;

#[async_trait]
impl Tool for Slow {
    type Args = TextInput;
    type Output = String;
    fn name(&self) -> String {
        "Slow".into()
    }
    fn description(&self) -> String {
        "Takes its time.".into()
    }
    async fn call(&self, _: TextInput) -> Result<String, ToolError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok("late".into())
    }
}

struct Boom;

#[async_trait]
impl Tool for Boom {
    type Args = TextInput;
    type Output = String;
    fn name(&self) -> String {
        "Boom".into()
    }
    fn description(&self) -> String {
        "Always crashes.".into()
    }
    async fn call(&self, _: TextInput) -> Result<String, ToolError> {
        panic!("tool bug")
    }
}

fn registry() -> Arc<ToolRegistry> {
    let r = ToolRegistry::new()
        .with(Add)
        .and_then(|r| r.with(EdgeDetection))
        .and_then(|r| r.with(CannyToImage))
        .and_then(|r| r.with(Slow))
        .and_then(|r| r.with(Boom))
        .unwrap();
    Arc::new(r)
}

fn call(tool: &str, input: &str) -> String {
    format!("Thought: Do I need to use a tool? Yes\nAction: {tool}\nAction Input: {input}\nObservation: (made up)")
}

fn answer(text: &str) -> String {
    format!("Thought: Do I need to use a tool? No\nAI: {text}")
}

fn config() -> AgentConfig {
    AgentConfig::default().with_tool_timeout(Duration::from_millis(200))
}

async fn run(replies: &[&str], config: AgentConfig) -> (Outcome, Vec<Event>, Scripted) {
    let mut agent = Agent::new(Scripted::new(replies), registry(), config).unwrap();
    let mut events = Vec::new();
    let outcome = agent
        .run("please help", &mut |e| {
            events.push(e.clone());
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    let model = std::mem::replace(agent.model_mut(), Scripted::new(&[]));
    (outcome, events, model)
}

fn observation(outcome: &Outcome, step: usize) -> &str {
    let observations = &outcome.steps[step].observations;
    assert_eq!(observations.len(), 1, "one call, one observation");
    &observations[0]
}

#[tokio::test]
async fn correct_call() {
    let (out, events, model) = run(
        &[&call("Add", r#"{"a": 2, "b": 3}"#), &answer("5")],
        config(),
    )
    .await;
    assert_eq!(out.finish, AgentFinish::Answered);
    assert_eq!(out.answer.as_deref(), Some("5"));
    assert_eq!(observation(&out, 0), "5");
    // The invented observation after the stop string never reaches the prompt.
    assert!(!model.prompts[1].contains("(made up)"));
    assert!(model.prompts[1].ends_with("Observation: 5\n"));
    assert!(events.contains(&Event::Action {
        tool: "Add".into(),
        input: r#"{"a": 2, "b": 3}"#.into()
    }));
    assert!(events.contains(&Event::Answer("5".into())));
    assert!(events.contains(&Event::Thought("Do I need to use a tool? Yes".into())));
}

#[tokio::test]
async fn no_tool_answer() {
    let (out, _, model) = run(&[&answer("Paris is the capital of France.")], config()).await;
    assert_eq!(
        out.answer.as_deref(),
        Some("Paris is the capital of France.")
    );
    assert_eq!(out.steps.len(), 1);
    assert!(
        model.prompts[0].contains(r#""name":"Add""#)
            && model.prompts[0].contains(r#""required":["a","b"]"#),
        "in-context mode shows the tools, JSON-argument ones with their schemas"
    );
}

#[tokio::test]
async fn an_answer_that_runs_on_into_a_second_thought_is_cut_there() {
    // A learner with no end token after its answer repeats the pair up to
    // the token limit; the second thought ends the message.
    let repeating = format!(
        "{}\n{}\nThought: Do I",
        answer("A red car on a bridge.\nIt is raining."),
        answer("A red car on a bridge.")
    );
    let (out, _, model) = run(&[&repeating], config()).await;
    assert_eq!(
        out.answer.as_deref(),
        Some("A red car on a bridge.\nIt is raining."),
        "a multi-line answer is kept, the repeat is not"
    );
    assert_eq!(out.steps.len(), 1);
    assert!(model.params[0].stop.iter().any(|s| s == "\nThought:"));
}

#[tokio::test]
async fn unknown_tool() {
    let (out, _, _) = run(&[&call("Multiply", "2, 3"), &answer("sorry")], config()).await;
    assert_eq!(out.finish, AgentFinish::Answered);
    let obs = observation(&out, 0);
    assert!(
        obs.starts_with("unknown tool `Multiply`") && obs.contains("Add"),
        "{obs}"
    );
}

#[tokio::test]
async fn invalid_json_arguments() {
    let (out, _, _) = run(&[&call("Add", "{a: 2"), &answer("sorry")], config()).await;
    assert!(
        observation(&out, 0).contains("not valid JSON"),
        "{}",
        observation(&out, 0)
    );
}

#[tokio::test]
async fn arguments_that_violate_the_schema() {
    let (out, _, _) = run(
        &[&call("Add", r#"{"a": "two", "b": 3}"#), &answer("sorry")],
        config(),
    )
    .await;
    let obs = observation(&out, 0);
    assert!(
        obs.contains("invalid arguments for `Add`")
            && obs.contains("/a")
            && obs.contains("integer"),
        "{obs}"
    );
    let (out, _, _) = run(
        &[
            &call("Generate Image Condition On Canny Image", "only-one-field"),
            &answer("x"),
        ],
        config(),
    )
    .await;
    assert!(
        observation(&out, 0).contains("expected 2 comma-separated field(s), got 1"),
        "{}",
        observation(&out, 0)
    );
}

#[tokio::test]
async fn tool_timeout() {
    let started = std::time::Instant::now();
    let (out, _, _) = run(&[&call("Slow", "now"), &answer("it was slow")], config()).await;
    assert!(
        observation(&out, 0).contains("timed out after 0.2 s"),
        "{}",
        observation(&out, 0)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the loop must not wait for the tool"
    );
    assert_eq!(out.finish, AgentFinish::Answered);
}

#[tokio::test]
async fn tool_panic() {
    let (out, _, _) = run(&[&call("Boom", "x"), &answer("it crashed")], config()).await;
    assert_eq!(observation(&out, 0), "tool `Boom` crashed");
    assert_eq!(out.finish, AgentFinish::Answered);
}

#[tokio::test]
async fn maximum_step_count_reached() {
    let steps: Vec<String> = (1..=3)
        .map(|b| call("Add", &format!(r#"{{"a": 1, "b": {b}}}"#)))
        .collect();
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let (out, _, _) = run(&steps, config().with_max_steps(3)).await;
    assert_eq!(out.finish, AgentFinish::MaxSteps);
    assert_eq!(out.steps.len(), 3);
    assert!(out.answer.is_none());
}

/// The context fills in the second message: the cut message is not parsed
/// (its call might be cut too) and the turn ends with its own reason. The
/// next turn's prompt, longer still, is an error the caller can tell apart.
#[tokio::test]
async fn the_context_fills_mid_message_then_refuses_the_next_prompt() {
    let first = call("Add", r#"{"a": 2, "b": 3}"#);
    let second = call("Add", r#"{"a": 5, "b": 30000}"#);
    let (_, _, unlimited) = run(&[&first, &answer("5")], config()).await;
    // Room for the first message whole and half of the second.
    let second_prompt = unlimited.prompts[1].len();
    let context = second_prompt + second.len() / 2;
    let model = Scripted::new(&[&first, &second, &answer("never")]).with_context_chars(context);
    let mut agent = Agent::new(model, registry(), config()).unwrap();
    let out = agent
        .run("please help", &mut |_| ControlFlow::Continue(()))
        .await
        .unwrap();
    assert_eq!(out.finish, AgentFinish::ContextFull);
    assert_eq!(out.steps.len(), 2);
    assert_eq!(observation(&out, 0), "5");
    assert!(out.steps[1].actions.is_empty(), "{:?}", out.steps[1]);
    assert_eq!(agent.model_mut().prompts[1].len(), second_prompt);

    agent.model_mut().replies.push_back(answer("never"));
    let long = "please help ".repeat(context / 10);
    let e = agent
        .run(&long, &mut |_| ControlFlow::Continue(()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.context_limit(),
            Some(loragen::agent::ContextLimit::TooLong { n_ctx, .. }) if n_ctx as usize == context
        ),
        "{e}"
    );
}

/// A call repeated with identical arguments (JSON compared as values) is
/// not run again: its observation says so and gives the first result. A
/// second repeat ends the turn with its own reason, before the step limit.
#[tokio::test]
async fn a_repeated_call_is_told_once_then_ends_the_turn() {
    let first = call("Add", r#"{"a": 2, "b": 3}"#);
    let again = call("Add", r#"{ "b": 3, "a": 2 }"#);
    let (out, events, model) = run(&[&first, &again, &first, &answer("5")], config()).await;
    assert_eq!(out.finish, AgentFinish::RepeatedCall);
    assert_eq!(out.steps.len(), 3);
    assert!(out.answer.is_none());
    assert_eq!(observation(&out, 0), "5");
    let note = observation(&out, 1);
    assert!(
        note.contains("You already called Add with these arguments")
            && note.contains("returned: 5"),
        "{note}"
    );
    assert!(model.prompts[2].contains(note));
    assert!(out.steps[2].observations.is_empty());
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Observation { failed: false, .. }))
            .count(),
        2
    );

    // One repeat, then an answer: the turn ends normally.
    let (out, _, _) = run(&[&first, &first, &answer("5")], config()).await;
    assert_eq!(out.finish, AgentFinish::Answered);
    // Other arguments are another call.
    let other = call("Add", r#"{"a": 2, "b": 4}"#);
    let (out, _, _) = run(&[&first, &other, &answer("6")], config()).await;
    assert_eq!(observation(&out, 1), "6");
}

#[tokio::test]
async fn retry_budget_is_bounded() {
    let bad = call("Nope", "x");
    let (out, _, _) = run(&[&bad, &bad, &bad], config().with_max_retries(2)).await;
    assert_eq!(out.finish, AgentFinish::RetriesExhausted);
    assert_eq!(out.steps.len(), 3);
    let (out, _, _) = run(&["I am not following any format", &answer("ok")], config()).await;
    assert!(
        observation(&out, 0).contains("neither the tool format"),
        "{}",
        observation(&out, 0)
    );
}

#[tokio::test]
async fn multi_step_chain_uses_the_observed_path() {
    let replies = [
        call("Edge Detection On Image", "image/abcdefgh.png"),
        call(
            "Generate Image Condition On Canny Image",
            "image/abcdefgh_edge.png, a red house",
        ),
        answer("Here it is: image/new_a_red_house.png"),
    ];
    let replies: Vec<&str> = replies.iter().map(String::as_str).collect();
    let (out, _, model) = run(&replies, config()).await;
    assert_eq!(out.finish, AgentFinish::Answered);
    assert_eq!(
        observation(&out, 0),
        "Result saved as image/abcdefgh_edge.png"
    );
    assert_eq!(observation(&out, 1), "image/new_a_red_house.png");
    assert!(model.prompts[1].contains("Observation: Result saved as image/abcdefgh_edge.png\n"));
}

#[tokio::test]
async fn compiled_mode_drops_the_definitions_and_memory_carries_over() {
    let mut agent = Agent::new(
        Scripted::new(&[&answer("5"), &answer("again 5")]),
        registry(),
        AgentConfig::for_mode(Mode::Compiled),
    )
    .unwrap();
    assert!(
        agent.config().constrained,
        "compiled mode constrains calls by default"
    );
    agent
        .run("what is 2+3?", &mut |_| ControlFlow::Continue(()))
        .await
        .unwrap();
    agent
        .run("and again?", &mut |_| ControlFlow::Continue(()))
        .await
        .unwrap();
    let prompts = &agent.model().prompts;
    assert!(!prompts[0].contains("> Add:"));
    assert!(prompts[0].starts_with("Previous conversation:\n"));
    assert!(prompts[1].contains("Human: what is 2+3?\nAI: 5\n"));
}

#[derive(Deserialize, JsonSchema)]
struct MeetArgs {
    who: String,
    /// Milliseconds to wait after meeting, so later calls can finish first.
    linger_ms: u64,
}

/// Waits at a barrier that only two calls together can pass: if the agent
/// ran its calls one after the other, the first would wait until its
/// timeout, and the scenario would see a time-out, not a meeting.
struct Meet(Arc<tokio::sync::Barrier>);

#[async_trait]
impl Tool for Meet {
    type Args = MeetArgs;
    type Output = String;
    fn name(&self) -> String {
        "Meet".into()
    }
    fn description(&self) -> String {
        "Meets another call.".into()
    }
    async fn call(&self, args: MeetArgs) -> Result<String, ToolError> {
        self.0.wait().await;
        tokio::time::sleep(Duration::from_millis(args.linger_ms)).await;
        Ok(format!("met {}", args.who))
    }
}

/// A JSON-protocol agent whose first message makes `calls` at once.
async fn run_parallel(calls: &[(&str, &str)]) -> (Outcome, Scripted) {
    let tools = ToolRegistry::new()
        .with(Meet(Arc::new(tokio::sync::Barrier::new(2))))
        .and_then(|r| r.with(Add))
        .and_then(|r| r.with(Slow))
        .unwrap();
    let message: String = calls
        .iter()
        .map(|(tool, input)| format!("Action: {tool}\nAction Input: {input}\n"))
        .collect();
    let first = format!("Thought: Do I need to use a tool? Yes\n{message}Observation: (made up)");
    let mut agent = Agent::new(
        Scripted::new(&[&first, &answer("done")]),
        Arc::new(tools),
        AgentConfig::default().with_tool_timeout(Duration::from_secs(5)),
    )
    .unwrap()
    .with_parser(Box::new(JsonCallsParser));
    let outcome = agent
        .run("do both", &mut |_| ControlFlow::Continue(()))
        .await
        .unwrap();
    let model = std::mem::replace(agent.model_mut(), Scripted::new(&[]));
    (outcome, model)
}

#[tokio::test]
async fn parallel_calls_run_concurrently_and_answer_in_call_order() {
    // The first call lingers, so the second finishes first.
    let (out, model) = run_parallel(&[
        ("Meet", r#"{"who": "a", "linger_ms": 300}"#),
        ("Meet", r#"{"who": "b", "linger_ms": 0}"#),
    ])
    .await;
    assert_eq!(out.finish, AgentFinish::Answered);
    assert_eq!(out.steps[0].observations, ["met a", "met b"]);
    assert_eq!(out.steps[0].actions.len(), 2);
    assert!(
        model.prompts[1].ends_with("Observation: met a\nObservation: met b\n"),
        "{}",
        model.prompts[1]
    );
}

#[tokio::test(start_paused = true)]
async fn a_time_out_in_one_parallel_call_keeps_the_others_result() {
    // Paused clock: the 30 s tool times out at 5 s of virtual time.
    let (out, _) = run_parallel(&[("Slow", "now"), ("Add", r#"{"a": 2, "b": 3}"#)]).await;
    let obs = &out.steps[0].observations;
    assert!(obs[0].contains("timed out after 5.0 s"), "{obs:?}");
    assert_eq!(obs[1], "5");
    assert_eq!(out.finish, AgentFinish::Answered);
}

/// A name policy as a compiled selector would be: a prior over the names,
/// and the same call decision for every message (a veto, or a required
/// call).
struct Selecting(CallChoice);

impl NamePolicy for Selecting {
    fn decide(&mut self, _prompt: &str, names: &[String]) -> loragen::agent::Result<NameDecision> {
        Ok(NameDecision {
            name_choice: Some(
                NameChoice::react(names.iter().cloned()).with_prior(vec![-1.0; names.len()]),
            ),
            call: self.0,
            selector_ms: Some(1.0),
            none_margin: Some(5.0),
        })
    }
}

#[tokio::test]
async fn a_selectors_veto_stops_calls_in_json_registries_only() {
    let policy_run = |registry: Arc<ToolRegistry>, config: AgentConfig| async move {
        let replies = [answer("no tool for that").as_str()].map(str::to_owned);
        let replies: Vec<&str> = replies.iter().map(String::as_str).collect();
        let mut agent = Agent::new(Scripted::new(&replies), registry, config)
            .unwrap()
            .with_name_policy(Box::new(Selecting(CallChoice::None)));
        let outcome = agent
            .run("please help", &mut |_| ControlFlow::Continue(()))
            .await
            .unwrap();
        assert_eq!(outcome.finish, AgentFinish::Answered);
        std::mem::replace(agent.model_mut(), Scripted::new(&[]))
    };
    let constrained = || config().with_constrained(true);
    // A JSON registry (Add takes JSON): the message may only answer.
    let model = policy_run(registry(), constrained()).await;
    let params = &model.params[0];
    let grammar = params.grammar.as_deref().unwrap();
    assert!(
        grammar.starts_with(r#"root ::= "Thought: Do I need to use a tool? " no"#),
        "{grammar}"
    );
    let choice = params.name_choice.as_ref().unwrap();
    assert_eq!(choice.names.len(), 5);
    assert_eq!(choice.prior, vec![-1.0; 5]);

    // A GPT4Tools registry keeps its call grammar; the prior still applies.
    let gpt4tools = Arc::new(
        ToolRegistry::new()
            .with(EdgeDetection)
            .and_then(|r| r.with(CannyToImage))
            .unwrap(),
    );
    let model = policy_run(gpt4tools, constrained()).await;
    let params = &model.params[0];
    assert!(params
        .grammar
        .as_deref()
        .unwrap()
        .starts_with(r#"root ::= "Thought: Do I need to use a tool? " (yes | no)"#));
    assert_eq!(params.name_choice.as_ref().unwrap().names.len(), 2);

    // Unconstrained, the policy is not asked.
    let model = policy_run(registry(), config()).await;
    assert!(model.params[0].grammar.is_none() && model.params[0].name_choice.is_none());
}

#[tokio::test]
async fn a_selectors_required_call_holds_the_message_to_calls_in_any_registry() {
    let gpt4tools = Arc::new(
        ToolRegistry::new()
            .with(EdgeDetection)
            .and_then(|r| r.with(CannyToImage))
            .unwrap(),
    );
    for registry in [gpt4tools, registry()] {
        let replies = [
            r#"Thought: Do I need to use a tool? Yes
Action: Edge Detection On Image
Action Input: image/a.png"#,
            &answer("done"),
        ]
        .map(str::to_owned);
        let replies: Vec<&str> = replies.iter().map(String::as_str).collect();
        let mut agent = Agent::new(
            Scripted::new(&replies),
            registry,
            config().with_constrained(true),
        )
        .unwrap()
        .with_name_policy(Box::new(Selecting(CallChoice::Required)));
        let _ = agent
            .run("please help", &mut |_| ControlFlow::Continue(()))
            .await
            .unwrap();
        let grammar = agent.model().params[0].grammar.clone().unwrap();
        assert!(
            grammar.starts_with(r#"root ::= "Thought: Do I need to use a tool? " yes"#),
            "{grammar}"
        );
    }
}
