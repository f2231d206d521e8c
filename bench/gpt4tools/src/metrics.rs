//! GPT4Tools success rates (SR_t, SR_act, SR_args, SR) and IoU, following
//! the reference evaluator's rules exactly (see `FORMAT.md` of the
//! benchmark notes): position-wise list matching, the `.png` rule, the
//! argument-count rule, the trailing-"No" rule and the no-action branch.

use serde::{Deserialize, Serialize};

use crate::bleu::bleu1;
use crate::extract::Extracted;
use crate::generic::Stage;
use crate::stats::mean;

/// Scores of one prediction, each in `[0, 1]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemScores {
    pub thought_acc: f64,
    pub action_acc: f64,
    pub action_args_acc: f64,
    /// 1 when the whole step is right, else 0.
    pub acc: f64,
    pub iou: f64,
}

/// Means over a set of items, in percent, plus the paper's Average Score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub items: usize,
    pub sr_t: f64,
    pub sr_act: f64,
    pub sr_args: f64,
    pub sr: f64,
    pub iou: f64,
    pub average: f64,
}

/// Scores the generated text `prediction` against the reference `truth`.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::score_item;
///
/// let truth = "Thought: Do I need to use a tool? Yes\nAction: Segment the Image\nAction Input: a.png\nObservation:";
/// let s = score_item(truth, truth);
/// assert_eq!((s.acc, s.iou), (1.0, 1.0));
/// ```
pub fn score_item(truth: &str, prediction: &str) -> ItemScores {
    let mut gt = Extracted::from_text(truth);
    let mut pred = Extracted::from_text(prediction);
    if gt.actions.is_empty() {
        return score_no_action(&gt, &pred);
    }
    // The reference compares only the thoughts that lead to a ground-truth
    // action: "Yes, call, observation, No, AI" has one thought, "Yes".
    gt.thoughts.truncate(gt.actions.len());
    // A correct call followed by a premature "No" is still a correct call.
    if pred.thoughts.len() == pred.actions.len() + 1
        && pred.thoughts.last().map(String::as_str) == Some("No")
    {
        pred.thoughts.pop();
    }
    let thoughts = match_exact(&gt.thoughts, &pred.thoughts);
    let actions = match_exact(&gt.actions, &pred.actions);
    let args = match_args(&gt.args, &pred.args);
    let thought_acc = mean(thoughts.iter().copied());
    let action_acc = mean(actions.iter().copied());
    let action_args_acc = mean(args.iter().copied());
    let success = thought_acc == 1.0 && action_acc == 1.0 && action_args_acc >= 0.5;
    ItemScores {
        thought_acc,
        action_acc,
        action_args_acc,
        acc: f64::from(u8::from(success)),
        iou: iou(&[
            (&thoughts, gt.thoughts.len()),
            (&actions, gt.actions.len()),
            (&args, gt.args.len()),
        ]),
    }
}

/// The stage at which `prediction` fails the GPT4Tools step `truth`, by
/// the reference evaluator's rules ([`score_item`]); `None` when it is
/// right. A message calls one tool, so the call count cannot be wrong.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::generic::Stage;
/// use loragen_gpt4tools::metrics::failed_stage;
///
/// let call = |tool: &str, input: &str| {
///     format!("Thought: Do I need to use a tool? Yes\nAction: {tool}\nAction Input: {input}")
/// };
/// let no = "Thought: Do I need to use a tool? No\nAI: done";
/// let truth = call("Get Photo Description", "image.png");
/// assert_eq!(failed_stage(&truth, &truth), None);
/// assert_eq!(failed_stage(&truth, no), Some(Stage::NoCall));
/// assert_eq!(failed_stage(&truth, &call("Segment the Image", "image.png")), Some(Stage::WrongTool));
/// let two_fields = call("Get Photo Description", "image.png, pancakes");
/// assert_eq!(failed_stage(&truth, &two_fields), Some(Stage::Arguments));
/// assert_eq!(failed_stage(no, &truth), Some(Stage::FalseCall));
/// assert_eq!(failed_stage(no, "AI: done"), Some(Stage::Other));
/// ```
pub fn failed_stage(truth: &str, prediction: &str) -> Option<Stage> {
    let scores = score_item(truth, prediction);
    if scores.acc == 1.0 {
        return None;
    }
    let (gt, pred) = (
        Extracted::from_text(truth),
        Extracted::from_text(prediction),
    );
    Some(match (gt.actions.is_empty(), pred.actions.is_empty()) {
        (true, false) => Stage::FalseCall,
        (true, true) => Stage::Other,
        (false, true) => Stage::NoCall,
        (false, false) if scores.action_acc < 1.0 => Stage::WrongTool,
        (false, false) if scores.action_args_acc < 0.5 => Stage::Arguments,
        (false, false) => Stage::Other,
    })
}

/// The branch for a ground truth that answers without a tool: only the
/// thoughts count, for IoU too; predicted calls play no part.
fn score_no_action(gt: &Extracted, pred: &Extracted) -> ItemScores {
    let thoughts = match_exact(&gt.thoughts, &pred.thoughts);
    let iou = iou(&[(&thoughts, gt.thoughts.len())]);
    let said_no = pred.thoughts.first().map(String::as_str) == Some("No");
    let thought_acc = if said_no && !pred.answers.is_empty() {
        mean(thoughts.iter().copied())
    } else {
        0.0
    };
    let right = f64::from(u8::from(thought_acc == 1.0));
    ItemScores {
        thought_acc,
        action_acc: right,
        action_args_acc: right,
        acc: right,
        iou,
    }
}

/// Position-wise equality over the longer of the two lists.
fn match_exact(gt: &[String], pred: &[String]) -> Vec<f64> {
    (0..gt.len().max(pred.len()))
        .map(|i| match (gt.get(i), pred.get(i)) {
            (Some(g), Some(p)) if g == p => 1.0,
            _ => 0.0,
        })
        .collect()
}

/// Per action: 0 on a different argument count, else the mean argument
/// score. A ground-truth image argument (`.png`) needs a `.png` in the
/// prediction; missing it zeroes the arguments of that action only.
fn match_args(gt: &[Vec<String>], pred: &[Vec<String>]) -> Vec<f64> {
    (0..gt.len().max(pred.len()))
        .map(|i| match (gt.get(i), pred.get(i)) {
            (Some(g), Some(p)) if g.len() == p.len() => action_args_score(g, p),
            _ => 0.0,
        })
        .collect()
}

fn action_args_score(gt: &[String], pred: &[String]) -> f64 {
    let mut per_arg = Vec::with_capacity(gt.len());
    for (ga, pa) in gt.iter().zip(pred) {
        if ga.contains(".png") {
            if !pa.contains(".png") {
                return 0.0;
            }
            per_arg.push(1.0);
        } else {
            per_arg.push(bleu1(ga, pa));
        }
    }
    mean(per_arg.iter().copied())
}

/// Soft intersection over union of match vectors against presence vectors,
/// each given with its ground-truth length (presence is 1 at the first
/// `len` positions). A match is never 1 past the ground truth, so the union
/// is the number of ground-truth positions: extra predictions cannot grow it.
fn iou(parts: &[(&Vec<f64>, usize)]) -> f64 {
    let mut intersection = 0.0;
    let mut union = 0.0;
    for (matches, present) in parts {
        for (i, &m) in matches.iter().enumerate() {
            let p = if i < *present { 1.0 } else { 0.0 };
            intersection += m * p;
            union += f64::max(m, p);
        }
    }
    intersection / f64::max(union, 1.0)
}

impl Aggregate {
    /// The item count and the six scores as markdown table cells:
    /// `items | SR_t | SR_act | SR_args | SR | IoU | Avg`.
    pub fn markdown_cells(&self) -> String {
        format!(
            "{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}",
            self.items, self.sr_t, self.sr_act, self.sr_args, self.sr, self.iou, self.average
        )
    }

    /// Means of the per-item scores in percent.
    pub fn of(items: &[ItemScores]) -> Self {
        let pct = |f: fn(&ItemScores) -> f64| 100.0 * mean(items.iter().map(f));
        let (sr_t, sr_act, sr_args, sr, iou) = (
            pct(|s| s.thought_acc),
            pct(|s| s.action_acc),
            pct(|s| s.action_args_acc),
            pct(|s| s.acc),
            pct(|s| s.iou),
        );
        Aggregate {
            items: items.len(),
            sr_t,
            sr_act,
            sr_args,
            sr,
            iou,
            average: (sr_t + sr_act + sr_args + sr + iou) / 5.0,
        }
    }
}
