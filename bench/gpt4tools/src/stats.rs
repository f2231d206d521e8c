//! `data stats`: what a GPT4Tools file holds: items per called tool, the
//! share of tool-free requests, tools per prompt and token lengths.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dataset::Item;
use crate::extract::Extracted;
use loragen_protocol::react::OBSERVATION;

/// The arithmetic mean of `xs`, or 0 when there are none: every table in
/// the project prints an empty column as 0 rather than failing.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::stats::mean;
///
/// assert_eq!(mean([1.0, 2.0, 6.0]), 3.0);
/// assert_eq!(mean(Vec::new()), 0.0);
/// ```
pub fn mean(xs: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = xs
        .into_iter()
        .fold((0.0, 0usize), |(sum, n), x| (sum + x, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Summary of a distribution of token counts.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Lengths {
    pub min: usize,
    pub mean: f64,
    pub p50: usize,
    pub p95: usize,
    pub max: usize,
}

impl Lengths {
    pub fn of(mut xs: Vec<usize>) -> Self {
        if xs.is_empty() {
            return Lengths::default();
        }
        xs.sort_unstable();
        let at = |q: f64| xs[crate::report::rank(xs.len(), q)];
        Lengths {
            min: xs[0],
            mean: mean(xs.iter().map(|&x| x as f64)),
            p50: at(0.5),
            p95: at(0.95),
            max: xs[xs.len() - 1],
        }
    }
}

/// What the output of an item is.
pub const NEGATIVE: &str = "(no tool: general request)";
pub const FINAL_ANSWER: &str = "(answer after a tool result)";

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub items: usize,
    /// Items per called tool, plus the two tool-free kinds.
    pub per_output: BTreeMap<String, usize>,
    pub negative_share: f64,
    pub with_image_turn: usize,
    pub with_partial_trace: usize,
    /// Items per number of tools listed in the system part.
    pub tools_per_prompt: BTreeMap<usize, usize>,
    pub system_tokens: Lengths,
    pub rest_tokens: Lengths,
    pub output_tokens: Lengths,
}

/// Computes the stats; `count_tokens` measures a text in model tokens.
pub fn stats(items: &[Item], count_tokens: &dyn Fn(&str) -> usize) -> Stats {
    let mut s = Stats {
        items: items.len(),
        ..Stats::default()
    };
    let (mut system, mut rest, mut output) = (Vec::new(), Vec::new(), Vec::new());
    let observation = format!("\n{OBSERVATION} ");
    for item in items {
        let has_trace = item.rest().contains(&observation);
        let key = match Extracted::from_text(&item.output).actions.first() {
            Some(action) => action.clone(),
            None if has_trace => FINAL_ANSWER.to_owned(),
            None => NEGATIVE.to_owned(),
        };
        *s.per_output.entry(key).or_default() += 1;
        s.with_image_turn += usize::from(item.rest().contains("Provide an image named"));
        s.with_partial_trace += usize::from(has_trace);
        *s.tools_per_prompt
            .entry(item.listed_tools().len())
            .or_default() += 1;
        system.push(count_tokens(item.system_part()));
        rest.push(count_tokens(item.rest()));
        output.push(count_tokens(&item.output));
    }
    s.negative_share =
        s.per_output.get(NEGATIVE).copied().unwrap_or(0) as f64 / items.len().max(1) as f64;
    s.system_tokens = Lengths::of(system);
    s.rest_tokens = Lengths::of(rest);
    s.output_tokens = Lengths::of(output);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_list() {
        let l = Lengths::of((1..=100).collect());
        assert_eq!((l.min, l.p50, l.p95, l.max), (1, 51, 95, 100));
        assert!((l.mean - 50.5).abs() < 1e-12);
    }
}
