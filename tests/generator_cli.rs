//! `loragen train generator` and `loragen compile` on the real models: a
//! short run writes its log, checkpoint and snapshot and resumes; its
//! checkpoint compiles the GPT4Tools registry into an adapter with a
//! manifest, and a second compile comes from the cache. Bad checkpoints and
//! registries get a one-line error and leave nothing under the output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use std::path::Path;
use std::process::{Command, Output};

use loragen::agent::store::Role;

/// The program with its own `LORAGEN_HOME` (features and compile caches)
/// and the default models by path.
fn loragen(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loragen"))
        .args(args)
        .env("LORAGEN_HOME", home)
        .env(Role::Edge.env_var(), common::model_path(Role::Edge))
        .env(Role::Cloud.env_var(), common::model_path(Role::Cloud))
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// A 10-item training file and a 3-step run on it, checkpointed.
fn trained(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    ok(&loragen(
        dir,
        &[
            "data",
            "gpt4tools",
            "--out",
            data.to_str().unwrap(),
            "--train",
            "10",
            "--val-seen",
            "2",
            "--test-unseen",
            "2",
        ],
    ));
    let run = dir.join("run");
    let train = |steps: &str| {
        loragen(
            dir,
            &[
                "train",
                "generator",
                "--data",
                data.join("train.json").to_str().unwrap(),
                "--out",
                run.to_str().unwrap(),
                "--steps",
                steps,
                "--batch",
                "2",
                "--checkpoint-every",
                "1",
                "--snapshot-every",
                "2",
            ],
        )
    };
    let first = ok(&train("3"));
    assert!(first.contains("cloud features"), "{first}");
    assert_eq!(lines(&run.join("train.jsonl")), 3);
    assert!(run.join("snapshots/step-2/model.safetensors").exists());
    // The same command again resumes at the end: nothing left to do.
    let again = ok(&train("3"));
    assert!(again.contains("resumed at step 3"), "{again}");
    assert_eq!(lines(&run.join("train.jsonl")), 3);
    // Other settings are refused, naming what differs.
    let err = failed(&train("4"));
    assert!(err.contains("train.steps: 3 -> 4"), "{err}");
    run.join("checkpoint")
}

#[test]
fn a_trained_checkpoint_compiles_and_recompiles_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = trained(dir.path());
    let out = dir.path().join("out/gpt4tools.gguf");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let compile = || {
        loragen(
            dir.path(),
            &[
                "compile",
                "--registry",
                "gpt4tools",
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
        )
    };
    let cold = ok(&compile());
    assert!(!cold.contains("from the compile cache"), "{cold}");
    let first = std::fs::read(&out).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/gpt4tools.gguf.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["prompt_format"], "react-compiled-v1");
    assert_eq!(manifest["adapter_sha256"].as_str().unwrap().len(), 64);
    let warm = ok(&compile());
    assert!(warm.contains("from the compile cache"), "{warm}");
    assert_eq!(std::fs::read(&out).unwrap(), first);
    // Without --checkpoint, LORAGEN_GENERATOR names the generator.
    let by_env = Command::new(env!("CARGO_BIN_EXE_loragen"))
        .args([
            "compile",
            "--registry",
            "gpt4tools",
            "-o",
            out.to_str().unwrap(),
        ])
        .env("LORAGEN_HOME", dir.path())
        .env(Role::Edge.env_var(), common::model_path(Role::Edge))
        .env(Role::Cloud.env_var(), common::model_path(Role::Cloud))
        .env("LORAGEN_GENERATOR", &checkpoint)
        .output()
        .unwrap();
    let by_env = ok(&by_env);
    assert!(
        by_env.contains("(LORAGEN_GENERATOR)") && by_env.contains("from the compile cache"),
        "{by_env}"
    );

    // A snapshot shipped in f16 (BatchNorm statistics f32) compiles too.
    let recipe = dir.path().join("train.sh");
    std::fs::write(&recipe, "loragen train generator --steps 3\n").unwrap();
    let shipped = dir.path().join("shipped");
    let text = ok(&loragen(
        dir.path(),
        &[
            "train",
            "ship",
            "--from",
            dir.path().join("run/snapshots/step-2").to_str().unwrap(),
            "--command",
            recipe.to_str().unwrap(),
            "--out",
            shipped.to_str().unwrap(),
        ],
    ));
    assert!(
        text.contains("shipped step 2") && text.contains("2 log lines"),
        "{text}"
    );
    for f in [
        "model.safetensors",
        "config.json",
        "train.jsonl",
        "command.sh",
    ] {
        assert!(shipped.join(f).exists(), "{f}");
    }
    let f16_out = dir.path().join("out/f16.gguf");
    let text = ok(&loragen(
        dir.path(),
        &[
            "compile",
            "--registry",
            "gpt4tools",
            "--generator",
            shipped.to_str().unwrap(),
            "-o",
            f16_out.to_str().unwrap(),
        ],
    ));
    assert!(!text.contains("from the compile cache"), "{text}");
    assert!(f16_out.exists());

    // MCP servers' tools compile like a registry; a server whose tool list
    // changes (the time server names its local timezone in its schemas)
    // gets a new fingerprint, the same list the cached one.
    let fs_root = dir.path().join("fs-root");
    std::fs::create_dir_all(&fs_root).unwrap();
    let compile_mcp = |timezone: &str| {
        let config = dir
            .path()
            .join(format!("mcp-{}.json", timezone.replace('/', "-")));
        std::fs::write(
            &config,
            serde_json::json!({"mcpServers": {
                "time": common::time_server(timezone),
                "fs": common::filesystem_server(&fs_root),
            }})
            .to_string(),
        )
        .unwrap();
        let text = ok(&loragen(
            dir.path(),
            &[
                "compile",
                "--mcp-config",
                config.to_str().unwrap(),
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "-o",
                dir.path().join("out/mcp.gguf").to_str().unwrap(),
            ],
        ));
        let fingerprint = text
            .lines()
            .find_map(|l| l.strip_prefix("registry fingerprint "))
            .unwrap()
            .to_owned();
        (fingerprint, text)
    };
    let (paris, text) = compile_mcp("Europe/Paris");
    assert!(
        text.contains("tools to compile") && !text.contains("from the compile cache"),
        "{text}"
    );
    assert!(dir.path().join("out/mcp.gguf.manifest.json").exists());
    let (tokyo, _) = compile_mcp("Asia/Tokyo");
    assert_ne!(paris, tokyo, "a changed tool list is a new compile");
    let (again, text) = compile_mcp("Europe/Paris");
    assert_eq!(again, paris);
    assert!(text.contains("from the compile cache"), "{text}");

    // The manifest travels with the adapter: a changed file, or one made
    // for another edge model, is refused where it is used.
    let tampered = dir.path().join("out/tampered.gguf");
    let mut bytes = first.clone();
    bytes.push(0);
    std::fs::write(&tampered, bytes).unwrap();
    std::fs::copy(
        dir.path().join("out/gpt4tools.gguf.manifest.json"),
        dir.path().join("out/tampered.gguf.manifest.json"),
    )
    .unwrap();
    let refused = |adapter: &Path, why: &str| {
        let used = loragen(
            dir.path(),
            &[
                "repl",
                "--mode",
                "compiled",
                "--adapter",
                adapter.to_str().unwrap(),
            ],
        );
        assert!(failed(&used).contains(why), "{}", failed(&used));
    };
    refused(&tampered, "changed after compiling");
    let mut foreign = manifest.clone();
    foreign["edge_sha256"] = serde_json::json!("0".repeat(64));
    std::fs::write(
        dir.path().join("out/gpt4tools.gguf.manifest.json"),
        serde_json::to_vec(&foreign).unwrap(),
    )
    .unwrap();
    refused(&out, "compiled for the edge model");
    // `generate` loads adapters through the same host check.
    let used = loragen(
        dir.path(),
        &[
            "generate",
            "--prompt",
            "Human: hi",
            "--max-tokens",
            "1",
            "--adapter",
            out.to_str().unwrap(),
        ],
    );
    let err = failed(&used);
    assert!(
        err.contains("compiled for the edge model 000000000000") && err.contains("gpt4tools.gguf"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("out/gpt4tools.gguf.manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();

    // A checkpoint for another edge model, garbage weights, an empty
    // registry: one-line errors, and nothing written.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["model.safetensors", "config.json", "optimizer.safetensors"] {
        std::fs::copy(checkpoint.join(f), other.join(f)).unwrap();
    }
    let state = std::fs::read_to_string(other.join("config.json")).unwrap();
    let sha = manifest["edge_sha256"].as_str().unwrap();
    std::fs::write(
        other.join("config.json"),
        state.replace(sha, &"0".repeat(64)),
    )
    .unwrap();
    let bad_out = dir.path().join("bad/x.gguf");
    let refused = |source: &[&str], checkpoint: &Path| {
        let mut args = vec!["compile"];
        args.extend_from_slice(source);
        args.extend([
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "-o",
            bad_out.to_str().unwrap(),
        ]);
        failed(&loragen(dir.path(), &args))
    };
    let gpt4tools = ["--registry", "gpt4tools"];
    let err = refused(&gpt4tools, &other);
    assert!(err.contains("trained for the edge model"), "{err}");
    std::fs::write(other.join("config.json"), &state).unwrap();
    std::fs::write(other.join("model.safetensors"), b"not weights").unwrap();
    let err = refused(&gpt4tools, &other);
    assert!(err.contains("does not fit"), "{err}");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "  \n").unwrap();
    let err = refused(&["--system-file", empty.to_str().unwrap()], &checkpoint);
    assert!(err.contains("empty"), "{err}");
    let err = refused(&gpt4tools, &dir.path().join("missing"));
    assert!(err.contains("not a generator checkpoint"), "{err}");
    assert!(!bad_out.exists() && !dir.path().join("bad/x.gguf.manifest.json").exists());
}

#[test]
fn a_lora_baseline_trains_exports_and_is_refused_by_compile() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&loragen(
        dir.path(),
        &[
            "data",
            "gpt4tools",
            "--out",
            data.to_str().unwrap(),
            "--train",
            "6",
            "--val-seen",
            "2",
            "--test-unseen",
            "2",
        ],
    ));
    let run = dir.path().join("lora");
    let train_file = data.join("train.json");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "lora",
            "--data",
            train_file.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--steps",
            "2",
            "--batch",
            "2",
            "--snapshot-every",
            "2",
        ];
        args.extend_from_slice(extra);
        loragen(dir.path(), &args)
    };
    // clap's usage error names the missing choice.
    let usage = train(&[]);
    assert!(!usage.status.success());
    assert!(String::from_utf8_lossy(&usage.stderr).contains("<--with-tools|--without-tools>"));
    // A misspelt held-out tool would hold out nothing: refused, by name.
    let err = failed(&train(&[
        "--without-tools",
        "--hold-out",
        "Segment The Image",
    ]));
    assert!(
        err.contains("no item lists a tool named \"Segment The Image\""),
        "{err}"
    );
    let out = ok(&train(&["--without-tools"]));
    assert!(out.contains("LoRA:"), "{out}");
    assert!(
        !out.contains("cloud features"),
        "a LoRA needs no cloud pass: {out}"
    );
    let adapter = dir.path().join("lora.gguf");
    ok(&loragen(
        dir.path(),
        &[
            "adapter",
            "export",
            "--checkpoint",
            run.join("snapshots/step-2").to_str().unwrap(),
            "--out",
            adapter.to_str().unwrap(),
        ],
    ));
    assert!(adapter.exists());
    let err = failed(&loragen(
        dir.path(),
        &[
            "compile",
            "--registry",
            "gpt4tools",
            "--checkpoint",
            run.join("checkpoint").to_str().unwrap(),
            "-o",
            dir.path().join("x.gguf").to_str().unwrap(),
        ],
    ));
    assert!(err.contains("plain LoRA checkpoint"), "{err}");
}

/// `train selector` on a small corpus with one tool held out: its run
/// directory, its report on the held-out items, a second run from the
/// cached inputs that fits the same weights, and `bench gpt4tools` with
/// the selector added to whole-name scoring, which records it.
#[test]
fn a_selector_trains_on_cached_inputs_reports_and_scores_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&loragen(
        dir.path(),
        &[
            "data",
            "gpt4tools",
            "--out",
            data.to_str().unwrap(),
            "--train",
            "40",
            "--val-seen",
            "12",
            "--test-unseen",
            "2",
        ],
    ));
    let (train, val) = (data.join("train.json"), data.join("val_seen.json"));
    let held_out = "Instruct Image Using Text";
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "selector",
            "--data",
            train.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "20",
            "--batch",
            "8",
            "--negatives",
            "4",
        ];
        args.extend_from_slice(extra);
        loragen(dir.path(), &args)
    };
    let err = failed(&run(
        &dir.path().join("x"),
        &["--validate", val.to_str().unwrap()],
    ));
    assert!(err.contains("--hold-out"), "{err}");

    let (first, second) = (dir.path().join("sel-a"), dir.path().join("sel-b"));
    let validate = ["--hold-out", held_out, "--validate", val.to_str().unwrap()];
    let report = ok(&run(&first, &validate));
    assert!(report.contains("items listing a held-out tool"), "{report}");
    assert_eq!(lines(&first.join("train.jsonl")), 20);
    let rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("report.json")).unwrap()).unwrap();
    // The training examples and the items listing the held-out tool (its
    // calls, if any of these few items make one, a row more).
    assert!(rows.as_array().unwrap().len() >= 2, "{rows}");
    // The inputs come from the cache the first run filled, f16 as stored.
    ok(&run(&second, &validate));
    assert!(
        std::fs::read(first.join("model.safetensors")).unwrap()
            == std::fs::read(second.join("model.safetensors")).unwrap(),
        "a rerun fits the same selector"
    );
    // At a share of 1 every training mention is masked: new blocks for the
    // cloud to encode, and the share is recorded.
    let masked = dir.path().join("sel-m");
    let text = ok(&run(&masked, &["--mask-names", "1"]));
    let line = text
        .lines()
        .find(|l| l.starts_with("names masked in"))
        .unwrap_or_else(|| panic!("{text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[3], words[5], "{line}");
    assert!(!text.contains("(0 encoded now)"), "{text}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(masked.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["mask_names"], 1.0);
    let refused = run(&dir.path().join("y"), &["--mask-names", "1.5"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("not a share"),
        "{err}"
    );

    let out = dir.path().join("bench");
    let bench = |keep: &[&str]| {
        let mut args = vec![
            "bench",
            "gpt4tools",
            "--data",
            val.to_str().unwrap(),
            "--mode",
            "in-context",
            "--limit",
            "3",
            "--max-tokens",
            "48",
            "--constrained",
            "--whole-names",
            "--selector",
            first.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(keep);
        loragen(dir.path(), &args)
    };
    let report = ok(&bench(&["--selector-keep", "1"]));
    assert!(report.contains("report.md"), "{report}");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["selector"]["keep"], 1, "{meta}");
    // Another selector setting is refused for the same run directory.
    let err = failed(&bench(&[]));
    assert!(err.contains("tool selector"), "{err}");
    // GPT4Tools registries leave "no call" to the edge model.
    let err = failed(&bench(&["--selector-veto", "0"]));
    assert!(err.contains("--selector-veto"), "{err}");

    // In JSON registries a veto below every margin stops every call, and
    // one above them stops none; each query records the selector's pass.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let eval_with = |flag: &str, margin: &str, out: &Path| {
        loragen(
            dir.path(),
            &[
                "eval",
                "--tools",
                fixtures.join("bfcl_val20_tools.json").to_str().unwrap(),
                "--queries",
                fixtures.join("bfcl_val20_queries.jsonl").to_str().unwrap(),
                "--mode",
                "in-context",
                "--limit",
                "2",
                "--constrained",
                "--whole-names",
                "--selector",
                first.to_str().unwrap(),
                flag,
                margin,
                "--out",
                out.to_str().unwrap(),
            ],
        )
    };
    let eval = |veto: &str, out: &Path| eval_with("--selector-veto", veto, out);
    let records = |out: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let vetoed = dir.path().join("vetoed.jsonl");
    let report = ok(&eval("-1000", &vetoed));
    assert!(
        report.contains("it vetoed a call in 2 and required one in 0"),
        "{report}"
    );
    for r in records(&vetoed) {
        assert_eq!(r["vetoed"], true, "{r}");
        assert_eq!(r["calls"], serde_json::json!([]), "{r}");
        assert!(
            r["output"]
                .as_str()
                .unwrap()
                .starts_with("Thought: Do I need to use a tool? No"),
            "{r}"
        );
        assert!(r["selector_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["none_margin"].is_f64(), "{r}");
    }
    let free = dir.path().join("free.jsonl");
    let report = ok(&eval("1000", &free));
    assert!(report.contains("it vetoed a call in 0"), "{report}");
    assert!(records(&free).iter().all(|r| r.get("vetoed").is_none()));
    // The margin is part of the run's settings.
    let err = failed(&eval("0", &free));
    assert!(err.contains("selector"), "{err}");
    // A require margin below every margin holds every message to calls.
    let required = dir.path().join("required.jsonl");
    let report = ok(&eval_with("--selector-require", "-1000", &required));
    assert!(
        report.contains("it vetoed a call in 0 and required one in 2"),
        "{report}"
    );
    for r in records(&required) {
        assert_eq!(r["required"], true, "{r}");
        assert!(
            r["output"]
                .as_str()
                .unwrap()
                .starts_with("Thought: Do I need to use a tool? Yes"),
            "{r}"
        );
    }
}

/// A compile with a tool selector writes the registry's part beside the
/// adapter and lists it in the manifest; a compiled artifact given to
/// `bench gpt4tools` is read with its part, and one compiled without a
/// selector, or with another, is refused by name.
#[test]
fn a_compiled_artifact_carries_its_selectors_part() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = trained(dir.path());
    let data = dir.path().join("data");
    let selector = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        ok(&loragen(
            dir.path(),
            &[
                "train",
                "selector",
                "--data",
                data.join("train.json").to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--steps",
                "10",
                "--batch",
                "4",
                "--negatives",
                "2",
                "--seed",
                seed,
            ],
        ));
        out
    };
    let (ours, theirs) = (selector("sel-a", "1"), selector("sel-b", "2"));
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let compile = |out: &Path, with: Option<&Path>| {
        let mut args = vec![
            "compile",
            "--registry",
            "gpt4tools",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        if let Some(s) = with {
            args.extend(["--selector", s.to_str().unwrap()]);
        }
        ok(&loragen(dir.path(), &args))
    };
    let out = dir.path().join("out/a.gguf");
    let text = compile(&out, Some(&ours));
    assert!(text.contains("tool selector part"), "{text}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/a.gguf.manifest.json")).unwrap(),
    )
    .unwrap();
    let weights = loragen_protocol::digest::sha256_file(&ours.join("model.safetensors")).unwrap();
    assert_eq!(manifest["selector"]["selector_sha256"], weights.as_str());
    let part_file = dir.path().join("out/a.gguf.selector.json");
    let part: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&part_file).unwrap()).unwrap();
    assert_eq!(part["names"].as_array().unwrap().len(), 23, "{part}");
    let first = std::fs::read(&part_file).unwrap();
    let text = compile(&out, Some(&ours));
    assert!(text.contains("from the compile cache"), "{text}");
    assert_eq!(std::fs::read(&part_file).unwrap(), first);
    let plain = dir.path().join("out/plain.gguf");
    let text = compile(&plain, None);
    assert!(!text.contains("tool selector part"), "{text}");
    assert!(!dir.path().join("out/plain.gguf.selector.json").exists());

    let bench = |name: &str, adapter: &Path, selector: &Path| {
        loragen(
            dir.path(),
            &[
                "bench",
                "gpt4tools",
                "--data",
                data.join("val_seen.json").to_str().unwrap(),
                "--mode",
                "compiled",
                "--adapter",
                adapter.to_str().unwrap(),
                "--limit",
                "2",
                "--max-tokens",
                "48",
                "--constrained",
                "--whole-names",
                "--selector",
                selector.to_str().unwrap(),
                "--out",
                dir.path().join(name).to_str().unwrap(),
            ],
        )
    };
    ok(&bench("bench-a", &out, &ours));
    let records = std::fs::read_to_string(dir.path().join("bench-a/records.jsonl")).unwrap();
    for line in records.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(r["selector_ms"].as_f64().unwrap() > 0.0, "{r}");
    }
    let err = failed(&bench("bench-b", &out, &theirs));
    assert!(
        err.contains("a.gguf") && err.contains("compiled with the tool selector"),
        "{err}"
    );
    let err = failed(&bench("bench-c", &plain, &ours));
    assert!(
        err.contains("plain.gguf") && err.contains("compiled without a tool selector"),
        "{err}"
    );

    // The REPL's agent reads the same part; another selector's artifact
    // ends it at the first turn, naming the file.
    let repl = |selector: &Path| {
        common::output_with_stdin(
            Command::new(env!("CARGO_BIN_EXE_loragen"))
                .args([
                    "repl",
                    "--mode",
                    "compiled",
                    "--adapter",
                    out.to_str().unwrap(),
                    "--whole-names",
                    "--selector",
                    selector.to_str().unwrap(),
                ])
                .env("LORAGEN_HOME", dir.path())
                .env(Role::Edge.env_var(), common::model_path(Role::Edge))
                .env(Role::Cloud.env_var(), common::model_path(Role::Cloud)),
            "Describe image/cat.png\n:quit\n",
        )
    };
    ok(&repl(&ours));
    let refused = repl(&theirs);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("compiled with the tool selector"),
        "{err}"
    );
}
