//! `loragen serve` on 127.0.0.1 with a scripted edge model and a scripted
//! compiler, driven by real clients: `async-openai` (streaming and not) and
//! plain HTTP for every bad-input case. Generation runs off the executor:
//! while a scripted generation is held at a barrier, `/health` and
//! `/metrics` answer, a full queue answers 503, and a shutdown lets the
//! held request finish.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionRequestUserMessageArgs, ChatCompletionTool,
    ChatCompletionTools, CreateChatCompletionRequestArgs, FunctionObjectArgs,
};
use loragen::agent::grammar::CallChoice;
use loragen::protocol::artifact::{AdapterSource, CompiledAdapter, Manifest, PROMPT_FORMAT};
use loragen::protocol::digest::sha256_hex;
use loragen::serve::{
    CloudWorker, EdgeBackend, EdgeJob, EdgeWorker, Generated, Metrics, ServeConfig, Server,
};
use serde_json::{json, Value};
use tokio_stream::StreamExt;

/// A model that answers every job with `reply`, in small pieces, after
/// waiting at `gate` when there is one; it records the jobs it ran.
struct Scripted {
    reply: String,
    gate: Option<Arc<Barrier>>,
    jobs: Arc<Mutex<Vec<EdgeJob>>>,
}

impl EdgeBackend for Scripted {
    fn generate(
        &mut self,
        job: &EdgeJob,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> loragen::serve::Result<Generated> {
        self.jobs.lock().unwrap().push(job.clone());
        if let Some(gate) = &self.gate {
            gate.wait();
        }
        let pieces: Vec<String> = self
            .reply
            .as_bytes()
            .chunks(5)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        for piece in &pieces {
            if on_text(piece).is_break() {
                break;
            }
        }
        Ok(Generated {
            text: self.reply.clone(),
            truncated: false,
            prompt_tokens: job.prompt.len() / 4,
            completion_tokens: pieces.len(),
            adapter_cached: job.system.as_ref().map(|_| true),
            selector_call: CallChoice::Auto,
        })
    }
}

/// A compiler that writes a small file and its manifest.
struct FakeCompiler;

impl AdapterSource for FakeCompiler {
    fn compile_adapter(
        &mut self,
        system: &str,
        out: &Path,
        _cache: bool,
    ) -> loragen::protocol::Result<CompiledAdapter> {
        let bytes = format!("adapter of {system}");
        std::fs::write(out, &bytes).unwrap();
        let manifest = Manifest {
            registry_fingerprint: sha256_hex(system.as_bytes()),
            edge_sha256: "e".repeat(64),
            cloud_sha256: "c".repeat(64),
            generator_sha256: "g".repeat(64),
            prompt_format: PROMPT_FORMAT.into(),
            adapter_sha256: sha256_hex(bytes.as_bytes()),
            selector: None,
        };
        manifest.write(out)?;
        Ok(CompiledAdapter {
            path: out.to_owned(),
            manifest,
            cached: false,
        })
    }
}

const CALL: &str = "Thought: Do I need to use a tool? Yes\nAction: get_weather\nAction Input: {\"city\":\"Oslo\"}\nAction: get_weather\nAction Input: {\"city\":\"Rome\"}\n";
const ANSWER: &str = "Thought: Do I need to use a tool? No\nAI: It is sunny in Oslo.\n";

struct Running {
    runtime: tokio::runtime::Runtime,
    server: Option<Server>,
    url: String,
    jobs: Arc<Mutex<Vec<EdgeJob>>>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(reply: &str, gate: Option<Arc<Barrier>>, config: ServeConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let jobs = Arc::new(Mutex::new(Vec::new()));
        let backend = Scripted {
            reply: reply.to_owned(),
            gate,
            jobs: Arc::clone(&jobs),
        };
        let edge =
            EdgeWorker::spawn(move || Ok(backend), config.queue, Arc::clone(&metrics)).unwrap();
        let cloud = CloudWorker::spawn(
            || Ok(Box::new(FakeCompiler) as Box<dyn AdapterSource>),
            dir.path().join("served"),
            Arc::clone(&metrics),
        )
        .unwrap();
        let config = config.with_addr(([127, 0, 0, 1], 0).into());
        let server = runtime
            .block_on(Server::start(config, metrics, Some(edge), Some(cloud)))
            .unwrap();
        let url = format!("http://{}", server.addr());
        Running {
            runtime,
            server: Some(server),
            url,
            jobs,
            _dir: dir,
        }
    }

    fn client(&self) -> async_openai::Client<OpenAIConfig> {
        async_openai::Client::with_config(
            OpenAIConfig::new()
                .with_api_base(format!("{}/v1", self.url))
                .with_api_key("unused"),
        )
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent()
}

/// Status, `Retry-After` and body of a POST of raw bytes.
fn post(url: &str, body: &[u8]) -> (u16, Option<String>, Value) {
    let mut r = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.body_mut().read_to_string().unwrap();
    (
        r.status().as_u16(),
        retry,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

fn chat_body(tools: Value) -> Value {
    json!({"model": "loragen-edge", "messages": [{"role": "user", "content": "Weather in Oslo and Rome?"}], "tools": tools})
}

/// An error answer: the status, and the OpenAI error body's message.
fn refused(status: u16, body: &Value) -> String {
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        (400..500).contains(&status) && !message.is_empty() && body["error"]["type"].is_string(),
        "{status} {body}"
    );
    message
}

#[test]
fn an_openai_client_gets_tool_calls_whole_and_streamed() {
    let s = Running::start(CALL, None, ServeConfig::default());
    let tool = ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObjectArgs::default()
            .name("get_weather")
            .description("Weather of a city")
            .parameters(json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}))
            .build()
            .unwrap(),
    });
    let request = CreateChatCompletionRequestArgs::default()
        .model("loragen-edge")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("Weather in Oslo and Rome?")
            .build()
            .unwrap()
            .into()])
        .tools(vec![tool])
        .build()
        .unwrap();
    let client = s.client();
    let response = s
        .runtime
        .block_on(client.chat().create(request.clone()))
        .unwrap();
    let calls = response.choices[0].message.tool_calls.clone().unwrap();
    let cities: Vec<String> = calls
        .iter()
        .map(|c| match c {
            ChatCompletionMessageToolCalls::Function(f) => {
                assert_eq!(f.function.name, "get_weather");
                let args: Value = serde_json::from_str(&f.function.arguments).unwrap();
                args["city"].as_str().unwrap().to_owned()
            }
            other => panic!("not a function call: {other:?}"),
        })
        .collect();
    assert_eq!(cities, ["Oslo", "Rome"]);
    let usage = response.usage.unwrap();
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);

    // The definitions went to the compiled adapter, not into the prompt.
    let job = s.jobs.lock().unwrap()[0].clone();
    assert!(!job.prompt.contains("Weather of a city"), "{}", job.prompt);
    assert!(job.system.unwrap().contains("Weather of a city"));

    let mut stream = s
        .runtime
        .block_on(client.chat().create_stream(request))
        .unwrap();
    let mut streamed: Vec<(String, String)> = Vec::new();
    let mut finish = None;
    s.runtime.block_on(async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            for choice in chunk.choices {
                for call in choice.delta.tool_calls.unwrap_or_default() {
                    let f = call.function.unwrap();
                    streamed.push((f.name.unwrap_or_default(), f.arguments.unwrap_or_default()));
                }
                if let Some(reason) = choice.finish_reason {
                    finish = Some(format!("{reason:?}"));
                }
            }
        }
    });
    assert_eq!(streamed.len(), 2);
    assert_eq!(streamed[1].1, r#"{"city":"Rome"}"#);
    assert_eq!(finish.as_deref(), Some("ToolCalls"));
}

#[test]
fn streamed_content_arrives_in_pieces_and_ends_with_usage_and_done() {
    let s = Running::start(ANSWER, None, ServeConfig::default());
    let mut body = chat_body(json!([weather_tool()]));
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, _, text) = post(
        &format!("{}/v1/chat/completions", s.url),
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|c| !c.is_empty())
        .collect();
    assert!(
        content.len() > 1,
        "content must stream in pieces: {content:?}"
    );
    assert_eq!(content.concat(), "It is sunny in Oslo.");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(
        chunks[chunks.len() - 1]["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn every_bad_input_gets_an_openai_error_and_the_server_stays_up() {
    let s = Running::start(
        ANSWER,
        None,
        ServeConfig::default().with_max_body(4096).with_max_tools(2),
    );
    let chat = format!("{}/v1/chat/completions", s.url);

    let (status, _, body) = post(&chat, b"{\"model\": \"loragen-edge\", \"messages\": [");
    assert_eq!(status, 400);
    assert!(refused(status, &body).contains("not valid JSON"));

    let mut wrong = chat_body(json!([]));
    wrong["max_tokens"] = json!("ten");
    let (status, _, body) = post(&chat, wrong.to_string().as_bytes());
    assert!(refused(status, &body).contains("max_tokens"));
    assert_eq!(body["error"]["param"], "max_tokens");

    let big = chat_body(
        json!([{"type": "function", "function": {"name": "f", "description": "x".repeat(5000)}}]),
    );
    let (status, _, body) = post(&chat, big.to_string().as_bytes());
    assert_eq!(status, 413);
    assert!(refused(status, &body).contains("4096"));

    let three = chat_body(
        json!([weather_tool(), {"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}]),
    );
    let (status, _, body) = post(&chat, three.to_string().as_bytes());
    assert!(refused(status, &body).contains("more than the 2"));

    let pattern = chat_body(json!([{"type": "function", "function": {"name": "p",
        "parameters": {"type": "object", "properties": {"s": {"type": "string", "pattern": "^a+$"}}}}}]));
    let (status, _, body) = post(&chat, pattern.to_string().as_bytes());
    let message = refused(status, &body);
    assert!(
        message.contains("does not compile") && message.contains("pattern"),
        "{message}"
    );

    let text = chat_body(json!([{"type": "function", "function": {"name": "t",
        "parameters": {"type": "string"}}}]));
    let (status, _, body) = post(&chat, text.to_string().as_bytes());
    assert!(
        refused(status, &body).contains("`t` must be a JSON Schema of type object"),
        "{body}"
    );
    assert_eq!(body["error"]["param"], "tools");

    let mut unknown = chat_body(json!([]));
    unknown["model"] = json!("gpt-4o");
    let (status, _, body) = post(&chat, unknown.to_string().as_bytes());
    assert_eq!(status, 404);
    assert!(refused(status, &body).contains("gpt-4o"));

    let (status, body) = get(&format!("{}/v1/adapters/{}", s.url, "0".repeat(64)));
    assert_eq!(status, 404);
    assert!(refused(status, &serde_json::from_str(&body).unwrap()).contains("POST its tools"));

    let (status, _, body) = post(
        &format!("{}/v1/adapters", s.url),
        br#"{"registry": "nope"}"#,
    );
    assert!(refused(status, &body).contains("unknown registry"));

    // Still up, and every refusal counted.
    let (status, _, _) = post(
        &chat,
        chat_body(json!([weather_tool()])).to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let (_, metrics) = get(&format!("{}/metrics", s.url));
    assert!(
        metrics.contains(r#"loragen_requests_total{route="/v1/chat/completions",status="400"} 5"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"loragen_requests_total{route="/v1/chat/completions",status="413"} 1"#),
        "{metrics}"
    );
}

#[test]
fn compiled_artifacts_are_served_by_fingerprint_with_their_manifest() {
    let s = Running::start(ANSWER, None, ServeConfig::default());
    let (status, _, answer) = post(
        &format!("{}/v1/adapters", s.url),
        json!({"tools": [weather_tool()]}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let fingerprint = answer["fingerprint"].as_str().unwrap();
    let mut r = agent()
        .get(&format!("{}/v1/adapters/{fingerprint}", s.url))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let manifest: Manifest = serde_json::from_str(
        r.headers()
            .get(loragen::serve::MANIFEST_HEADER)
            .unwrap()
            .to_str()
            .unwrap(),
    )
    .unwrap();
    let bytes = r.body_mut().read_to_vec().unwrap();
    assert_eq!(sha256_hex(&bytes), manifest.adapter_sha256);
    assert_eq!(answer["adapter_sha256"], manifest.adapter_sha256);
    assert_eq!(manifest.registry_fingerprint, fingerprint);
}

#[test]
fn health_and_metrics_answer_while_a_generation_is_held_and_a_full_queue_gets_503() {
    let gate = Arc::new(Barrier::new(2));
    let s = Running::start(
        ANSWER,
        Some(Arc::clone(&gate)),
        ServeConfig::default().with_queue(1),
    );
    let chat = format!("{}/v1/chat/completions", s.url);
    let body = chat_body(json!([weather_tool()])).to_string();
    let held = {
        let (chat, body) = (chat.clone(), body.clone());
        std::thread::spawn(move || post(&chat, body.as_bytes()))
    };
    // Until the held job has reached the model thread, a second request
    // could take its place in the queue.
    while s.jobs.lock().unwrap().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let queued = {
        let (chat, body) = (chat.clone(), body.clone());
        std::thread::spawn(move || post(&chat, body.as_bytes()))
    };
    // The queued request waits in the one-slot queue; wait until the
    // gauge shows both, then a third finds the queue full.
    loop {
        let (_, metrics) = get(&format!("{}/metrics", s.url));
        if metrics.contains("loragen_queued_requests 2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, retry, body_503) = post(&chat, body.as_bytes());
    assert_eq!(status, 503, "{body_503}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body_503["error"]["type"], "server_busy");

    let (status, health) = get(&format!("{}/health", s.url));
    assert_eq!(status, 200);
    assert!(health.contains("\"ok\""));

    gate.wait(); // the held generation
    gate.wait(); // the queued one
    assert_eq!(held.join().unwrap().0, 200);
    assert_eq!(queued.join().unwrap().0, 200);
    let (_, metrics) = get(&format!("{}/metrics", s.url));
    assert!(metrics.contains("loragen_rejected_total 1"), "{metrics}");
    assert!(
        metrics.contains("loragen_adapter_cache_hits_total 2"),
        "{metrics}"
    );
}

#[test]
fn a_shutdown_lets_the_request_in_flight_finish() {
    let gate = Arc::new(Barrier::new(2));
    let mut s = Running::start(ANSWER, Some(Arc::clone(&gate)), ServeConfig::default());
    let chat = format!("{}/v1/chat/completions", s.url);
    let body = chat_body(json!([])).to_string();
    let held = std::thread::spawn(move || post(&chat, body.as_bytes()));
    while s.jobs.lock().unwrap().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let server = s.server.take().unwrap();
    let stopping = s.runtime.spawn(server.shutdown());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !stopping.is_finished(),
        "the shutdown must wait for the request"
    );
    gate.wait();
    let (status, _, answer) = held.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "It is sunny in Oslo."
    );
    s.runtime.block_on(stopping).unwrap().unwrap();
    assert!(agent().get(&format!("{}/health", s.url)).call().is_err());
}

#[test]
fn a_request_without_tools_is_offered_the_default_tools() {
    let weather = loragen::protocol::spec::from_openai_value(&json!([weather_tool()])).unwrap();
    let s = Running::start(
        CALL,
        None,
        ServeConfig::default().with_default_tools(weather),
    );
    let (status, listed) = get(&format!("{}/v1/tools", s.url));
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["data"][0]["function"]["name"], "get_weather");

    let mut body = chat_body(json!([]));
    body.as_object_mut().unwrap().remove("tools");
    let (status, _, answer) = post(
        &format!("{}/v1/chat/completions", s.url),
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let calls = answer["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let job = s.jobs.lock().unwrap()[0].clone();
    assert!(job.system.unwrap().contains("Weather of a city"));

    // Default tools that the grammar cannot express are refused at start.
    let bad = loragen::protocol::spec::from_openai_value(&json!([{"name": "p",
        "parameters": {"type": "object", "properties": {"s": {"type": "string", "pattern": "^a+$"}}}}]))
    .unwrap();
    let err = ServeConfig::default()
        .with_default_tools(bad)
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("the default tools"), "{err}");
}
