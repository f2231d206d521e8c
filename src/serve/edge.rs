//! The edge role's model thread. Generation never runs on the async
//! executor: one dedicated thread owns the edge model and serves one
//! generation at a time, taking jobs from a bounded queue; a full queue is
//! a 503 for the caller, and `/health` and `/metrics` answer meanwhile.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use loragen_agent::adapter::AdapterCache;
use loragen_agent::agent::{NameDecision, NamePolicy, SelectorParams, WholeNames};
use loragen_agent::grammar::CallChoice;
use loragen_agent::runtime::{AdapterHost, FinishReason, GenerateParams, SessionParams};
use loragen_agent::selector::{CompiledTools, EdgeSelector};
use tokio::sync::mpsc;

use super::error::{ApiError, Error, Result};
use super::metrics::Metrics;

/// One generation: the prompt (without tool definitions), the system part
/// the request's tools compile into (`None` without tools: no adapter),
/// and the decoding settings with the call grammar.
#[derive(Debug, Clone)]
pub struct EdgeJob {
    pub prompt: String,
    pub system: Option<String>,
    pub params: GenerateParams,
    /// The names the message may call (none when `tool_choice` is
    /// "none"), for a name policy ([`EdgeNames`]).
    pub names: Vec<String>,
    /// When the request leaves the call to the model (`tool_choice`
    /// auto): the grammars a selector's decision decodes under.
    pub choice_grammars: Option<ChoiceGrammars>,
}

/// The grammars of a message whose call a selector may decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceGrammars {
    /// An answer without a call: a veto.
    pub none: String,
    /// Calls alone: a required call.
    pub required: String,
}

/// What a generation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub text: String,
    /// The token limit cut the message.
    pub truncated: bool,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// With tools: whether the adapter was already on this server.
    pub adapter_cached: Option<bool>,
    /// What a tool selector decided: [`CallChoice::None`] (a veto) or
    /// [`CallChoice::Required`]; [`CallChoice::Auto`] when it left the call
    /// to the model or did not run.
    pub selector_call: CallChoice,
}

/// What generates for the edge role: the llama.cpp model with compiled
/// adapters ([`LlamaEdge`]), or a scripted stand-in in tests.
pub trait EdgeBackend {
    /// Runs `job`, streaming text to `on_text`; `Break` stops early.
    fn generate(
        &mut self,
        job: &EdgeJob,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generated>;
}

/// What the model thread sends back for a job.
#[derive(Debug)]
pub enum EdgeEvent {
    Text(String),
    Done(Result<Generated, ApiError>),
}

struct Work {
    job: EdgeJob,
    events: mpsc::UnboundedSender<EdgeEvent>,
    /// The request's span, which the model thread's work joins.
    span: tracing::Span,
    queued: std::time::Instant,
}

/// The handle of the model thread; cloning shares the one queue.
#[derive(Debug, Clone)]
pub struct EdgeWorker {
    queue: mpsc::Sender<Work>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl EdgeWorker {
    /// Starts the model thread; `make` builds the backend on it (so the
    /// backend need not be `Send`). Fails if `make` fails.
    pub fn spawn<B, F>(make: F, queue: usize, metrics: Arc<Metrics>) -> Result<Self>
    where
        B: EdgeBackend,
        F: FnOnce() -> Result<B> + Send + 'static,
    {
        if queue == 0 {
            return Err(Error::Config("the queue needs room for one request".into()));
        }
        let (tx, mut rx) = mpsc::channel::<Work>(queue);
        let thread_metrics = Arc::clone(&metrics);
        super::spawn_worker("edge-model", make, move |mut backend: B| {
            while let Some(work) = rx.blocking_recv() {
                run_one(&mut backend, work, &thread_metrics);
            }
        })?;
        Ok(EdgeWorker {
            queue: tx,
            capacity: queue,
            metrics,
        })
    }

    /// Queues `job`; its events arrive on the returned receiver. A full
    /// queue is a 503.
    pub fn submit(&self, job: EdgeJob) -> Result<mpsc::UnboundedReceiver<EdgeEvent>, ApiError> {
        let (events, rx) = mpsc::unbounded_channel();
        let work = Work {
            job,
            events,
            span: tracing::Span::current(),
            queued: std::time::Instant::now(),
        };
        match self.queue.try_send(work) {
            Ok(()) => {
                self.metrics.queued.inc();
                Ok(rx)
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.rejected.inc();
                Err(ApiError::busy(self.capacity))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(ApiError::internal("the edge model thread has stopped"))
            }
        }
    }
}

fn run_one<B: EdgeBackend>(backend: &mut B, work: Work, metrics: &Metrics) {
    let _span = tracing::info_span!(
        parent: &work.span,
        "edge_generate",
        prompt_bytes = work.job.prompt.len(),
        queued_ms = work.queued.elapsed().as_secs_f64() * 1e3,
    )
    .entered();
    let events = work.events;
    // A client that went away stops its generation at the next token.
    let mut on_text = |piece: &str| {
        if events.send(EdgeEvent::Text(piece.to_owned())).is_ok() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    };
    let result = backend.generate(&work.job, &mut on_text);
    metrics.queued.dec();
    if let Ok(generated) = &result {
        if let Some(cached) = generated.adapter_cached {
            let counter = if cached {
                &metrics.adapter_cache_hits
            } else {
                &metrics.adapter_cache_misses
            };
            counter.inc();
        }
        match generated.selector_call {
            CallChoice::None => metrics.selector_vetoes.inc(),
            CallChoice::Required => metrics.selector_required.inc(),
            CallChoice::Auto => {}
        }
    }
    let _ = events.send(EdgeEvent::Done(result.map_err(ApiError::from)));
}

/// How the edge role chooses tool names (`serve --whole-names`): every
/// offered name is scored whole by the edge model, and with a tool
/// selector each name also gets the selector's log-probability as a prior,
/// and "no call" may veto a call that the request leaves to the model. The
/// selector's tools come from each compiled artifact's selector part,
/// which must be this selector's.
#[derive(Debug)]
pub struct EdgeNames {
    selector: Option<ServedSelector>,
}

#[derive(Debug)]
struct ServedSelector {
    edge: EdgeSelector,
    params: SelectorParams,
    /// sha256 of the selector's weights, which each artifact's part names.
    sha256: String,
    /// Each registry's tools by its adapter key, read once.
    tools: HashMap<String, CompiledTools>,
}

impl EdgeNames {
    /// Whole-name scoring alone.
    pub fn whole() -> Self {
        EdgeNames { selector: None }
    }

    /// Whole-name scoring with the selector on `edge`, whose weights hash
    /// to `sha256`, entering decoding as `params` say.
    pub fn with_selector(
        edge: EdgeSelector,
        params: SelectorParams,
        sha256: String,
    ) -> Result<Self> {
        params.validate()?;
        Ok(EdgeNames {
            selector: Some(ServedSelector {
                edge,
                params,
                sha256,
                tools: HashMap::new(),
            }),
        })
    }

    /// The decision for `prompt` over `names`, in the registry held under
    /// `key`, whose compiled artifact is at `artifact`.
    fn decide(
        &mut self,
        key: &str,
        artifact: &Path,
        prompt: &str,
        names: &[String],
    ) -> Result<NameDecision> {
        let Some(s) = self.selector.as_mut() else {
            return Ok(WholeNames.decide(prompt, names)?);
        };
        let out_dim = s.edge.selector().config().out_dim;
        let tools = match s.tools.entry(key.to_owned()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                e.insert(CompiledTools::from_artifact(artifact, &s.sha256, out_dim)?)
            }
        };
        Ok(s.params.decide(&mut s.edge, tools, prompt, names)?)
    }
}

/// The edge model in llama.cpp with the adapters compiled for the request
/// tool lists it has seen, attached per request without reloading the
/// model (up to [`loragen_agent::runtime::ADAPTERS_PER_MODEL_LOAD`], then
/// the model is reloaded and the adapters with it). Requests run on the
/// host's kept session, so a conversation's next turn under the same tools
/// prefills only its new messages.
pub struct LlamaEdge {
    /// Holds the loaded adapters by registry fingerprint.
    host: AdapterHost,
    /// Where compiled or fetched adapters are kept, and how missing ones
    /// are made.
    adapters: AdapterCache,
    session: SessionParams,
    /// How tool names are chosen; `None` decodes them token by token.
    names: Option<EdgeNames>,
}

impl std::fmt::Debug for LlamaEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaEdge")
            .field("adapters", &self.adapters)
            .finish_non_exhaustive()
    }
}

impl LlamaEdge {
    /// The edge model in `host`; adapters come from `adapters` (over the
    /// cloud role, in-process or remote).
    pub fn new(host: AdapterHost, adapters: AdapterCache, session: SessionParams) -> Self {
        LlamaEdge {
            host,
            adapters,
            session,
            names: None,
        }
    }

    /// Chooses tool names by `names` in requests with tools.
    #[must_use]
    pub fn with_names(mut self, names: EdgeNames) -> Self {
        self.names = Some(names);
        self
    }
}

impl EdgeBackend for LlamaEdge {
    fn generate(
        &mut self,
        job: &EdgeJob,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generated> {
        let ensured = match job.system.as_deref() {
            Some(system) => {
                let _span = tracing::debug_span!("adapter").entered();
                Some(self.adapters.ensure(&mut self.host, system)?)
            }
            None => None,
        };
        let registry = ensured.as_ref().map(|e| e.key.clone());
        // Already on this server: loaded, or on disk with a manifest that checks.
        let adapter_cached = ensured.map(|e| e.held || e.on_disk);
        let (params, selector_call) = match (&mut self.names, &registry) {
            (Some(names), Some(key)) if !job.names.is_empty() => {
                let _span = tracing::debug_span!("names", offered = job.names.len()).entered();
                let artifact = self.adapters.path_of(key);
                let decision = names.decide(key, &artifact, &job.prompt, &job.names)?;
                // Only a call the request leaves to the model is decided.
                let decided = match (&job.choice_grammars, decision.call) {
                    (Some(grammars), CallChoice::None) => Some((&grammars.none, CallChoice::None)),
                    (Some(grammars), CallChoice::Required) => {
                        Some((&grammars.required, CallChoice::Required))
                    }
                    _ => None,
                };
                let call = decided.map_or(CallChoice::Auto, |(_, call)| call);
                tracing::debug!(
                    ?call,
                    none_margin = ?decision.none_margin,
                    selector_ms = ?decision.selector_ms,
                    "tool names decided"
                );
                let params = job.params.clone().with_name_choice(decision.name_choice);
                match decided {
                    Some((grammar, call)) => (params.with_grammar(Some(grammar.clone())), call),
                    None => (params, CallChoice::Auto),
                }
            }
            _ => (job.params.clone(), CallChoice::Auto),
        };
        let completion = self
            .host
            .with_session(&self.session, registry.as_deref(), |session| {
                session.generate_streaming(&job.prompt, &params, on_text)
            })?;
        Ok(Generated {
            text: completion.text,
            // Cut by the token limit or by the context: "length" either way.
            truncated: matches!(
                completion.finish,
                FinishReason::MaxTokens | FinishReason::ContextFull
            ),
            prompt_tokens: completion.stats.prompt_tokens,
            completion_tokens: completion.stats.decode_tokens,
            adapter_cached,
            selector_call,
        })
    }
}
