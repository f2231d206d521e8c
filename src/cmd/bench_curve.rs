//! `loragen bench compare` and `loragen bench curve`: what benchmark runs
//! say together. A paired bootstrap over the items both runs scored tells
//! whether a difference in success rate is real; the curves of a training
//! run chart its loss and its validation SR per snapshot.
//!
//! A training run directory keeps its validations under `val/step-N/`
//! (the `--out` of `loragen bench gpt4tools` on snapshot `step-N`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use loragen_gpt4tools::chart::{write_curves, Curve};
use loragen_gpt4tools::paired::{bootstrap_mean, paired_bootstrap, Interval, RESAMPLES};
use loragen_gpt4tools::stats::mean;
use loragen_gpt4tools::{ItemScores, Mode, Record, RecordLog};

use crate::cli::{BenchCompareArgs, BenchCurveArgs};

/// The records of one mode of a benchmark run directory, by id.
pub(super) fn records_of(
    dir: &Path,
    mode: Option<Mode>,
) -> anyhow::Result<(Mode, HashMap<String, Record>)> {
    let path = dir.join("records.jsonl");
    anyhow::ensure!(
        path.exists(),
        "{} has no records.jsonl; is it a `loragen bench gpt4tools` run directory?",
        dir.display()
    );
    let log: RecordLog<Record> = RecordLog::open(&path)?;
    let mut modes: Vec<Mode> = log.records().iter().map(|r| r.mode).collect();
    modes.sort_by_key(|m| m.to_string());
    modes.dedup();
    let mode = match (mode, modes.as_slice()) {
        (Some(m), _) if modes.contains(&m) => m,
        (Some(m), _) => anyhow::bail!(
            "{} has no records of mode {m} (it has {modes:?})",
            dir.display()
        ),
        (None, [m]) => *m,
        (None, []) => anyhow::bail!("{} holds no records", path.display()),
        (None, _) => anyhow::bail!(
            "{} holds several modes ({modes:?}); say which with --mode-a/--mode-b",
            dir.display()
        ),
    };
    let records = log
        .records()
        .iter()
        .filter(|r| r.mode == mode)
        .map(|r| (r.id.clone(), r.clone()))
        .collect();
    Ok((mode, records))
}

/// The per-item scores of one mode of a run directory, by id.
pub(super) fn scores_of(
    dir: &Path,
    mode: Option<Mode>,
) -> anyhow::Result<(Mode, HashMap<String, ItemScores>)> {
    let (mode, records) = records_of(dir, mode)?;
    Ok((
        mode,
        records.into_iter().map(|(id, r)| (id, r.scores)).collect(),
    ))
}

/// One score of an item.
type Metric = fn(&ItemScores) -> f64;

/// The metrics compared, in percent.
const METRICS: [(&str, Metric); 5] = [
    ("SR_t", |s| s.thought_acc),
    ("SR_act", |s| s.action_acc),
    ("SR_args", |s| s.action_args_acc),
    ("SR", |s| s.acc),
    ("IoU", |s| s.iou),
];

/// Per-item values of `metric`, in percent, for the ids in order.
pub(super) fn column(
    scores: &HashMap<String, ItemScores>,
    ids: &[&String],
    metric: fn(&ItemScores) -> f64,
) -> Vec<f64> {
    ids.iter()
        .map(|id| 100.0 * scores.get(*id).map_or(0.0, metric))
        .collect()
}

fn shared_ids<'a>(
    a: &'a HashMap<String, ItemScores>,
    b: &HashMap<String, ItemScores>,
) -> Vec<&'a String> {
    let mut ids: Vec<&String> = a.keys().filter(|id| b.contains_key(*id)).collect();
    ids.sort();
    ids
}

pub(super) fn fmt_interval(i: &Interval) -> String {
    format!("{:+.1} [{:+.1}, {:+.1}]", i.mean, i.lo, i.hi)
}

pub fn compare(args: &BenchCompareArgs) -> anyhow::Result<()> {
    let (mode_a, records_a) = records_of(&args.a, args.mode_a)?;
    let (mode_b, records_b) = records_of(&args.b, args.mode_b)?;
    let scores = |r: &HashMap<String, Record>| -> HashMap<String, ItemScores> {
        r.iter().map(|(id, r)| (id.clone(), r.scores)).collect()
    };
    let (a, b) = (scores(&records_a), scores(&records_b));
    let mut ids = shared_ids(&a, &b);
    anyhow::ensure!(
        !ids.is_empty(),
        "{} and {} share no items",
        args.a.display(),
        args.b.display()
    );
    println!(
        "A = {} ({mode_a}), B = {} ({mode_b}): {} items in both ({} only in A, {} only in B)",
        args.a.display(),
        args.b.display(),
        ids.len(),
        a.len() - ids.len(),
        b.len() - ids.len()
    );
    if !args.calling.is_empty() {
        let gold = gold_actions(&args.a)?;
        ids.retain(|id| {
            gold.get(id.as_str())
                .is_some_and(|action| args.calling.contains(action))
        });
        anyhow::ensure!(
            !ids.is_empty(),
            "no item both runs scored calls {}",
            args.calling.join(" or ")
        );
        println!(
            "of them, the {} whose answer calls {}",
            ids.len(),
            args.calling.join(" or ")
        );
    }
    println!(
        "paired bootstrap, {} resamples, seed {}\n",
        args.resamples, args.seed
    );
    println!("| metric | A | B | B - A, 95% interval |");
    println!("|---|---|---|---|");
    for (name, metric) in METRICS {
        let (xa, xb) = (column(&a, &ids, metric), column(&b, &ids, metric));
        let d = paired_bootstrap(&xa, &xb, args.resamples, args.seed)?;
        println!(
            "| {name} | {:.1} | {:.1} | {} |",
            mean(xa.iter().copied()),
            mean(xb.iter().copied()),
            fmt_interval(&d)
        );
    }
    let same = ids
        .iter()
        .filter(|id| records_a[id.as_str()].prediction == records_b[id.as_str()].prediction)
        .count();
    // Mean decode time and tokens per item over the shared items.
    let decode = |r: &HashMap<String, Record>| {
        let (ms, tokens) = ids.iter().fold((0.0, 0), |(ms, t), id| {
            let rec = &r[id.as_str()];
            (ms + rec.decode_ms, t + rec.decode_tokens)
        });
        (ms / ids.len() as f64, tokens as f64 / ids.len() as f64)
    };
    let ((ms_a, tok_a), (ms_b, tok_b)) = (decode(&records_a), decode(&records_b));
    println!(
        "\nidentical predictions: {same} of {}; decode per item: A {ms_a:.0} ms ({tok_a:.1} tokens), B {ms_b:.0} ms ({tok_b:.1} tokens), B / A {:.2}x",
        ids.len(),
        ms_b / ms_a.max(1e-9)
    );
    Ok(())
}

/// The tool each item of a run's data file calls in its answer, by id
/// (items answered without a tool are absent). The data file is the one
/// the run's `run.json` names.
pub(super) fn gold_actions(run: &Path) -> anyhow::Result<HashMap<String, String>> {
    use loragen_protocol::react::{OutputParser, ReactParser, Step};
    Ok(run_items(run)?
        .into_iter()
        .filter_map(|item| match ReactParser.parse(item.output.as_bytes()) {
            Ok(Step::Calls(calls)) => calls.first().map(|c| (item.id, c.action.clone())),
            _ => None,
        })
        .collect())
}

/// The items of the data file a run's `run.json` names.
pub(super) fn run_items(run: &Path) -> anyhow::Result<Vec<loragen_gpt4tools::dataset::Item>> {
    let meta_path = run.join("run.json");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&meta_path)
            .with_context(|| format!("cannot read {}", meta_path.display()))?,
    )
    .with_context(|| format!("{} is not a run description", meta_path.display()))?;
    let data = meta["data"]
        .as_str()
        .with_context(|| format!("{} names no data file", meta_path.display()))?;
    Ok(loragen_gpt4tools::dataset::load(Path::new(data))?)
}

/// `train.jsonl`'s LM loss, averaged over windows of `window` steps and
/// placed at each window's last step.
fn loss_curve(run: &Path, window: usize) -> anyhow::Result<Vec<(f64, f64)>> {
    let path = run.join("train.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let value: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
        let (Some(step), Some(loss)) = (value["step"].as_f64(), value["lm_loss"].as_f64()) else {
            anyhow::bail!("{} line {}: no step or lm_loss", path.display(), i + 1);
        };
        points.push((step, loss));
    }
    // A last window cut short (a run still going) is left out: a mean of a
    // few steps is noise beside the others.
    Ok(points
        .chunks_exact(window.max(1))
        .filter_map(|w| {
            let last = w.last()?.0;
            Some((last, mean(w.iter().map(|p| p.1))))
        })
        .collect())
}

/// The validations of a run: `val/step-N` directories, by step.
fn validations(run: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let dir = run.join("val");
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(found);
    };
    for entry in entries {
        let path = entry?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(step) = step {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The snapshot to keep among (step, SR, items) validations: the highest
/// SR, ties to the later step, which has trained longer.
fn best_snapshot(points: &[(u64, f64, usize)]) -> Option<(u64, f64, usize)> {
    points
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
}

pub fn curve(args: &BenchCurveArgs) -> anyhow::Result<()> {
    let mut curves = Vec::new();
    for spec in &args.run {
        let (name, dir) = spec
            .split_once('=')
            .map(|(n, d)| (n.to_owned(), PathBuf::from(d)))
            .with_context(|| format!("--run {spec}: give NAME=DIR"))?;
        let mut curve = Curve {
            name: name.clone(),
            loss: loss_curve(&dir, args.window)?,
            val: Vec::new(),
        };
        println!(
            "\n{name} ({}): validation SR per snapshot, 95% bootstrap intervals",
            dir.display()
        );
        println!("| step | items | SR | IoU | SR change since the previous snapshot (paired) |");
        println!("|---|---|---|---|---|");
        let mut previous: Option<HashMap<String, ItemScores>> = None;
        let mut points = Vec::new();
        for (step, val) in validations(&dir)? {
            let (_, scores) = scores_of(&val, None)?;
            let mut ids: Vec<&String> = scores.keys().collect();
            ids.sort();
            let sr = bootstrap_mean(&column(&scores, &ids, |s| s.acc), RESAMPLES, args.seed)?;
            let iou = column(&scores, &ids, |s| s.iou);
            let change = match &previous {
                Some(prev) => {
                    let shared = shared_ids(prev, &scores);
                    let d = paired_bootstrap(
                        &column(prev, &shared, |s| s.acc),
                        &column(&scores, &shared, |s| s.acc),
                        RESAMPLES,
                        args.seed,
                    )?;
                    format!("{} over {} items", fmt_interval(&d), shared.len())
                }
                None => "–".into(),
            };
            println!(
                "| {step} | {} | {:.1} [{:.1}, {:.1}] | {:.1} | {change} |",
                ids.len(),
                sr.mean,
                sr.lo,
                sr.hi,
                mean(iou.iter().copied())
            );
            points.push((step, sr.mean, ids.len()));
            curve.val.push((step as f64, sr));
            previous = Some(scores);
        }
        if let Some((step, sr, items)) = best_snapshot(&points) {
            println!(
                "\nbest snapshot: step-{step}, SR {sr:.1} on {items} items (the highest; ties go to the later step)"
            );
        }
        curves.push(curve);
    }
    write_curves(&curves, &args.out, &args.title)?;
    println!(
        "\nchart: {} and {}",
        args.out.with_extension("svg").display(),
        args.out.with_extension("png").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_snapshot_has_the_highest_sr_and_ties_go_to_the_later_step() {
        assert_eq!(best_snapshot(&[]), None);
        let points = [(250, 97.0, 200), (500, 99.5, 200), (750, 98.0, 200)];
        assert_eq!(best_snapshot(&points), Some((500, 99.5, 200)));
        let tie = [(1000, 99.5, 200), (250, 99.5, 200), (500, 90.0, 200)];
        assert_eq!(best_snapshot(&tie), Some((1000, 99.5, 200)));
    }
}
