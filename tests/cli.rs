//! The `loragen` binary's handling of bad input: one clear line on stderr
//! and a non-zero exit, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use std::process::{Command, Output};

fn loragen(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loragen"));
    cmd.args(args)
        .env_remove("LORAGEN_EDGE_MODEL")
        .env_remove("LORAGEN_CLOUD_MODEL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The REPL with `args`, fed `script` on standard input.
fn repl(args: &[&str], script: &str) -> Output {
    common::output_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_loragen"))
            .arg("repl")
            .args(args)
            .env_remove("LORAGEN_EDGE_MODEL"),
        script,
    )
}

fn one_line_error(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got {:?}",
        out.status
    );
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_owned()
}

#[test]
fn a_file_that_is_not_gguf_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a model").unwrap();
    let line = one_line_error(&loragen(&["models", "path", notes.to_str().unwrap()], &[]));
    assert!(
        line.contains("notes.txt") && line.contains("not a GGUF"),
        "{line}"
    );
    let line = one_line_error(&loragen(
        &[
            "generate",
            "--prompt",
            "hi",
            "--model",
            "/nonexistent/m.gguf",
        ],
        &[],
    ));
    assert!(line.contains("/nonexistent/m.gguf"), "{line}");
    let line = one_line_error(&loragen(
        &[
            "--edge-model",
            notes.to_str().unwrap(),
            "generate",
            "--prompt",
            "hi",
        ],
        &[],
    ));
    assert!(line.contains("not a GGUF"), "{line}");
}

#[test]
fn fetch_failures_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_str().unwrap();
    // No python3 on PATH.
    let line = one_line_error(&loragen(
        &["models", "fetch", "edge"],
        &[("LORAGEN_HOME", home), ("PATH", "/nonexistent")],
    ));
    assert!(line.contains("python"), "{line}");
    // A cache dir that cannot be created.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let home = blocker.join("home");
    let line = one_line_error(&loragen(
        &["models", "fetch", "edge"],
        &[("LORAGEN_HOME", home.to_str().unwrap())],
    ));
    assert!(line.contains("not writable"), "{line}");
    // Nothing fetched yet.
    let empty = tempfile::tempdir().unwrap();
    let line = one_line_error(&loragen(
        &["models", "path", "edge"],
        &[("LORAGEN_HOME", empty.path().to_str().unwrap())],
    ));
    assert!(line.contains("loragen models fetch"), "{line}");
}

#[test]
fn a_bad_thread_count_names_the_variable() {
    let line = one_line_error(&loragen(
        &["generate", "--prompt", "hi", "--max-tokens", "1"],
        &[("LORAGEN_THREADS", "two")],
    ));
    assert!(
        line.contains("LORAGEN_THREADS") && line.contains("\"two\""),
        "{line}"
    );
}

/// Compiled mode compiles the tools with the default generator: one
/// named by `LORAGEN_GENERATOR` that is not a generator is a one-line error
/// naming it. Switching to compiled mode without an adapter says in one
/// line that the model sees neither definitions nor an adapter, and how
/// to get one.
#[test]
fn repl_in_compiled_mode_needs_a_generator_or_an_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_generator = dir.path().join("no-generator");
    let line = one_line_error(&loragen(
        &["repl", "--mode", "compiled"],
        &[("LORAGEN_GENERATOR", not_a_generator.to_str().unwrap())],
    ));
    assert!(
        line.contains("no-generator") && line.contains("not a generator checkpoint"),
        "{line}"
    );

    let out = repl(&["--mode", "in-context"], ":mode compiled\n:quit\n");
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("without an adapter"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("--adapter")
            && warnings[0].contains("loragen adapter export")
            && warnings[0].contains("LORAGEN_GENERATOR"),
        "{stderr}"
    );
}

/// A turn that outgrows a tiny context says so in one line, and the REPL
/// goes on to the next command.
#[test]
fn repl_says_context_full_and_goes_on() {
    let out = repl(&["--ctx", "64"], "What is in image.png?\n:tools\n:quit\n");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout}{stderr}");
    let full: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("context full"))
        .collect();
    assert_eq!(full, ["context full: :reset or shorter input"], "{stderr}");
    assert!(
        stdout.contains("Edge Detection On Image"),
        "`:tools` ran after: {stdout}"
    );
}

/// `:image` shares only a file that exists and is a PNG or JPEG.
#[test]
fn repl_image_refuses_missing_and_non_image_files() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("dot.png");
    image::RgbImage::new(2, 2).save(&png).unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not pixels").unwrap();
    let script = format!(
        ":image {}\n:image {}\n:image {}\n:quit\n",
        dir.path().join("missing.png").display(),
        text.display(),
        png.display()
    );
    let out = repl(&[], &script);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stderr.contains("missing.png: no such file"), "{stderr}");
    assert!(stderr.contains("notes.png: not an image"), "{stderr}");
    assert!(
        stdout.contains("dot.png added to the conversation"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("added to the conversation").count(),
        1,
        "{stdout}"
    );
}

/// The suite names a missing data file, the set it belongs to and the
/// command that makes it, before it runs anything; lora mode needs the
/// plain LoRA's adapter.
#[test]
fn the_suite_names_what_it_lacks_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("suite");
    let bfcl = dir.path().join("no-bfcl");
    let out_arg = out.to_str().unwrap();
    let missing = loragen(
        &[
            "suite",
            "--sets",
            "dev",
            "--bfcl",
            bfcl.to_str().unwrap(),
            "--out",
            out_arg,
        ],
        &[],
    );
    let line = one_line_error(&missing);
    assert!(
        line.contains("val_tools.json: no such file")
            && line.contains("set bfcl-val")
            && line.contains("`loragen data bfcl` makes it"),
        "{line}"
    );
    assert!(
        !out.exists(),
        "nothing is written before the inputs are checked"
    );
    let lora = loragen(
        &["suite", "--sets", "dev", "--mode", "lora", "--out", out_arg],
        &[],
    );
    assert!(one_line_error(&lora).contains("mode lora needs --adapter"));
}

/// A `bench gpt4tools` run directory made by hand: `run.json` naming
/// `data` and one record per (id, prediction), scored as the benchmark
/// scores them.
fn hand_run(dir: &std::path::Path, data: &std::path::Path, predictions: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let meta = serde_json::json!({"data": data.to_str().unwrap()});
    std::fs::write(dir.join("run.json"), meta.to_string()).unwrap();
    let items: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(data).unwrap()).unwrap();
    let mut lines = String::new();
    for (id, prediction) in predictions {
        let item = items.iter().find(|i| i["id"] == *id).unwrap();
        let truth = item["output"].as_str().unwrap();
        let scores = loragen_gpt4tools::score_item(truth, prediction);
        let record = serde_json::json!({"id": id, "mode": "compiled", "prediction": prediction,
            "scores": scores, "prompt_tokens": 10, "reused_tokens": 0, "prefill_ms": 1.0,
            "decode_ms": 1.0, "decode_tokens": 5, "peak_rss_mib": 1.0});
        lines.push_str(&format!("{record}\n"));
    }
    std::fs::write(dir.join("records.jsonl"), lines).unwrap();
}

#[test]
fn ablation_and_failure_tables_read_run_directories() {
    let dir = tempfile::tempdir().unwrap();
    let call = |tool: &str| {
        format!("Thought: Do I need to use a tool? Yes\nAction: {tool}\nAction Input: image/a.png")
    };
    let no = "Thought: Do I need to use a tool? No\nAI: done";
    let item = |id: &str, tools: &[&str], output: &str| {
        let listed: String = tools.iter().map(|t| format!("> {t}: a tool\n")).collect();
        serde_json::json!({"id": id, "input": "",
            "instruction": format!("Tools:\n{listed}Previous conversation:\nNew input: request {id}\n"),
            "output": output})
    };
    let data = dir.path().join("val.json");
    let items = [
        item("1", &["Seen Tool"], &call("Seen Tool")),
        item("2", &["Seen Tool", "Held Tool"], &call("Held Tool")),
        item("3", &["Held Tool"], no),
    ];
    std::fs::write(&data, serde_json::to_string(&items).unwrap()).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    hand_run(
        &a,
        &data,
        &[
            ("1", &call("Seen Tool")),
            ("2", &call("Seen Tool")),
            ("3", no),
        ],
    );
    hand_run(
        &b,
        &data,
        &[
            ("1", &call("Seen Tool")),
            ("2", &call("Held Tool")),
            ("3", &call("Held Tool")),
        ],
    );

    // `bench ablation` over arms NAME=RUN, then the given arguments.
    let ablation = |arms: &[(&str, &std::path::Path)], rest: &[&str]| {
        let mut args = vec!["bench".to_owned(), "ablation".to_owned()];
        for (name, run) in arms {
            args.push("--arm".to_owned());
            args.push(format!("{name}={}", run.display()));
        }
        args.extend(rest.iter().map(|a| (*a).to_owned()));
        loragen(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    };
    let out = ablation(
        &[("a", &a), ("b", &b)],
        &["--held-out", "Held Tool", "--resamples", "200"],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(
        rows[0],
        "| arm | SR, all items (3) | change | SR, items listing a held-out tool (2) | change | SR, held-out calls (1) | change |"
    );
    assert_eq!(rows[1], "| a | 66.7 | – | 50.0 | – | 0.0 | – |");
    assert!(rows[2].starts_with("| b | 66.7 | +0.0 ["), "{}", rows[2]);
    assert!(
        rows[2].ends_with("| 100.0 | +100.0 [+100.0, +100.0] |"),
        "{}",
        rows[2]
    );

    let out = loragen(&["bench", "failures", "--run", a.to_str().unwrap()], &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("failures: 1 of 3 scored items"), "{text}");
    assert!(text.contains("| wrong function | 1 |"), "{text}");
    assert!(
        text.contains("[wrong function] 2\n  request: request 2"),
        "{text}"
    );
    let out = loragen(
        &[
            "bench",
            "failures",
            "--run",
            b.to_str().unwrap(),
            "--calling",
            "Held Tool",
        ],
        &[],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("failures: 0 of 1 scored items"), "{text}");

    let missing = ablation(
        &[("a", &a), ("b", std::path::Path::new("/no/such/run"))],
        &[],
    );
    assert!(one_line_error(&missing).contains("/no/such/run has no records.jsonl"));
    let typo = ablation(&[("a", &a), ("b", &b)], &["--held-out", "Held Tol"]);
    assert!(one_line_error(&typo).contains("are the held-out names right?"));
}

/// `bench agent` refuses what it does not measure before loading a model.
#[test]
fn bench_agent_refuses_lora_mode_and_zero_rounds() {
    let lora = loragen(&["bench", "agent", "--mode", "lora"], &[]);
    assert!(one_line_error(&lora).contains("lora is not among them"));
    let rounds = loragen(&["bench", "agent", "--rounds", "0"], &[]);
    assert!(one_line_error(&rounds).contains("--rounds must be positive"));
}
