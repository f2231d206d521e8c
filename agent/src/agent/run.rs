//! One user turn: generate, parse, validate, call, observe, repeat.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use loragen_tools::protocol::{conversation_prompt, OutputParser, ReactParser, Step, STEP_STOPS};
use loragen_tools::render::gpt4tools_system_prompt;
use loragen_tools::{ToolError, ToolRegistry};
use serde_json::Value;

use loragen_tools::Mode;

use super::config::AgentConfig;
use super::model::LanguageModel;
use crate::error::Result;
use crate::grammar::call_grammar;
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
}

/// One model message of a turn and what it led to.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub output: String,
    pub action: Option<(String, String)>,
    pub observation: Option<String>,
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
pub struct Agent<M> {
    model: M,
    tools: Arc<ToolRegistry>,
    parser: Box<dyn OutputParser>,
    config: AgentConfig,
    system: String,
    grammar: Option<String>,
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
        let system = gpt4tools_system_prompt(
            tools
                .specs()
                .map(|s| (s.name.as_str(), s.description.as_str())),
        );
        let grammar = Some(call_grammar(&tools)?);
        Ok(Agent {
            model,
            tools,
            parser: Box::new(ReactParser),
            config,
            system,
            grammar,
            history: Vec::new(),
        })
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
        let mut trace = String::new();
        let mut steps = Vec::new();
        let mut failures = 0;
        for _ in 0..self.config.max_steps {
            let prompt = self.prompt(input, &trace);
            let completion = self.model.complete(&prompt, &params, &mut |t| {
                on_event(&Event::Text(t.to_owned()))
            })?;
            let output = completion.text.trim_end().to_owned();
            let mut record = StepRecord {
                output: output.clone(),
                action: None,
                observation: None,
                stats: completion.stats,
                tool_ms: 0.0,
            };
            if completion.finish == FinishReason::Interrupted {
                steps.push(record);
                return Ok(Outcome {
                    answer: None,
                    finish: AgentFinish::Interrupted,
                    steps,
                });
            }
            if let Some(thought) = output
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("Thought:"))
            {
                let _ = on_event(&Event::Thought(thought.trim().to_owned()));
            }
            let (observation, failed) = match self.parser.parse(output.as_bytes()) {
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
                Ok(Step::Call {
                    action,
                    input: args,
                }) => {
                    let _ = on_event(&Event::Action {
                        tool: action.clone(),
                        input: args.clone(),
                    });
                    let start = Instant::now();
                    let result = self.call_tool(&action, &args).await;
                    record.tool_ms = start.elapsed().as_secs_f64() * 1e3;
                    record.action = Some((action, args));
                    match result {
                        Ok(text) => (text, false),
                        Err(e) => (e.to_string(), true),
                    }
                }
                Err(e) => (format!("{e}. Reply in the required format."), true),
            };
            let _ = on_event(&Event::Observation {
                text: observation.clone(),
                failed,
            });
            let _ = on_event(&Event::StepDone {
                stats: record.stats,
                tool_ms: record.tool_ms,
            });
            trace.push_str(&format!("{output}\nObservation: {observation}\n"));
            record.observation = Some(observation);
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

    /// Validates and runs a call on tokio with a timeout. A panic inside
    /// the tool is caught by the task boundary.
    async fn call_tool(&self, name: &str, input: &str) -> Result<String, ToolError> {
        let call = self.tools.prepare(name, input)?;
        let timeout = self.config.tool_timeout;
        let mut task = tokio::spawn(call.run());
        match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(Ok(value))) => Ok(observation_text(&value)),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(join)) if join.is_panic() => {
                Err(ToolError::Failed(format!("tool `{name}` crashed")))
            }
            Ok(Err(_)) => Err(ToolError::Failed(format!("tool `{name}` was cancelled"))),
            Err(_) => {
                task.abort();
                Err(ToolError::Failed(format!(
                    "tool `{name}` timed out after {:.1} s",
                    timeout.as_secs_f64()
                )))
            }
        }
    }
}

/// A string output is shown as is; anything else as compact JSON.
fn observation_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
