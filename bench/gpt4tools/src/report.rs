//! The benchmark report: one row per mode, shaped like Table 3 of the
//! LoRA-Gen paper, with prompt compression and latency against the
//! `in-context` baseline.

use serde::Serialize;

use crate::metrics::{Aggregate, ItemScores};
use crate::record::Record;
use crate::stats::mean;
use loragen_protocol::Mode;

/// The figures of one mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeRow {
    pub mode: Mode,
    pub scores: Aggregate,
    pub mean_prompt_tokens: f64,
    /// Prompt tokens actually computed (the rest came from the KV cache).
    pub mean_prefilled_tokens: f64,
    /// Mean prompt tokens of `in-context` over this mode's.
    pub compression: Option<f64>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// p50 latency of `in-context` over this mode's.
    pub speedup: Option<f64>,
    pub decode_tok_per_s: f64,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rows: Vec<ModeRow>,
}

/// The `q`-quantile (nearest rank) of unsorted values.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[rank(v.len(), q)]
}

/// The index of the `q`-quantile in a sorted list of `n > 0` values.
pub(crate) fn rank(n: usize, q: f64) -> usize {
    ((n - 1) as f64 * q).round() as usize
}

impl Report {
    /// One row per mode in `modes` that has records.
    pub fn from_records(records: &[Record], modes: &[Mode]) -> Self {
        let mut rows: Vec<ModeRow> = modes
            .iter()
            .filter_map(|&mode| {
                let rs: Vec<&Record> = records.iter().filter(|r| r.mode == mode).collect();
                if rs.is_empty() {
                    return None;
                }
                let scores: Vec<ItemScores> = rs.iter().map(|r| r.scores).collect();
                let latency: Vec<f64> = rs.iter().map(|r| r.latency_ms()).collect();
                let decode_tokens: usize = rs.iter().map(|r| r.decode_tokens).sum();
                let decode_ms: f64 = rs.iter().map(|r| r.decode_ms).sum();
                Some(ModeRow {
                    mode,
                    scores: Aggregate::of(&scores),
                    mean_prompt_tokens: mean(rs.iter().map(|r| r.prompt_tokens as f64)),
                    mean_prefilled_tokens: mean(
                        rs.iter()
                            .map(|r| r.prompt_tokens.saturating_sub(r.reused_tokens) as f64),
                    ),
                    compression: None,
                    p50_ms: quantile(&latency, 0.5),
                    p95_ms: quantile(&latency, 0.95),
                    speedup: None,
                    decode_tok_per_s: if decode_ms > 0.0 {
                        decode_tokens as f64 * 1e3 / decode_ms
                    } else {
                        0.0
                    },
                    peak_rss_mib: rs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
                })
            })
            .collect();
        if let Some(base) = rows.iter().find(|r| r.mode == Mode::InContext).cloned() {
            for row in &mut rows {
                row.compression = Some(base.mean_prompt_tokens / row.mean_prompt_tokens.max(1.0));
                row.speedup = Some(base.p50_ms / row.p50_ms.max(1e-9));
            }
        }
        Report { rows }
    }

    /// The table as GitHub markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| mode | items | SR_t | SR_act | SR_args | SR | IoU | Avg | prompt tok | computed tok | compression | p50 ms | p95 ms | speed-up | decode tok/s | peak RSS MiB |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        let ratio = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{v:.2}x"));
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {} | {:.1} | {:.0} |\n",
                r.mode,
                r.scores.markdown_cells(),
                r.mean_prompt_tokens,
                r.mean_prefilled_tokens,
                ratio(r.compression),
                r.p50_ms,
                r.p95_ms,
                ratio(r.speedup),
                r.decode_tok_per_s,
                r.peak_rss_mib
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(mode: Mode, acc: f64, tokens: usize, ms: f64) -> Record {
        Record {
            id: format!("{acc}{ms}"),
            mode,
            prediction: String::new(),
            scores: ItemScores {
                thought_acc: 1.0,
                action_acc: acc,
                action_args_acc: acc,
                acc,
                iou: acc,
            },
            prompt_tokens: tokens,
            reused_tokens: 0,
            prefill_ms: ms,
            decode_ms: 0.0,
            decode_tokens: 0,
            peak_rss_mib: 10.0,
            adapter_ms: None,
            selector_ms: None,
            none_margin: None,
        }
    }

    #[test]
    fn rows_compare_against_in_context() {
        let records = vec![
            rec(Mode::InContext, 1.0, 600, 2000.0),
            rec(Mode::InContext, 0.0, 600, 4000.0),
            rec(Mode::Compiled, 1.0, 100, 500.0),
        ];
        let report = Report::from_records(&records, &Mode::ALL);
        assert_eq!(report.rows.len(), 2);
        let compiled = &report.rows[1];
        assert!((compiled.compression.unwrap() - 6.0).abs() < 1e-9);
        assert!(
            (compiled.speedup.unwrap() - 8.0).abs() < 1e-9,
            "p50 of in-context is 4000 by nearest rank"
        );
        assert!((report.rows[0].scores.sr - 50.0).abs() < 1e-9);
        assert!(report.markdown().contains("| compiled | 1 |"));
    }
}
