//! `loragen eval`: runs the edge model on queries in the generic format
//! (e.g. the BFCL conversion), one agent message per query, writes the
//! predicted calls as JSON lines (resuming after what is already written)
//! and scores them where the queries carry answers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use loragen_agent::adapter::AdapterSource;
use loragen_agent::grammar::{call_grammar_with, GrammarParams};
use loragen_agent::runtime::{AdapterHost, FinishReason, GenerateParams, Session, SessionParams};
use loragen_agent::store::{ModelChoice, Role};
use loragen_gpt4tools::generic::{
    load_queries, parse_calls, score_query, EvalRecord, ParsedCalls, Query, ToolDef, ToolSet,
};
use loragen_gpt4tools::RecordLog;
use loragen_tools::protocol::{conversation_prompt, STEP_STOPS};
use loragen_tools::render::system_prompt;
use loragen_tools::ToolRegistry;

use crate::cli::{EvalArgs, ModelArgs};

pub fn run(args: EvalArgs, models: &ModelArgs) -> anyhow::Result<()> {
    // The servers' tools are what the queries are offered; the eval never
    // calls them, so the servers are shut down once they are listed.
    let tools = match (&args.tools, &args.mcp_config) {
        (Some(file), _) => ToolSet::load(file)?,
        (None, Some(config)) => {
            let toolset = super::toolset::Toolset::load(None, Some(config), true)?;
            for warning in toolset.warnings() {
                eprintln!("warning: {warning}");
            }
            let defs = toolset
                .into_specs()
                .into_iter()
                .map(|s| ToolDef {
                    id: None,
                    name: s.name,
                    description: s.description,
                    parameters: s.parameters,
                })
                .collect();
            ToolSet::new(defs)?
        }
        (None, None) => anyhow::bail!("give --tools FILE or --mcp-config FILE"),
    };
    let mut queries = load_queries(&args.queries)?;
    if let Some(limit) = args.limit {
        queries.truncate(limit);
    }
    // Every grammar is built before the run (and kept for it), so an
    // inexpressible schema stops the run at once rather than halfway.
    let mut grammars: HashMap<&str, String> = HashMap::new();
    for q in &queries {
        let offered = tools.for_query(q)?;
        if args.constrained {
            let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
            let grammar = grammar_for(&specs, args.max_calls)
                .map_err(|e| anyhow::anyhow!("query {}: {e}", q.id))?;
            grammars.insert(q.id.as_str(), grammar);
        }
    }
    anyhow::ensure!(
        args.mode.definitions_in_context() || args.adapter.is_some() || args.generator.is_some(),
        "mode {} needs --adapter FILE (a GGUF LoRA adapter) or --generator DIR (compiles each query's tools)",
        args.mode
    );
    anyhow::ensure!(
        !(args.adapter.is_some() && args.generator.is_some()),
        "give --adapter or --generator, not both"
    );
    let mut log: RecordLog<EvalRecord> = RecordLog::open(&args.out)?;
    let todo: Vec<&Query> = queries.iter().filter(|q| !log.is_done(&q.id)).collect();
    if todo.len() < queries.len() {
        println!(
            "resuming: {} of {} queries already in {}",
            queries.len() - todo.len(),
            queries.len(),
            args.out.display()
        );
    }

    let path = super::resolve_model(&ModelChoice::Role(Role::Edge), models)?;
    let mut compiler = args
        .generator
        .as_ref()
        .map(|c| super::compile::open_compiler(c, models, None))
        .transpose()?;
    let session_params = SessionParams::default().with_prefix_reuse(args.mode.reuses_prefix());
    let stop = super::interrupt_flag()?;
    let mut host = AdapterHost::load(&path)?;

    let bar = ProgressBar::new(todo.len() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ETA {eta} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix("eval");
    if let Some(compiler) = compiler.as_mut() {
        // Each query's tools compiled into its own adapter (through the
        // compile cache); llama.cpp frees adapters only with their model.
        let adapters = tempfile::tempdir()?;
        let mut compile_s = 0.0;
        for (n, query) in todo.into_iter().enumerate() {
            let offered = tools.for_query(query)?;
            let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
            let started = std::time::Instant::now();
            let out = adapters.path().join(format!("{n}.gguf"));
            let compiled = compiler.compile_adapter(&system_prompt(&specs), &out, true)?;
            compile_s += started.elapsed().as_secs_f64();
            let (mut adapter, _) = host.load_adapter(&compiled.path)?;
            let mut session = host.model().session(session_params.clone())?;
            session.set_adapter(&mut adapter, 1.0)?;
            let grammar = grammars.get(query.id.as_str()).cloned();
            if !answer(&mut session, query, &specs, grammar, &args, &mut log, &stop)? {
                break;
            }
            bar.inc(1);
        }
        println!("compiling the queries' tools took {compile_s:.1} s in all (not part of the per-query latency)");
    } else {
        let mut adapter = args
            .adapter
            .as_ref()
            .map(|p| super::load_checked_adapter(&mut host, &path, p))
            .transpose()?;
        let mut session = host.model().session(session_params)?;
        if let Some(adapter) = adapter.as_mut() {
            session.set_adapter(adapter, 1.0)?;
        }
        for query in todo {
            let offered = tools.for_query(query)?;
            let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
            let grammar = grammars.get(query.id.as_str()).cloned();
            if !answer(&mut session, query, &specs, grammar, &args, &mut log, &stop)? {
                break;
            }
            bar.inc(1);
        }
    }
    bar.finish();
    summarise(log.records(), &queries);
    if stop.load(Ordering::SeqCst) {
        println!("interrupted: finished queries are kept; run the same command again to resume");
    }
    Ok(())
}

/// Generates and scores one query's message and appends its record;
/// `false` when the run was interrupted.
fn answer(
    session: &mut Session<'_>,
    query: &Query,
    specs: &[loragen_tools::ToolSpec],
    grammar: Option<String>,
    args: &EvalArgs,
    log: &mut RecordLog<EvalRecord>,
    stop: &AtomicBool,
) -> anyhow::Result<bool> {
    let prompt = query_prompt(query, args.mode.definitions_in_context().then_some(specs));
    let params = GenerateParams::default()
        .with_max_tokens(args.max_tokens)
        .with_stop(STEP_STOPS)
        .with_grammar(grammar);
    let completion = session.generate_streaming(&prompt, &params, super::until(stop))?;
    if completion.finish == FinishReason::Interrupted || stop.load(Ordering::SeqCst) {
        return Ok(false);
    }
    let ParsedCalls { calls, problem } = parse_calls(completion.text.as_bytes());
    let correct = score_query(query, &calls);
    let s = completion.stats;
    log.append(EvalRecord {
        id: query.id.clone(),
        calls,
        correct,
        problem,
        output: completion.text.trim_end().to_owned(),
        prompt_tokens: s.prompt_tokens,
        prefill_ms: s.prefill_ms,
        decode_ms: s.decode_ms,
    })?;
    Ok(true)
}

/// The prompt of `query`, with the JSON rendering of `specs` as its system
/// part when given (in-context modes), without it in compiled modes.
pub(super) fn query_prompt(query: &Query, specs: Option<&[loragen_tools::ToolSpec]>) -> String {
    let system = specs.map(system_prompt);
    let input: Vec<&str> = query.messages.iter().map(|m| m.content.as_str()).collect();
    conversation_prompt(system.as_deref(), &[], &input.join("\n"), "")
}

/// The call grammar over the offered tools, up to `max_calls` parallel
/// calls. A schema the grammar cannot express is an error naming the tool
/// and the keyword, never a silent fall back to free text.
pub(super) fn grammar_for(
    specs: &[loragen_tools::ToolSpec],
    max_calls: usize,
) -> anyhow::Result<String> {
    let registry = ToolRegistry::from_specs(specs.iter().cloned())?;
    Ok(call_grammar_with(
        &registry,
        &GrammarParams::default().with_max_calls(max_calls),
    )?)
}

/// Accuracy per category (the id up to its last `_`) and overall.
fn summarise(records: &[EvalRecord], queries: &[Query]) {
    /// Scored queries, right ones, prompt tokens and latencies.
    #[derive(Default)]
    struct Row {
        scored: usize,
        right: usize,
        prompt_tokens: usize,
        ms: Vec<f64>,
    }
    let ids: HashSet<&str> = queries.iter().map(|q| q.id.as_str()).collect();
    let mut per: BTreeMap<String, Row> = BTreeMap::new();
    for r in records.iter().filter(|r| ids.contains(r.id.as_str())) {
        let Some(correct) = r.correct else { continue };
        let category =
            r.id.rsplit_once('_')
                .map_or(r.id.as_str(), |(c, _)| c)
                .to_owned();
        for key in [category, "all".to_owned()] {
            let e = per.entry(key).or_default();
            e.right += usize::from(correct);
            e.scored += 1;
            e.prompt_tokens += r.prompt_tokens;
            e.ms.push(r.prefill_ms + r.decode_ms);
        }
    }
    println!(
        "| category | scored | accuracy | mean prompt tokens | p50 ms |\n|---|---|---|---|---|"
    );
    for (k, row) in &per {
        let n = row.scored.max(1) as f64;
        println!(
            "| {k} | {} | {:.1}% | {:.0} | {:.0} |",
            row.scored,
            100.0 * row.right as f64 / n,
            row.prompt_tokens as f64 / n,
            loragen_gpt4tools::report::quantile(&row.ms, 0.5)
        );
    }
}
