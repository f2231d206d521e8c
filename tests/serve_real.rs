//! The split deployment on the real models: a cloud-role server and an
//! edge-role server as two `loragen serve` processes, each with its own
//! `LORAGEN_HOME`. The first request with a new tool list compiles on the
//! cloud server, the second is a cache hit on the edge server, and the
//! adapter's sha256 is the same on both sides. Then a bounded load: 200
//! requests from 16 clients over three tool sets, a fifth of them invalid;
//! every valid one gets a correct answer or a 503 within its deadline, and
//! the edge server's RSS stays within 10% of its RSS after warm-up. Both
//! servers stop gracefully on SIGTERM, and once restarted on the same homes
//! they answer from their caches without compiling again. On a tiny
//! context, a conversation longer than it gets a 400 that says so. A
//! server with a tool selector vetoes only the calls left to the model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use loragen::agent::store::Role;
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(120);

/// The tests of this file run one at a time: the load test's latencies and
/// RSS are its own only if no other test's servers share the 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

fn loragen(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loragen"));
    c.env("LORAGEN_HOME", home)
        .env(Role::Edge.env_var(), common::model_path(Role::Edge))
        .env(Role::Cloud.env_var(), common::model_path(Role::Cloud));
    c
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A generator checkpoint after one step on ten GPT4Tools items: enough
/// for real compiles (the serving path, not the generator's quality, is
/// under test here).
fn generator(home: &Path) -> PathBuf {
    let data = home.join("data");
    ok(&loragen(home)
        .args(["data", "gpt4tools", "--out", data.to_str().unwrap()])
        .args(["--train", "10", "--val-seen", "2", "--test-unseen", "2"])
        .output()
        .unwrap());
    let run = home.join("run");
    ok(&loragen(home)
        .args([
            "train",
            "generator",
            "--data",
            data.join("train.json").to_str().unwrap(),
        ])
        .args([
            "--out",
            run.to_str().unwrap(),
            "--steps",
            "1",
            "--batch",
            "2",
        ])
        .output()
        .unwrap());
    run.join("checkpoint")
}

/// A `loragen serve` process and the address it printed.
struct Served {
    child: Child,
    url: String,
    /// Kept open: the server prints as it stops.
    _stdout: BufReader<ChildStdout>,
}

impl Served {
    fn start(home: &Path, args: &[&str]) -> Self {
        let mut child = loragen(home)
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "the server exited"
            );
            if let Some(at) = line.find("http://") {
                break line[at..].split(';').next().unwrap().trim().to_owned();
            }
        };
        Served {
            child,
            url,
            _stdout: stdout,
        }
    }

    fn metric(&self, name: &str) -> u64 {
        let (_, text) = get(&format!("{}/metrics", self.url));
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }

    /// SIGTERM, then the exit status must be success.
    fn stop(&mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Served {
    /// A failed test must not leave its servers running (a no-op after
    /// `stop`).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(DEADLINE))
        .build()
        .new_agent()
}

fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn post(url: &str, body: &[u8]) -> (u16, Value) {
    let mut r = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    (
        r.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn tool(name: &str, parameters: Value) -> Value {
    json!({"type": "function", "function": {"name": name, "description": format!("The {name} function."), "parameters": parameters}})
}

fn tool_sets() -> [Value; 3] {
    [
        json!([tool(
            "get_weather",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
        )]),
        json!([
            tool(
                "add",
                json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]})
            ),
            tool(
                "multiply",
                json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]})
            ),
        ]),
        json!([tool(
            "search",
            json!({"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 0}}, "required": ["query"]})
        )]),
    ]
}

const QUESTIONS: [&str; 3] = [
    "What is the weather in Oslo?",
    "What is 12 plus 30?",
    "Find papers about LoRA adapters.",
];

fn chat(set: usize) -> Value {
    json!({"model": "loragen-edge", "max_tokens": 96, "parallel_tool_calls": false,
        "messages": [{"role": "user", "content": QUESTIONS[set]}], "tools": tool_sets()[set].clone()})
}

/// A correct answer: `tool_calls` that name offered tools with arguments
/// valid under their schemas, or non-empty content.
fn check_answer(body: &Value, tools: &Value) {
    let message = &body["choices"][0]["message"];
    match message["tool_calls"].as_array() {
        Some(calls) => {
            assert!(!calls.is_empty(), "{body}");
            for call in calls {
                let name = call["function"]["name"].as_str().unwrap();
                let schema = tools
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["function"]["name"] == name)
                    .unwrap_or_else(|| panic!("{name} was not offered: {body}"));
                let args: Value =
                    serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
                assert!(
                    jsonschema::is_valid(&schema["function"]["parameters"], &args),
                    "{args} against {schema}"
                );
            }
        }
        None => assert!(
            !message["content"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .is_empty(),
            "{body}"
        ),
    }
}

#[test]
fn split_deployment_compiles_once_shares_the_adapter_and_bears_load() {
    let _alone = alone();
    let cloud_home = tempfile::tempdir().unwrap();
    let edge_home = tempfile::tempdir().unwrap();
    let checkpoint = generator(cloud_home.path());
    let mut cloud = Served::start(
        cloud_home.path(),
        &[
            "--role",
            "cloud",
            "--generator",
            checkpoint.to_str().unwrap(),
        ],
    );
    let mut edge = Served::start(
        edge_home.path(),
        &["--role", "edge", "--generator", &cloud.url, "--queue", "8"],
    );
    let chat_url = format!("{}/v1/chat/completions", edge.url);

    // First request with the weather tools: a compile on the cloud server.
    let (status, body) = post(&chat_url, chat(0).to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
    check_answer(&body, &tool_sets()[0]);
    assert_eq!(cloud.metric("loragen_compiles_total"), 1);
    assert_eq!(edge.metric("loragen_adapter_cache_misses_total"), 1);
    // The second: a hit on the edge server, no new compile.
    let (status, body) = post(&chat_url, chat(0).to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
    assert_eq!(edge.metric("loragen_adapter_cache_hits_total"), 1);
    assert_eq!(cloud.metric("loragen_compiles_total"), 1);
    // The same adapter on both sides.
    let (status, compiled) = post(
        &format!("{}/v1/adapters", cloud.url),
        json!({"tools": tool_sets()[0]}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{compiled}");
    assert_eq!(compiled["cached"], true);
    let fingerprint = compiled["fingerprint"].as_str().unwrap();
    let local = edge_home
        .path()
        .join("edge-adapters")
        .join(format!("{fingerprint}.gguf"));
    let local_sha = loragen::protocol::digest::sha256_file(&local).unwrap();
    assert_eq!(compiled["adapter_sha256"], local_sha);

    // Warm-up: every tool set compiled and its adapter loaded.
    for set in 1..3 {
        let (status, body) = post(&chat_url, chat(set).to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
    }
    let warm_rss = edge.rss_kib();

    // 200 requests from 16 clients; every fifth is invalid.
    let started = Instant::now();
    let results: Vec<(usize, u16, Value, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|client| {
                let chat_url = chat_url.clone();
                scope.spawn(move || {
                    (0..200)
                        .filter(|i| i % 16 == client)
                        .map(|i| {
                            let body = match i % 5 {
                                4 if i % 2 == 0 => {
                                    b"{\"model\": \"loragen-edge\", \"messages\": [".to_vec()
                                }
                                4 => {
                                    let mut b = chat(i % 3);
                                    b["model"] = json!("no-such-model");
                                    b.to_string().into_bytes()
                                }
                                _ => chat(i % 3).to_string().into_bytes(),
                            };
                            let sent = Instant::now();
                            let (status, answer) = post(&chat_url, &body);
                            (i, status, answer, sent.elapsed())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let wall = started.elapsed();
    assert_eq!(results.len(), 200);
    let mut served_ms = Vec::new();
    let (mut busy, mut invalid) = (0, 0);
    for (i, status, answer, took) in &results {
        assert!(*took < DEADLINE, "request {i} took {took:?}");
        if i % 5 == 4 {
            assert!(
                (400..500).contains(status),
                "request {i}: {status} {answer}"
            );
            assert!(answer["error"]["message"].is_string(), "{answer}");
            invalid += 1;
        } else if *status == 503 {
            busy += 1;
        } else {
            assert_eq!(*status, 200, "request {i}: {answer}");
            check_answer(answer, &tool_sets()[i % 3]);
            served_ms.push(took.as_secs_f64() * 1e3);
        }
    }
    served_ms.sort_by(f64::total_cmp);
    let quantile = |q: f64| served_ms[((served_ms.len() - 1) as f64 * q).round() as usize];
    let after_rss = edge.rss_kib();
    println!(
        "load: 200 requests from 16 clients in {:.1} s: {} answered ({:.2}/s), {busy} busy (503), {invalid} invalid (4xx); latency of answered p50 {:.0} ms, p99 {:.0} ms; edge RSS {} MiB after warm-up, {} MiB after",
        wall.as_secs_f64(),
        served_ms.len(),
        served_ms.len() as f64 / wall.as_secs_f64(),
        quantile(0.5),
        quantile(0.99),
        warm_rss / 1024,
        after_rss / 1024
    );
    assert!(!served_ms.is_empty());
    assert!(
        (after_rss as f64) <= warm_rss as f64 * 1.10,
        "RSS grew from {warm_rss} KiB to {after_rss} KiB"
    );
    assert_eq!(cloud.metric("loragen_compiles_total"), 3);
    edge.stop();
    cloud.stop();

    // Restarted on the same homes: the edge server finds its adapter on
    // disk and the cloud server its compile cache, so nothing is compiled
    // again and the adapter is the same file.
    let cloud_args = [
        "--role",
        "cloud",
        "--generator",
        checkpoint.to_str().unwrap(),
    ];
    let mut cloud = Served::start(cloud_home.path(), &cloud_args);
    let mut edge = Served::start(
        edge_home.path(),
        &["--role", "edge", "--generator", &cloud.url],
    );
    let (status, body) = post(
        &format!("{}/v1/chat/completions", edge.url),
        chat(0).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    check_answer(&body, &tool_sets()[0]);
    assert_eq!(edge.metric("loragen_adapter_cache_hits_total"), 1);
    assert_eq!(edge.metric("loragen_adapter_cache_misses_total"), 0);
    let (status, again) = post(
        &format!("{}/v1/adapters", cloud.url),
        json!({"tools": tool_sets()[1]}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["cached"], true);
    assert_eq!(cloud.metric("loragen_compile_cache_hits_total"), 1);
    assert_eq!(cloud.metric("loragen_compiles_total"), 0);
    assert_eq!(
        loragen::protocol::digest::sha256_file(&local).unwrap(),
        local_sha,
        "the edge adapter was rewritten"
    );
    edge.stop();

    // On a tiny context, a conversation longer than it is the client's to
    // shorten: a 400 that says so, not a 500.
    let mut edge = Served::start(
        edge_home.path(),
        &["--role", "edge", "--generator", &cloud.url, "--ctx", "64"],
    );
    let mut long = chat(0);
    long["messages"][0]["content"] = json!(QUESTIONS[0].repeat(12));
    let (status, body) = post(
        &format!("{}/v1/chat/completions", edge.url),
        long.to_string().as_bytes(),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("over the edge model's context of 64 tokens"),
        "{message}"
    );
    assert_eq!(body["error"]["param"], "messages");
    edge.stop();
    cloud.stop();
}

/// With `--whole-names` and a tool selector, the edge role reads the
/// selector's part of each compiled artifact. A veto margin below any the
/// selector gives stops every call a request leaves to the model
/// (`tool_choice` auto), counted in `/metrics`, and none that a request
/// requires.
#[test]
fn a_selectors_veto_stops_the_calls_left_to_the_model_only() {
    let _alone = alone();
    let home = tempfile::tempdir().unwrap();
    let checkpoint = generator(home.path());
    let selector = home.path().join("selector");
    ok(&loragen(home.path())
        .args(["train", "selector", "--data"])
        .arg(home.path().join("data/train.json"))
        .arg("--out")
        .arg(&selector)
        .args(["--steps", "10", "--batch", "4", "--negatives", "2"])
        .output()
        .unwrap());
    let mut served = Served::start(
        home.path(),
        &[
            "--generator",
            checkpoint.to_str().unwrap(),
            "--whole-names",
            "--selector",
            selector.to_str().unwrap(),
            "--selector-veto=-1000",
        ],
    );
    let tools = &tool_sets()[1];
    let ask = |choice: &str| {
        let mut body = chat(1);
        body["tool_choice"] = json!(choice);
        let url = format!("{}/v1/chat/completions", served.url);
        let (status, body) = post(&url, body.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
        body
    };
    let auto = ask("auto");
    assert!(
        auto["choices"][0]["message"]["tool_calls"].is_null()
            && auto["choices"][0]["finish_reason"] != "tool_calls",
        "{auto}"
    );
    assert_eq!(served.metric("loragen_selector_vetoes_total"), 1);
    let required = ask("required");
    assert!(
        required["choices"][0]["message"]["tool_calls"]
            .as_array()
            .is_some_and(|calls| !calls.is_empty()),
        "{required}"
    );
    check_answer(&required, tools);
    assert_eq!(served.metric("loragen_selector_vetoes_total"), 1);
    served.stop();
}
