//! `loragen data`: build, check and describe corpora.

use std::path::Path;

use anyhow::Context;
use loragen_agent::runtime::Model;
use loragen_gpt4tools::check::{check, SplitKind};
use loragen_gpt4tools::corpus::{build, CorpusConfig};
use loragen_gpt4tools::{dataset, stats};

use crate::cli::{DataCheckArgs, DataCommand, DataGpt4toolsArgs, DataStatsArgs, SplitArg};
use loragen::setup::Setup;

pub fn run(cmd: DataCommand, models: &Setup) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Gpt4tools(args) => gpt4tools(args),
        DataCommand::Check(args) => run_check(args),
        DataCommand::Stats(args) => run_stats(args, models),
        DataCommand::Bfcl(args) => super::bfcl::run(args),
    }
}

fn gpt4tools(args: DataGpt4toolsArgs) -> anyhow::Result<()> {
    let config = CorpusConfig::default()
        .with_seed(args.seed)
        .with_sizes(args.train, args.val_seen, args.test_unseen)
        .with_negative_share(args.negative_share);
    config.validate()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let start = std::time::Instant::now();
    let corpus = build(&config)?;
    for (name, items) in [
        ("train", &corpus.train),
        ("val_seen", &corpus.val_seen),
        ("test_unseen", &corpus.test_unseen),
    ] {
        let path = args.out.join(format!("{name}.json"));
        dataset::save(&path, items)?;
        println!("{:>6} items  {}", items.len(), path.display());
    }
    println!(
        "built in {:.1} s with seed {}",
        start.elapsed().as_secs_f64(),
        args.seed
    );
    Ok(())
}

/// A file whose name says `train` is checked as training data.
fn split_of(path: &Path, arg: SplitArg) -> SplitKind {
    match arg {
        SplitArg::Train => SplitKind::Train,
        SplitArg::Eval => SplitKind::Eval,
        SplitArg::Auto => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if name.contains("train") {
                SplitKind::Train
            } else {
                SplitKind::Eval
            }
        }
    }
}

fn run_check(args: DataCheckArgs) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in &args.files {
        let kind = split_of(file, args.split);
        let items = dataset::load(file)?;
        let report = check(&items, kind)?;
        let label = if kind == SplitKind::Train {
            "train"
        } else {
            "eval"
        };
        println!(
            "{}: {} items checked as {label}; {} problem(s); {} list an unseen tool; {} use a held-out template",
            file.display(),
            report.items,
            report.problems.len(),
            report.unseen_tool_items,
            report.held_out_template_items
        );
        for (name, n) in &report.unknown_arity {
            println!("  note: arity of `{name}` unknown to loragen, not checked ({n} call(s))");
        }
        for (id, problem) in report.problems.iter().take(args.show) {
            println!("  item {id}: {problem}");
        }
        if report.problems.len() > args.show {
            println!("  ... and {} more", report.problems.len() - args.show);
        }
        failed += usize::from(!report.is_ok());
    }
    anyhow::ensure!(failed == 0, "{failed} file(s) failed the check");
    Ok(())
}

fn run_stats(args: DataStatsArgs, models: &Setup) -> anyhow::Result<()> {
    let path = models.edge()?.path.clone();
    let model = Model::load(&path)?;
    let count = |text: &str| model.tokenize(text, false).len();
    let mut all = Vec::new();
    for file in &args.files {
        let items = dataset::load(file)?;
        let s = stats::stats(&items, &count);
        if !args.json {
            print_stats(file, &s);
        }
        all.push(serde_json::json!({"file": file, "stats": s}));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

fn print_stats(file: &Path, s: &stats::Stats) {
    println!("## {}\n", file.display());
    println!("{} items; {:.1}% general requests without a tool; {} with an image turn; {} with a partial trace", s.items, 100.0 * s.negative_share, s.with_image_turn, s.with_partial_trace);
    let per: Vec<String> = s
        .tools_per_prompt
        .iter()
        .map(|(n, c)| format!("{n}: {c}"))
        .collect();
    println!("tools listed per prompt: {}\n", per.join(", "));
    println!("| output | items | share |\n|---|---|---|");
    let mut rows: Vec<_> = s.per_output.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (name, n) in rows {
        println!(
            "| {name} | {n} | {:.1}% |",
            100.0 * *n as f64 / s.items.max(1) as f64
        );
    }
    println!(
        "\n| tokens (edge tokenizer) | min | mean | p50 | p95 | max |\n|---|---|---|---|---|---|"
    );
    for (name, l) in [
        ("system part", s.system_tokens),
        ("rest of the instruction", s.rest_tokens),
        ("output", s.output_tokens),
    ] {
        println!(
            "| {name} | {} | {:.1} | {} | {} | {} |",
            l.min, l.mean, l.p50, l.p95, l.max
        );
    }
    if s.rest_tokens.mean > 0.0 {
        println!(
            "\nfull instruction / rest = {:.2}x on average\n",
            (s.system_tokens.mean + s.rest_tokens.mean) / s.rest_tokens.mean
        );
    }
}
