//! The results table over several runs: one row per learner (a run
//! directory and mode), with the GPT4Tools scores, SR by answer kind,
//! prompt compression, latency and time to first token, and the cost of
//! making each registry's adapter. What `loragen bench report` assembles
//! into `docs/results.md`.

use std::collections::HashMap;

use serde::Serialize;

use crate::corpus::UNSEEN_TOOLS;
use crate::metrics::{Aggregate, ItemScores};
use crate::record::Record;
use crate::report::quantile;
use crate::stats::mean;
use loragen_protocol::react::{OutputParser, ReactParser, Step};

/// What the reference answer of an item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AnswerKind {
    /// Answers without a tool.
    NoTool,
    /// Calls a tool that training data may show.
    SeenCall,
    /// Calls one of [`UNSEEN_TOOLS`], which only `test_unseen` uses.
    UnseenCall,
}

impl AnswerKind {
    pub const ALL: [AnswerKind; 3] = [
        AnswerKind::NoTool,
        AnswerKind::SeenCall,
        AnswerKind::UnseenCall,
    ];

    /// The kind of the reference answer `truth` (its first step).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_gpt4tools::table::AnswerKind;
    ///
    /// let no = "Thought: Do I need to use a tool? No\nAI: Hello.";
    /// assert_eq!(AnswerKind::of(no), AnswerKind::NoTool);
    /// let ocr = "Thought: Do I need to use a tool? Yes\nAction: Recognize Text In Image\nAction Input: a.png\nObservation:";
    /// assert_eq!(AnswerKind::of(ocr), AnswerKind::UnseenCall);
    /// ```
    pub fn of(truth: &str) -> Self {
        match ReactParser.parse(truth.as_bytes()) {
            Ok(Step::Calls(calls)) => {
                let unseen = calls
                    .first()
                    .is_some_and(|c| UNSEEN_TOOLS.iter().any(|t| t.info.name == c.action));
                if unseen {
                    AnswerKind::UnseenCall
                } else {
                    AnswerKind::SeenCall
                }
            }
            Ok(Step::Answer { .. }) | Err(_) => AnswerKind::NoTool,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AnswerKind::NoTool => "no tool",
            AnswerKind::SeenCall => "seen-tool calls",
            AnswerKind::UnseenCall => "unseen-tool calls",
        }
    }
}

/// One learner's row.
#[derive(Debug, Clone, Serialize)]
pub struct TableRow {
    pub name: String,
    pub scores: Aggregate,
    /// SR (%) and item count per answer kind, in [`AnswerKind::ALL`] order.
    pub sr_by_kind: Vec<(AnswerKind, usize, f64)>,
    pub mean_prompt_tokens: f64,
    /// The baseline row's mean prompt tokens over this row's.
    pub compression: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// The baseline row's p50 latency over this row's; `None` when the two
    /// runs were not measured on one known processor (a ratio across
    /// machines would measure the machines).
    pub speedup: Option<f64>,
    /// Time to first token, p50: the prefill (whose logits give the first
    /// token), with the adapter already loaded.
    pub ttft_p50_ms: f64,
    /// Making a registry's adapter (compile or load), mean over the
    /// registries that needed one; `None` when no record carries it.
    pub adapter_ms: Option<f64>,
}

/// One row's input: a learner's name, the processor its run was measured
/// on (as the run recorded it; `None` if it did not) and its records.
#[derive(Debug, Clone)]
pub struct RunRecords {
    pub name: String,
    pub processor: Option<String>,
    pub records: Vec<Record>,
}

/// The rows of `runs`, every row scored on the items of its records;
/// `truth` maps item ids to reference answers, and row `baseline` is what
/// compression and speed-up compare with. Speed-up is given only for runs
/// measured on the baseline's processor.
pub fn rows(
    runs: &[RunRecords],
    truth: &HashMap<String, String>,
    baseline: usize,
) -> Vec<TableRow> {
    let mut rows: Vec<TableRow> = runs
        .iter()
        .map(|RunRecords { name, records, .. }| {
            let scores: Vec<ItemScores> = records.iter().map(|r| r.scores).collect();
            let latency: Vec<f64> = records.iter().map(Record::latency_ms).collect();
            let prefill: Vec<f64> = records.iter().map(|r| r.prefill_ms).collect();
            let sr_by_kind = AnswerKind::ALL
                .iter()
                .map(|&kind| {
                    let of_kind: Vec<f64> = records
                        .iter()
                        .filter(|r| truth.get(&r.id).is_some_and(|t| AnswerKind::of(t) == kind))
                        .map(|r| r.scores.acc)
                        .collect();
                    (kind, of_kind.len(), 100.0 * mean(of_kind.iter().copied()))
                })
                .collect();
            let adapters: Vec<f64> = records
                .iter()
                .filter_map(|r| r.adapter_ms.filter(|&ms| ms > 0.0))
                .collect();
            TableRow {
                name: name.clone(),
                scores: Aggregate::of(&scores),
                sr_by_kind,
                mean_prompt_tokens: mean(records.iter().map(|r| r.prompt_tokens as f64)),
                compression: 1.0,
                p50_ms: quantile(&latency, 0.5),
                p95_ms: quantile(&latency, 0.95),
                speedup: None,
                ttft_p50_ms: quantile(&prefill, 0.5),
                adapter_ms: (!adapters.is_empty()).then(|| mean(adapters.iter().copied())),
            }
        })
        .collect();
    if let (Some(base), Some(base_run)) = (rows.get(baseline).cloned(), runs.get(baseline)) {
        for (i, (row, run)) in rows.iter_mut().zip(runs).enumerate() {
            row.compression = base.mean_prompt_tokens / row.mean_prompt_tokens.max(1.0);
            let same_processor = i == baseline
                || (base_run.processor.is_some() && run.processor == base_run.processor);
            row.speedup = same_processor.then(|| base.p50_ms / row.p50_ms.max(1e-9));
        }
    }
    rows
}

/// The rows as a GitHub markdown table.
pub fn markdown(rows: &[TableRow]) -> String {
    let mut out = String::from(
        "| learner | items | SR_t | SR_act | SR_args | SR | IoU | Avg | SR no tool | SR seen calls | SR unseen calls | prompt tok | compression | p50 ms | p95 ms | speed-up | TTFT p50 ms | adapter ms |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let kinds: Vec<String> = r
            .sr_by_kind
            .iter()
            .map(|(_, n, sr)| format!("{sr:.1} ({n})"))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.2}x | {:.0} | {:.0} | {} | {:.0} | {} |\n",
            r.name,
            r.scores.markdown_cells(),
            kinds.join(" | "),
            r.mean_prompt_tokens,
            r.compression,
            r.p50_ms,
            r.p95_ms,
            r.speedup.map_or("–".to_owned(), |x| format!("{x:.2}x")),
            r.ttft_p50_ms,
            r.adapter_ms.map_or("–".to_owned(), |ms| format!("{ms:.0}")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::metrics::score_item;
    use loragen_protocol::Mode;

    const NO: &str = "Thought: Do I need to use a tool? No\nAI: Hi.";
    const SEEN: &str = "Thought: Do I need to use a tool? Yes\nAction: Segment the Image\nAction Input: a.png\nObservation:";
    const UNSEEN: &str = "Thought: Do I need to use a tool? Yes\nAction: Upscale Image Resolution\nAction Input: a.png\nObservation:";

    fn record(id: &str, truth: &str, prediction: &str, prompt: usize, ms: f64) -> Record {
        Record {
            id: id.into(),
            mode: Mode::Compiled,
            prediction: prediction.into(),
            scores: score_item(truth, prediction),
            prompt_tokens: prompt,
            reused_tokens: 0,
            prefill_ms: ms / 2.0,
            decode_ms: ms / 2.0,
            decode_tokens: 4,
            peak_rss_mib: 1.0,
            adapter_ms: None,
            selector_ms: None,
            none_margin: None,
        }
    }

    #[test]
    fn rows_split_sr_by_answer_kind_and_compare_with_the_baseline() {
        let truth: HashMap<String, String> = [("a", NO), ("b", SEEN), ("c", UNSEEN), ("d", UNSEEN)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let in_context = vec![
            record("a", NO, NO, 600, 1000.0),
            record("b", SEEN, SEEN, 600, 1000.0),
            record("c", UNSEEN, NO, 600, 1000.0),
            record("d", UNSEEN, NO, 600, 1000.0),
        ];
        let mut compiled = vec![
            record("a", NO, NO, 60, 400.0),
            record("b", SEEN, NO, 60, 400.0),
            record("c", UNSEEN, UNSEEN, 60, 400.0),
            record("d", UNSEEN, NO, 60, 400.0),
        ];
        compiled[0].adapter_ms = Some(90.0);
        compiled[2].adapter_ms = Some(30.0);
        let run = |name: &str, processor: Option<&str>, records: &Vec<Record>| RunRecords {
            name: name.into(),
            processor: processor.map(str::to_owned),
            records: records.clone(),
        };
        let xeon = Some("Xeon (AVX-512)");
        let rows = rows(
            &[
                run("in context", xeon, &in_context),
                run("compiled", xeon, &compiled),
                run("elsewhere", Some("EPYC (AVX2, FMA)"), &compiled),
                run("unrecorded", None, &compiled),
            ],
            &truth,
            0,
        );
        let kinds = |r: &TableRow| {
            r.sr_by_kind
                .iter()
                .map(|&(_, n, sr)| (n, sr))
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&rows[0]), [(1, 100.0), (1, 100.0), (2, 0.0)]);
        assert_eq!(kinds(&rows[1]), [(1, 100.0), (1, 0.0), (2, 50.0)]);
        assert_eq!((rows[1].compression, rows[1].speedup), (10.0, Some(2.5)));
        assert_eq!(rows[0].speedup, Some(1.0));
        // Latency measured on another processor, or on one not recorded,
        // gives no ratio.
        assert_eq!((rows[2].speedup, rows[3].speedup), (None, None));
        assert_eq!(rows[2].compression, 10.0);
        assert_eq!(rows[1].ttft_p50_ms, 200.0);
        assert_eq!((rows[0].adapter_ms, rows[1].adapter_ms), (None, Some(60.0)));
        let table = markdown(&rows);
        assert!(table.contains("| compiled | 4 |"), "{table}");
        assert!(table.contains("| 50.0 (2) |"), "{table}");
        assert!(table.contains("| 400 | 400 | 2.50x |"), "{table}");
        assert!(table.contains("| 400 | 400 | – |"), "{table}");
    }
}
