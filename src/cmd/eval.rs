//! `loragen eval`: runs the edge model on queries in the generic format
//! (e.g. the BFCL conversion), one agent message per query, writes the
//! predicted calls as JSON lines (resuming after what is already written)
//! and scores them where the queries carry answers.

use super::name_scoring::{NameScoring, SelectorSetting};
use super::GIVEN_ADAPTER;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use std::path::{Path, PathBuf};

use anyhow::Context;
use loragen_agent::grammar::{call_grammar_with, CallChoice};
use loragen_agent::runtime::{Completion, FinishReason, GenerateParams, SessionParams};
use loragen_gpt4tools::generic::{
    breakdown, failed_stage, failure_report, load_queries, parse_calls, score_query, Breakdown,
    Call, EvalRecord, ParsedCalls, Query, ToolDef, ToolSet,
};
use loragen_gpt4tools::paired::{paired_bootstrap, RESAMPLES};
use loragen_gpt4tools::stats::mean;
use loragen_gpt4tools::suite;
use loragen_gpt4tools::RecordLog;
use loragen_protocol::digest::{self, sha256_file};
use loragen_protocol::react::{conversation_prompt, STEP_STOPS};
use loragen_protocol::render::{system_prompt, NameHint};
use loragen_protocol::Mode;
use serde::{Deserialize, Serialize};

use crate::cli::{EvalArgs, SuiteSet};
use crate::progress::Progress;
use loragen::setup::Setup;

pub fn run(args: EvalArgs, models: Setup) -> anyhow::Result<()> {
    let suite = match args.suite {
        Some(SuiteSet::Mcp) => Some(suite::mcp_fixture(
            &suite::mcp_dir(),
            suite::MCP_SCORED_ROOT,
        )?),
        None => None,
    };
    let (tools, mut queries) = match (suite, &args.queries) {
        (Some((tools, queries)), _) => (tools, queries),
        (None, Some(file)) => (tools_of(&args)?, load_queries(file)?),
        (None, None) => anyhow::bail!("give --queries FILE or --suite"),
    };
    if let Some(limit) = args.limit {
        queries.truncate(limit);
    }
    // Every grammar is built before the run (and kept for it), so an
    // inexpressible schema stops the run at once rather than halfway.
    let mut grammars: HashMap<&str, String> = HashMap::new();
    for q in &queries {
        let offered = tools.for_query(q)?;
        if args.decoding.constrained {
            let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
            let grammar = call_grammar_with(&specs, &args.decoding.grammar_params(args.max_calls))
                .map_err(|e| anyhow::anyhow!("query {}: {e}", q.id))?;
            grammars.insert(q.id.as_str(), grammar);
        }
    }
    anyhow::ensure!(
        !(args.adapter.is_some() && args.generator.is_some()),
        "give --adapter or --generator, not both"
    );
    anyhow::ensure!(
        args.generator.is_none() || args.mode == Mode::Compiled,
        "--generator compiles the tools for mode compiled, not {}",
        args.mode
    );
    args.decoding
        .check_name_hint(args.mode.definitions_in_context(), args.mode)?;
    anyhow::ensure!(
        args.mode != Mode::Lora || args.adapter.is_some(),
        "mode lora needs --adapter FILE (a GGUF LoRA adapter)"
    );
    if let Some(baseline) = &args.baseline {
        anyhow::ensure!(
            baseline.is_file(),
            "--baseline {}: no such records file",
            baseline.display()
        );
    }
    // Compiled mode compiles each query's tools, unless --adapter fixes one
    // adapter for all (an explicit adapter wins over the default generator).
    let models = models
        .with_generator(args.generator.clone())
        .with_selector(args.decoding.selection.selector.clone());
    let compiler = match (args.mode, &args.adapter) {
        (Mode::Compiled, None) => Some(models.compiler()?),
        _ => None,
    };
    let mut scoring = NameScoring::new(&args.decoding, &models)?;
    let settings = EvalSettings {
        selector: scoring.setting().cloned(),
        mode: args.mode.to_string(),
        constrained: args.decoding.constrained,
        field_aware: args.decoding.field_aware,
        whole_names: args.decoding.whole_names,
        name_hint: args.decoding.name_hint,
        max_calls: args.max_calls,
        max_tokens: args.max_tokens,
        edge_sha256: models.edge()?.sha256.clone(),
        adapter_sha256: args.adapter.as_deref().map(sha256_file).transpose()?,
        generator_sha256: compiler.as_ref().map(|c| c.generator_sha256().to_owned()),
    };
    settings.check_or_write(&args.out)?;
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

    let session_params = SessionParams::default().with_prefix_reuse(args.mode.reuses_prefix());
    let stop = super::interrupt_flag()?;
    let mut host = models.edge_host()?;
    if let Some(adapter) = &args.adapter {
        host.hold_adapter(GIVEN_ADAPTER, adapter)?;
    }
    let mut adapters = compiler.map(|c| models.adapter_cache(Box::new(c)));

    let bar = Progress::new("eval", "queries");
    bar.set_total(todo.len() as u64);
    // Each distinct tool list is compiled into its own adapter (through the
    // compile cache) and held by the host under its fingerprint.
    let mut compile_s = 0.0;
    for query in todo {
        let offered = tools.for_query(query)?;
        let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
        let (adapter, artifact) = match adapters.as_mut() {
            Some(adapters) => {
                let ensured = adapters.ensure(&mut host, &system_prompt(&specs))?;
                compile_s += ensured.compile_s;
                let artifact = adapters.path_of(&ensured.key);
                (Some(ensured.key), Some(artifact))
            }
            // A given compiled artifact carries its own selector part.
            None => (
                args.adapter.is_some().then(|| GIVEN_ADAPTER.to_owned()),
                args.adapter.clone().filter(|_| args.mode == Mode::Compiled),
            ),
        };
        let system = match args.decoding.names_line(&specs) {
            Some(line) => Some(line),
            None => args
                .mode
                .definitions_in_context()
                .then(|| system_prompt(&specs)),
        };
        let prompt = query_prompt(query, system.as_deref());
        let names = specs.iter().map(|s| s.name.clone()).collect();
        let decision =
            scoring.decide(&system_prompt(&specs), &prompt, names, artifact.as_deref())?;
        // A vetoed call leaves the model an answer without one; a required
        // call, calls alone.
        let grammar = match decision.call {
            CallChoice::Auto => grammars.get(query.id.as_str()).cloned(),
            choice => {
                let params = args
                    .decoding
                    .grammar_params(args.max_calls)
                    .with_choice(choice);
                Some(call_grammar_with(&specs, &params)?)
            }
        };
        let params = GenerateParams::default()
            .with_max_tokens(args.max_tokens)
            .with_stop(STEP_STOPS)
            .with_grammar(grammar)
            .with_name_choice(decision.name_choice);
        let completion = host.with_session(&session_params, adapter.as_deref(), |session| {
            session.generate_streaming(&prompt, &params, super::until(&stop))
        })?;
        if completion.finish == FinishReason::Interrupted || stop.load(Ordering::SeqCst) {
            break;
        }
        log.append(EvalRecord {
            selector_ms: decision.selector_ms,
            vetoed: decision.call == CallChoice::None,
            required: decision.call == CallChoice::Required,
            none_margin: decision.none_margin,
            ..score(query, &completion)
        })?;
        bar.inc(1);
    }
    if adapters.is_some() {
        println!("compiling the queries' tools took {compile_s:.1} s in all (not part of the per-query latency)");
    }
    bar.finish();
    let baseline = args
        .baseline
        .as_deref()
        .map(RecordLog::<EvalRecord>::open)
        .transpose()?;
    print!(
        "{}",
        summary(
            log.records(),
            &queries,
            baseline.as_ref().map(RecordLog::records)
        )?
    );
    if let Some(n) = args.failures {
        print!("{}", failures_part(log.records(), &queries, n));
    }
    if stop.load(Ordering::SeqCst) {
        println!("interrupted: finished queries are kept; run the same command again to resume");
    }
    Ok(())
}

/// The failed queries by stage, and `n` of them in full.
fn failures_part(records: &[EvalRecord], queries: &[Query], n: usize) -> String {
    let by_id: HashMap<&str, &EvalRecord> = records.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut failures = Vec::new();
    let mut scored = 0;
    for query in queries {
        let Some(record) = by_id.get(query.id.as_str()) else {
            continue;
        };
        scored += usize::from(query.expect.is_some());
        if let Some(stage) = failed_stage(query, &record.calls) {
            failures.push((stage, failure_text(query, record)));
        }
    }
    failure_report(scored, &failures, n)
}

/// One failure in full: the request, what was due and what was made.
fn failure_text(query: &Query, record: &EvalRecord) -> String {
    let request = query
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.as_str());
    let due = if query.answers.is_empty() {
        "no call".to_owned()
    } else {
        serde_json::to_string(&query.answers).unwrap_or_default()
    };
    let made = if record.calls.is_empty() {
        format!("no call: {:?}", record.output)
    } else {
        serde_json::to_string(&record.calls).unwrap_or_default()
    };
    format!(
        "{}\n  request: {request}\n  due:     {due}\n  made:    {made}",
        query.id
    )
}

/// What an output file's records were made with, kept beside it as
/// `<out>.settings.json`: a rerun into the same file with other settings
/// would resume and mix records of two runs, so it is refused. Output
/// written before the sidecar existed has none and is accepted as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EvalSettings {
    mode: String,
    constrained: bool,
    /// Whole-name scoring (`--whole-names`); absent in older sidecars.
    #[serde(default)]
    whole_names: bool,
    /// The field-aware grammar (`--field-aware`); absent in older sidecars.
    #[serde(default)]
    field_aware: bool,
    /// The names-only control's line (`--name-hint`).
    #[serde(default)]
    name_hint: Option<NameHint>,
    max_calls: usize,
    max_tokens: usize,
    edge_sha256: String,
    /// sha256 of the fixed `--adapter`.
    adapter_sha256: Option<String>,
    /// sha256 of the generator that compiled each query's tools.
    generator_sha256: Option<String>,
    /// The tool selector added to whole-name scoring (`--selector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selector: Option<SelectorSetting>,
}

impl EvalSettings {
    fn sidecar(out: &Path) -> PathBuf {
        let mut name = out.as_os_str().to_owned();
        name.push(".settings.json");
        PathBuf::from(name)
    }

    /// Writes the sidecar of a new output file; refuses an existing output
    /// made with other settings, naming what differs.
    fn check_or_write(&self, out: &Path) -> anyhow::Result<()> {
        let path = Self::sidecar(out);
        let old = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<EvalSettings>(&text)
                .with_context(|| format!("{} is not an eval settings file", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !out.exists() {
                    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("cannot create {}", dir.display()))?;
                    }
                    super::write_atomic(&path, serde_json::to_string_pretty(self)?.as_bytes())?;
                }
                return Ok(());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let differs = self.differences(&old);
        anyhow::ensure!(
            differs.is_empty(),
            "{} holds records made with other settings ({}); use another --out or delete it and {}",
            out.display(),
            differs.join(", "),
            path.display()
        );
        Ok(())
    }

    /// What differs from `old`, as `name old -> new`.
    fn differences(&self, old: &EvalSettings) -> Vec<String> {
        let short = |s: &Option<String>| s.as_deref().map_or("none", digest::short).to_owned();
        let mut out = Vec::new();
        let mut field = |name: &str, old: String, new: String| {
            if old != new {
                out.push(format!("{name} {old} -> {new}"));
            }
        };
        field("mode", old.mode.clone(), self.mode.clone());
        field(
            "constrained",
            old.constrained.to_string(),
            self.constrained.to_string(),
        );
        field(
            "field-aware",
            old.field_aware.to_string(),
            self.field_aware.to_string(),
        );
        field(
            "whole names",
            old.whole_names.to_string(),
            self.whole_names.to_string(),
        );
        field(
            "name hint",
            format!("{:?}", old.name_hint),
            format!("{:?}", self.name_hint),
        );
        field(
            "selector",
            format!("{:?}", old.selector),
            format!("{:?}", self.selector),
        );
        field(
            "max calls",
            old.max_calls.to_string(),
            self.max_calls.to_string(),
        );
        field(
            "max tokens",
            old.max_tokens.to_string(),
            self.max_tokens.to_string(),
        );
        field(
            "edge model",
            digest::short(&old.edge_sha256).to_owned(),
            digest::short(&self.edge_sha256).to_owned(),
        );
        field(
            "adapter",
            short(&old.adapter_sha256),
            short(&self.adapter_sha256),
        );
        field(
            "generator",
            short(&old.generator_sha256),
            short(&self.generator_sha256),
        );
        out
    }
}

/// The record of `query` answered by `completion`, scored.
fn score(query: &Query, completion: &Completion) -> EvalRecord {
    let ParsedCalls { calls, problem } = parse_calls(completion.text.as_bytes());
    let correct = score_query(query, &calls);
    let s = completion.stats;
    EvalRecord {
        id: query.id.clone(),
        calls,
        correct,
        problem,
        output: completion.text.trim_end().to_owned(),
        prompt_tokens: s.prompt_tokens,
        prefill_ms: s.prefill_ms,
        decode_ms: s.decode_ms,
        selector_ms: None,
        vetoed: false,
        required: false,
        none_margin: None,
    }
}

/// The prompt of `query` after `system`: the definitions (in-context
/// modes), a names-only control's line, or nothing (compiled modes).
pub(super) fn query_prompt(query: &Query, system: Option<&str>) -> String {
    let input: Vec<&str> = query.messages.iter().map(|m| m.content.as_str()).collect();
    conversation_prompt(system, &[], &input.join("\n"), "")
}

/// The tools of `--tools FILE` or of the servers of `--mcp-config FILE`.
/// The servers' tools are what the queries are offered; the eval never
/// calls them, so the servers are shut down once they are listed.
fn tools_of(args: &EvalArgs) -> anyhow::Result<ToolSet> {
    Ok(match (&args.tools, &args.mcp_config) {
        (Some(file), _) => ToolSet::load(file)?,
        (None, Some(config)) => {
            let toolset = loragen_agent::toolset::Toolset::load(None, Some(config), true)?;
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
    })
}

/// One category's scored queries: whether each was right, its prompt
/// tokens and its latency (prefill plus decode), in query order.
#[derive(Default)]
pub(super) struct Scores {
    pub(super) right: Vec<f64>,
    pub(super) prompt_tokens: Vec<f64>,
    pub(super) ms: Vec<f64>,
    /// Right over the queries that expect calls.
    pub(super) calls: Vec<f64>,
    /// The [`Breakdown`]'s parts, over the queries each applies to.
    pub(super) selection: Vec<f64>,
    pub(super) arguments: Vec<f64>,
    pub(super) no_call: Vec<f64>,
}

impl Scores {
    fn push(&mut self, r: &EvalRecord, correct: bool, parts: Breakdown) {
        self.push_item(correct, r.prompt_tokens, r.latency_ms(), parts);
    }

    /// One scored item: whether it is right, its prompt and latency, and
    /// its parts (a call expected when `parts.selection` is set).
    pub(super) fn push_item(
        &mut self,
        correct: bool,
        prompt_tokens: usize,
        ms: f64,
        parts: Breakdown,
    ) {
        let one = |b: bool| f64::from(u8::from(b));
        self.right.push(one(correct));
        self.prompt_tokens.push(prompt_tokens as f64);
        self.ms.push(ms);
        if parts.selection.is_some() {
            self.calls.push(one(correct));
        }
        self.selection.extend(parts.selection.map(one));
        self.arguments.extend(parts.arguments.map(one));
        self.no_call.extend(parts.no_call.map(one));
    }

    fn accuracy(&self) -> f64 {
        100.0 * mean(self.right.iter().copied())
    }

    /// Of the scored `records`, those of `queries` (which give each its
    /// expectation).
    pub(super) fn of_records(records: &[EvalRecord], queries: &[Query]) -> Self {
        let by_id: HashMap<&str, &Query> = queries.iter().map(|q| (q.id.as_str(), q)).collect();
        let mut scores = Scores::default();
        for r in records {
            if let (Some(query), Some(correct)) = (by_id.get(r.id.as_str()), r.correct) {
                scores.push(r, correct, breakdown(query, &r.calls));
            }
        }
        scores
    }
}

/// A share in percent, or a dash when nothing was counted.
pub(super) fn percent(xs: &[f64]) -> String {
    if xs.is_empty() {
        "–".to_owned()
    } else {
        format!("{:.1}%", 100.0 * mean(xs.iter().copied()))
    }
}

/// A query's category: its id up to the last `_` (`live_simple_3-1-0` is
/// `live_simple`).
fn category(id: &str) -> &str {
    id.rsplit_once('_').map_or(id, |(c, _)| c)
}

/// Accuracy, mean prompt tokens and p50 latency per category and overall,
/// as a markdown table. With `baseline` (the records of another mode on the
/// same queries), only the queries both scored count, and each row adds
/// the baseline's figures, the accuracy difference with its 95% paired
/// bootstrap interval, the compression (baseline prompt tokens over ours)
/// and the speed-up (baseline p50 over ours).
fn summary(
    records: &[EvalRecord],
    queries: &[Query],
    baseline: Option<&[EvalRecord]>,
) -> anyhow::Result<String> {
    let theirs: Option<HashMap<&str, &EvalRecord>> =
        baseline.map(|b| b.iter().map(|r| (r.id.as_str(), r)).collect());
    let by_id: HashMap<&str, &Query> = queries.iter().map(|q| (q.id.as_str(), q)).collect();
    let mut per: BTreeMap<&str, (Scores, Scores)> = BTreeMap::new();
    for r in records.iter() {
        let Some(query) = by_id.get(r.id.as_str()) else {
            continue;
        };
        let Some(correct) = r.correct else { continue };
        let other = match &theirs {
            None => None,
            Some(theirs) => match theirs
                .get(r.id.as_str())
                .and_then(|b| Some((*b, b.correct?)))
            {
                Some(pair) => Some(pair),
                None => continue,
            },
        };
        for key in [category(&r.id), "all"] {
            let (ours, base) = per.entry(key).or_default();
            ours.push(r, correct, breakdown(query, &r.calls));
            if let Some((b, b_correct)) = other {
                base.push(b, b_correct, breakdown(query, &b.calls));
            }
        }
    }
    anyhow::ensure!(
        baseline.is_none() || !per.is_empty(),
        "no query is scored in both these records and the baseline's"
    );
    let p50 = |xs: &[f64]| loragen_gpt4tools::report::quantile(xs, 0.5);
    let mut out = String::new();
    if baseline.is_none() {
        out.push_str("| category | scored | accuracy | right tool | arguments, given the tool | no call where none is due | mean prompt tokens | p50 ms |\n|---|---|---|---|---|---|---|---|\n");
        for (k, (ours, _)) in &per {
            out.push_str(&format!(
                "| {k} | {} | {:.1}% | {} | {} | {} | {:.0} | {:.0} |\n",
                ours.right.len(),
                ours.accuracy(),
                percent(&ours.selection),
                percent(&ours.arguments),
                percent(&ours.no_call),
                mean(ours.prompt_tokens.iter().copied()),
                p50(&ours.ms)
            ));
        }
        out.push_str(&selector_part(records, &by_id));
        return Ok(out);
    }
    out.push_str(
        "| category | paired | accuracy | baseline | difference [95%] | prompt tokens | baseline | compression | p50 ms | baseline | speed-up |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (k, (ours, base)) in &per {
        let d = paired_bootstrap(&base.right, &ours.right, RESAMPLES, 0)?;
        out.push_str(&format!(
            "| {k} | {} | {:.1}% | {:.1}% | {:+.1} [{:+.1}, {:+.1}] | {:.0} | {:.0} | {:.1}x | {:.0} | {:.0} | {:.2}x |\n",
            ours.right.len(),
            ours.accuracy(),
            base.accuracy(),
            100.0 * d.mean,
            100.0 * d.lo,
            100.0 * d.hi,
            mean(ours.prompt_tokens.iter().copied()),
            mean(base.prompt_tokens.iter().copied()),
            mean(base.prompt_tokens.iter().copied()) / mean(ours.prompt_tokens.iter().copied()).max(1.0),
            p50(&ours.ms),
            p50(&base.ms),
            p50(&base.ms) / p50(&ours.ms).max(f64::MIN_POSITIVE),
        ));
    }
    out.push_str(&selector_part(records, &by_id));
    Ok(out)
}

/// The veto margins the selector's part of the summary sweeps, and `train
/// selector`'s report.
pub(super) const VETO_MARGINS: [f64; 11] =
    [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0];

/// The tool selector's part, when it ran: its pass, included in the p50
/// above and reported apart here, and what a veto at each margin would
/// have given. A query whose "no call" margin exceeds the veto's answers
/// without a call, so one run's records give every margin's outcome, except
/// where a margin would have let through a call the run vetoed.
fn selector_part(records: &[EvalRecord], by_id: &HashMap<&str, &Query>) -> String {
    let ms: Vec<f64> = records.iter().filter_map(|r| r.selector_ms).collect();
    if ms.is_empty() {
        return String::new();
    }
    let q = |p| loragen_gpt4tools::report::quantile(&ms, p);
    let vetoed = records.iter().filter(|r| r.vetoed).count();
    let required = records.iter().filter(|r| r.required).count();
    let mut out = format!(
        "\nthe tool selector's pass (included above): p50 {:.0} ms, p95 {:.0} ms over {} queries; it vetoed a call in {vetoed} and required one in {required}\n",
        q(0.5),
        q(0.95),
        ms.len()
    );
    let scored: Vec<(&EvalRecord, &Query, f64)> = records
        .iter()
        .filter_map(|r| Some((r, *by_id.get(r.id.as_str())?, r.none_margin?)))
        .filter(|(r, _, _)| r.correct.is_some())
        .collect();
    if scored.is_empty() {
        return out;
    }
    out.push_str("\n| veto margin | vetoed | accuracy | call queries | no call where none is due |\n|---|---|---|---|---|\n");
    for margin in VETO_MARGINS {
        if scored.iter().any(|(r, _, m)| r.vetoed && *m <= margin) {
            continue;
        }
        let mut scores = Scores::default();
        let mut n_vetoed = 0;
        for &(r, query, m) in &scored {
            let vetoed = m > margin;
            n_vetoed += usize::from(vetoed);
            let calls: &[Call] = if vetoed { &[] } else { &r.calls };
            if let Some(correct) = score_query(query, calls) {
                scores.push(r, correct, breakdown(query, calls));
            }
        }
        out.push_str(&format!(
            "| {margin:+} | {n_vetoed} | {:.1}% | {} | {} |\n",
            scores.accuracy(),
            percent(&scores.calls),
            percent(&scores.no_call)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(id: &str, correct: Option<bool>, prompt_tokens: usize, ms: f64) -> EvalRecord {
        EvalRecord {
            id: id.into(),
            calls: Vec::new(),
            correct,
            problem: None,
            output: String::new(),
            prompt_tokens,
            prefill_ms: ms / 2.0,
            decode_ms: ms / 2.0,
            selector_ms: None,
            vetoed: false,
            required: false,
            none_margin: None,
        }
    }

    fn queries(ids: &[&str]) -> Vec<Query> {
        ids.iter()
            .map(|id| {
                serde_json::from_value(serde_json::json!({
                    "id": id, "messages": [{"role": "user", "content": "q"}],
                    "tools": [], "expect": "calls", "answers": []
                }))
                .unwrap()
            })
            .collect()
    }

    /// The row of `category` in a markdown table, split into its cells.
    fn row(table: &str, category: &str) -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {category} |")))
            .unwrap_or_else(|| panic!("no row {category} in\n{table}"));
        line.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    }

    #[test]
    fn categories_are_ids_up_to_their_last_underscore() {
        assert_eq!(category("live_simple_39-16-0"), "live_simple");
        assert_eq!(category("simple_java_3"), "simple_java");
        assert_eq!(category("plain"), "plain");
    }

    #[test]
    fn a_baseline_adds_paired_figures_per_category() {
        let qs = queries(&["simple_1", "simple_2", "irrelevance_1", "extra_1"]);
        let ours = [
            record("simple_1", Some(true), 20, 100.0),
            record("simple_2", Some(true), 20, 300.0),
            record("irrelevance_1", Some(false), 40, 200.0),
            // Not in the baseline: left out of the paired table.
            record("extra_1", Some(true), 10, 50.0),
            // Not a query of this run.
            record("other_1", Some(true), 10, 50.0),
        ];
        let theirs = [
            record("simple_1", Some(false), 200, 400.0),
            record("simple_2", Some(true), 200, 600.0),
            record("irrelevance_1", Some(false), 400, 800.0),
        ];
        let plain = summary(&ours, &qs, None).unwrap();
        assert_eq!(row(&plain, "all")[1], "4", "{plain}");
        assert_eq!(row(&plain, "simple")[2], "100.0%");

        let table = summary(&ours, &qs, Some(&theirs)).unwrap();
        let simple = row(&table, "simple");
        assert_eq!(
            &simple[1..5],
            ["2", "100.0%", "50.0%", "+50.0 [+0.0, +100.0]"]
        );
        assert_eq!(&simple[5..8], ["20", "200", "10.0x"]);
        // The harness's p50 of two latencies is the upper one: 300 against 600.
        assert_eq!(&simple[8..], ["300", "600", "2.00x"]);
        let all = row(&table, "all");
        assert_eq!(all[1], "3", "{table}");
        assert_eq!(&all[2..4], ["66.7%", "33.3%"]);
        assert!(!table.contains("| extra |"), "{table}");
    }

    /// Three queries that call `add` with `a` = 1 (`s_1` to `s_3`) and one
    /// that needs no call (`s_4`).
    /// `r` having made `call` (a function and its argument `a`), or none.
    fn calling(mut r: EvalRecord, call: Option<(&str, i64)>) -> EvalRecord {
        r.calls = call
            .map(|(name, a)| {
                serde_json::from_value(serde_json::json!({"name": name, "arguments": {"a": a}}))
                    .unwrap()
            })
            .into_iter()
            .collect();
        r
    }

    fn add_queries() -> [Query; 4] {
        let q = |id: &str, expect: &str| -> Query {
            serde_json::from_value(serde_json::json!({
                "id": id, "messages": [], "expect": expect,
                "answers": if expect == "calls" {
                    serde_json::json!([{"name": "add", "arguments": {"a": [1]}}])
                } else {
                    serde_json::json!([])
                },
            }))
            .unwrap()
        };
        [
            q("s_1", "calls"),
            q("s_2", "calls"),
            q("s_3", "calls"),
            q("s_4", "no-call"),
        ]
    }

    /// Right tool, arguments given the right tool and no-call accuracy are
    /// each counted over the queries they apply to.
    #[test]
    fn the_table_separates_tool_choice_from_arguments() {
        let qs = add_queries();
        let with = |id: &str, correct: bool, call: Option<(&str, i64)>| {
            calling(record(id, Some(correct), 10, 1.0), call)
        };
        let records = [
            with("s_1", true, Some(("add", 1))),
            with("s_2", false, Some(("add", 2))),
            with("s_3", false, Some(("sub", 1))),
            with("s_4", false, Some(("add", 1))),
        ];
        let table = summary(&records, &qs, None).unwrap();
        let s = row(&table, "s");
        assert_eq!(
            &s[1..6],
            ["4", "25.0%", "66.7%", "50.0%", "0.0%"],
            "{table}"
        );
    }

    /// Failures are counted by stage and shown in turn from each stage, so
    /// a small N still shows every stage; a right query is never shown.
    #[test]
    fn failures_are_counted_by_stage_and_shown_in_turn() {
        let mut qs = add_queries().to_vec();
        qs.extend(add_queries().map(|mut q| {
            q.id = format!("t{}", q.id);
            q
        }));
        let with = |id: &str, call: Option<(&str, i64)>| calling(record(id, None, 10, 1.0), call);
        let records = [
            with("s_1", Some(("add", 1))),
            with("s_2", Some(("add", 2))),
            with("s_3", Some(("sub", 1))),
            with("s_4", Some(("add", 1))),
            with("ts_1", None),
            with("ts_2", Some(("add", 3))),
        ];
        let text = failures_part(&records, &qs, 3);
        assert!(text.contains("failures: 5 of 6 scored items"), "{text}");
        for row in [
            "| no call where one is due | 1 |",
            "| wrong number of calls | 0 |",
            "| wrong function | 1 |",
            "| right function, wrong arguments | 2 |",
            "| a call where none is due | 1 |",
        ] {
            assert!(text.contains(row), "{row} in {text}");
        }
        let shown: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix('['))
            .map(|l| l.split_once("] ").unwrap().1)
            .collect();
        // One of each stage in stage order: no call, function, arguments.
        assert_eq!(shown, ["ts_1", "s_3", "s_2"], "{text}");
        let all = failures_part(&records, &qs, 10);
        assert_eq!(all.lines().filter(|l| l.starts_with('[')).count(), 5);
        assert!(!all.contains("] s_1\n"), "a right query is not a failure");
    }

    /// One run's margins give every veto's outcome: a vetoed query makes
    /// no call, and a margin that would let through a call the run vetoed
    /// has no row.
    #[test]
    fn the_veto_sweep_answers_from_one_runs_margins() {
        let qs = add_queries();
        let by_id: HashMap<&str, &Query> = qs.iter().map(|q| (q.id.as_str(), q)).collect();
        let with = |id: &str, name: &str, margin: f64| {
            let mut r = record(id, None, 10, 1.0);
            r.calls = vec![serde_json::from_value(
                serde_json::json!({"name": name, "arguments": {"a": 1}}),
            )
            .unwrap()];
            r.correct = score_query(by_id[id], &r.calls);
            r.selector_ms = Some(2.0);
            r.none_margin = Some(margin);
            r
        };
        let mut records = vec![
            with("s_1", "add", -3.0),
            with("s_2", "add", 1.5),
            with("s_3", "sub", 5.0),
            with("s_4", "add", 9.0),
        ];
        let sweep = selector_part(&records, &by_id);
        assert!(sweep.contains("p50 2 ms"), "{sweep}");
        let at = |table: &str, margin: &str| -> Vec<String> { row(table, margin)[1..].to_vec() };
        assert_eq!(
            at(&sweep, "-4"),
            ["4", "25.0%", "0.0%", "100.0%"],
            "{sweep}"
        );
        assert_eq!(at(&sweep, "+0"), ["3", "50.0%", "33.3%", "100.0%"]);
        assert_eq!(at(&sweep, "+2"), ["2", "75.0%", "66.7%", "100.0%"]);
        assert_eq!(at(&sweep, "+10"), ["0", "50.0%", "66.7%", "0.0%"]);

        // A run that vetoed s_4 cannot say what a margin above 9 gives.
        records[3].calls.clear();
        records[3].correct = Some(true);
        records[3].vetoed = true;
        let sweep = selector_part(&records, &by_id);
        assert!(sweep.contains("vetoed a call in 1"), "{sweep}");
        assert_eq!(at(&sweep, "+8"), ["1", "75.0%", "66.7%", "100.0%"]);
        assert!(!sweep.contains("| +10 |"), "{sweep}");
        // Without the selector there is no part.
        records.iter_mut().for_each(|r| r.selector_ms = None);
        assert_eq!(selector_part(&records, &by_id), "");
    }

    #[test]
    fn a_baseline_that_shares_no_query_is_an_error() {
        let qs = queries(&["simple_1"]);
        let ours = [record("simple_1", Some(true), 20, 100.0)];
        let theirs = [record("simple_9", Some(true), 20, 100.0)];
        let err = summary(&ours, &qs, Some(&theirs)).unwrap_err().to_string();
        assert!(err.contains("no query is scored in both"), "{err}");
    }
}
