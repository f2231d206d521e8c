//! `loragen bench gpt4tools`: runs the edge model on GPT4Tools items, one
//! assistant message per item, in one or more modes; appends a scored
//! record per item, resumes where it stopped, and writes the report,
//! the chart and optionally the results page.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use loragen_agent::adapter::AdapterCache;
use loragen_agent::grammar::call_grammar_with;
use loragen_agent::runtime::{FinishReason, GenerateParams, SessionParams};
use loragen_agent::store::{model_sha256, ModelChoice, Role};
use loragen_gpt4tools::chart::write_chart;
use loragen_gpt4tools::{dataset, score_item, Aggregate, Item, Mode, Record, RecordLog, Report};
use loragen_protocol::digest::sha256_hex;
use loragen_protocol::react::STEP_STOPS;
use loragen_protocol::render::NameHint;
use serde::{Deserialize, Serialize};

use super::name_scoring::{NameScoring, SelectorSetting};
use crate::cli::BenchGpt4toolsArgs;
use crate::progress::Progress;
use loragen::setup::Setup;

pub fn run(args: BenchGpt4toolsArgs, models: Setup) -> anyhow::Result<()> {
    if args.rescore {
        return rescore(&args);
    }
    let data = args
        .data
        .clone()
        .context("give --data FILE, the GPT4Tools file to run on")?;
    let modes = if args.mode.is_empty() {
        vec![Mode::InContext]
    } else {
        args.mode.clone()
    };
    for &mode in &modes {
        let definitions =
            mode.definitions_in_context() || (mode == Mode::Lora && args.lora_with_system);
        args.decoding.check_name_hint(definitions, mode)?;
    }
    anyhow::ensure!(
        args.decoding.selection.selector_veto.is_none(),
        "--selector-veto is for JSON registries (eval): in GPT4Tools registries most answers without a call close a chain of calls, which the edge model decides"
    );
    let models = models
        .with_generator(args.generator.clone())
        .with_selector(args.decoding.selection.selector.clone());
    let mut plans: Vec<ModePlan> = modes
        .iter()
        .map(|&m| ModePlan::new(m, &args, &models))
        .collect::<anyhow::Result<_>>()?;
    let text = std::fs::read(&data).with_context(|| format!("cannot read {}", data.display()))?;
    let mut items = dataset::parse(&data, &String::from_utf8_lossy(&text))?;
    if !args.listing.is_empty() {
        items = dataset::select_listing(items, &args.listing, dataset::Listing::AnyOf)?;
    }
    if let Some(limit) = args.limit {
        items.truncate(limit);
    }
    anyhow::ensure!(!items.is_empty(), "{} holds no items", data.display());
    let out = args.out.clone().unwrap_or_else(|| default_out(&data));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let generator_sha256 = plans.iter().find_map(|p| p.generator_sha256.clone());
    let artifact_sha256 = plans
        .iter()
        .map(|p| {
            p.artifact_sha256()
                .map(|sha| sha.map(|sha| (p.mode.to_string(), sha)))
        })
        .filter_map(Result::transpose)
        .collect::<anyhow::Result<_>>()?;
    let mut scoring = NameScoring::new(&args.decoding, &models)?;
    let meta = RunMeta::for_run(
        &data,
        &text,
        &args,
        generator_sha256,
        artifact_sha256,
        scoring.setting().cloned(),
    );
    meta.check_or_write(&out)?;
    let mut log: RecordLog = RecordLog::open(&out.join(RECORDS))?;

    let stop = super::interrupt_flag()?;

    for plan in &mut plans {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        run_mode(plan, &models, &items, &mut log, &args, &mut scoring, &stop)?;
    }

    let ids: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let records: Vec<Record> = log
        .records()
        .iter()
        .filter(|r| ids.contains(r.id.as_str()))
        .cloned()
        .collect();
    let report = Report::from_records(&records, &Mode::ALL);
    write_reports(&report, &out, &meta)?;
    println!("\n{}", report.markdown());
    println!(
        "records, report.md, report.json and chart.svg/png in {}",
        out.display()
    );
    if stop.load(Ordering::SeqCst) {
        println!("interrupted: the finished items are kept; run the same command again to resume");
    }
    Ok(())
}

/// Scores the stored predictions of a run directory again with the current
/// scorer, without generating: the records are rewritten atomically and the
/// report is written anew.
fn rescore(args: &BenchGpt4toolsArgs) -> anyhow::Result<()> {
    let out = args
        .out
        .clone()
        .context("--rescore needs --out DIR, the run directory whose records to rescore")?;
    let meta = RunMeta::read(&out)?
        .with_context(|| format!("{} has no run.json; is it a run directory?", out.display()))?;
    let (data, items) = meta.items(args.data.as_deref())?;
    let truth: HashMap<&str, &str> = items
        .iter()
        .map(|i| (i.id.as_str(), i.output.as_str()))
        .collect();
    let mut log: RecordLog = RecordLog::open(&out.join(RECORDS))?;
    anyhow::ensure!(
        !log.records().is_empty(),
        "{} holds no records to rescore",
        out.join(RECORDS).display()
    );
    let mut changed = 0;
    let mut records = Vec::with_capacity(log.records().len());
    for r in log.records() {
        let gt = truth
            .get(r.id.as_str())
            .with_context(|| format!("record {} names no item of {}", r.id, data.display()))?;
        let scores = score_item(gt, &r.prediction);
        changed += usize::from(scores != r.scores);
        records.push(Record {
            scores,
            ..r.clone()
        });
    }
    log.replace_all(records)?;
    println!(
        "rescored {} records, {changed} with new scores",
        log.records().len()
    );
    let report = Report::from_records(log.records(), &Mode::ALL);
    write_reports(&report, &out, &meta)?;
    println!("\n{}", report.markdown());
    Ok(())
}

pub(super) const RECORDS: &str = "records.jsonl";

/// The host's key for a mode's fixed adapter (`--adapter`, `--lora-adapter`).
const FIXED_ADAPTER: &str = "fixed";

/// The settings a run directory was made with (`run.json`): resuming with
/// other settings would mix incomparable records, and rescoring needs the
/// data file and the decoding settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RunMeta {
    pub(super) data: PathBuf,
    pub(super) data_sha256: String,
    pub(super) constrained: bool,
    pub(super) max_tokens: usize,
    #[serde(default)]
    pub(super) jump_forward: bool,
    /// The field-aware grammar (`--field-aware`); absent in older runs.
    #[serde(default)]
    pub(super) field_aware: bool,
    /// Whole-name scoring of tool names (`--whole-names`); absent in older
    /// runs.
    #[serde(default)]
    pub(super) whole_names: bool,
    /// The names-only control's line (`--name-hint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name_hint: Option<NameHint>,
    #[serde(default)]
    pub(super) threads: Option<usize>,
    #[serde(default)]
    pub(super) command: Option<String>,
    #[serde(default)]
    pub(super) date: Option<String>,
    /// The processor the run was measured on ([`super::processor`]);
    /// absent in older runs. Latency compares only within one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) processor: Option<String>,
    /// sha256 of the generator weights (compiled mode with --generator):
    /// records of another generator must not mix with these.
    #[serde(default)]
    generator_sha256: Option<String>,
    /// sha256 of the fixed adapter or merged model each mode ran with, by
    /// mode: a rerun with another artifact must not mix its records in.
    #[serde(default)]
    artifact_sha256: BTreeMap<String, String>,
    /// The definitions control's seed (`--partner-seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partner_seed: Option<u64>,
    /// The tool selector added to whole-name scoring (`--selector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) selector: Option<SelectorSetting>,
}

impl RunMeta {
    fn for_run(
        data: &Path,
        bytes: &[u8],
        args: &BenchGpt4toolsArgs,
        generator_sha256: Option<String>,
        artifact_sha256: BTreeMap<String, String>,
        selector: Option<SelectorSetting>,
    ) -> Self {
        RunMeta {
            selector,
            generator_sha256,
            artifact_sha256,
            data: data.to_owned(),
            data_sha256: sha256_hex(bytes),
            constrained: args.decoding.constrained,
            max_tokens: args.max_tokens,
            jump_forward: args.jump_forward,
            field_aware: args.decoding.field_aware,
            whole_names: args.decoding.whole_names,
            name_hint: args.decoding.name_hint,
            partner_seed: args.partner_seed,
            threads: Some(
                args.threads
                    .unwrap_or_else(loragen_agent::runtime::default_threads),
            ),
            command: Some(std::env::args().collect::<Vec<_>>().join(" ")),
            date: Some(chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()),
            processor: Some(super::processor()),
        }
    }

    /// The items of the run's data file, or of `moved` (the same file
    /// elsewhere), after checking its sha256 against the run's.
    pub(super) fn items(&self, moved: Option<&Path>) -> anyhow::Result<(PathBuf, Vec<Item>)> {
        let data = moved.map_or_else(|| self.data.clone(), Path::to_path_buf);
        let text = std::fs::read(&data).with_context(|| {
            format!(
                "cannot read {} (the run's data file; give --data FILE if it moved)",
                data.display()
            )
        })?;
        anyhow::ensure!(
            sha256_hex(&text) == self.data_sha256,
            "{} is not the data file the run was made on (sha256 differs)",
            data.display()
        );
        let items = dataset::parse(&data, &String::from_utf8_lossy(&text))?;
        Ok((data, items))
    }

    pub(super) fn read(out: &Path) -> anyhow::Result<Option<Self>> {
        let path = out.join("run.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{} is not a run description", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// A run directory belongs to one data file and one decoding setting.
    fn check_or_write(&self, out: &Path) -> anyhow::Result<()> {
        if let Some(old) = Self::read(out)? {
            anyhow::ensure!(
                old.data_sha256 == self.data_sha256,
                "{} holds a run on another data file ({}); use another --out or delete it",
                out.display(),
                old.data.display()
            );
            anyhow::ensure!(
                old.generator_sha256 == self.generator_sha256,
                "{} holds a run of another generator ({}); use another --out or delete it",
                out.display(),
                old.generator_sha256.as_deref().unwrap_or("none")
            );
            for (mode, sha) in &self.artifact_sha256 {
                if let Some(old_sha) = old.artifact_sha256.get(mode) {
                    anyhow::ensure!(
                        old_sha == sha,
                        "{} holds {mode} records made with another adapter or merged model (sha256 {}); use another --out or delete it",
                        out.display(),
                        loragen_protocol::digest::short(old_sha)
                    );
                }
            }
            anyhow::ensure!(
                old.selector == self.selector,
                "{} holds a run with another tool selector setting ({:?}); use another --out or delete it",
                out.display(),
                old.selector
            );
            anyhow::ensure!(
                old.partner_seed == self.partner_seed,
                "{} holds a run with partner seed {:?} (the definitions control); use another --out or delete it",
                out.display(),
                old.partner_seed
            );
            anyhow::ensure!(
                old.constrained == self.constrained
                    && old.max_tokens == self.max_tokens
                    && old.jump_forward == self.jump_forward
                    && old.field_aware == self.field_aware
                    && old.whole_names == self.whole_names
                    && old.name_hint == self.name_hint,
                "{} holds a run with other decoding settings (constrained {}, max tokens {}, jump-forward {}, field-aware {}, whole names {}, name hint {:?}); use another --out or delete it",
                out.display(),
                old.constrained,
                old.max_tokens,
                old.jump_forward,
                old.field_aware,
                old.whole_names,
                old.name_hint
            );
            // A mode run here for the first time adds its artifact.
            let mut merged = old.clone();
            merged.artifact_sha256.extend(self.artifact_sha256.clone());
            // Records from two processors mix their latencies: the run
            // says so, and no table takes a speed-up from it.
            merged.processor = mixed_processor(old.processor.as_deref(), self.processor.as_deref());
            if merged.processor != old.processor {
                eprintln!(
                    "warning: {} was begun on another processor; its latencies now mix machines ({})",
                    out.display(),
                    merged.processor.as_deref().unwrap_or_default()
                );
            }
            if merged.artifact_sha256 == old.artifact_sha256 && merged.processor == old.processor {
                return Ok(());
            }
            return Ok(super::write_atomic(
                &out.join("run.json"),
                serde_json::to_string_pretty(&merged)?.as_bytes(),
            )?);
        }
        Ok(super::write_atomic(
            &out.join("run.json"),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )?)
    }
}

/// The processor record of a run begun on `old` and resumed on `new`:
/// `old` when they agree (or `new` is already one of a mixed run's),
/// otherwise `mixed: A; B; ...`, each processor once.
fn mixed_processor(old: Option<&str>, new: Option<&str>) -> Option<String> {
    let name = |p: Option<&str>| p.unwrap_or("not recorded").to_owned();
    let mut seen: Vec<String> = match old {
        Some(list) if list.starts_with("mixed: ") => list["mixed: ".len()..]
            .split("; ")
            .map(str::to_owned)
            .collect(),
        _ if old == new => return old.map(str::to_owned),
        _ => vec![name(old)],
    };
    if !seen.contains(&name(new)) {
        seen.push(name(new));
    }
    Some(format!("mixed: {}", seen.join("; ")))
}

/// What one mode runs: which model file, adapter and prompt.
struct ModePlan {
    mode: Mode,
    model: ModelChoice,
    adapter: Option<PathBuf>,
    /// Compiled mode with a generator: an adapter per system part, each
    /// compiled anew (the compile cache off) into a temporary directory.
    adapters: Option<(AdapterCache, tempfile::TempDir)>,
    generator_sha256: Option<String>,
    with_system: bool,
    reuse_prefix: bool,
}

impl ModePlan {
    /// sha256 of the fixed adapter, or of the model file when it is not
    /// the edge model (a merged model).
    fn artifact_sha256(&self) -> anyhow::Result<Option<String>> {
        let file = match (&self.adapter, &self.model) {
            (Some(adapter), _) => adapter,
            (None, ModelChoice::Path(merged)) => merged,
            (None, ModelChoice::Role(_)) => return Ok(None),
        };
        Ok(Some(model_sha256(file)?))
    }

    fn new(mode: Mode, args: &BenchGpt4toolsArgs, models: &Setup) -> anyhow::Result<Self> {
        let edge = ModelChoice::Role(Role::Edge);
        let plan = |model, adapter, with_system, reuse_prefix| ModePlan {
            mode,
            model,
            adapter,
            adapters: None,
            generator_sha256: None,
            with_system,
            reuse_prefix,
        };
        Ok(match mode {
            Mode::InContext => plan(edge, None, true, false),
            Mode::InContextCached => plan(edge, None, true, true),
            // An explicit adapter or merged model wins over the generator,
            // which is --generator, LORAGEN_GENERATOR or the shipped one.
            Mode::Compiled => match (&args.adapter, &args.merged_model) {
                (Some(a), None) => plan(edge, Some(a.clone()), false, false),
                (None, Some(m)) => plan(ModelChoice::Path(m.clone()), None, false, false),
                (None, None) => {
                    let compiler = models.compiler()?;
                    let dir = tempfile::tempdir()?;
                    let mut p = plan(edge, None, false, false);
                    p.generator_sha256 = Some(compiler.generator_sha256().to_owned());
                    let cache =
                        AdapterCache::new(dir.path(), Box::new(compiler)).with_compile_cache(false);
                    p.adapters = Some((cache, dir));
                    p
                }
                (Some(_), Some(_)) => anyhow::bail!("give --adapter or --merged-model, not both"),
            },
            Mode::Lora => {
                let adapter = args.lora_adapter.clone().context(
                    "mode lora needs --lora-adapter FILE (a plain LoRA baseline adapter in GGUF)",
                )?;
                plan(edge, Some(adapter), args.lora_with_system, false)
            }
        })
    }
}

fn default_out(data: &Path) -> PathBuf {
    let stem = data
        .file_stem()
        .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from("runs/gpt4tools").join(stem)
}

fn run_mode<'a>(
    plan: &mut ModePlan,
    models: &Setup,
    items: &'a [Item],
    log: &mut RecordLog,
    args: &BenchGpt4toolsArgs,
    scoring: &mut NameScoring,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut order: Vec<&Item> = items
        .iter()
        .filter(|i| !log.is_done(&(plan.mode, i.id.clone())))
        .collect();
    if order.is_empty() {
        println!("{}: all {} items already done", plan.mode, items.len());
        return Ok(());
    }
    // What each item's adapter is compiled from: its own system part, or
    // under --partner-seed (the definitions control) a partner's.
    let partners = match (args.partner_seed, &plan.adapters) {
        (Some(seed), Some(_)) => partner_systems(items, seed)?,
        _ => HashMap::new(),
    };
    let compiled_from = |item: &'a Item| -> &'a str {
        partners
            .get(item.id.as_str())
            .copied()
            .unwrap_or_else(|| item.system_part())
    };
    if plan.reuse_prefix {
        // Items with the same system part run back to back, so its KV
        // state is made once per group.
        order.sort_by(|a, b| a.system_part().cmp(b.system_part()));
    }
    if plan.adapters.is_some() {
        // Likewise the compiled adapter, once per system part compiled.
        order.sort_by_key(|i| compiled_from(i));
    }
    let groups: Vec<Vec<&Item>> = match &plan.adapters {
        Some(_) => order
            .chunk_by(|a, b| compiled_from(a) == compiled_from(b))
            .map(<[&Item]>::to_vec)
            .collect(),
        None => vec![order],
    };
    super::reset_peak_rss();
    let mut host = models.host(&plan.model)?;
    let mut session_params = SessionParams::default().with_prefix_reuse(plan.reuse_prefix);
    if let Some(t) = args.threads {
        session_params = session_params.with_threads(t);
    }
    let params = GenerateParams::default()
        .with_max_tokens(args.max_tokens)
        .with_stop(STEP_STOPS)
        .with_jump_forward(args.jump_forward);
    if let Some(adapter) = &plan.adapter {
        host.hold_adapter(FIXED_ADAPTER, adapter)?;
    }

    let todo = groups.iter().map(Vec::len).sum();
    let bar = progress(plan.mode, todo, items.len() - todo);
    let mut scores = Vec::new();
    let mut compile_s = 0.0;
    for group in groups {
        // The group's first record carries what making its adapter took.
        let mut adapter_ms = None;
        let (adapter, artifact) = match (plan.adapters.as_mut(), group.first()) {
            (Some((cache, _)), Some(first)) => {
                let started = Instant::now();
                let ensured = cache.ensure(&mut host, compiled_from(first))?;
                adapter_ms = Some(started.elapsed().as_secs_f64() * 1e3);
                compile_s += ensured.compile_s;
                let artifact = cache.path_of(&ensured.key);
                (Some(ensured.key), Some(artifact))
            }
            // A given compiled artifact carries its own selector part.
            _ => (
                plan.adapter.as_ref().map(|_| FIXED_ADAPTER.to_owned()),
                plan.adapter.clone().filter(|_| plan.mode == Mode::Compiled),
            ),
        };
        for item in group {
            let specs = item.listed_tool_specs();
            let decoding = &args.decoding;
            let prompt = match (plan.with_system, decoding.names_line(&specs)) {
                (true, _) => item.full_prompt(),
                (false, None) => item.compiled_prompt(),
                (false, Some(line)) => format!("{line}\n\n{}", item.compiled_prompt()),
            };
            let (mut selector_ms, mut none_margin) = (None, None);
            let params = if decoding.constrained {
                // Under --partner-seed the artifact was compiled from
                // another registry: its part does not hold these tools.
                let artifact = artifact.as_deref().filter(|_| args.partner_seed.is_none());
                let names = specs.iter().map(|s| s.name.clone()).collect();
                let decision = scoring.decide(item.system_part(), &prompt, names, artifact)?;
                // A call the selector requires leaves the model calls alone
                // (a veto is refused above for these registries).
                let grammar_params = decoding.grammar_params(1).with_choice(decision.call);
                let grammar = call_grammar_with(&specs, &grammar_params)
                    .with_context(|| format!("item {}", item.id))?;
                selector_ms = decision.selector_ms;
                none_margin = decision.none_margin;
                params
                    .clone()
                    .with_grammar(Some(grammar))
                    .with_name_choice(decision.name_choice)
            } else {
                params.clone()
            };
            let completion = host.with_session(&session_params, adapter.as_deref(), |session| {
                session.generate_streaming(&prompt, &params, super::until(stop))
            })?;
            if completion.finish == FinishReason::Interrupted || stop.load(Ordering::SeqCst) {
                bar.finish();
                return Ok(());
            }
            let prediction = completion.text.trim_end().to_owned();
            let item_scores = score_item(&item.output, &prediction);
            scores.push(item_scores);
            let s = completion.stats;
            log.append(Record {
                id: item.id.clone(),
                mode: plan.mode,
                prediction,
                scores: item_scores,
                prompt_tokens: s.prompt_tokens,
                reused_tokens: s.reused_tokens,
                prefill_ms: s.prefill_ms,
                decode_ms: s.decode_ms,
                decode_tokens: s.decode_tokens,
                peak_rss_mib: super::peak_rss_mib(),
                adapter_ms: adapter_ms.take(),
                selector_ms,
                none_margin,
            })?;
            let a = Aggregate::of(&scores);
            bar.set_message(format!("SR {:.1}  Avg {:.1}", a.sr, a.average));
            bar.inc(1);
        }
    }
    if plan.adapters.is_some() {
        println!(
            "{}: compiling the items' registries took {compile_s:.1} s in all (not part of the per-item latency)",
            plan.mode
        );
    }
    bar.finish();
    Ok(())
}

/// The definitions control: each item's id and the system part of its
/// partner ([`dataset::partners`]).
fn partner_systems(items: &[Item], seed: u64) -> anyhow::Result<HashMap<&str, &str>> {
    let partners = dataset::partners(items, seed)?;
    Ok(items
        .iter()
        .zip(partners)
        .map(|(item, j)| (item.id.as_str(), items[j].system_part()))
        .collect())
}

/// The progress of one mode's `todo` items, `done` of its items being
/// already in the records.
fn progress(mode: Mode, todo: usize, done: usize) -> Progress {
    let bar = Progress::new(mode.to_string(), "items");
    bar.set_total(todo as u64);
    if done > 0 {
        bar.println(format!("{mode}: resuming, {done} items already done"));
    }
    bar
}

fn write_reports(report: &Report, out: &Path, meta: &RunMeta) -> anyhow::Result<()> {
    super::write_atomic(&out.join("report.md"), report.markdown().as_bytes())?;
    super::write_atomic(
        &out.join("report.json"),
        serde_json::to_string_pretty(report)?.as_bytes(),
    )?;
    let title = format!(
        "GPT4Tools {}: accuracy vs latency",
        meta.data.file_stem().unwrap_or_default().to_string_lossy()
    );
    if let Err(e) = write_chart(report, &out.join("chart"), &title) {
        eprintln!("warning: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::mixed_processor;

    #[test]
    fn a_run_resumed_on_other_processors_lists_each_once() {
        let (a, b, c) = (Some("A (AVX-512)"), Some("B (AVX2, FMA)"), Some("C"));
        assert_eq!(mixed_processor(a, a).as_deref(), a);
        assert_eq!(mixed_processor(None, None), None);
        let ab = mixed_processor(a, b);
        assert_eq!(ab.as_deref(), Some("mixed: A (AVX-512); B (AVX2, FMA)"));
        // Back on either machine: unchanged; on a third: added once.
        assert_eq!(mixed_processor(ab.as_deref(), a), ab);
        assert_eq!(mixed_processor(ab.as_deref(), b), ab);
        assert_eq!(
            mixed_processor(ab.as_deref(), c).as_deref(),
            Some("mixed: A (AVX-512); B (AVX2, FMA); C")
        );
        assert_eq!(
            mixed_processor(None, a).as_deref(),
            Some("mixed: not recorded; A (AVX-512)")
        );
    }
}
