//! `loragen serve`: an OpenAI-compatible endpoint whose tools are compiled
//! into an adapter instead of being put in the prompt, and the generator
//! as a service. Two roles, which one process may play together:
//!
//! - **edge**: `POST /v1/chat/completions` (streaming or not) and
//!   `GET /v1/models`; a request's tools are fingerprinted, their adapter
//!   taken from this server's cache or compiled by the cloud role, and the
//!   message decoded under the call grammar;
//! - **cloud**: `POST /v1/adapters` compiles a tool list, and
//!   `GET /v1/adapters/{fingerprint}` serves the artifact (and
//!   `.../selector` its tool selector part, when its manifest lists one);
//! - both: `GET /health` and `GET /metrics` (Prometheus text).
//!
//! Generation and compiles run on their own threads ([`EdgeWorker`],
//! [`CloudWorker`]), never on the async executor. The API, the cache and
//! the deployment are described in `docs/serving.md`.

mod chat;
mod client;
mod cloud;
mod edge;
mod error;
mod metrics;
mod openai;
mod prompt;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use loragen_protocol::artifact::selector_path;
use loragen_protocol::ToolSpec;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

pub use client::{CompileAnswer, RemoteCloud, MANIFEST_HEADER};
pub use cloud::CloudWorker;
pub use edge::{EdgeBackend, EdgeEvent, EdgeJob, EdgeNames, EdgeWorker, Generated, LlamaEdge};
pub use error::{ApiError, Error, Result};
pub use metrics::Metrics;
pub use openai::ChatRequest;

/// Settings of a server.
///
/// # Examples
///
/// ```
/// use loragen::serve::ServeConfig;
///
/// let config = ServeConfig::default().with_queue(4).with_max_tools(16);
/// assert_eq!(config.max_body, 1 << 20);
/// assert!(config.validate().is_ok());
/// assert!(ServeConfig::default().with_queue(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// Requests that may wait for the edge model; more get 503.
    pub queue: usize,
    /// Largest request body in bytes; larger ones get 413.
    pub max_body: usize,
    /// Most tools one request may carry.
    pub max_tools: usize,
    /// Most calls one message may make (OpenAI's parallel tool calls).
    pub max_calls: usize,
    /// `max_tokens` when a request sets none, and the most it may set.
    pub default_max_tokens: usize,
    pub max_max_tokens: usize,
    /// The id under which the edge model is served (`GET /v1/models`).
    pub model_id: String,
    /// The tools a chat request without tools is offered (e.g. those of
    /// MCP servers); listed at `GET /v1/tools`.
    pub default_tools: Vec<ToolSpec>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            queue: 8,
            max_body: 1 << 20,
            max_tools: 128,
            max_calls: 8,
            default_max_tokens: 256,
            max_max_tokens: 2048,
            model_id: "loragen-edge".into(),
            default_tools: Vec::new(),
        }
    }
}

impl ServeConfig {
    #[must_use]
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    #[must_use]
    pub fn with_queue(mut self, queue: usize) -> Self {
        self.queue = queue;
        self
    }

    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    #[must_use]
    pub fn with_max_tools(mut self, tools: usize) -> Self {
        self.max_tools = tools;
        self
    }

    #[must_use]
    pub fn with_max_calls(mut self, calls: usize) -> Self {
        self.max_calls = calls;
        self
    }

    #[must_use]
    pub fn with_model_id(mut self, id: impl Into<String>) -> Self {
        self.model_id = id.into();
        self
    }

    #[must_use]
    pub fn with_default_tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.default_tools = tools;
        self
    }

    pub fn validate(&self) -> Result<()> {
        if self.queue == 0 || self.max_body == 0 || self.max_tools == 0 || self.max_calls == 0 {
            return Err(Error::Config(format!(
                "queue, body limit, tool limit and call limit must be positive ({self:?})"
            )));
        }
        if self.default_max_tokens == 0 || self.default_max_tokens > self.max_max_tokens {
            return Err(Error::Config(format!(
                "the default max_tokens {} must be in 1..={}",
                self.default_max_tokens, self.max_max_tokens
            )));
        }
        if self.model_id.trim().is_empty() {
            return Err(Error::Config("the model id is empty".into()));
        }
        chat::check_tools(&self.default_tools, self)
            .map_err(|e| Error::Config(format!("the default tools: {}", e.message)))?;
        Ok(())
    }
}

/// What the handlers share.
#[derive(Debug)]
struct AppState {
    config: ServeConfig,
    metrics: Arc<Metrics>,
    edge: Option<EdgeWorker>,
    cloud: Option<CloudWorker>,
}

impl AppState {
    /// The cloud role, which the adapter routes need.
    fn cloud(&self) -> Result<&CloudWorker, ApiError> {
        self.cloud
            .as_ref()
            .ok_or_else(|| ApiError::not_found("this server has no cloud role"))
    }
}

/// A running server; [`Server::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port) and serves the routes
    /// of the roles given: edge routes with `edge`, cloud routes with
    /// `cloud`. Must be called inside a tokio runtime.
    pub async fn start(
        config: ServeConfig,
        metrics: Arc<Metrics>,
        edge: Option<EdgeWorker>,
        cloud: Option<CloudWorker>,
    ) -> Result<Self> {
        config.validate()?;
        if edge.is_none() && cloud.is_none() {
            return Err(Error::Config(
                "a server needs the edge or the cloud role".into(),
            ));
        }
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr()?;
        let state = Arc::new(AppState {
            metrics,
            edge,
            cloud,
            config,
        });
        let app = router(Arc::clone(&state));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "serving");
        Ok(Server {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets in-flight requests finish, and
    /// returns when they have.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Waits until the server stops.
    pub async fn wait(self) -> Result<()> {
        match self.task.await {
            Ok(result) => Ok(result?),
            Err(e) => Err(Error::Config(format!("the server task failed: {e}"))),
        }
    }
}

/// Starts the thread `name`, which builds its state with `make` and then
/// runs `serve` on it; returns once `make` is done, with its error if it
/// failed. The state never crosses threads, so it need not be `Send`.
fn spawn_worker<S, M, R>(name: &'static str, make: M, serve: R) -> Result<()>
where
    M: FnOnce() -> Result<S> + Send + 'static,
    R: FnOnce(S) + Send + 'static,
{
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || match make() {
            Ok(state) => {
                let _ = ready_tx.send(Ok(()));
                serve(state);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })?;
    ready_rx.recv().map_err(|_| Error::WorkerGone(name))?
}

fn router(state: Arc<AppState>) -> Router {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text));
    if state.edge.is_some() {
        app = app
            .route("/v1/models", get(models))
            .route("/v1/tools", get(default_tools))
            .route("/v1/chat/completions", post(chat::completions));
    }
    if state.cloud.is_some() {
        app = app
            .route("/v1/adapters", post(compile))
            .route("/v1/adapters/{fingerprint}", get(artifact))
            .route("/v1/adapters/{fingerprint}/selector", get(selector_part));
    }
    app.fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            track,
        ))
        .with_state(state)
}

/// Counts every request and its latency by route, inside a `request`
/// span that the model threads' work joins, so `RUST_LOG=loragen=debug`
/// shows where a slow request spent its time.
async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        status = tracing::field::Empty,
        ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("status", response.status().as_u16());
    span.record("ms", started.elapsed().as_secs_f64() * 1e3);
    tracing::debug!(parent: &span, "done");
    state.metrics.observe(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The body of a request, or the API error for a body over the limit.
fn body(
    bytes: std::result::Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    bytes.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::invalid(rejection.body_text())
        }
    })
}

async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let roles: Vec<&str> = [
        state.edge.as_ref().map(|_| "edge"),
        state.cloud.as_ref().map(|_| "cloud"),
    ]
    .into_iter()
    .flatten()
    .collect();
    Json(json!({"status": "ok", "roles": roles}))
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response())
}

async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": state.config.model_id, "object": "model", "created": 0, "owned_by": "loragen"}],
    }))
}

/// The tools a request without tools is offered, in OpenAI form.
async fn default_tools(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let tools: Vec<_> = state
        .config
        .default_tools
        .iter()
        .map(ToolSpec::to_openai)
        .collect();
    Json(json!({"object": "list", "data": tools}))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    ))
}

/// `POST /v1/adapters`: exactly one of an OpenAI-style tool list, a
/// built-in registry name, or a system part's text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompileRequest {
    #[serde(default)]
    tools: Option<serde_json::Value>,
    #[serde(default)]
    registry: Option<String>,
    #[serde(default)]
    system: Option<String>,
}

async fn compile(
    State(state): State<Arc<AppState>>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = body(bytes, state.config.max_body)?;
    let cloud = state.cloud()?;
    let request: CompileRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("the compile request: {e}")))?;
    let system = match (request.tools, request.registry, request.system) {
        (Some(tools), None, None) => {
            let specs = loragen_protocol::spec::from_openai_value(&tools)
                .map_err(|e| ApiError::invalid(e.to_string()).with_param("tools"))?;
            chat::check_tools(&specs, &state.config)?;
            loragen_protocol::render::system_prompt(&specs)
        }
        (None, Some(name), None) if name == "gpt4tools" => {
            loragen_protocol::gpt4tools::render_system_prompt(&loragen_protocol::gpt4tools::TOOLS)
        }
        (None, Some(name), None) => {
            return Err(
                ApiError::invalid(format!("unknown registry `{name}` (known: gpt4tools)"))
                    .with_param("registry"),
            )
        }
        (None, None, Some(system)) => system,
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of `tools`, `registry` and `system`",
            ))
        }
    };
    if system.trim().is_empty() {
        return Err(ApiError::invalid(
            "the registry is empty: there is nothing to compile",
        ));
    }
    let started = Instant::now();
    let compiled = cloud.compile(system).await?;
    Ok(Json(json!({
        "fingerprint": compiled.manifest.registry_fingerprint,
        "adapter_sha256": compiled.manifest.adapter_sha256,
        "cached": compiled.cached,
        "compile_ms": started.elapsed().as_secs_f64() * 1e3,
    })))
}

/// `GET /v1/adapters/{fingerprint}/selector`: the tool selector's part of
/// an artifact whose manifest lists one.
async fn selector_part(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
) -> Result<Response, ApiError> {
    let cloud = state.cloud()?;
    let part = match cloud.artifact(&fingerprint)? {
        Some((path, manifest)) if manifest.selector.is_some() => selector_path(&path),
        _ => {
            return Err(ApiError::not_found(format!(
                "no tool selector part compiled for fingerprint `{fingerprint}`"
            )))
        }
    };
    let bytes = tokio::fs::read(&part)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", part.display())))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// `GET /v1/adapters/{fingerprint}`: the GGUF bytes, the manifest in the
/// [`MANIFEST_HEADER`] header.
async fn artifact(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
) -> Result<Response, ApiError> {
    let cloud = state.cloud()?;
    let Some((path, manifest)) = cloud.artifact(&fingerprint)? else {
        return Err(ApiError::not_found(format!(
            "no adapter compiled for fingerprint `{fingerprint}`; POST its tools to /v1/adapters first"
        )));
    };
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let manifest =
        serde_json::to_string(&manifest).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::HeaderName::from_static(MANIFEST_HEADER), manifest),
        ],
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}
