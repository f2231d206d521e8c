//! Run with: scripts/fuzz.sh gpt4tools_scorer 600 (docs/reliability.md)
//!
//! The GPT4Tools scorer on any ground truth and prediction (the input split
//! at its first NUL byte): never a panic, every score finite and in [0, 1],
//! and success only with full thought and action accuracy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loragen_gpt4tools::score_item;

fuzz_target!(|data: &[u8]| {
    let (gt, pred) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[..0]),
    };
    let (gt, pred) = (String::from_utf8_lossy(gt), String::from_utf8_lossy(pred));
    let s = score_item(&gt, &pred);
    for v in [s.thought_acc, s.action_acc, s.action_args_acc, s.acc, s.iou] {
        assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{s:?}");
    }
    if s.acc == 1.0 {
        assert!(
            s.thought_acc == 1.0 && s.action_acc == 1.0 && s.action_args_acc >= 0.5,
            "{s:?}"
        );
    }
});
