//! `loragen eval`: runs the edge model on queries in the generic format
//! (e.g. the BFCL conversion), one agent message per query, writes the
//! predicted calls as JSON lines (resuming after what is already written)
//! and scores them where the queries carry answers.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};
use std::sync::atomic::Ordering;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use loragen_agent::agent::{conversation_prompt, Mode, STEP_STOPS};
use loragen_agent::grammar::call_grammar;
use loragen_agent::protocol::{OutputParser, ReactParser, Step};
use loragen_agent::runtime::{FinishReason, GenerateParams, Model, SessionParams};
use loragen_agent::store::{ModelChoice, Role};
use loragen_gpt4tools::generic::{load_queries, score_query, Call, Query, ToolSet};
use loragen_tools::render::json_system_prompt;
use loragen_tools::ToolRegistry;
use serde_json::{json, Value};

use crate::cli::{EvalArgs, ModelArgs};

pub fn run(args: EvalArgs, models: &ModelArgs) -> anyhow::Result<()> {
    let tools = ToolSet::load(&args.tools)?;
    let mut queries = load_queries(&args.queries)?;
    if let Some(limit) = args.limit {
        queries.truncate(limit);
    }
    for q in &queries {
        tools.for_query(q)?;
    }
    anyhow::ensure!(args.mode == Mode::InContext || args.adapter.is_some(), "mode compiled needs --adapter FILE (a generated GGUF LoRA adapter)");
    let done = read_done(&args.out)?;
    let todo: Vec<&Query> = queries.iter().filter(|q| !done.contains(&q.id)).collect();
    if !done.is_empty() {
        println!("resuming: {} of {} queries already in {}", queries.len() - todo.len(), queries.len(), args.out.display());
    }

    let path = super::resolve_model(&ModelChoice::Role(Role::Edge), models)?;
    let mut model = Model::load(&path)?;
    let mut adapter = args.adapter.as_ref().map(|p| model.load_adapter(p)).transpose()?;
    let mut session = model.session(SessionParams::default())?;
    if let Some(adapter) = adapter.as_mut() {
        session.set_adapter(adapter, 1.0)?;
    }
    let stop = super::interrupt_flag()?;

    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let bar = ProgressBar::new(todo.len() as u64);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ETA {eta} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix("eval");
    for query in todo {
        let offered = tools.for_query(query)?;
        let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
        let system = (args.mode == Mode::InContext).then(|| json_system_prompt(&specs));
        let input: Vec<&str> = query.messages.iter().map(|m| m.content.as_str()).collect();
        let prompt = conversation_prompt(system.as_deref(), &[], &input.join("\n"), "");
        let mut params = GenerateParams::default().with_max_tokens(args.max_tokens).with_stop(STEP_STOPS);
        if args.constrained {
            params = params.with_grammar(grammar_for(&specs));
        }
        let completion = session.generate_streaming(&prompt, &params, super::until(&stop))?;
        if completion.finish == FinishReason::Interrupted || stop.load(Ordering::SeqCst) {
            break;
        }
        let (calls, problem) = parse_calls(&completion.text);
        let correct = score_query(query, &calls);
        let s = completion.stats;
        let record = json!({
            "id": query.id, "calls": calls, "correct": correct, "problem": problem, "output": completion.text.trim_end(),
            "prompt_tokens": s.prompt_tokens, "prefill_ms": s.prefill_ms, "decode_ms": s.decode_ms,
        });
        writeln!(out, "{record}").and_then(|()| out.sync_data()).with_context(|| format!("cannot write {}", args.out.display()))?;
        bar.inc(1);
    }
    bar.finish();
    summarise(&args.out, &queries)?;
    if stop.load(Ordering::SeqCst) {
        println!("interrupted: finished queries are kept; run the same command again to resume");
    }
    Ok(())
}

/// The agent's call grammar over the offered tools; a schema that the
/// grammar converter rejects leaves this query unconstrained.
fn grammar_for(specs: &[loragen_tools::ToolSpec]) -> Option<String> {
    let registry = ToolRegistry::from_specs(specs.iter().cloned()).ok()?;
    call_grammar(&registry).map_err(|e| tracing::warn!("unconstrained: {e}")).ok()
}

/// The call in a message, if any: `Action:` names the function and
/// `Action Input:` holds its arguments as a JSON object.
fn parse_calls(text: &str) -> (Vec<Call>, Option<String>) {
    match ReactParser.parse(text.as_bytes()) {
        Ok(Step::Answer { .. }) => (Vec::new(), None),
        Ok(Step::Call { action, input }) => match serde_json::from_str::<Value>(input.trim()) {
            Ok(Value::Object(arguments)) => (vec![Call { name: action, arguments }], None),
            Ok(_) | Err(_) => (
                vec![Call { name: action, arguments: serde_json::Map::new() }],
                Some("the action input is not a JSON object".into()),
            ),
        },
        Err(e) => (Vec::new(), Some(e.to_string())),
    }
}

fn read_done(path: &std::path::Path) -> anyhow::Result<HashSet<String>> {
    let Ok(file) = std::fs::File::open(path) else { return Ok(HashSet::new()) };
    let mut done = HashSet::new();
    for line in std::io::BufReader::new(file).lines() {
        // A torn last line from a kill is simply run again.
        if let Ok(v) = serde_json::from_str::<Value>(&line?) {
            if let Some(id) = v["id"].as_str() {
                done.insert(id.to_owned());
            }
        }
    }
    Ok(done)
}

/// Accuracy per category (the id up to its last `_`) and overall.
fn summarise(path: &std::path::Path, queries: &[Query]) -> anyhow::Result<()> {
    let ids: HashSet<&str> = queries.iter().map(|q| q.id.as_str()).collect();
    let text = std::fs::read_to_string(path)?;
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for v in text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        let (Some(id), Some(correct)) = (v["id"].as_str(), v["correct"].as_bool()) else { continue };
        if !ids.contains(id) {
            continue;
        }
        let category = id.rsplit_once('_').map_or(id, |(c, _)| c).to_owned();
        for key in [category, "all".to_owned()] {
            let e = per.entry(key).or_default();
            e.0 += usize::from(correct);
            e.1 += 1;
        }
    }
    println!("| category | scored | accuracy |\n|---|---|---|");
    for (k, (right, n)) in &per {
        println!("| {k} | {n} | {:.1}% |", 100.0 * *right as f64 / (*n).max(1) as f64);
    }
    Ok(())
}
