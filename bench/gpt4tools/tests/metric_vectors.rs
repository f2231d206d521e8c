//! The scorer against 27 cases scored by the reference GPT4Tools evaluator:
//! 20 ordinary ones and 7 edge cases of its rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_gpt4tools::{score_item, Aggregate, ItemScores};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
    aggregate_mean: ItemScores,
}

#[derive(Deserialize)]
struct EdgeCases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    gt_output: String,
    pred_output: String,
    expected: ItemScores,
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6
}

fn assert_scores(label: &str, got: &ItemScores, want: &ItemScores) {
    let fields = [
        ("thought_acc", got.thought_acc, want.thought_acc),
        ("action_acc", got.action_acc, want.action_acc),
        ("action_args_acc", got.action_args_acc, want.action_args_acc),
        ("acc", got.acc, want.acc),
        ("iou", got.iou, want.iou),
    ];
    for (name, g, w) in fields {
        assert!(close(g, w), "{label}: {name} is {g}, reference {w}");
    }
}

#[test]
fn every_reference_case_and_the_aggregate_match() {
    let v: Vectors = serde_json::from_str(include_str!("fixtures/metric_vectors.json")).unwrap();
    assert_eq!(v.cases.len(), 20);
    let scores: Vec<ItemScores> = v
        .cases
        .iter()
        .map(|c| {
            let got = score_item(&c.gt_output, &c.pred_output);
            assert_scores(&c.id, &got, &c.expected);
            got
        })
        .collect();
    let agg = Aggregate::of(&scores);
    let percent = |x: f64| x / 100.0;
    let got = ItemScores {
        thought_acc: percent(agg.sr_t),
        action_acc: percent(agg.sr_act),
        action_args_acc: percent(agg.sr_args),
        acc: percent(agg.sr),
        iou: percent(agg.iou),
    };
    assert_scores("aggregate", &got, &v.aggregate_mean);
    assert!(close(
        agg.average,
        (agg.sr_t + agg.sr_act + agg.sr_args + agg.sr + agg.iou) / 5.0
    ));
}

/// Extra predicted calls, a missing `.png` in a second action, a ground
/// truth with a trailing thought, calls or extra thoughts where none is
/// expected, fewer arguments and BLEU-1 on a text argument.
#[test]
fn every_reference_edge_case_matches() {
    let v: EdgeCases =
        serde_json::from_str(include_str!("fixtures/metric_edge_cases.json")).unwrap();
    let ids: Vec<&str> = v.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "two_pred_calls",
            "multi_action_png_missing_second",
            "gt_extra_thought",
            "noaction_pred_calls",
            "noaction_pred_two_thoughts",
            "fewer_pred_args",
            "text_arg_bleu"
        ]
    );
    for c in &v.cases {
        assert_scores(
            &c.id,
            &score_item(&c.gt_output, &c.pred_output),
            &c.expected,
        );
    }
}
