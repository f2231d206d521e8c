//! `loragen bench calls`: JSON function calling on the edge model three
//! ways, side by side on the same queries in one process (each query runs
//! every way, the order rotating from query to query): unconstrained,
//! under the compact call grammar, and under the grammar with jump-forward
//! decoding. It reports time per query (mean, p50, p95) and decode time
//! per call, how many calls parse and pass `jsonschema` validation against
//! their tool, accuracy, and how often jump-forward's output equals plain
//! constrained decoding's.

use std::time::Instant;

use loragen_agent::grammar::{call_grammar_with, GrammarParams};
use loragen_agent::runtime::{GenerateParams, Model, SessionParams};
use loragen_gpt4tools::generic::{load_queries, parse_calls, score_query, ToolDef, ToolSet};
use loragen_gpt4tools::report::quantile;
use loragen_gpt4tools::stats::mean;
use loragen_protocol::react::STEP_STOPS;
use loragen_protocol::render::system_prompt;
use serde_json::json;

use super::eval::query_prompt;
use crate::cli::BenchCallsArgs;
use loragen::setup::Setup;

/// What one decoding way did over the queries.
#[derive(Debug, Default)]
struct Tally {
    ms: Vec<f64>,
    decode_ms: f64,
    decode_tokens: usize,
    forced_tokens: usize,
    calls: usize,
    valid_calls: usize,
    unreadable: usize,
    scored: usize,
    correct: usize,
}

impl Tally {
    fn row(&self, name: &str) -> String {
        let mean = mean(self.ms.iter().copied());
        format!(
            "| {name} | {} | {mean:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0}% | {} | {:.1}% | {} | {:.1}% |",
            self.ms.len(),
            quantile(&self.ms, 0.5),
            quantile(&self.ms, 0.95),
            self.decode_tokens as f64 / self.ms.len().max(1) as f64,
            self.decode_ms / self.calls.max(1) as f64,
            100.0 * self.forced_tokens as f64 / self.decode_tokens.max(1) as f64,
            self.calls,
            100.0 * self.valid_calls as f64 / self.calls.max(1) as f64,
            self.unreadable,
            100.0 * self.correct as f64 / self.scored.max(1) as f64,
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "queries": self.ms.len(),
            "mean_ms": mean(self.ms.iter().copied()),
            "p50_ms": quantile(&self.ms, 0.5),
            "p95_ms": quantile(&self.ms, 0.95),
            "decode_ms_per_call": self.decode_ms / self.calls.max(1) as f64,
            "forced_tokens": self.forced_tokens,
            "decode_tokens": self.decode_tokens,
            "calls": self.calls,
            "valid_calls": self.valid_calls,
            "unreadable_messages": self.unreadable,
            "accuracy": self.correct as f64 / self.scored.max(1) as f64,
        })
    }
}

pub fn run(args: &BenchCallsArgs, models: &Setup) -> anyhow::Result<()> {
    let tools = ToolSet::load(&args.tools)?;
    let mut queries = load_queries(&args.queries)?;
    queries.truncate(args.limit);
    anyhow::ensure!(
        !queries.is_empty(),
        "{} holds no queries",
        args.queries.display()
    );
    let path = models.edge()?.path.clone();
    let model = Model::load(&path)?;
    let mut session = model.session(SessionParams::default().with_prefix_reuse(false))?;
    // Unconstrained, constrained, constrained with jump-forward.
    let mut tallies: [Tally; 3] = Default::default();
    let mut agree = 0;
    let started = Instant::now();
    for (i, query) in queries.iter().enumerate() {
        let offered = tools.for_query(query)?;
        let specs: Vec<_> = offered.iter().map(|t| t.spec()).collect();
        let prompt = query_prompt(query, Some(&system_prompt(&specs)));
        let grammar = call_grammar_with(
            &specs,
            &GrammarParams::default().with_max_calls(args.max_calls),
        )
        .map_err(|e| anyhow::anyhow!("query {}: {e}", query.id))?;
        let plain = GenerateParams::default()
            .with_max_tokens(args.max_tokens)
            .with_stop(STEP_STOPS);
        let ways = [
            plain.clone(),
            plain.clone().with_grammar(Some(grammar.clone())),
            plain.with_grammar(Some(grammar)).with_jump_forward(true),
        ];
        let mut outputs: [String; 3] = Default::default();
        for k in 0..3 {
            let way = (i + k) % 3;
            session.clear_cache();
            let completion = session.generate(&prompt, &ways[way])?;
            let tally = &mut tallies[way];
            let s = completion.stats;
            tally.ms.push(s.latency_ms());
            tally.decode_ms += s.decode_ms;
            tally.decode_tokens += s.decode_tokens;
            tally.forced_tokens += s.forced_tokens;
            let parsed = parse_calls(completion.text.as_bytes());
            tally.unreadable += usize::from(parsed.problem.is_some());
            for call in &parsed.calls {
                tally.calls += 1;
                tally.valid_calls += usize::from(valid(call, &offered));
            }
            if let Some(correct) = score_query(query, &parsed.calls) {
                tally.scored += 1;
                tally.correct += usize::from(correct);
            }
            outputs[way] = completion.text;
        }
        agree += usize::from(outputs[1] == outputs[2]);
        eprintln!(
            "{}/{} queries, {:.0} s",
            i + 1,
            queries.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let [free, constrained, jump] = &tallies;
    println!(
        "\n{} queries of {} on {}, three ways per query in rotating order, greedy, max {} tokens",
        queries.len(),
        args.queries.display(),
        path.display(),
        args.max_tokens
    );
    println!("| decoding | queries | mean ms | p50 ms | p95 ms | decode tokens / query | decode ms / call | forced | calls | schema-valid calls | unreadable messages | accuracy |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!("{}", free.row("unconstrained"));
    println!("{}", constrained.row("constrained"));
    println!("{}", jump.row("constrained + jump-forward"));
    let mean = |t: &Tally| t.ms.iter().sum::<f64>().max(1e-9);
    let ratio = mean(constrained) / mean(free);
    let jump_ratio = mean(jump) / mean(free);
    println!("\nmean time against unconstrained: constrained {ratio:.2}x, with jump-forward {jump_ratio:.2}x");
    println!(
        "jump-forward's output equals plain constrained decoding's on {agree} of {} queries",
        queries.len()
    );
    if let Some(file) = &args.json {
        let doc = json!({"unconstrained": free.json(), "constrained": constrained.json(),
            "jump_forward": jump.json(), "mean_ratio": ratio, "jump_mean_ratio": jump_ratio,
            "jump_agrees": agree});
        super::write_atomic(file, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    }
    Ok(())
}

/// A call names an offered tool and its arguments pass that tool's schema.
fn valid(call: &loragen_gpt4tools::generic::Call, offered: &[&ToolDef]) -> bool {
    offered
        .iter()
        .find(|t| t.name == call.name)
        .is_some_and(|t| {
            jsonschema::is_valid(
                &t.parameters,
                &serde_json::Value::Object(call.arguments.clone()),
            )
        })
}
