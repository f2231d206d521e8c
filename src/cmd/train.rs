//! `loragen train generator|lora`: examples from a GPT4Tools-format corpus,
//! for the generator the cloud features of every system part (through the
//! feature cache), then the trainer, with a progress bar, a JSONL log, checkpoints and weight
//! snapshots for validation curves. A run
//! directory with a checkpoint of the same settings is resumed; Ctrl-C
//! saves a checkpoint and stops.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context;
use candle_core::Device;
use loragen::setup::HomeDir;
use loragen_agent::runtime::Model;
use loragen_generator::checkpoint::{
    checkpoint_dir, checkpoint_path, snapshot_dir, trim_log, Learner, LOG_FILE,
};
use loragen_generator::edge::EdgeModel;
use loragen_generator::edge::LoraConfig;
use loragen_generator::features::{Cloud, FeatureCache, RegistryFeatures};
use loragen_generator::model::{Gating, GeneratorConfig, Head, MetaSource};
use loragen_generator::train::{examples, StepLog, TrainConfig, Trainer};
use loragen_protocol::react::PREVIOUS_CONVERSATION;

use loragen_gpt4tools::dataset::{select_listing, Listing};

use crate::cli::TrainCommand;
use crate::progress::Progress;
use loragen::setup::Setup;

/// The BFCL train split of `dir` as training items in the JSON protocol.
pub(super) fn bfcl_items(dir: &Path) -> anyhow::Result<Vec<loragen_gpt4tools::Item>> {
    use loragen_gpt4tools::generic::{load_queries, training_items, ToolSet};
    let tools = ToolSet::load(&dir.join("train_tools.json"))?;
    let queries = load_queries(&dir.join("train_queries.jsonl"))?;
    let (items, skipped) = training_items(&tools, &queries)?;
    println!(
        "BFCL: {} training items from {} queries in {} ({} without a single target, {} whose target fails its schema)",
        items.len(),
        queries.len(),
        dir.display(),
        skipped.no_single_target,
        skipped.invalid
    );
    Ok(items)
}

pub fn run(cmd: TrainCommand, models: &Setup) -> anyhow::Result<()> {
    let (args, kind) = match cmd {
        TrainCommand::Ship(args) => return ship(&args),
        TrainCommand::Selector(args) => return super::train_selector::run(&args, models),
        TrainCommand::Generator(a) => (
            a.run,
            Kind::Generator {
                experts: a.experts,
                top_k: a.top_k,
                gating: a
                    .gumbel_tau
                    .map_or(Gating::KeepTopK, |tau| Gating::GumbelTopK { tau }),
                warm_start: a.warm_start.map(|dir| (dir, a.warm_start_noise)),
                meta_source: a.meta_source,
                cv_weight: a.cv_weight,
                head: a
                    .direct_head
                    .map_or(Head::Experts, |width| Head::Direct { width }),
            },
        ),
        TrainCommand::Lora(a) => (
            a.run,
            Kind::Lora {
                with_tools: a.with_tools,
            },
        ),
    };
    let mut items = loragen_gpt4tools::dataset::load(&args.data)?;
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    if !args.hold_out.is_empty() {
        let before = items.len();
        items = select_listing(items, &args.hold_out, Listing::NoneOf)?;
        println!(
            "held out {}: {} of {before} items list one of them and are left out",
            args.hold_out.join(", "),
            before - items.len()
        );
    }
    if let Some(n) = args.system_parts {
        let before = items.len();
        items = first_system_parts(items, n);
        println!(
            "the first {n} distinct system parts: {} of {before} items",
            items.len()
        );
    }
    if let Some(dir) = &args.bfcl {
        let gpt4tools = items.len();
        let bfcl = bfcl_items(dir)?;
        anyhow::ensure!(args.bfcl_repeat > 0, "--bfcl-repeat must be positive");
        for _ in 0..args.bfcl_repeat {
            items.extend(bfcl.iter().cloned());
        }
        let added = bfcl.len() * args.bfcl_repeat;
        println!(
            "mix: {gpt4tools} GPT4Tools items and {} BFCL items x{} = {:.1}% BFCL",
            bfcl.len(),
            args.bfcl_repeat,
            100.0 * added as f64 / (gpt4tools + added) as f64
        );
    }
    let edge_path = models.edge()?.path.clone();
    let edge_sha256 = models.edge()?.sha256.clone();
    let tokenizer = Model::load(&edge_path)?;
    let with_system = matches!(kind, Kind::Lora { with_tools: true });
    let (examples, dropped) = examples(
        items.iter().map(|i| {
            let prompt = if with_system {
                i.full_prompt()
            } else {
                i.compiled_prompt()
            };
            (i.system_part(), prompt, i.output.as_str())
        }),
        |text, bos| {
            tokenizer
                .tokenize(text, bos)
                .iter()
                .map(|t| t.0 as u32)
                .collect()
        },
        args.max_seq,
    );
    println!(
        "{} examples from {} ({} longer than {} tokens left out)",
        examples.len(),
        args.data.display(),
        dropped,
        args.max_seq
    );
    let edge = EdgeModel::load(&edge_path, &Device::Cpu)
        .with_context(|| format!("cannot load {} in candle", edge_path.display()))?;
    let warm_start = match &kind {
        Kind::Generator { warm_start, .. } => warm_start.clone(),
        Kind::Lora { .. } => None,
    };
    let (learner, features) = match kind {
        Kind::Generator {
            experts,
            top_k,
            gating,
            meta_source,
            cv_weight,
            head,
            ..
        } => {
            anyhow::ensure!(
                examples.iter().all(|e| !e.system.is_empty()),
                "{}: an item has no system part (no `{PREVIOUS_CONVERSATION}` marker), so there is nothing to compile",
                args.data.display()
            );
            let cloud = models.cloud()?;
            let generator = GeneratorConfig::default()
                .with_edge_layers(edge.config.n_layer)
                .with_meta_source(meta_source);
            let cache = FeatureCache::new(
                &models.dir(HomeDir::Features),
                &cloud.sha256,
                generator.meta_source,
                generator.edge_layers,
            );
            let features = registry_features(&examples, &cache, &cloud.path)?;
            let generator = generator
                .with_cloud_dim(cloud_dim(&features, &examples)?)
                .with_experts(experts)
                .with_top_k(top_k)
                .with_gating(gating)
                .with_cv_weight(cv_weight)
                .with_head(head);
            (Learner::Generator(generator), features)
        }
        Kind::Lora { with_tools } => (
            Learner::Lora {
                lora: LoraConfig::default().with_dropout(0.05),
                with_tools,
            },
            RegistryFeatures::default(),
        ),
    };
    let config = TrainConfig::default()
        .with_steps(args.steps)
        .with_batch(args.batch)
        .with_lr(args.lr)
        .with_warmup(args.warmup)
        .with_seed(args.seed)
        .with_checkpoint_every(args.checkpoint_every);
    let mut trainer = Trainer::new(learner, config, &edge, edge_sha256, examples, features)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    if checkpoint_dir(&args.out).is_some() {
        trainer.resume(&args.out)?;
        println!("resumed at step {}", trainer.step());
    } else if let Some((dir, noise)) = &warm_start {
        trainer.warm_start_experts(dir, *noise)?;
        println!(
            "every expert starts at the LoRA in {} (noise {noise})",
            dir.display()
        );
    }
    trim_log(&args.out, trainer.step())?;
    if args.snapshot_every > 0 && trainer.step() == 0 {
        // The untrained learner, the curves' first point. Its B factors
        // are zero, so its adapters are zero adapters.
        trainer.snapshot(&snapshot_dir(&args.out, 0))?;
    }
    println!(
        "{}: {} parameters; {} steps of {} examples",
        if trainer.generator().is_some() {
            "generator"
        } else {
            "LoRA"
        },
        trainer.parameter_count(),
        args.steps,
        args.batch
    );

    let stop = super::interrupt_flag()?;
    let bar = Progress::new("train", "steps");
    bar.set_total(args.steps as u64);
    bar.set_position(trainer.step() as u64);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.out.join(LOG_FILE))?;
    let last = args.stop_after.map_or(args.steps, |s| s.min(args.steps));
    while trainer.step() < last && !stop.load(Ordering::SeqCst) {
        let step = trainer.train_step()?;
        log_step(&mut log, &step)?;
        bar.set_position(step.step as u64);
        bar.set_message(format!(
            "loss {:.3} (cv {:.3}), {:.0} tokens/s",
            step.lm_loss,
            step.cv_loss,
            step.tokens as f64 / (step.ms / 1e3)
        ));
        if step.step % args.checkpoint_every == 0 || step.step == args.steps {
            trainer.save(&args.out)?;
        }
        if args.snapshot_every > 0 && step.step % args.snapshot_every == 0 {
            trainer.snapshot(&snapshot_dir(&args.out, step.step))?;
        }
    }
    trainer.save(&args.out)?;
    bar.finish();
    println!(
        "step {} of {}; checkpoint in {}",
        trainer.step(),
        args.steps,
        checkpoint_path(&args.out).display()
    );
    Ok(())
}

/// `loragen train ship`: a snapshot as the shipped checkpoint.
fn ship(args: &crate::cli::TrainShipArgs) -> anyhow::Result<()> {
    let log = match &args.log {
        Some(log) => log.clone(),
        // <run>/snapshots/step-N -> <run>/train.jsonl
        None => args
            .from
            .parent()
            .and_then(Path::parent)
            .map(|run| run.join(LOG_FILE))
            .context("give --log FILE: the snapshot is not inside a run directory")?,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(loragen_generator::shipped::shipped_dir);
    let shipped = loragen_generator::checkpoint::ship::ship(&args.from, &out, &log, &args.command)?;
    println!(
        "shipped step {} of {} into {}: {:.1} MiB of weights ({} tensors f16, {} f32), {} log lines",
        shipped.step,
        args.from.display(),
        shipped.dir.display(),
        shipped.weights_bytes as f64 / super::MIB,
        shipped.f16_tensors,
        shipped.f32_tensors,
        shipped.log_lines
    );
    Ok(())
}

/// What `loragen train` trains.
enum Kind {
    Generator {
        experts: usize,
        top_k: usize,
        gating: Gating,
        /// A plain LoRA to start every expert from, and the noise.
        warm_start: Option<(PathBuf, f64)>,
        meta_source: MetaSource,
        cv_weight: f64,
        head: Head,
    },
    Lora {
        with_tools: bool,
    },
}

/// The cloud features `generator` reads for the examples' system parts,
/// through the feature cache.
fn registry_features(
    examples: &[loragen_generator::train::Example],
    cache: &FeatureCache,
    cloud_path: &Path,
) -> anyhow::Result<RegistryFeatures> {
    let systems: std::collections::BTreeSet<&str> =
        examples.iter().map(|e| e.system.as_str()).collect();
    let bar = Progress::new("cloud features", "blocks");
    let (features, encoded) = cache.features_with_progress(
        systems.iter().copied(),
        &mut Cloud::new(cloud_path),
        |p| {
            bar.set_total(p.total as u64);
            bar.set_message(format!("{} cloud tokens", p.tokens));
            bar.set_position(p.done as u64);
        },
    )?;
    bar.finish();
    println!(
        "cloud features: {} system parts from {} distinct blocks ({} encoded now, {} cloud tokens; the rest cached)",
        systems.len(),
        encoded.blocks,
        encoded.computed,
        encoded.tokens
    );
    Ok(features)
}

/// The items whose system part is one of the first `n` distinct ones.
fn first_system_parts(
    items: Vec<loragen_gpt4tools::Item>,
    n: usize,
) -> Vec<loragen_gpt4tools::Item> {
    let mut kept = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| {
            let system = item.system_part();
            kept.contains(system) || (kept.len() < n && kept.insert(system.to_owned()))
        })
        .collect()
}

/// The width of the cloud features (the cloud model's hidden size).
fn cloud_dim(
    features: &RegistryFeatures,
    examples: &[loragen_generator::train::Example],
) -> anyhow::Result<usize> {
    let first = examples.first().context("no training examples")?;
    Ok(features.of(&first.system)?.dim(1)?)
}

fn log_step(log: &mut std::fs::File, step: &StepLog) -> anyhow::Result<()> {
    let mut line = serde_json::to_string(step)?;
    line.push('\n');
    log.write_all(line.as_bytes())?;
    Ok(())
}
