//! `loragen bench report`: the results page (e.g. `docs/results.md`) and
//! its chart, assembled from the run directories of `bench gpt4tools`, one
//! row per learner, so that no table is ever typed by hand.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use loragen_gpt4tools::chart::{write_points, Point};
use loragen_gpt4tools::table::{markdown, rows, AnswerKind, RunRecords};
use loragen_gpt4tools::{Mode, Record, RecordLog};
use loragen_protocol::render::NameHint;

use super::bench_gpt4tools::{RunMeta, RECORDS};
use crate::cli::BenchReportArgs;

/// One `--run NAME=DIR[#MODE]`.
struct RunSpec {
    name: String,
    dir: PathBuf,
    mode: Option<Mode>,
}

impl RunSpec {
    fn parse(spec: &str) -> anyhow::Result<Self> {
        let (name, rest) = spec
            .split_once('=')
            .filter(|(name, rest)| !name.is_empty() && !rest.is_empty())
            .with_context(|| format!("--run {spec}: give NAME=DIR or NAME=DIR#MODE"))?;
        let (dir, mode) = match rest.rsplit_once('#') {
            Some((dir, mode)) => (
                dir,
                Some(
                    mode.parse::<Mode>()
                        .map_err(|e| anyhow::anyhow!("--run {spec}: {e}"))?,
                ),
            ),
            None => (rest, None),
        };
        Ok(RunSpec {
            name: name.to_owned(),
            dir: PathBuf::from(dir),
            mode,
        })
    }

    /// The run's settings and its records of the one mode this row shows.
    fn load(&self) -> anyhow::Result<(RunMeta, Vec<Record>)> {
        let meta = RunMeta::read(&self.dir)?.with_context(|| {
            format!(
                "--run {}: {} has no run.json; is it a run directory of `bench gpt4tools`?",
                self.name,
                self.dir.display()
            )
        })?;
        let log: RecordLog = RecordLog::open(&self.dir.join(RECORDS))?;
        let modes: BTreeSet<String> = log.records().iter().map(|r| r.mode.to_string()).collect();
        let mode = match (self.mode, modes.len()) {
            (Some(mode), _) => mode,
            (None, 1) => log.records()[0].mode,
            (None, _) => anyhow::bail!(
                "--run {}: {} holds records of {} modes ({}); name one as {}=DIR#MODE",
                self.name,
                self.dir.display(),
                modes.len(),
                modes.into_iter().collect::<Vec<_>>().join(", "),
                self.name
            ),
        };
        let records: Vec<Record> = log
            .records()
            .iter()
            .filter(|r| r.mode == mode)
            .cloned()
            .collect();
        anyhow::ensure!(
            !records.is_empty(),
            "--run {}: {} holds no {mode} records",
            self.name,
            self.dir.display()
        );
        Ok((meta, records))
    }
}

pub fn run(args: &BenchReportArgs) -> anyhow::Result<()> {
    let specs: Vec<RunSpec> = args
        .run
        .iter()
        .map(|s| RunSpec::parse(s))
        .collect::<anyhow::Result<_>>()?;
    let baseline = match &args.baseline {
        Some(name) => specs
            .iter()
            .position(|s| &s.name == name)
            .with_context(|| format!("--baseline {name}: no --run of that name"))?,
        None => 0,
    };
    let mut loaded = Vec::with_capacity(specs.len());
    for spec in &specs {
        loaded.push(spec.load()?);
    }
    let (first_meta, _) = &loaded[0];
    for ((meta, _), spec) in loaded.iter().zip(&specs) {
        anyhow::ensure!(
            meta.data_sha256 == first_meta.data_sha256,
            "--run {}: its data file ({}) is not the first run's ({}); a table compares runs on one data file",
            spec.name,
            meta.data.display(),
            first_meta.data.display()
        );
    }
    let (data, items) = first_meta.items(args.data.as_deref())?;
    let truth: HashMap<String, String> = items
        .iter()
        .map(|i| (i.id.clone(), i.output.clone()))
        .collect();
    let named: Vec<RunRecords> = specs
        .iter()
        .zip(&loaded)
        .map(|(spec, (meta, records))| RunRecords {
            name: spec.name.clone(),
            processor: meta.processor.clone(),
            records: records.clone(),
        })
        .collect();
    let table = rows(&named, &truth, baseline);
    let points: Vec<Point> = table
        .iter()
        .map(|r| Point {
            label: r.name.clone(),
            p50_ms: r.p50_ms,
            average: r.scores.average,
        })
        .collect();
    let chart = chart_stem(&args.out);
    write_points(&points, &chart, &args.title)?;
    let kinds: Vec<String> = AnswerKind::ALL
        .iter()
        .map(|&kind| {
            let n = items
                .iter()
                .filter(|i| AnswerKind::of(&i.output) == kind)
                .count();
            format!("{n} {}", kind.label())
        })
        .collect();
    let mut page = format!(
        "# {}\n\nWritten by `loragen bench report`; do not edit by hand, run the command again.\n\n\
         - command: `{}`\n- data: `{}` ({} items: {}; sha256 `{}`)\n\n",
        args.title,
        shell_line(std::env::args()),
        data.display(),
        items.len(),
        kinds.join(", "),
        first_meta.data_sha256,
    );
    page.push_str(&markdown(&table));
    page.push_str(&format!(
        "\n![accuracy vs latency]({})\n\n",
        file_name(&chart.with_extension("svg"))
    ));
    page.push_str(&format!(
        "Columns: SR_t, SR_act, SR_args, SR and IoU follow the GPT4Tools evaluator; Avg is their mean (the LoRA-Gen paper's Average Score). \
         *SR no tool / seen calls / unseen calls* split SR by what the reference answer does (item counts in brackets): answer without a tool, \
         call a tool training data shows, or call one of the 8 tools only `test_unseen` uses. \
         *prompt tok* is the mean prompt length in edge-model tokens; *compression* and *speed-up* compare with `{}` (mean prompt tokens; p50 latency); \
         speed-up is given only for a run measured on the same processor as that one (– otherwise). \
         Latency is the model time per item, prefill plus decode, with the adapter loaded; *TTFT* is the prefill, whose logits give the first token. \
         *adapter ms* is what making a registry's adapter took (compile and load), per registry, apart from the per-item latency.\n\n\
         ## The runs\n\n",
        specs[baseline].name
    ));
    for (spec, (meta, records)) in specs.iter().zip(&loaded) {
        page.push_str(&format!(
            "- **{}**: `{}` ({} mode, {} records; greedy decoding {}{}, at most {} new tokens, {} threads), made {} on {} with `{}`\n",
            spec.name,
            spec.dir.display(),
            records[0].mode,
            records.len(),
            if meta.constrained { "constrained by the call grammar" } else { "without a grammar" },
            [
                (meta.jump_forward, ", jump-forward"),
                (meta.field_aware, ", field-aware"),
                (meta.whole_names, ", whole-name scoring"),
                (
                    meta.name_hint == Some(NameHint::Names),
                    ", tool names in the prompt",
                ),
                (
                    meta.name_hint == Some(NameHint::Keys),
                    ", tool names and argument keys in the prompt",
                ),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, text)| *text)
            .collect::<String>(),
            meta.max_tokens,
            meta.threads.map_or_else(|| "?".to_owned(), |t| t.to_string()),
            meta.date.as_deref().unwrap_or("at a date not recorded"),
            meta.processor.as_deref().unwrap_or("a processor not recorded"),
            meta.command.as_deref().unwrap_or("a command not recorded"),
        ));
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    super::write_atomic(&args.out, page.as_bytes())?;
    println!("{}", markdown(&table));
    println!(
        "wrote {} and {}",
        args.out.display(),
        chart.with_extension("svg").display()
    );
    Ok(())
}

/// `docs/results.md` -> `docs/results-chart` (.svg and .png).
fn chart_stem(page: &Path) -> PathBuf {
    let stem = page.file_stem().unwrap_or_default().to_string_lossy();
    page.with_file_name(format!("{stem}-chart"))
}

/// The command line, each argument quoted for a POSIX shell where it needs
/// it, so the page's command runs as shown.
fn shell_line(args: impl Iterator<Item = String>) -> String {
    args.map(|a| {
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=#:,@%+".contains(c))
        {
            a
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    })
    .collect::<Vec<_>>()
    .join(" ")
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}
