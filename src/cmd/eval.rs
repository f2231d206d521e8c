//! `loragen eval`: runs the edge model on queries in the generic format
//! (e.g. the BFCL conversion), one agent message per query, writes the
//! predicted calls as JSON lines (resuming after what is already written)
//! and scores them where the queries carry answers.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use indicatif::{ProgressBar, ProgressStyle};
use loragen_agent::grammar::call_grammar;
use loragen_agent::runtime::{FinishReason, GenerateParams, Model, SessionParams};
use loragen_agent::store::{ModelChoice, Role};
use loragen_gpt4tools::generic::{
    load_queries, parse_calls, score_query, EvalRecord, ParsedCalls, Query, ToolSet,
};
use loragen_gpt4tools::RecordLog;
use loragen_tools::protocol::{conversation_prompt, STEP_STOPS};
use loragen_tools::render::json_system_prompt;
use loragen_tools::ToolRegistry;

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
    anyhow::ensure!(
        args.mode.definitions_in_context() || args.adapter.is_some(),
        "mode {} needs --adapter FILE (a GGUF LoRA adapter)",
        args.mode
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
    let mut model = Model::load(&path)?;
    let mut adapter = args
        .adapter
        .as_ref()
        .map(|p| model.load_adapter(p))
        .transpose()?;
    let mut session =
        model.session(SessionParams::default().with_prefix_reuse(args.mode.reuses_prefix()))?;
    if let Some(adapter) = adapter.as_mut() {
        session.set_adapter(adapter, 1.0)?;
    }
    let stop = super::interrupt_flag()?;

    let bar = ProgressBar::new(todo.len() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ETA {eta} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix("eval");
    for query in todo {
        let offered = tools.for_query(query)?;
        let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
        let system = args
            .mode
            .definitions_in_context()
            .then(|| json_system_prompt(&specs));
        let input: Vec<&str> = query.messages.iter().map(|m| m.content.as_str()).collect();
        let prompt = conversation_prompt(system.as_deref(), &[], &input.join("\n"), "");
        let mut params = GenerateParams::default()
            .with_max_tokens(args.max_tokens)
            .with_stop(STEP_STOPS);
        if args.constrained {
            params = params.with_grammar(grammar_for(&specs));
        }
        let completion = session.generate_streaming(&prompt, &params, super::until(&stop))?;
        if completion.finish == FinishReason::Interrupted || stop.load(Ordering::SeqCst) {
            break;
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
        bar.inc(1);
    }
    bar.finish();
    summarise(log.records(), &queries);
    if stop.load(Ordering::SeqCst) {
        println!("interrupted: finished queries are kept; run the same command again to resume");
    }
    Ok(())
}

/// The agent's call grammar over the offered tools; a schema that the
/// grammar converter rejects leaves this query unconstrained.
fn grammar_for(specs: &[loragen_tools::ToolSpec]) -> Option<String> {
    let registry = ToolRegistry::from_specs(specs.iter().cloned()).ok()?;
    call_grammar(&registry)
        .map_err(|e| tracing::warn!("unconstrained: {e}"))
        .ok()
}

/// Accuracy per category (the id up to its last `_`) and overall.
fn summarise(records: &[EvalRecord], queries: &[Query]) {
    let ids: HashSet<&str> = queries.iter().map(|q| q.id.as_str()).collect();
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in records.iter().filter(|r| ids.contains(r.id.as_str())) {
        let Some(correct) = r.correct else { continue };
        let category =
            r.id.rsplit_once('_')
                .map_or(r.id.as_str(), |(c, _)| c)
                .to_owned();
        for key in [category, "all".to_owned()] {
            let e = per.entry(key).or_default();
            e.0 += usize::from(correct);
            e.1 += 1;
        }
    }
    println!("| category | scored | accuracy |\n|---|---|---|");
    for (k, (right, n)) in &per {
        println!(
            "| {k} | {n} | {:.1}% |",
            100.0 * *right as f64 / (*n).max(1) as f64
        );
    }
}
