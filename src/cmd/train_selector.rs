//! `loragen train selector`: the compiled tool selector's examples from
//! GPT4Tools and BFCL items, their cached inputs (cloud features of each
//! tool block, the base edge model's state at each prompt), the fit, and
//! how often it ranks a right tool first on the development sets.
//!
//! The inputs are cached unit by unit, so a stopped run loses only the
//! fit, which takes minutes; a rerun starts the fit again.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use loragen::setup::{HomeDir, Setup};
use loragen_agent::selector::SelectorConfig;
use loragen_generator::features::{Cloud, FeatureCache, MetaSource};
use loragen_generator::selector::{
    fit, mask_names, rank, tool_inputs, QueryStates, Selection, SelectorItem, SelectorSet,
    SelectorTraining, Target,
};
use loragen_generator::train::TrainConfig;
use loragen_gpt4tools::dataset::{select_listing, Listing};
use loragen_gpt4tools::generic::{load_queries, ToolSet};
use loragen_protocol::atomic::{write_atomic, write_atomic_with};
use serde::Serialize;

use crate::cli::TrainSelectorArgs;
use crate::progress::Progress;

/// One set's items and what to call it in the report.
struct Set {
    name: String,
    items: Vec<SelectorItem>,
}

fn from_items(items: &[loragen_gpt4tools::Item]) -> Vec<SelectorItem> {
    items.iter().filter_map(SelectorItem::from_item).collect()
}

/// The call and no-call queries of a set in the generic format.
fn generic_items(tools: &Path, queries: &Path) -> anyhow::Result<Vec<SelectorItem>> {
    let tools = ToolSet::load(tools)?;
    let mut items = Vec::new();
    for query in load_queries(queries)? {
        items.extend(SelectorItem::from_query(&tools, &query)?);
    }
    Ok(items)
}

/// The development sets the flags name.
fn dev_sets(args: &TrainSelectorArgs) -> anyhow::Result<Vec<Set>> {
    let mut sets = Vec::new();
    if let Some(dir) = &args.bfcl {
        sets.push(Set {
            name: "BFCL validation".into(),
            items: generic_items(&dir.join("val_tools.json"), &dir.join("val_queries.jsonl"))?,
        });
    }
    if let Some(file) = &args.validate {
        anyhow::ensure!(
            !args.hold_out.is_empty(),
            "--validate reports on the items that list a --hold-out tool; name at least one"
        );
        let listing = select_listing(
            loragen_gpt4tools::dataset::load(file)?,
            &args.hold_out,
            Listing::AnyOf,
        )?;
        let items = from_items(&listing);
        let held_out_calls = items
            .iter()
            .filter(|i| matches!(&i.target, Target::Tools(n) if n.iter().any(|n| args.hold_out.contains(n))))
            .cloned()
            .collect();
        sets.push(Set {
            name: format!("{}, items listing a held-out tool", file.display()),
            items,
        });
        sets.push(Set {
            name: "  of which calls of a held-out tool".into(),
            items: held_out_calls,
        });
    }
    // A set without items has nothing to report.
    sets.retain(|s| {
        if s.items.is_empty() {
            println!("{}: no items", s.name.trim());
        }
        !s.items.is_empty()
    });
    Ok(sets)
}

#[derive(Serialize)]
struct SavedConfig<'a> {
    selector: &'a SelectorConfig,
    steps: usize,
    batch: usize,
    lr: f64,
    negatives: usize,
    seed: u64,
    edge_sha256: &'a str,
    cloud_sha256: &'a str,
    hold_out: &'a [String],
    generic_sets: &'a [PathBuf],
    mask_names: f64,
    examples: usize,
}

#[derive(Serialize)]
struct Row {
    set: String,
    calls: usize,
    calls_right: usize,
    calls_vetoed: usize,
    no_calls: usize,
    no_calls_right: usize,
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.1}% ({n}/{of})", 100.0 * n as f64 / of as f64)
    }
}

pub fn run(args: &TrainSelectorArgs, models: &Setup) -> anyhow::Result<()> {
    let mut items = loragen_gpt4tools::dataset::load(&args.data)?;
    items.truncate(args.limit);
    if !args.hold_out.is_empty() {
        items = select_listing(items, &args.hold_out, Listing::NoneOf)?;
    }
    let mut train = from_items(&items);
    println!(
        "{} GPT4Tools examples from {} ({} held out)",
        train.len(),
        args.data.display(),
        args.hold_out.len()
    );
    if let Some(dir) = &args.bfcl {
        let bfcl = from_items(&super::train::bfcl_items(dir)?);
        println!("{} BFCL train examples", bfcl.len());
        train.extend(bfcl);
    }
    for dir in &args.generic_set {
        let items = generic_items(&dir.join("tools.json"), &dir.join("queries.jsonl"))?;
        println!("{} examples from {}", items.len(), dir.display());
        train.extend(items);
    }
    if args.mask_names > 0.0 {
        let mentions: usize = train.iter().map(|i| i.tools.len()).sum();
        let masked = mask_names(&mut train, args.mask_names, args.seed);
        println!("names masked in {masked} of {mentions} training tool mentions");
    }
    let sets = dev_sets(args)?;
    let every: Vec<&SelectorItem> = train
        .iter()
        .chain(sets.iter().flat_map(|s| &s.items))
        .collect();

    let (edge, cloud) = (models.edge()?, models.cloud()?);
    let blocks: BTreeSet<&str> = every
        .iter()
        .flat_map(|i| i.tools.iter().map(|t| t.block.as_str()))
        .collect();
    let cache = FeatureCache::new(
        &models.dir(HomeDir::Features),
        &cloud.sha256,
        MetaSource::CrossAttention,
        0,
    );
    let progress = Progress::new("cloud features", "blocks");
    let (features, encoded) = cache.features_with_progress(
        blocks.iter().copied(),
        &mut Cloud::new(&cloud.path),
        |p| {
            progress.set_total(p.total as u64);
            progress.set_position(p.done as u64);
        },
    )?;
    progress.finish();
    println!(
        "{} distinct tool blocks ({} encoded now)",
        encoded.blocks, encoded.computed
    );

    let states = QueryStates::new(&models.dir(HomeDir::EdgeStates), &edge.path, &edge.sha256);
    let progress = Progress::new("edge query states", "prompts");
    let inputs = |items: &[SelectorItem]| {
        states.inputs(items, |done, total| {
            progress.set_total(total as u64);
            progress.set_position(done as u64);
        })
    };
    let train_set = {
        let queries = inputs(&train)?;
        SelectorSet::new(&train, queries, &tool_inputs(&train, &features)?)?
    };
    let mut dev = Vec::new();
    for set in &sets {
        let queries = inputs(&set.items)?;
        dev.push(SelectorSet::new(
            &set.items,
            queries,
            &tool_inputs(&set.items, &features)?,
        )?);
    }
    progress.finish();

    let query_dim = train_set.queries.dim(1)? / 2;
    let tool_dim = train_set.tools.dim(1)? / 2;
    let config = SelectorConfig::default()
        .with_query_dim(query_dim)
        .with_tool_dim(tool_dim);
    let training = SelectorTraining::default()
        .with_train(
            TrainConfig::default()
                .with_steps(args.steps)
                .with_batch(args.batch)
                .with_lr(args.lr)
                .with_warmup(args.steps / 20)
                .with_seed(args.seed),
        )
        .with_negatives(args.negatives);
    println!(
        "fitting on {} examples over {} distinct tools, {} steps of {}",
        train_set.examples.len(),
        train_set.tool_names.len(),
        args.steps,
        args.batch
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let progress = Progress::new("selector", "steps");
    progress.set_total(args.steps as u64);
    let mut log = Vec::new();
    let (vars, selector) = fit(&train_set, &config, &training, |step, loss| {
        progress.set_position(step as u64);
        progress.set_message(format!("loss {loss:.3}"));
        log.push(serde_json::json!({"step": step, "loss": loss}));
    })?;
    progress.finish();

    save(
        &args.out,
        &vars,
        &SavedConfig {
            selector: &config,
            steps: args.steps,
            batch: args.batch,
            lr: args.lr,
            negatives: args.negatives,
            seed: args.seed,
            edge_sha256: &edge.sha256,
            cloud_sha256: &cloud.sha256,
            hold_out: &args.hold_out,
            generic_sets: &args.generic_set,
            mask_names: args.mask_names,
            examples: train_set.examples.len(),
        },
        &log,
    )?;

    let mut rows = vec![row(
        "training examples",
        Selection::at(&rank(&selector, &train_set)?, 0.0),
    )];
    let mut sweep = String::new();
    let mut per_item = Vec::new();
    for (set, data) in sets.iter().zip(&dev) {
        let ranked = rank(&selector, data)?;
        rows.push(row(&set.name, Selection::at(&ranked, 0.0)));
        // The margins `eval` sweeps (score differences equal differences
        // of log-probabilities).
        for margin in super::eval::VETO_MARGINS {
            let s = Selection::at(&ranked, margin as f32);
            if s.no_calls > 0 {
                sweep.push_str(&format!(
                    "| {} | {margin:+} | {} | {} |\n",
                    set.name,
                    pct(s.calls_vetoed, s.calls),
                    pct(s.no_calls_right, s.no_calls)
                ));
            }
        }
        for (item, r) in set.items.iter().zip(&ranked) {
            writeln!(
                per_item,
                "{}",
                serde_json::json!({"set": set.name, "id": item.id, "right_first": r.right_first, "none_margin": r.none_margin})
            )?;
        }
    }
    println!("\n| set | right tool first, calls | no call ranked first on calls | no call ranked first, no-call items |\n|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.set,
            pct(r.calls_right, r.calls),
            pct(r.calls_vetoed, r.calls),
            pct(r.no_calls_right, r.no_calls)
        );
    }
    if !sweep.is_empty() {
        println!("\nA veto of calls where \"no call\" outscores the best tool by more than the margin:\n\n| set | margin | calls vetoed | no-call items caught |\n|---|---|---|---|\n{sweep}");
    }
    write_atomic(&args.out.join("dev.jsonl"), &per_item)?;
    write_atomic(
        &args.out.join("report.json"),
        &serde_json::to_vec_pretty(&rows)?,
    )?;
    println!("\nselector in {}", args.out.display());
    Ok(())
}

fn row(set: &str, s: Selection) -> Row {
    Row {
        set: set.to_owned(),
        calls: s.calls,
        calls_right: s.calls_right,
        calls_vetoed: s.calls_vetoed,
        no_calls: s.no_calls,
        no_calls_right: s.no_calls_right,
    }
}

fn save(
    out: &Path,
    vars: &candle_nn::VarMap,
    config: &SavedConfig,
    log: &[serde_json::Value],
) -> anyhow::Result<()> {
    write_atomic_with(&out.join("model.safetensors"), |tmp| {
        vars.save(tmp).map_err(loragen_generator::Error::from)
    })?;
    write_atomic(
        &out.join("config.json"),
        &serde_json::to_vec_pretty(config)?,
    )?;
    let mut lines = Vec::new();
    for entry in log {
        writeln!(lines, "{entry}")?;
    }
    write_atomic(&out.join("train.jsonl"), &lines)?;
    Ok(())
}
