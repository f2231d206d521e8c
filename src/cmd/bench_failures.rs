//! `loragen bench failures`: where the items of a `bench gpt4tools` run
//! went wrong, by stage (no call, wrong tool, wrong arguments, a call where
//! none is due), with some of them in full. It reads the run's records and
//! the data file its `run.json` names; no model runs.

use std::collections::HashSet;

use loragen_gpt4tools::generic::failure_report;
use loragen_gpt4tools::metrics::failed_stage;

use super::bench_curve::{gold_actions, records_of, run_items};
use crate::cli::BenchFailuresArgs;

pub fn run(args: &BenchFailuresArgs) -> anyhow::Result<()> {
    let (mode, records) = records_of(&args.run, args.mode)?;
    let items = run_items(&args.run)?;
    let gold = gold_actions(&args.run)?;
    let calling: HashSet<&str> = args.calling.iter().map(String::as_str).collect();
    let mut failures = Vec::new();
    let mut scored = 0;
    for item in &items {
        let Some(record) = records.get(&item.id) else {
            continue;
        };
        if !calling.is_empty()
            && !gold
                .get(&item.id)
                .is_some_and(|tool| calling.contains(tool.as_str()))
        {
            continue;
        }
        scored += 1;
        if let Some(stage) = failed_stage(&item.output, &record.prediction) {
            let text = format!(
                "{}\n  request: {}\n  due:     {:?}\n  made:    {:?}",
                item.id,
                item.request().unwrap_or("(no `New input:` line)"),
                item.output,
                record.prediction
            );
            failures.push((stage, text));
        }
    }
    anyhow::ensure!(
        scored > 0,
        "{} holds no scored item{}",
        args.run.display(),
        if calling.is_empty() {
            String::new()
        } else {
            format!(" whose answer calls {}", args.calling.join(" or "))
        }
    );
    println!("{} ({mode})", args.run.display());
    print!("{}", failure_report(scored, &failures, args.n));
    Ok(())
}
