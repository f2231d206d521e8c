//! `loragen data bfcl`: fetch the pinned `bfcl-eval` wheel from PyPI and
//! convert its allowed files to the generic format, split by function set.

use std::path::Path;

use anyhow::Context;
use loragen_agent::store::ModelStore;
use loragen_gpt4tools::bfcl::{self, Converted, Summary};

use crate::cli::DataBfclArgs;

pub fn run(args: DataBfclArgs) -> anyhow::Result<()> {
    let wheel = match &args.wheel {
        Some(w) => w.clone(),
        None => {
            println!(
                "fetching {}=={} from PyPI (once; cached)",
                bfcl::PACKAGE,
                bfcl::VERSION
            );
            ModelStore::from_env()?.fetch_wheel(bfcl::PACKAGE, bfcl::VERSION)?
        }
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let (train, val, summary) = bfcl::convert_allowed(&wheel, args.val_share, args.seed)?;
    print_summary(&summary);
    write_split(&args.out, "train", &train)?;
    write_split(&args.out, "val", &val)?;
    if args.reserved {
        let dir = args.out.join("reserved");
        std::fs::create_dir_all(&dir)?;
        let (reserved, summary) = bfcl::convert_reserved(&wheel)?;
        print_summary(&summary);
        write_split(&dir, "heldout", &reserved)?;
        std::fs::write(
            dir.join("README.md"),
            "Held-out BFCL evaluation files. Never train, tune or select anything on them; run them with `loragen eval` only.\n",
        )?;
    }
    Ok(())
}

fn print_summary(summary: &Summary) {
    for (file, n) in &summary.per_file {
        println!("{n:>6} items  {file}");
    }
    if !summary.skipped.is_empty() {
        println!(
            "skipped {} item(s), e.g. {}: {}",
            summary.skipped.len(),
            summary.skipped[0].0,
            summary.skipped[0].1
        );
    }
    let renamed: Vec<String> = summary
        .renamed_types
        .iter()
        .map(|(t, n)| format!("{t} ({n})"))
        .collect();
    if !renamed.is_empty() {
        println!("non-JSON-Schema types normalised: {}", renamed.join(", "));
    }
}

fn write_split(dir: &Path, name: &str, data: &Converted) -> anyhow::Result<()> {
    let tools = dir.join(format!("{name}_tools.json"));
    let queries = dir.join(format!("{name}_queries.jsonl"));
    super::write_atomic(
        &tools,
        serde_json::to_string_pretty(&data.tools)?.as_bytes(),
    )?;
    let mut text = Vec::new();
    for q in &data.queries {
        serde_json::to_writer(&mut text, q)?;
        text.push(b'\n');
    }
    super::write_atomic(&queries, &text)?;
    println!(
        "{name}: {} queries, {} tool definitions -> {}, {}",
        data.queries.len(),
        data.tools.len(),
        tools.display(),
        queries.display()
    );
    Ok(())
}
