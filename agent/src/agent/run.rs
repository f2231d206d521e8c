//! One user turn: generate, parse, validate, call, observe, repeat.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use loragen_protocol::react::{
    conversation_prompt, observation_lines, Call, JsonCallsParser, OutputParser, ReactParser, Step,
    STEP_STOPS,
};
use loragen_protocol::render;
use loragen_protocol::ToolSpec;
use loragen_tools::{ToolError, ToolRegistry};
use serde_json::Value;

use loragen_protocol::Mode;

use super::config::AgentConfig;
use super::model::LanguageModel;
use super::names::{NameDecision, NamePolicy};
use crate::error::Result;
use crate::grammar::{call_grammar, call_grammar_with, CallChoice, GrammarParams};
use crate::runtime::{FinishReason, GenerateParams, Stats};

/// Something that happened during a turn, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A piece of model output as it streams.
    Text(String),
    /// The model's `Thought:` line of a step.
    Thought(String),
    Action {
        tool: String,
        input: String,
    },
    Observation {
        text: String,
        failed: bool,
    },
    Answer(String),
    /// Timings of one model message and the tool call that followed it.
    StepDone {
        stats: Stats,
        tool_ms: f64,
    },
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentFinish {
    Answered,
    MaxSteps,
    /// Too many failed steps in a row.
    RetriesExhausted,
    /// The caller stopped generation.
    Interrupted,
    /// The model made the same call (same tool, same arguments) a third
    /// time in the turn, after an observation told it so once.
    RepeatedCall,
    /// The edge model's context filled before the message ended: the
    /// conversation needs a reset or shorter input.
    ContextFull,
}

/// One model message of a turn and what it led to.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub output: String,
    /// The calls the message made, (tool, input), in order.
    pub actions: Vec<(String, String)>,
    /// What the model read next: the calls' observations in call order,
    /// or the one format error; empty after an answer.
    pub observations: Vec<String>,
    pub stats: Stats,
    pub tool_ms: f64,
}

/// The result of one user turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub answer: Option<String>,
    pub finish: AgentFinish,
    pub steps: Vec<StepRecord>,
}

/// An agent: a model, the tools it may call and the conversation so far.
///
/// # Examples
///
/// A turn with a stand-in model that replies from a script; a llama.cpp
/// [`crate::runtime::Session`] is the real [`LanguageModel`].
///
/// ```
/// use std::ops::ControlFlow;
/// use std::sync::Arc;
///
/// use loragen_agent::agent::{Agent, AgentConfig, AgentFinish, Event, LanguageModel, Mode};
/// use loragen_agent::runtime::{Completion, FinishReason, GenerateParams, Stats};
/// use loragen_tools::{async_trait, Tool, ToolError, ToolRegistry};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct AddArgs {
///     a: i64,
///     b: i64,
/// }
///
/// struct Add;
///
/// #[async_trait]
/// impl Tool for Add {
///     type Args = AddArgs;
///     type Output = i64;
///     fn name(&self) -> String {
///         "add".into()
///     }
///     fn description(&self) -> String {
///         "Adds two integers.".into()
///     }
///     async fn call(&self, args: AddArgs) -> Result<i64, ToolError> {
///         Ok(args.a + args.b)
///     }
/// }
///
/// struct Script(Vec<&'static str>);
///
/// impl LanguageModel for Script {
///     fn complete(
///         &mut self,
///         _prompt: &str,
///         _params: &GenerateParams,
///         on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
///     ) -> loragen_agent::Result<Completion> {
///         let text = self.0.remove(0).to_owned();
///         let _ = on_text(&text);
///         let (tokens, stats) = (Vec::new(), Stats::default());
///         Ok(Completion { text, tokens, finish: FinishReason::EndOfGeneration, stats })
///     }
/// }
///
/// let model = Script(vec![
///     "Thought: Do I need to use a tool? Yes\nAction: add\nAction Input: {\"a\": 2, \"b\": 3}",
///     "Thought: Do I need to use a tool? No\nAI: 2 + 3 = 5",
/// ]);
/// let tools = Arc::new(ToolRegistry::new().with(Add)?);
/// let mut agent = Agent::new(model, tools, AgentConfig::for_mode(Mode::Compiled))?;
/// let mut observed = Vec::new();
/// let mut on_event = |event: &Event| {
///     if let Event::Observation { text, .. } = event {
///         observed.push(text.clone());
///     }
///     ControlFlow::Continue(())
/// };
/// let turn = agent.run("What is 2 + 3?", &mut on_event);
/// let outcome = tokio::runtime::Runtime::new()?.block_on(turn)?;
/// assert_eq!(outcome.finish, AgentFinish::Answered);
/// assert_eq!(outcome.answer.as_deref(), Some("2 + 3 = 5"));
/// assert_eq!(observed, ["5"], "the tool's result, as the model reads it");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Agent<M> {
    model: M,
    tools: Arc<ToolRegistry>,
    parser: Box<dyn OutputParser>,
    config: AgentConfig,
    system: String,
    grammar: Option<String>,
    /// The grammar of an answer without a call, for a vetoed message.
    no_call_grammar: String,
    /// The grammar of calls alone, for a message the selector requires to
    /// call.
    required_grammar: String,
    /// Whether the registry speaks the JSON protocol: only there does a
    /// selector's "no call" veto a call (GPT4Tools answers without a call
    /// mostly close a chain of calls, which the edge model decides).
    json: bool,
    names: Option<Box<dyn NamePolicy>>,
    history: Vec<(String, String)>,
}

impl<M> std::fmt::Debug for Agent<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("tools", &self.tools)
            .field("config", &self.config)
            .finish()
    }
}

impl<M: LanguageModel> Agent<M> {
    pub fn new(model: M, tools: Arc<ToolRegistry>, config: AgentConfig) -> Result<Self> {
        config.validate()?;
        let specs: Vec<ToolSpec> = tools.specs().cloned().collect();
        let system = render::system_prompt(&specs);
        let parser: Box<dyn OutputParser> = if render::takes_json(&specs) {
            Box::new(JsonCallsParser)
        } else {
            Box::new(ReactParser)
        };
        let grammar = Some(call_grammar(&specs)?);
        let no_call_grammar = call_grammar_with(
            &specs,
            &GrammarParams::default().with_choice(CallChoice::None),
        )?;
        let required_grammar = call_grammar_with(
            &specs,
            &GrammarParams::default().with_choice(CallChoice::Required),
        )?;
        Ok(Agent {
            model,
            tools,
            parser,
            config,
            system,
            grammar,
            no_call_grammar,
            required_grammar,
            json: render::takes_json(&specs),
            names: None,
            history: Vec::new(),
        })
    }

    /// The name policy, taken back (to give the next agent of a REPL).
    pub fn take_name_policy(&mut self) -> Option<Box<dyn NamePolicy>> {
        self.names.take()
    }

    /// Decides before each constrained message how tool names are chosen
    /// (whole-name scoring, a compiled selector's prior), whether the
    /// selector requires a call and, in JSON registries, whether it vetoes
    /// one.
    #[must_use]
    pub fn with_name_policy(mut self, policy: Box<dyn NamePolicy>) -> Self {
        self.names = Some(policy);
        self
    }

    /// Uses another output format.
    #[must_use]
    pub fn with_parser(mut self, parser: Box<dyn OutputParser>) -> Self {
        self.parser = parser;
        self
    }

    /// Replaces the system part (e.g. the JSON-schema rendering).
    #[must_use]
    pub fn with_system_prompt(mut self, system: String) -> Self {
        self.system = system;
        self
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    pub fn set_mode(&mut self, mode: Mode) {
        self.config.mode = mode;
        self.config.constrained = AgentConfig::for_mode(mode).constrained;
    }

    /// Turns constrained decoding on or off (a mode change sets the
    /// mode's default again).
    pub fn set_constrained(&mut self, on: bool) {
        self.config.constrained = on;
    }

    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    pub fn model(&self) -> &M {
        &self.model
    }

    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// Adds an exchange to the conversation memory (e.g. an image turn).
    pub fn remember(&mut self, human: impl Into<String>, ai: impl Into<String>) {
        self.history.push((human.into(), ai.into()));
    }

    /// The conversation so far, (human, AI) pairs.
    pub fn memory(&self) -> &[(String, String)] {
        &self.history
    }

    pub fn reset(&mut self) {
        self.history.clear();
    }

    /// The prompt for `input` with the partial `trace` of this turn.
    pub fn prompt(&self, input: &str, trace: &str) -> String {
        let system = self
            .config
            .mode
            .definitions_in_context()
            .then_some(self.system.as_str());
        conversation_prompt(system, &self.history, input, trace)
    }

    /// Runs one user turn to an answer or a limit.
    pub async fn run(
        &mut self,
        input: &str,
        on_event: &mut dyn FnMut(&Event) -> ControlFlow<()>,
    ) -> Result<Outcome> {
        let params = GenerateParams::default()
            .with_max_tokens(self.config.max_tokens)
            .with_stop(STEP_STOPS)
            .with_grammar(if self.config.constrained {
                self.grammar.clone()
            } else {
                None
            });
        let names: Vec<String> = self.tools.specs().map(|s| s.name.clone()).collect();
        let mut trace = String::new();
        let mut steps = Vec::new();
        let mut failures = 0;
        let mut made = MadeCalls::default();
        let turn = tracing::debug_span!("agent_turn", mode = %self.config.mode);
        for step in 0..self.config.max_steps {
            let step_span = tracing::debug_span!(parent: &turn, "agent_step", step);
            let prompt = self.prompt(input, &trace);
            let decision = match (&mut self.names, self.config.constrained) {
                (Some(policy), true) => step_span.in_scope(|| policy.decide(&prompt, &names))?,
                _ => NameDecision::default(),
            };
            let grammar = match decision.call {
                CallChoice::None if self.json => Some(self.no_call_grammar.clone()),
                CallChoice::Required => Some(self.required_grammar.clone()),
                _ => params.grammar.clone(),
            };
            let step_params = params
                .clone()
                .with_name_choice(decision.name_choice)
                .with_grammar(grammar);
            let completion = step_span.in_scope(|| {
                let _span = tracing::debug_span!("generate", prompt_bytes = prompt.len()).entered();
                self.model.complete(&prompt, &step_params, &mut |t| {
                    on_event(&Event::Text(t.to_owned()))
                })
            })?;
            let output = completion.text.trim_end().to_owned();
            let mut record = StepRecord {
                output: output.clone(),
                actions: Vec::new(),
                observations: Vec::new(),
                stats: completion.stats,
                tool_ms: 0.0,
            };
            // A message cut short is not parsed: its last call or answer
            // may be cut too.
            let cut = match completion.finish {
                FinishReason::Interrupted => Some(AgentFinish::Interrupted),
                FinishReason::ContextFull => Some(AgentFinish::ContextFull),
                _ => None,
            };
            if let Some(finish) = cut {
                steps.push(record);
                return Ok(Outcome {
                    answer: None,
                    finish,
                    steps,
                });
            }
            if let Some(thought) = output
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("Thought:"))
            {
                let _ = on_event(&Event::Thought(thought.trim().to_owned()));
            }
            let (observations, failed) = match self.parser.parse(output.as_bytes()) {
                Ok(Step::Answer { text }) => {
                    let _ = on_event(&Event::Answer(text.clone()));
                    let _ = on_event(&Event::StepDone {
                        stats: record.stats,
                        tool_ms: 0.0,
                    });
                    steps.push(record);
                    self.history.push((input.to_owned(), text.clone()));
                    return Ok(Outcome {
                        answer: Some(text),
                        finish: AgentFinish::Answered,
                        steps,
                    });
                }
                Ok(Step::Calls(calls)) => {
                    for call in &calls {
                        let _ = on_event(&Event::Action {
                            tool: call.action.clone(),
                            input: call.input.clone(),
                        });
                    }
                    let earlier: Vec<Option<(usize, String)>> =
                        calls.iter().map(|c| made.earlier(c)).collect();
                    record.actions = calls
                        .iter()
                        .map(|c| (c.action.clone(), c.input.clone()))
                        .collect();
                    if earlier.iter().flatten().any(|(times, _)| *times >= 2) {
                        let _ = on_event(&Event::StepDone {
                            stats: record.stats,
                            tool_ms: 0.0,
                        });
                        steps.push(record);
                        return Ok(Outcome {
                            answer: None,
                            finish: AgentFinish::RepeatedCall,
                            steps,
                        });
                    }
                    // Only calls not made before in this turn run again.
                    let fresh: Vec<Call> = calls
                        .iter()
                        .zip(&earlier)
                        .filter(|(_, e)| e.is_none())
                        .map(|(c, _)| c.clone())
                        .collect();
                    let start = Instant::now();
                    let tools_span =
                        tracing::debug_span!(parent: &step_span, "tools", calls = fresh.len());
                    let mut results =
                        tracing::Instrument::instrument(self.call_tools(&fresh), tools_span)
                            .await
                            .into_iter();
                    record.tool_ms = start.elapsed().as_secs_f64() * 1e3;
                    let mut failed = false;
                    let mut observations = Vec::with_capacity(calls.len());
                    for (call, earlier) in calls.iter().zip(earlier) {
                        let text = match earlier {
                            Some((_, result)) => {
                                made.record(call, &result);
                                repeated_call_note(&call.action, &result)
                            }
                            None => match results.next() {
                                // Only calls that succeeded are remembered: a
                                // failed one may be retried, within the
                                // retry budget.
                                Some(Ok(text)) => {
                                    made.record(call, &text);
                                    text
                                }
                                Some(Err(e)) => {
                                    failed = true;
                                    e.to_string()
                                }
                                None => {
                                    failed = true;
                                    "the call had no result".to_owned()
                                }
                            },
                        };
                        observations.push(text);
                    }
                    (observations, failed)
                }
                Err(e) => (vec![format!("{e}. Reply in the required format.")], true),
            };
            for text in &observations {
                let _ = on_event(&Event::Observation {
                    text: text.clone(),
                    failed,
                });
            }
            let _ = on_event(&Event::StepDone {
                stats: record.stats,
                tool_ms: record.tool_ms,
            });
            trace.push_str(&format!("{output}\n{}", observation_lines(&observations)));
            record.observations = observations;
            steps.push(record);
            failures = if failed { failures + 1 } else { 0 };
            if failed && failures > self.config.max_retries {
                return Ok(Outcome {
                    answer: None,
                    finish: AgentFinish::RetriesExhausted,
                    steps,
                });
            }
        }
        Ok(Outcome {
            answer: None,
            finish: AgentFinish::MaxSteps,
            steps,
        })
    }

    /// Validates and runs the calls of one message concurrently on tokio,
    /// each under its own timeout, and returns their results in call order.
    /// One call failing, timing out or panicking (caught at its task
    /// boundary) leaves the others' results intact.
    async fn call_tools(&self, calls: &[Call]) -> Vec<Result<String, ToolError>> {
        let timeout = self.config.tool_timeout;
        // Every task is spawned before any is awaited, so all run at once.
        let started: Vec<_> = calls
            .iter()
            .map(|call| {
                let task = self
                    .tools
                    .prepare(&call.action, &call.input)
                    .map(|prepared| tokio::spawn(tokio::time::timeout(timeout, prepared.run())));
                (call.action.as_str(), task)
            })
            .collect();
        let mut results = Vec::with_capacity(calls.len());
        for (name, task) in started {
            results.push(match task {
                Err(e) => Err(e),
                Ok(task) => match task.await {
                    Ok(Ok(Ok(value))) => Ok(observation_text(&value)),
                    Ok(Ok(Err(e))) => Err(e),
                    Ok(Err(_elapsed)) => Err(ToolError::Failed(format!(
                        "tool `{name}` timed out after {:.1} s",
                        timeout.as_secs_f64()
                    ))),
                    Err(join) if join.is_panic() => {
                        Err(ToolError::Failed(format!("tool `{name}` crashed")))
                    }
                    Err(_) => Err(ToolError::Failed(format!("tool `{name}` was cancelled"))),
                },
            });
        }
        results
    }
}

/// A string output is shown as is; anything else as compact JSON.
/// The calls that succeeded in one turn, by tool and arguments (JSON arguments
/// compared as values, so key order and spacing do not matter), with how
/// often each was made and its first observation.
#[derive(Debug, Default)]
struct MadeCalls {
    calls: std::collections::HashMap<(String, String), (usize, String)>,
}

impl MadeCalls {
    fn key(call: &Call) -> (String, String) {
        let input = call.input.trim();
        let input = serde_json::from_str::<Value>(input)
            .map_or_else(|_| input.to_owned(), |v| v.to_string());
        (call.action.trim().to_owned(), input)
    }

    /// How often `call` was made before in this turn, and what it observed.
    fn earlier(&self, call: &Call) -> Option<(usize, String)> {
        self.calls.get(&Self::key(call)).cloned()
    }

    fn record(&mut self, call: &Call, observation: &str) {
        self.calls
            .entry(Self::key(call))
            .and_modify(|(times, _)| *times += 1)
            .or_insert_with(|| (1, observation.to_owned()));
    }
}

/// The observation of a call already made in this turn: it is not run
/// again, and the model is told what it returned.
fn repeated_call_note(tool: &str, result: &str) -> String {
    format!(
        "You already called {tool} with these arguments in this turn; it returned: {result}. Use that result to answer, or call something else."
    )
}

fn observation_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
