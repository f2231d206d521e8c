//! `loragen bench agent`: the agent on the 23-tool GPT4Tools registry as
//! the REPL runs it. For each request and mode, a turn's first message:
//! its prompt tokens and time to first token (prefill plus the first
//! sampled token), against cold in context in the same process. The
//! registry is compiled (or its adapter loaded) once, timed apart.
//!
//! Each round makes every mode's agent afresh, in turn, so drift in the
//! machine's speed falls on all modes alike; prefix reuse, as in the
//! REPL, starts cold in each round.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use loragen_agent::agent::{Agent, AgentConfig, Event};
use loragen_agent::runtime::{SessionParams, Stats};
use loragen_gpt4tools::report::quantile;
use loragen_protocol::render::system_prompt;
use loragen_protocol::Mode;
use loragen_tools::gpt4tools::registry;

use super::{median, GIVEN_ADAPTER};
use crate::cli::BenchAgentArgs;
use loragen::setup::Setup;

/// What the REPL's user shares before asking, as `:image` does.
const IMAGE_TURN: (&str, &str) = (
    "Provide an image named image/hzmkqwtb.png. Description: a red box on a pale background. \
     Understand the image using tools.",
    "Received.",
);

/// Requests over the registry: calls of several tools and two that need
/// none.
const REQUESTS: [&str; 8] = [
    "Show me the edges of this image.",
    "Detect the straight lines in the picture.",
    "Remove the box from the photo.",
    "What colour is the box in the picture?",
    "Generate an image of a cat asleep on a sofa.",
    "Segment the box in the image.",
    "What is the capital of France?",
    "Thanks, that is all.",
];

/// The first message of every turn one mode ran.
struct ModeRuns {
    mode: Mode,
    first: Vec<Stats>,
}

pub fn run(args: &BenchAgentArgs, models: Setup) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds > 0, "--rounds must be positive");
    let modes = if args.mode.is_empty() {
        vec![Mode::InContext, Mode::InContextCached, Mode::Compiled]
    } else {
        args.mode.clone()
    };
    anyhow::ensure!(
        !modes.contains(&Mode::Lora),
        "bench agent measures in-context, in-context-cached and compiled; lora is not among them"
    );
    let models = models.with_generator(args.generator.clone());
    let tools = Arc::new(registry()?);
    let specs: Vec<_> = tools.specs().cloned().collect();
    let system = system_prompt(&specs);
    let mut host = models.edge_host()?;
    let adapter = if !modes.contains(&Mode::Compiled) {
        None
    } else if let Some(file) = &args.adapter {
        let started = Instant::now();
        host.hold_adapter(GIVEN_ADAPTER, file)?;
        println!(
            "adapter {} loaded in {:.2} s",
            file.display(),
            started.elapsed().as_secs_f64()
        );
        Some(GIVEN_ADAPTER.to_owned())
    } else {
        let generator = models.generator()?;
        let mut cache = models.adapter_cache(models.adapter_source(None)?);
        let started = Instant::now();
        let ensured = cache.ensure(&mut host, &system)?;
        println!(
            "the {}-tool registry compiled by the {} generator {} and loaded in {:.2} s ({})",
            specs.len(),
            generator.origin,
            generator.dir.display(),
            started.elapsed().as_secs_f64(),
            if ensured.on_disk {
                "kept from before"
            } else {
                "compiled now"
            }
        );
        Some(ensured.key)
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut runs: Vec<ModeRuns> = modes
        .iter()
        .map(|&mode| ModeRuns {
            mode,
            first: Vec::new(),
        })
        .collect();
    for round in 1..=args.rounds {
        for runs in &mut runs {
            let mode = runs.mode;
            let mut params = SessionParams::default().with_prefix_reuse(mode.reuses_prefix());
            if let Some(threads) = args.threads {
                params = params.with_threads(threads);
            }
            let key = (mode == Mode::Compiled)
                .then_some(adapter.as_deref())
                .flatten();
            let session = host.session_with(&params, key)?;
            // One message a turn: the first is the one a user waits on,
            // and the grammar is on in every mode alike.
            let config = AgentConfig::for_mode(mode)
                .with_max_steps(1)
                .with_constrained(true);
            let mut agent = Agent::new(session, Arc::clone(&tools), config)?;
            for request in REQUESTS {
                agent.reset();
                agent.remember(IMAGE_TURN.0, IMAGE_TURN.1);
                let mut first = None;
                runtime.block_on(agent.run(request, &mut |event| {
                    if let (Event::StepDone { stats, .. }, None) = (event, &first) {
                        first = Some(*stats);
                    }
                    ControlFlow::Continue(())
                }))?;
                let stats = first.ok_or_else(|| {
                    anyhow::anyhow!("{mode}: the turn for {request:?} ended without a message")
                })?;
                runs.first.push(stats);
            }
        }
        eprintln!("round {round} of {} done", args.rounds);
    }
    println!("processor: {}", super::processor());
    print!("{}", table(&runs, specs.len()));
    Ok(())
}

/// The table, each mode against the first (cold in context by default):
/// mean prompt tokens and their compression, TTFT p50 and p95 and its
/// speed-up (ratio of p50s), and the first message's p50 latency.
fn table(runs: &[ModeRuns], tools: usize) -> String {
    let summary = |r: &ModeRuns| {
        let tokens = r.first.iter().map(|s| s.prompt_tokens as f64).sum::<f64>()
            / r.first.len().max(1) as f64;
        let ttft: Vec<f64> = r.first.iter().map(|s| s.ttft_ms).collect();
        let latency: Vec<f64> = r.first.iter().map(Stats::latency_ms).collect();
        (
            tokens,
            median(&ttft),
            quantile(&ttft, 0.95),
            median(&latency),
        )
    };
    let mut out = format!(
        "the {tools}-tool GPT4Tools registry, a turn's first message; against {}\n\n\
         | mode | messages | prompt tok | compression | TTFT p50 ms | TTFT p95 ms | TTFT speed-up | message p50 ms |\n\
         |---|---|---|---|---|---|---|---|\n",
        runs.first().map_or("–", |r| r.mode.name())
    );
    let Some(base) = runs.first().map(summary) else {
        return out;
    };
    for r in runs {
        let (tokens, ttft50, ttft95, latency50) = summary(r);
        out.push_str(&format!(
            "| {} | {} | {tokens:.0} | {:.2}x | {ttft50:.0} | {ttft95:.0} | {:.2}x | {latency50:.0} |\n",
            r.mode,
            r.first.len(),
            base.0 / tokens.max(1.0),
            base.1 / ttft50.max(1e-9),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stats(prompt_tokens: usize, ttft_ms: f64) -> Stats {
        Stats {
            prompt_tokens,
            ttft_ms,
            prefill_ms: ttft_ms,
            ..Stats::default()
        }
    }

    /// Ratios are the first mode's mean tokens and TTFT p50 over each
    /// mode's; the nearest-rank p50 of four values is the third, the p95
    /// the fourth.
    #[test]
    fn the_table_compares_every_mode_with_the_first() {
        let runs = [
            ModeRuns {
                mode: Mode::InContext,
                first: vec![
                    stats(1200, 400.0),
                    stats(1300, 600.0),
                    stats(1250, 500.0),
                    stats(1270, 700.0),
                ],
            },
            ModeRuns {
                mode: Mode::Compiled,
                first: vec![
                    stats(80, 40.0),
                    stats(90, 50.0),
                    stats(70, 60.0),
                    stats(80, 45.0),
                ],
            },
        ];
        let text = table(&runs, 23);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(
            rows[1],
            "| in-context | 4 | 1255 | 1.00x | 600 | 700 | 1.00x | 600 |"
        );
        assert_eq!(
            rows[2],
            "| compiled | 4 | 80 | 15.69x | 50 | 60 | 12.00x | 50 |"
        );
    }
}
