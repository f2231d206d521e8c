//! `loragen bench ablation`: the arms of an ablation in one table. Each
//! arm is a `bench gpt4tools` run over the same items (all of `val_seen`,
//! say); the first is the reference arm. For every arm the table gives SR
//! on three sets of items, each with its paired-bootstrap 95% interval
//! against the reference arm:
//!
//! - all the items the arms share;
//! - the items whose system part lists a held-out tool;
//! - the items whose reference answer calls one.
//!
//! The held-out tools are the ones the arms were trained without, so the
//! last two columns measure tools the arms never saw.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Context;
use loragen_gpt4tools::dataset::Item;
use loragen_gpt4tools::paired::paired_bootstrap;
use loragen_gpt4tools::stats::mean;
use loragen_gpt4tools::ItemScores;

use super::bench_curve::{column, fmt_interval, gold_actions, run_items, scores_of};
use crate::cli::BenchAblationArgs;

/// One arm: its name, run directory and per-item scores.
struct Arm {
    name: String,
    dir: PathBuf,
    scores: HashMap<String, ItemScores>,
}

/// One column group of the table: a named set of item ids.
struct ItemSet {
    label: String,
    ids: Vec<String>,
}

pub fn run(args: &BenchAblationArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.arm.len() >= 2,
        "--arm: give the reference arm and at least one other (NAME=DIR each)"
    );
    let arms = args
        .arm
        .iter()
        .map(|spec| {
            let (name, dir) = spec
                .split_once('=')
                .with_context(|| format!("--arm {spec}: give NAME=DIR"))?;
            let dir = PathBuf::from(dir);
            let (_, scores) = scores_of(&dir, None)?;
            Ok(Arm {
                name: name.to_owned(),
                dir,
                scores,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let reference = &arms[0];

    // Only the items every arm scored: a paired interval needs the same items.
    let mut shared: Vec<String> = reference
        .scores
        .keys()
        .filter(|id| arms.iter().all(|a| a.scores.contains_key(*id)))
        .cloned()
        .collect();
    shared.sort();
    anyhow::ensure!(!shared.is_empty(), "the arms share no scored item");
    for arm in &arms {
        if arm.scores.len() != shared.len() {
            eprintln!(
                "note: {} scored {} items; the table uses the {} all arms share",
                arm.name,
                arm.scores.len(),
                shared.len()
            );
        }
    }

    let sets = if args.held_out.is_empty() {
        vec![ItemSet {
            label: "all items".into(),
            ids: shared,
        }]
    } else {
        let sets = item_sets(
            shared,
            &run_items(&reference.dir)?,
            &gold_actions(&reference.dir)?,
            &args.held_out,
        );
        if let Some(empty) = sets.iter().find(|s| s.ids.is_empty()) {
            anyhow::bail!(
                "no shared item is among the {}; are the held-out names right?",
                empty.label
            );
        }
        sets
    };
    let mut page = table(&arms, &sets, args.resamples, args.seed)?;
    page.push_str("\nRuns:\n");
    for arm in &arms {
        page.push_str(&format!("- {}: `{}`\n", arm.name, arm.dir.display()));
    }
    print!("{page}");
    if let Some(out) = &args.out {
        super::write_atomic(out, page.as_bytes())
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("\nwritten to {}", out.display());
    }
    Ok(())
}

/// All `shared` items, those of them whose system part lists a held-out
/// tool, and those whose reference answer (`gold`: the tool called, by id)
/// calls one.
fn item_sets(
    shared: Vec<String>,
    items: &[Item],
    gold: &HashMap<String, String>,
    held_out: &[String],
) -> Vec<ItemSet> {
    let is_held_out = |tool: &str| held_out.iter().any(|h| h == tool);
    let listing: HashSet<&str> = items
        .iter()
        .filter(|i| i.listed_tools().into_iter().any(is_held_out))
        .map(|i| i.id.as_str())
        .collect();
    let listing_ids = shared
        .iter()
        .filter(|id| listing.contains(id.as_str()))
        .cloned()
        .collect();
    let calling_ids = shared
        .iter()
        .filter(|id| gold.get(id.as_str()).is_some_and(|t| is_held_out(t)))
        .cloned()
        .collect();
    vec![
        ItemSet {
            label: "all items".into(),
            ids: shared,
        },
        ItemSet {
            label: "items listing a held-out tool".into(),
            ids: listing_ids,
        },
        ItemSet {
            label: "held-out calls".into(),
            ids: calling_ids,
        },
    ]
}

/// The Markdown table: one row per arm, per set its SR and its paired
/// change against the first arm.
fn table(arms: &[Arm], sets: &[ItemSet], resamples: usize, seed: u64) -> anyhow::Result<String> {
    let reference = &arms[0];
    let mut page = format!(
        "SR per arm in percent; the change against {} is the paired-bootstrap mean with its 95% interval ({resamples} resamples, seed {seed}).\n\n",
        reference.name
    );
    page.push_str("| arm |");
    for set in sets {
        page.push_str(&format!(
            " SR, {} ({}) | change |",
            set.label,
            set.ids.len()
        ));
    }
    page.push_str("\n|---|");
    page.push_str(&"---|---|".repeat(sets.len()));
    page.push('\n');
    for (i, arm) in arms.iter().enumerate() {
        page.push_str(&format!("| {} |", arm.name));
        for set in sets {
            let ids: Vec<&String> = set.ids.iter().collect();
            let sr = column(&arm.scores, &ids, |s| s.acc);
            let change = if i == 0 {
                "–".to_owned()
            } else {
                let base = column(&reference.scores, &ids, |s| s.acc);
                fmt_interval(&paired_bootstrap(&base, &sr, resamples, seed)?)
            };
            page.push_str(&format!(" {:.1} | {change} |", mean(sr.iter().copied())));
        }
        page.push('\n');
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn item(id: &str, tools: &[&str]) -> Item {
        let lines: String = tools
            .iter()
            .map(|t| format!("> {t}: does a thing\n"))
            .collect();
        Item {
            id: id.into(),
            instruction: format!("Tools:\n{lines}Previous conversation:\nNew input: hi"),
            input: String::new(),
            output: String::new(),
        }
    }

    fn arm(name: &str, acc: &[(&str, f64)]) -> Arm {
        Arm {
            name: name.into(),
            dir: PathBuf::from(name),
            scores: acc
                .iter()
                .map(|(id, acc)| {
                    let scores = ItemScores {
                        acc: *acc,
                        ..ItemScores::default()
                    };
                    ((*id).to_owned(), scores)
                })
                .collect(),
        }
    }

    #[test]
    fn the_sets_are_all_items_those_listing_a_held_out_tool_and_its_calls() {
        let items = [
            item("1", &["Seen Tool"]),
            item("2", &["Seen Tool", "Held Tool"]),
            item("3", &["Held Tool"]),
            item("4", &["Other Held"]),
        ];
        let gold: HashMap<String, String> =
            [("1", "Seen Tool"), ("3", "Held Tool"), ("4", "Other Held")]
                .into_iter()
                .map(|(id, t)| (id.to_owned(), t.to_owned()))
                .collect();
        // Item 4 is not shared by every arm, so no set holds it.
        let shared = vec!["1".to_owned(), "2".to_owned(), "3".to_owned()];
        let held = ["Held Tool".to_owned(), "Other Held".to_owned()];
        let sets = item_sets(shared, &items, &gold, &held);
        let ids: Vec<Vec<&str>> = sets
            .iter()
            .map(|s| s.ids.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(ids, [vec!["1", "2", "3"], vec!["2", "3"], vec!["3"]]);
    }

    #[test]
    fn the_table_gives_each_arms_sr_and_its_paired_change_against_the_first() {
        let base = arm("default", &[("1", 1.0), ("2", 0.0), ("3", 1.0), ("4", 0.0)]);
        // One item gained on every resample's items: a +25 point change over
        // the four, and +50 over the two items of the second set.
        let better = arm("k-1", &[("1", 1.0), ("2", 1.0), ("3", 1.0), ("4", 0.0)]);
        let sets = [
            ItemSet {
                label: "all items".into(),
                ids: ["1", "2", "3", "4"].map(str::to_owned).to_vec(),
            },
            ItemSet {
                label: "held-out calls".into(),
                ids: ["2", "4"].map(str::to_owned).to_vec(),
            },
        ];
        let page = table(&[base, better], &sets, 500, 0).unwrap();
        let rows: Vec<&str> = page.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(
            rows[0],
            "| arm | SR, all items (4) | change | SR, held-out calls (2) | change |"
        );
        assert_eq!(rows[1], "| default | 50.0 | – | 0.0 | – |");
        assert!(
            rows[2].starts_with("| k-1 | 75.0 | +25.0 [+0.0, +"),
            "{}",
            rows[2]
        );
        assert!(
            rows[2].contains("| 50.0 | +50.0 [+0.0, +100.0] |"),
            "{}",
            rows[2]
        );
    }
}
