//! The exported forms of an adapter in llama.cpp. For random adapters of
//! each requested size: how closely the base model and the merged F16 and
//! Q8_0 copies follow the adapter path (top-1 agreement and KL over a real
//! text), then decode speed of base, base + adapter and the merged copies,
//! in rounds that rotate the order so drift in machine speed cancels.

use std::path::{Path, PathBuf};

use anyhow::Context;
use loragen_agent::runtime::{self, Adapter, GenerateParams, LlamaToken, Model, SessionParams};
use loragen_generator::edge::{agreement, random_lora, EdgeModel, Target};
use loragen_generator::gguf_lora::{write_lora_adapter, LoraAdapter};
use loragen_generator::merge::{write_merged, MergedType};
use serde_json::{json, Value};

use crate::cli::BenchEdgeArgs;
use crate::cmd::{file_mib, median};

/// A continuation prompt that keeps a base model writing.
const PROMPT: &str = "The old lighthouse keeper climbed the stairs one last time. He remembered";
/// Positions compared for agreement (enough for KL; `tests/edge_parity.rs`
/// uses 1,000 for the top-1 rate).
const AGREEMENT_TOKENS: usize = 300;
const MERGED: [MergedType; 2] = [MergedType::F16, MergedType::Q8_0];

/// The files written for one random adapter.
struct Exported {
    relative: f32,
    adapter: PathBuf,
    merged: Vec<(MergedType, PathBuf)>,
}

/// One way of running the model.
struct Variant<'a> {
    name: String,
    model: &'a Model,
    adapter: Option<&'a mut Adapter>,
    file: PathBuf,
}

pub fn measure(
    edge: &EdgeModel,
    mut base: Model,
    path: &Path,
    text: &[u32],
    args: &BenchEdgeArgs,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        !args.relative.is_empty(),
        "--relative needs at least one size"
    );
    let scratch = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            None
        }
        None => Some(tempfile::tempdir()?),
    };
    let dir = args
        .keep
        .as_deref()
        .or(scratch.as_ref().map(|d| d.path()))
        .context("no working directory")?;
    let exported: Vec<Exported> = args
        .relative
        .iter()
        .map(|&r| export(edge, path, dir, args.rank, r))
        .collect::<anyhow::Result<_>>()?;

    let mut adapters: Vec<Adapter> = exported
        .iter()
        .map(|e| base.load_adapter(&e.adapter))
        .collect::<Result<_, _>>()?;
    let merged_models: Vec<Vec<Model>> = exported
        .iter()
        .map(|e| {
            e.merged
                .iter()
                .map(|(_, p)| Model::load(p))
                .collect::<Result<_, _>>()
        })
        .collect::<Result<_, _>>()?;
    let mut groups: Vec<Vec<Variant<'_>>> = Vec::with_capacity(exported.len());
    for ((e, adapter), merged) in exported.iter().zip(&mut adapters).zip(&merged_models) {
        let mut group = vec![
            Variant {
                name: "base".into(),
                model: &base,
                adapter: None,
                file: path.to_path_buf(),
            },
            Variant {
                name: "base + adapter".into(),
                model: &base,
                adapter: Some(adapter),
                file: e.adapter.clone(),
            },
        ];
        for ((ty, file), model) in e.merged.iter().zip(merged) {
            group.push(Variant {
                name: format!("merged {ty}"),
                model,
                adapter: None,
                file: file.clone(),
            });
        }
        groups.push(group);
    }
    let threads = args.threads.unwrap_or_else(runtime::default_threads);

    println!("\nAgreement with the adapter path over {AGREEMENT_TOKENS} tokens of the GPT4Tools prompt (random adapters, r={}, on every FFN projection)", args.rank);
    println!(
        "| ΔW / W | variant | file MiB | top-1 vs adapter | KL(adapter ‖ variant) nats | max KL |"
    );
    println!("|---|---|---|---|---|---|");
    let tokens: Vec<LlamaToken> = text
        .iter()
        .take(AGREEMENT_TOKENS)
        .map(|&t| LlamaToken(t as i32))
        .collect();
    let mut agreement_rows = Vec::new();
    for (e, group) in exported.iter().zip(&mut groups) {
        let logits: Vec<Vec<Vec<f32>>> = group
            .iter_mut()
            .map(|v| variant_logits(v, &tokens, threads))
            .collect::<anyhow::Result<_>>()?;
        for (v, l) in group
            .iter()
            .zip(&logits)
            .filter(|(v, _)| v.adapter.is_none())
        {
            let a = agreement(&logits[1], l);
            println!(
                "| {} | {} | {:.1} | {:.4} | {:.5} | {:.4} |",
                e.relative,
                v.name,
                file_mib(&v.file),
                a.top1,
                a.mean_kl,
                a.max_kl
            );
            agreement_rows.push(json!({
                "relative": e.relative, "variant": v.name, "file_mib": file_mib(&v.file),
                "positions": a.positions, "top1": a.top1, "mean_kl": a.mean_kl, "max_kl": a.max_kl,
            }));
        }
    }

    let timed = &mut groups[0];
    println!(
        "\nDecode: greedy, up to {} tokens after a {}-token prompt, {threads} threads, {} rounds in rotated order (adapter with ΔW/W = {})",
        args.decode_tokens,
        timed[0].model.tokenize(PROMPT, true).len(),
        args.rounds,
        exported[0].relative
    );
    let n = timed.len();
    let mut rates = vec![Vec::with_capacity(args.rounds); n];
    let mut decoded = vec![0usize; n];
    for round in 0..args.rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let (tokens, rate) = decode_rate(&mut timed[i], args.decode_tokens, threads)?;
            rates[i].push(rate);
            decoded[i] += tokens;
        }
    }
    // Medians, and the best round: on a shared machine the fastest run is
    // the one least disturbed by other work.
    println!("| variant | file MiB | median tok/s | vs base (median of per-round ratios) | best tok/s | best vs best base |");
    println!("|---|---|---|---|---|---|");
    let best = |r: &[f64]| r.iter().copied().fold(0.0, f64::max);
    let mut decode_rows = Vec::new();
    for (i, v) in timed.iter().enumerate() {
        let ratios: Vec<f64> = rates[i].iter().zip(&rates[0]).map(|(r, b)| r / b).collect();
        let (rate, ratio, top) = (median(&rates[i]), median(&ratios), best(&rates[i]));
        println!(
            "| {} | {:.1} | {rate:.1} | {ratio:.3} | {top:.1} | {:.3} |",
            v.name,
            file_mib(&v.file),
            top / best(&rates[0])
        );
        decode_rows.push(json!({
            "variant": v.name, "file_mib": file_mib(&v.file), "decode_tok_s": rate, "ratio_vs_base": ratio,
            "best_tok_s": top, "best_ratio_vs_base": top / best(&rates[0]),
            "round_rates": rates[i], "mean_decoded_tokens": decoded[i] as f64 / args.rounds as f64,
        }));
    }
    Ok(
        json!({ "threads": threads, "rank": args.rank, "agreement": agreement_rows, "decode": decode_rows }),
    )
}

/// Writes a random adapter of size `relative` and its merged copies.
fn export(
    edge: &EdgeModel,
    path: &Path,
    dir: &Path,
    rank: usize,
    relative: f32,
) -> anyhow::Result<Exported> {
    let (_, pairs) = random_lora(edge, &Target::FFN, rank, relative, 7)?;
    // alpha = rank: llama.cpp's scale alpha / r is then 1, as the pairs assume.
    let adapter = LoraAdapter {
        arch: edge.config.arch.gguf_name().to_owned(),
        alpha: rank as f32,
        pairs,
    };
    let stem = format!("random-r{rank}-{relative}");
    let adapter_path = dir.join(format!("{stem}.gguf"));
    write_lora_adapter(&adapter_path, &adapter.arch, adapter.alpha, &adapter.pairs)?;
    let mut merged = Vec::with_capacity(MERGED.len());
    for ty in MERGED {
        let out = dir.join(format!("{stem}-merged-{ty}.gguf"));
        write_merged(path, &adapter, 1.0, ty, &out)?;
        merged.push((ty, out));
    }
    Ok(Exported {
        relative,
        adapter: adapter_path,
        merged,
    })
}

fn session_params(threads: usize) -> SessionParams {
    SessionParams::default()
        .with_n_ctx(1024)
        .with_threads(threads)
        .with_prefix_reuse(false)
}

fn session<'a>(v: &'a mut Variant<'_>, threads: usize) -> anyhow::Result<runtime::Session<'a>> {
    let mut session = v.model.session(session_params(threads))?;
    if let Some(adapter) = v.adapter.as_deref_mut() {
        session.set_adapter(adapter, 1.0)?;
    }
    Ok(session)
}

fn variant_logits(
    v: &mut Variant<'_>,
    tokens: &[LlamaToken],
    threads: usize,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let positions: Vec<usize> = (0..tokens.len()).collect();
    Ok(session(v, threads)?.logits(tokens, &positions)?)
}

/// Tokens decoded and their rate, in a fresh session.
fn decode_rate(
    v: &mut Variant<'_>,
    max_tokens: usize,
    threads: usize,
) -> anyhow::Result<(usize, f64)> {
    let name = v.name.clone();
    let c = session(v, threads)?.generate(
        PROMPT,
        &GenerateParams::default().with_max_tokens(max_tokens),
    )?;
    anyhow::ensure!(
        c.stats.decode_tokens > 1,
        "{name} stopped after {} token(s)",
        c.stats.decode_tokens
    );
    Ok((
        c.stats.decode_tokens,
        c.stats.decode_tokens as f64 * 1e3 / c.stats.decode_ms,
    ))
}
