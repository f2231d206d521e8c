//! `loragen suite`: the unseen-tools suite of `docs/unseen-tools.md` in
//! one command. Every set of a group runs with one learner and one decoding
//! setting, each into its own place under `--out` (so an interrupted suite
//! resumes where it stopped), and one table sets the sets side by side:
//! call accuracy, the right tool, the arguments given the right tool, no
//! call where none is due, prompt tokens and p50 latency.

use std::path::{Path, PathBuf};

use anyhow::Context;
use loragen_gpt4tools::corpus::{HELD_OUT_DEV, UNSEEN_TOOLS};
use loragen_gpt4tools::dataset;
use loragen_gpt4tools::generic::{load_queries, Breakdown, EvalRecord, Query};
use loragen_gpt4tools::record::Record;
use loragen_gpt4tools::stats::mean;
use loragen_gpt4tools::suite;
use loragen_gpt4tools::table::AnswerKind;
use loragen_gpt4tools::RecordLog;
use loragen_protocol::Mode;

use super::eval::{percent, Scores};
use crate::cli::{
    BenchGpt4toolsArgs, DecodingArgs, EvalArgs, SelectorArgs, SuiteArgs, SuiteGroup, SuiteSet,
};
use loragen::setup::Setup;

/// One set of the suite and how it is run.
#[derive(Debug, Clone)]
enum Set {
    /// Generic-format queries, run by `loragen eval`.
    Generic {
        name: &'static str,
        /// `None`: the MCP fixture, by name.
        files: Option<(PathBuf, PathBuf)>,
        /// The command that writes `files`.
        made_by: &'static str,
    },
    /// GPT4Tools items, run by `loragen bench gpt4tools`: those listing one
    /// of `listing`, scored on those whose answer is of `kinds`.
    Gpt4tools {
        name: &'static str,
        data: PathBuf,
        listing: Vec<String>,
        kinds: &'static [AnswerKind],
    },
}

impl Set {
    fn name(&self) -> &'static str {
        match self {
            Set::Generic { name, .. } | Set::Gpt4tools { name, .. } => name,
        }
    }

    /// Where its records go under `out`.
    fn place(&self, out: &Path) -> PathBuf {
        match self {
            Set::Generic { name, .. } => out.join(format!("{name}.jsonl")),
            Set::Gpt4tools { name, .. } => out.join(name),
        }
    }
}

/// The sets of a group, from the data directories of `args`.
fn sets(args: &SuiteArgs) -> Vec<Set> {
    let bfcl = |dir: &Path, split: &str| {
        Some((
            dir.join(format!("{split}_tools.json")),
            dir.join(format!("{split}_queries.jsonl")),
        ))
    };
    match args.sets {
        SuiteGroup::Dev => vec![
            Set::Generic {
                name: "bfcl-val",
                files: bfcl(&args.bfcl, "val"),
                made_by: "loragen data bfcl",
            },
            Set::Gpt4tools {
                name: "gpt4tools-held-out",
                data: args.gpt4tools.join("val_seen.json"),
                listing: HELD_OUT_DEV.iter().map(|t| (*t).to_owned()).collect(),
                kinds: &AnswerKind::ALL,
            },
        ],
        SuiteGroup::Report => vec![
            Set::Gpt4tools {
                name: "test-unseen-calls",
                data: args.gpt4tools.join("test_unseen.json"),
                listing: UNSEEN_TOOLS
                    .iter()
                    .map(|t| t.info.name.to_owned())
                    .collect(),
                kinds: &[AnswerKind::UnseenCall],
            },
            Set::Generic {
                name: "bfcl-reserved",
                files: bfcl(&args.bfcl.join("reserved"), "heldout"),
                made_by: "loragen data bfcl --reserved",
            },
            Set::Generic {
                name: "mcp",
                files: None,
                made_by: "the checkout (bench/suite/mcp)",
            },
        ],
    }
}

pub fn run(args: SuiteArgs, models: Setup) -> anyhow::Result<()> {
    anyhow::ensure!(
        !(args.mode == Mode::Lora && args.adapter.is_none()),
        "mode lora needs --adapter FILE (the plain LoRA)"
    );
    let sets = sets(&args);
    for set in &sets {
        check_inputs(set)?;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let stop = super::interrupt_flag()?;
    let mut rows = Vec::new();
    for set in &sets {
        println!("== {} ({})", set.name(), args.mode);
        match set {
            Set::Generic { files, .. } => {
                super::eval::run(eval_args(&args, set, files), models.clone())?
            }
            Set::Gpt4tools { data, listing, .. } => {
                super::bench_gpt4tools::run(bench_args(&args, set, data, listing), models.clone())?
            }
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            println!("interrupted: run the same command again to resume");
            return Ok(());
        }
        rows.push((set.name(), scores(&args, set)?));
    }
    let table = table(&rows);
    let page = format!(
        "# Suite: {} sets, mode {}\n\n`{}`\n\n{table}",
        match args.sets {
            SuiteGroup::Dev => "development",
            SuiteGroup::Report => "report-only",
        },
        args.mode,
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    super::write_atomic(&args.out.join("suite.md"), page.as_bytes())?;
    println!("\n{table}");
    println!("wrote {}", args.out.join("suite.md").display());
    Ok(())
}

/// A missing data file is named with the command that makes it, before
/// anything runs.
fn check_inputs(set: &Set) -> anyhow::Result<()> {
    let needed: Vec<(&Path, &str)> = match set {
        Set::Generic {
            files: Some((tools, queries)),
            made_by,
            ..
        } => vec![(tools.as_path(), *made_by), (queries.as_path(), *made_by)],
        Set::Generic { files: None, .. } => Vec::new(),
        Set::Gpt4tools { data, .. } => vec![(data.as_path(), "loragen data gpt4tools")],
    };
    for (path, make) in needed {
        anyhow::ensure!(
            path.is_file(),
            "{}: no such file (set {}; `{make}` makes it)",
            path.display(),
            set.name()
        );
    }
    Ok(())
}

fn eval_args(args: &SuiteArgs, set: &Set, files: &Option<(PathBuf, PathBuf)>) -> EvalArgs {
    EvalArgs {
        tools: files.as_ref().map(|(tools, _)| tools.clone()),
        mcp_config: None,
        queries: files.as_ref().map(|(_, queries)| queries.clone()),
        suite: files.is_none().then_some(SuiteSet::Mcp),
        mode: args.mode,
        adapter: args.adapter.clone(),
        generator: args.generator.clone(),
        out: set.place(&args.out),
        limit: args.limit,
        decoding: args.decoding.clone(),
        max_calls: 8,
        max_tokens: 256,
        baseline: None,
        failures: None,
    }
}

fn bench_args(args: &SuiteArgs, set: &Set, data: &Path, listing: &[String]) -> BenchGpt4toolsArgs {
    let lora = args.mode == Mode::Lora;
    BenchGpt4toolsArgs {
        data: Some(data.to_owned()),
        rescore: false,
        mode: vec![args.mode],
        listing: listing.to_vec(),
        limit: args.limit,
        out: Some(set.place(&args.out)),
        adapter: args.adapter.clone().filter(|_| !lora),
        generator: args.generator.clone(),
        merged_model: None,
        lora_adapter: args.adapter.clone().filter(|_| lora),
        partner_seed: None,
        lora_with_system: false,
        max_tokens: 96,
        // The selector's veto is for JSON registries; GPT4Tools items leave
        // "no call" to the edge model.
        decoding: DecodingArgs {
            selection: SelectorArgs {
                selector_veto: None,
                ..args.decoding.selection.clone()
            },
            ..args.decoding.clone()
        },
        jump_forward: false,
        threads: None,
    }
}

/// The scores of a finished set, from its records.
fn scores(args: &SuiteArgs, set: &Set) -> anyhow::Result<Scores> {
    let place = set.place(&args.out);
    match set {
        Set::Generic { files, .. } => {
            let queries: Vec<Query> = match files {
                Some((_, queries)) => load_queries(queries)?,
                None => suite::mcp_fixture(&suite::mcp_dir(), suite::MCP_SCORED_ROOT)?.1,
            };
            let log: RecordLog<EvalRecord> = RecordLog::open(&place)?;
            Ok(Scores::of_records(log.records(), &queries))
        }
        Set::Gpt4tools { data, kinds, .. } => {
            let text = std::fs::read_to_string(data)
                .with_context(|| format!("cannot read {}", data.display()))?;
            let items = dataset::parse(data, &text)?;
            let log: RecordLog<Record> =
                RecordLog::open(&place.join(super::bench_gpt4tools::RECORDS))?;
            let records: Vec<&Record> = log
                .records()
                .iter()
                .filter(|r| r.mode == args.mode)
                .collect();
            Ok(gpt4tools_scores(&records, &items, kinds))
        }
    }
}

/// GPT4Tools records in the suite's terms: for an item whose answer calls a
/// tool, the right tool is SR_act and the arguments SR_args given it; for
/// one that answers without a tool, the no-call part is SR_t.
fn gpt4tools_scores(records: &[&Record], items: &[dataset::Item], kinds: &[AnswerKind]) -> Scores {
    let mut scores = Scores::default();
    for r in records {
        let Some(item) = items.iter().find(|i| i.id == r.id) else {
            continue;
        };
        let kind = AnswerKind::of(&item.output);
        if !kinds.contains(&kind) {
            continue;
        }
        let s = &r.scores;
        let full = |x: f64| x >= 1.0;
        let parts = match kind {
            AnswerKind::NoTool => Breakdown {
                no_call: Some(full(s.thought_acc)),
                ..Breakdown::default()
            },
            AnswerKind::SeenCall | AnswerKind::UnseenCall => Breakdown {
                selection: Some(full(s.action_acc)),
                arguments: full(s.action_acc).then(|| full(s.action_args_acc)),
                no_call: None,
            },
        };
        scores.push_item(full(s.acc), r.prompt_tokens, r.latency_ms(), parts);
    }
    scores
}

fn table(rows: &[(&str, Scores)]) -> String {
    let p50 = |xs: &[f64]| loragen_gpt4tools::report::quantile(xs, 0.5);
    let mut out = String::from(
        "| set | items | calls | call accuracy | right tool | arguments, given the tool | no call where none is due | mean prompt tokens | p50 ms |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, s) in rows {
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} |\n",
            s.right.len(),
            s.calls.len(),
            percent(&s.calls),
            percent(&s.selection),
            percent(&s.arguments),
            percent(&s.no_call),
            mean(s.prompt_tokens.iter().copied()),
            p50(&s.ms),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use loragen_gpt4tools::metrics::ItemScores;

    fn record(id: &str, thought: f64, action: f64, args: f64, acc: f64) -> Record {
        Record {
            id: id.into(),
            mode: Mode::Compiled,
            prediction: String::new(),
            scores: ItemScores {
                thought_acc: thought,
                action_acc: action,
                action_args_acc: args,
                acc,
                iou: 0.0,
            },
            prompt_tokens: 10,
            reused_tokens: 0,
            prefill_ms: 1.0,
            decode_ms: 1.0,
            decode_tokens: 1,
            peak_rss_mib: 0.0,
            adapter_ms: None,
            selector_ms: None,
            none_margin: None,
        }
    }

    fn item(id: &str, output: &str) -> dataset::Item {
        dataset::Item {
            id: id.into(),
            instruction: String::new(),
            input: String::new(),
            output: output.into(),
        }
    }

    /// Each GPT4Tools answer kind lands in its own column: a wrong tool
    /// counts against the selection only, a right tool with wrong
    /// arguments against the arguments, a call where none is due against
    /// no-call; other kinds than those asked for are left out.
    #[test]
    fn gpt4tools_records_split_into_the_suites_parts() {
        let seen = "Thought: Do I need to use a tool? Yes\nAction: Segment the Image\nAction Input: a.png\nObservation:";
        let unseen = "Thought: Do I need to use a tool? Yes\nAction: Recognize Text In Image\nAction Input: a.png\nObservation:";
        let none = "Thought: Do I need to use a tool? No\nAI: Hello.";
        let items = [
            item("right", seen),
            item("wrong-tool", seen),
            item("wrong-args", unseen),
            item("no-call", none),
            item("called", none),
        ];
        let records = [
            record("right", 1.0, 1.0, 1.0, 1.0),
            record("wrong-tool", 1.0, 0.0, 0.0, 0.0),
            record("wrong-args", 1.0, 1.0, 0.0, 0.0),
            record("no-call", 1.0, 1.0, 1.0, 1.0),
            record("called", 0.0, 0.0, 0.0, 0.0),
        ];
        let refs: Vec<&Record> = records.iter().collect();
        let all = gpt4tools_scores(&refs, &items, &AnswerKind::ALL);
        assert_eq!(all.right, [1.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(all.calls, [1.0, 0.0, 0.0]);
        assert_eq!(all.selection, [1.0, 0.0, 1.0]);
        assert_eq!(all.arguments, [1.0, 0.0]);
        assert_eq!(all.no_call, [1.0, 0.0]);
        let unseen_only = gpt4tools_scores(&refs, &items, &[AnswerKind::UnseenCall]);
        assert_eq!(unseen_only.right, [0.0]);
        assert_eq!(unseen_only.selection, [1.0]);
        assert!(unseen_only.no_call.is_empty());
        let t = table(&[("x", all)]);
        assert!(
            t.contains("| x | 5 | 3 | 33.3% | 66.7% | 50.0% | 50.0% | 10 | 2 |"),
            "{t}"
        );
    }
}
