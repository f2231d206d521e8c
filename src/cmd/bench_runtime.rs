//! `loragen bench runtime`: prefill and decode speed of the runtime wrapper
//! against a bare llama-cpp-2 loop over the same model, prompt and
//! threads, measured side by side, plus the saving of KV prefix reuse.

use std::time::Instant;

use anyhow::Context;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use loragen_agent::runtime::{self, GenerateParams, Model, SessionParams};
use loragen_agent::store::{ModelChoice, Role};
use loragen_protocol::gpt4tools::{render_conversation, render_instruction, TOOLS};
use serde_json::json;

use crate::cli::BenchRuntimeArgs;
use crate::cmd::median;
use loragen::setup::Setup;

const N_CTX: u32 = 4096;
const N_BATCH: u32 = 2048;
const IMAGE: (&str, &str) = (
    "image/qhbtwzre.png",
    "A red bicycle leaning against a brick wall next to a wooden door.",
);

/// One timed run: prompt length, prefill and decode time.
#[derive(Debug, Clone, Copy)]
struct Run {
    prompt_tokens: usize,
    prefill_ms: f64,
    decode_tokens: usize,
    decode_ms: f64,
}

impl Run {
    fn prefill_rate(&self) -> f64 {
        self.prompt_tokens as f64 * 1e3 / self.prefill_ms
    }
    fn decode_rate(&self) -> f64 {
        self.decode_tokens as f64 * 1e3 / self.decode_ms
    }
}

pub fn run(args: BenchRuntimeArgs, models: &Setup) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.repeat > 0 && args.decode_tokens > 0,
        "--repeat and --decode-tokens must be positive"
    );
    let threads = args.threads.unwrap_or_else(runtime::default_threads);
    let choices = if args.model.is_empty() {
        vec![
            ModelChoice::Role(Role::Edge),
            ModelChoice::Role(Role::Cloud),
        ]
    } else {
        args.model.clone()
    };
    let request = "Detect the bicycle in the picture and tell me where it is.";
    let prompts = [
        ("query only", render_conversation(Some(IMAGE), request)),
        (
            "5 tools",
            render_instruction(&TOOLS[..5], Some(IMAGE), request),
        ),
        ("23 tools", render_instruction(&TOOLS, Some(IMAGE), request)),
    ];
    println!(
        "threads {threads}, decode up to {} tokens, medians of {} back-to-back pairs",
        args.decode_tokens, args.repeat
    );
    println!(
        "| model | prompt | tokens | prefill tok/s bare | prefill tok/s loragen | ratio | decode tok/s bare | decode tok/s loragen | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    let mut reuse_rows = Vec::new();
    for choice in &choices {
        let path = models.model(choice)?;
        let label = match choice {
            ModelChoice::Role(role) => role.to_string(),
            ModelChoice::Path(p) => p.display().to_string(),
        };
        let model = Model::load(&path)?;
        let bare_model =
            LlamaModel::load_from_file(runtime::backend()?, &path, &LlamaModelParams::default())
                .with_context(|| format!("bare llama-cpp-2 load of {}", path.display()))?;
        for (name, prompt) in &prompts {
            let mut pairs = Vec::with_capacity(args.repeat);
            for rep in 0..args.repeat {
                // Alternate who goes first so drift in machine speed cancels.
                let pair = if rep % 2 == 0 {
                    let b = bare_run(&bare_model, prompt, args.decode_tokens, threads)?;
                    (b, wrapper_run(&model, prompt, args.decode_tokens, threads)?)
                } else {
                    let w = wrapper_run(&model, prompt, args.decode_tokens, threads)?;
                    (
                        bare_run(&bare_model, prompt, args.decode_tokens, threads)?,
                        w,
                    )
                };
                pairs.push(pair);
            }
            let m =
                |f: &dyn Fn(&(Run, Run)) -> f64| median(&pairs.iter().map(f).collect::<Vec<_>>());
            let row = Row {
                prompt_tokens: pairs[0].1.prompt_tokens,
                bare_prefill: m(&|(b, _)| b.prefill_rate()),
                ours_prefill: m(&|(_, w)| w.prefill_rate()),
                prefill_ratio: m(&|(b, w)| w.prefill_rate() / b.prefill_rate()),
                bare_decode: m(&|(b, _)| b.decode_rate()),
                ours_decode: m(&|(_, w)| w.decode_rate()),
                decode_ratio: m(&|(b, w)| w.decode_rate() / b.decode_rate()),
            };
            println!(
                "| {label} | {name} | {} | {:.0} | {:.0} | {:.3} | {:.1} | {:.1} | {:.3} |",
                row.prompt_tokens,
                row.bare_prefill,
                row.ours_prefill,
                row.prefill_ratio,
                row.bare_decode,
                row.ours_decode,
                row.decode_ratio
            );
            rows.push(json!({
                "model": label, "prompt": name, "prompt_tokens": row.prompt_tokens,
                "bare": {"prefill_tok_s": row.bare_prefill, "decode_tok_s": row.bare_decode},
                "loragen": {"prefill_tok_s": row.ours_prefill, "decode_tok_s": row.ours_decode},
                "prefill_ratio": row.prefill_ratio,
                "decode_ratio": row.decode_ratio,
                "pair_prefill_ratios": pairs.iter().map(|(b, w)| w.prefill_rate() / b.prefill_rate()).collect::<Vec<_>>(),
                "pair_decode_ratios": pairs.iter().map(|(b, w)| w.decode_rate() / b.decode_rate()).collect::<Vec<_>>(),
            }));
        }
        reuse_rows.push((label.clone(), prefix_reuse(&model, threads, args.repeat)?));
    }

    println!("\nKV prefix reuse (23-tool system prompt shared, new query), and the cost of a new session (a llama.cpp context of {N_CTX} tokens) that a kept session saves:");
    println!("| model | prompt tokens | reused | cold prefill ms | warm prefill ms | speed-up | new session ms |");
    println!("|---|---|---|---|---|---|---|");
    for (label, r) in &reuse_rows {
        println!(
            "| {label} | {} | {} | {:.1} | {:.1} | {:.1}x | {:.1} |",
            r.prompt_tokens,
            r.reused,
            r.cold_ms,
            r.warm_ms,
            r.cold_ms / r.warm_ms,
            r.session_ms
        );
    }
    if let Some(file) = &args.json {
        let reuse: Vec<_> = reuse_rows
            .iter()
            .map(|(label, r)| json!({"model": label, "prompt_tokens": r.prompt_tokens, "reused": r.reused, "cold_ms": r.cold_ms, "warm_ms": r.warm_ms, "session_ms": r.session_ms}))
            .collect();
        let doc = json!({"threads": threads, "runs": rows, "prefix_reuse": reuse});
        std::fs::write(file, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}

fn wrapper_run(
    model: &Model,
    prompt: &str,
    decode_tokens: usize,
    threads: usize,
) -> anyhow::Result<Run> {
    let params = SessionParams::default()
        .with_n_ctx(N_CTX)
        .with_n_batch(N_BATCH)
        .with_threads(threads)
        .with_prefix_reuse(false);
    let mut session = model.session(params)?;
    let c = session.generate(
        prompt,
        &GenerateParams::default().with_max_tokens(decode_tokens),
    )?;
    Ok(Run {
        prompt_tokens: c.stats.prompt_tokens,
        prefill_ms: c.stats.prefill_ms,
        decode_tokens: c.stats.decode_tokens,
        decode_ms: c.stats.decode_ms,
    })
}

/// The minimal llama-cpp-2 program: one batch for the prompt, then greedy
/// decoding token by token until end of generation or the token limit.
fn bare_run(
    model: &LlamaModel,
    prompt: &str,
    decode_tokens: usize,
    threads: usize,
) -> anyhow::Result<Run> {
    let t = i32::try_from(threads)?;
    let params = LlamaContextParams::default()
        .with_n_ctx(std::num::NonZeroU32::new(N_CTX))
        .with_n_batch(N_BATCH)
        .with_n_ubatch(512)
        .with_n_threads(t)
        .with_n_threads_batch(t);
    let mut ctx = model.new_context(runtime::backend()?, params)?;
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(N_BATCH as usize, 1);
    let start = Instant::now();
    let last = tokens.len() - 1;
    for (i, &tok) in tokens.iter().enumerate() {
        batch.add(tok, i32::try_from(i)?, &[0], i == last)?;
    }
    ctx.decode(&mut batch)?;
    let prefill_ms = start.elapsed().as_secs_f64() * 1e3;
    let decode_start = Instant::now();
    let mut sampler = LlamaSampler::greedy();
    let mut token = sampler.sample(&ctx, batch.n_tokens() - 1);
    let mut produced = 1;
    let mut pos = tokens.len();
    while produced < decode_tokens && !model.vocab().is_eog(token) {
        let _piece = model.vocab().token_to_piece(token, false, None);
        batch.clear();
        batch.add(token, i32::try_from(pos)?, &[0], true)?;
        ctx.decode(&mut batch)?;
        token = sampler.sample(&ctx, 0);
        pos += 1;
        produced += 1;
    }
    Ok(Run {
        prompt_tokens: tokens.len(),
        prefill_ms,
        decode_tokens: produced,
        decode_ms: decode_start.elapsed().as_secs_f64() * 1e3,
    })
}

struct Reuse {
    prompt_tokens: usize,
    reused: usize,
    cold_ms: f64,
    warm_ms: f64,
    /// Making a session (a llama.cpp context), median.
    session_ms: f64,
}

/// Cold prefill of a 23-tool prompt against the same prompt after another
/// query with the same system part has warmed the cache.
fn prefix_reuse(model: &Model, threads: usize, repeat: usize) -> anyhow::Result<Reuse> {
    let first = render_instruction(&TOOLS, Some(IMAGE), "Remove the bicycle from the photo.");
    let second = render_instruction(
        &TOOLS,
        Some(IMAGE),
        "What colour is the door in the picture?",
    );
    let params = SessionParams::default()
        .with_n_ctx(N_CTX)
        .with_n_batch(N_BATCH)
        .with_threads(threads);
    let mut made = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let started = Instant::now();
        drop(model.session(params.clone())?);
        made.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let mut session = model.session(params)?;
    let one = GenerateParams::default().with_max_tokens(1);
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..repeat {
        session.clear_cache();
        cold.push(session.generate(&second, &one)?.stats.prefill_ms);
        session.clear_cache();
        session.generate(&first, &one)?;
        let stats = session.generate(&second, &one)?.stats;
        warm.push(stats.prefill_ms);
        last = Some(stats);
    }
    let stats = last.context("no runs")?;
    Ok(Reuse {
        prompt_tokens: stats.prompt_tokens,
        reused: stats.reused_tokens,
        cold_ms: median(&cold),
        warm_ms: median(&warm),
        session_ms: median(&made),
    })
}

/// Medians over the repetitions; ratios are medians of the per-pair
/// ratios of runs made back to back.
struct Row {
    prompt_tokens: usize,
    bare_prefill: f64,
    ours_prefill: f64,
    prefill_ratio: f64,
    bare_decode: f64,
    ours_decode: f64,
    decode_ratio: f64,
}
