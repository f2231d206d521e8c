//! `loragen bench gpt4tools` and `loragen eval` on the real edge model:
//! records are appended per item, a second run resumes instead of
//! redoing work, Ctrl-C keeps what is done, and the report is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::loragen;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn corpus(dir: &Path) -> std::path::PathBuf {
    let out = loragen(&[
        "data",
        "gpt4tools",
        "--out",
        dir.to_str().unwrap(),
        "--train",
        "10",
        "--val-seen",
        "10",
        "--test-unseen",
        "40",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("test_unseen.json")
}

#[test]
fn two_modes_write_records_report_and_chart_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = corpus(dir.path());
    let run = dir.path().join("run");
    let page = dir.path().join("docs/results.md");
    let args = [
        "bench",
        "gpt4tools",
        "--data",
        data.to_str().unwrap(),
        "--mode",
        "in-context",
        "--mode",
        "in-context-cached",
        "--limit",
        "3",
        "--max-tokens",
        "40",
        "--out",
        run.to_str().unwrap(),
    ];
    let out = loragen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&run.join("records.jsonl")), 6);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("| in-context | 3 |") && report.contains("| in-context-cached | 3 |"),
        "{report}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
    assert!(run.join("chart.svg").exists());
    // The results page is assembled from run directories, a row each.
    let run_arg = |name: &str, mode: &str| format!("{name}={}#{mode}", run.display());
    let report = |runs: &[String]| {
        let mut args = vec!["bench", "report", "-o", page.to_str().unwrap()];
        for r in runs {
            args.extend(["--run", r.as_str()]);
        }
        loragen(&args)
    };
    let out = report(&[
        run_arg("cold", "in-context"),
        run_arg("reuse", "in-context-cached"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&page).unwrap();
    assert!(
        text.contains("do not edit by hand") && text.contains("results-chart.svg"),
        "{text}"
    );
    assert!(
        text.contains("| cold | 3 |") && text.contains("| reuse | 3 |"),
        "{text}"
    );
    assert!(dir.path().join("docs/results-chart.png").exists());
    // A run directory of two modes needs the mode named.
    let out = report(&[format!("both={}", run.display())]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("name one as both=DIR#MODE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Each run records the processor it was measured on, and the page
    // names it.
    let meta_path = run.join("run.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    let processor = meta["processor"].as_str().unwrap().to_owned();
    assert!(processor.contains('('), "{processor}");
    assert!(text.contains(&format!(" on {processor} with ")), "{text}");

    let again = loragen(&args);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already done"));
    assert_eq!(lines(&run.join("records.jsonl")), 6);
    // Resumed on another processor, a run says its latencies mix two.
    meta["processor"] = "Another CPU (AVX2, FMA)".into();
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let resumed = loragen(&args);
    assert!(
        String::from_utf8_lossy(&resumed.stderr).contains("begun on another processor"),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert_eq!(
        meta["processor"].as_str().unwrap(),
        format!("mixed: Another CPU (AVX2, FMA); {processor}")
    );

    let other = loragen(&[
        "bench",
        "gpt4tools",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--constrained",
    ]);
    assert!(String::from_utf8_lossy(&other.stderr).contains("other decoding settings"));
    // Compiled mode without --adapter compiles with the default generator;
    // one that is not a generator is named.
    let compiled = Command::new(env!("CARGO_BIN_EXE_loragen"))
        .args(["bench", "gpt4tools", "--data", data.to_str().unwrap()])
        .args(["--mode", "compiled"])
        .env("LORAGEN_GENERATOR", dir.path().join("no-generator"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&compiled.stderr);
    assert!(
        err.contains("no-generator") && err.contains("not a generator checkpoint"),
        "{err}"
    );

    // Compiled mode drops the system part; a zero adapter stands in for a
    // generated one, so only the prompt length changes.
    let adapter = dir.path().join("zero.gguf");
    loragen::generator::gguf_lora::write_lora_adapter(&adapter, "gemma3", 1.0, &[]).unwrap();
    let with_adapter = |modes: &[&str], adapter: &std::path::Path| {
        let mut args = vec!["bench", "gpt4tools", "--data", data.to_str().unwrap()];
        for mode in modes {
            args.extend(["--mode", mode]);
        }
        args.extend(["--adapter", adapter.to_str().unwrap(), "--limit", "3"]);
        args.extend(["--max-tokens", "40", "--out", run.to_str().unwrap()]);
        loragen(&args)
    };
    let out = with_adapter(&["in-context", "compiled"], &adapter);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let compiled = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["mode"] == "compiled")
        .unwrap();
    assert!(
        compiled["compression"].as_f64().unwrap() > 3.0,
        "{compiled}"
    );

    // The run now names its compiled adapter: another one is refused
    // rather than mixed in.
    let other = dir.path().join("other.gguf");
    loragen::generator::gguf_lora::write_lora_adapter(&other, "gemma3", 2.0, &[]).unwrap();
    let mixed = with_adapter(&["compiled"], &other);
    assert!(
        String::from_utf8_lossy(&mixed.stderr)
            .contains("compiled records made with another adapter"),
        "{}",
        String::from_utf8_lossy(&mixed.stderr)
    );
}

#[test]
fn ctrl_c_keeps_finished_items_and_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let data = corpus(dir.path());
    let run = dir.path().join("run");
    let args = [
        "bench",
        "gpt4tools",
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "8",
        "--max-tokens",
        "40",
        "--out",
        run.to_str().unwrap(),
    ];
    let records = run.join("records.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_loragen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while lines(&records) < 1 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"));
    let kept = lines(&records);
    assert!((1..8).contains(&kept), "{kept}");
    let out = loragen(&args);
    assert!(out.status.success());
    assert_eq!(lines(&records), 8);
}

/// A tools file with one function, `get_weather(city)`.
fn weather_tools(dir: &Path) -> std::path::PathBuf {
    let tools = dir.join("tools.json");
    std::fs::write(
        &tools,
        r#"[{"name": "get_weather", "description": "Current weather of a city.",
             "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}]"#,
    )
    .unwrap();
    tools
}

#[test]
fn eval_writes_calls_scores_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let tools = weather_tools(dir.path());
    let queries = dir.path().join("q.jsonl");
    std::fs::write(
        &queries,
        concat!(
            r#"{"id": "w_1", "messages": [{"role": "user", "content": "What is the weather in Oslo?"}], "expect": "calls", "answers": [{"name": "get_weather", "arguments": {"city": ["Oslo"]}}]}"#,
            "\n",
            r#"{"id": "n_1", "messages": [{"role": "user", "content": "Say hello."}], "expect": "no-call"}"#,
            "\n"
        ),
    )
    .unwrap();
    // The output's directory need not exist yet.
    let out_file = dir.path().join("runs/eval/calls.jsonl");
    let args = [
        "eval",
        "--tools",
        tools.to_str().unwrap(),
        "--queries",
        queries.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
        "--max-tokens",
        "48",
    ];
    let out = loragen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| all | 2 |"));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|r| r["correct"].is_boolean() && r["calls"].is_array()));
    let again = loragen(&args);
    assert!(String::from_utf8_lossy(&again.stdout).contains("resuming"));
    assert_eq!(lines(&out_file), 2);

    // A rerun into the same file with another mode would resume and mix
    // two runs' records: refused, naming what differs, nothing appended.
    let sidecar = dir.path().join("runs/eval/calls.jsonl.settings.json");
    assert!(sidecar.exists());
    let mut other = args.to_vec();
    other.extend(["--mode", "in-context-cached"]);
    let refused = loragen(&other);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("other settings (mode in-context -> in-context-cached)"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(lines(&out_file), 2);
    // Output written before the sidecar existed has none: still accepted.
    std::fs::remove_file(&sidecar).unwrap();
    let old = loragen(&args);
    assert!(old.status.success());
    assert!(String::from_utf8_lossy(&old.stdout).contains("resuming"));
    assert!(!sidecar.exists());

    std::fs::write(
        &queries,
        r#"{"id": "x", "messages": [], "tools": ["nope"]}"#,
    )
    .unwrap();
    let bad = loragen(&args[..args.len() - 2]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`nope`"));
}

/// A kill in the middle of a write leaves a torn last line; the next run
/// truncates it, finishes every query and leaves only whole records.
#[test]
fn eval_resumes_after_a_hard_kill_with_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let tools = weather_tools(dir.path());
    let queries = dir.path().join("q.jsonl");
    let cities = ["Oslo", "Lima", "Pune", "Kyiv", "Baku", "Doha"];
    let text: String = cities
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{{\"id\": \"w_{i}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Weather in {c}?\"}}], \"expect\": \"any-call\"}}\n"))
        .collect();
    std::fs::write(&queries, text).unwrap();
    // The output's directory need not exist yet.
    let out_file = dir.path().join("runs/eval/calls.jsonl");
    let args = [
        "eval",
        "--tools",
        tools.to_str().unwrap(),
        "--queries",
        queries.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
        "--max-tokens",
        "32",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_loragen"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while lines(&out_file) < 1 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = lines(&out_file);
    assert!(
        (1..cities.len()).contains(&kept),
        "{kept} records before the kill"
    );
    // What a kill halfway through the next write leaves behind.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out_file)
        .unwrap()
        .write_all(b"{\"id\": \"w_5\", \"calls\": [{\"na")
        .unwrap();

    let out = loragen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("resuming: {kept} of {}", cities.len())));
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.ends_with('\n'));
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        (ids.len(), sorted.len()),
        (cities.len(), cities.len()),
        "{ids:?}"
    );
}

/// `--rescore` scores the stored predictions again without generating:
/// a record whose scores are stale gets the current scorer's, the report
/// is rewritten, and a different data file is refused.
#[test]
fn rescore_replaces_stale_scores_from_the_stored_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let data = corpus(dir.path());
    let run = dir.path().join("run");
    let out = loragen(&[
        "bench",
        "gpt4tools",
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "2",
        "--max-tokens",
        "40",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = run.join("records.jsonl");
    let fresh = std::fs::read_to_string(&records).unwrap();
    // Stale scores, as an older scorer might have written them.
    let mut stale: Vec<serde_json::Value> = fresh
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    stale[0]["scores"] = serde_json::json!({"thought_acc": 0.25, "action_acc": 0.25, "action_args_acc": 0.25, "acc": 0.0, "iou": 0.25});
    let text: String = stale.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&records, text).unwrap();

    let out = loragen(&[
        "bench",
        "gpt4tools",
        "--rescore",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rescored 2 records, 1 with new scores"));
    let rescored: Vec<serde_json::Value> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let original: Vec<serde_json::Value> = fresh
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rescored, original,
        "rescoring must restore exactly what the scorer gives"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("| in-context | 2 |"), "{report}");

    // Another data file under the run's name is refused.
    let other = dir.path().join("val_seen.json");
    let out = loragen(&[
        "bench",
        "gpt4tools",
        "--rescore",
        "--out",
        run.to_str().unwrap(),
        "--data",
        other.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not the data file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `eval --suite mcp` runs the frozen MCP fixture without a tools or
/// queries file, and the table separates the right tool, the arguments
/// given the tool and no-call accuracy. One query of one token: the
/// plumbing, not the fixture's scores (a report-only set, run once at the
/// end of the unseen-tools work).
#[test]
fn eval_runs_the_frozen_mcp_suite_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("mcp.jsonl");
    let out = loragen(&[
        "eval",
        "--suite",
        "mcp",
        "--limit",
        "1",
        "--max-tokens",
        "1",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| right tool | arguments, given the tool | no call where none is due |"),
        "{stdout}"
    );
    assert!(stdout.contains("| all | 1 |"), "{stdout}");
    assert_eq!(lines(&out_file), 1);
    let both = loragen(&[
        "eval",
        "--suite",
        "mcp",
        "--queries",
        "q.jsonl",
        "--out",
        "x",
    ]);
    assert!(!both.status.success());
}
