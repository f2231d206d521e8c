//! Sentence BLEU-1 exactly as pycocoevalcap's `Bleu(n=1)` computes it for
//! one hypothesis and one reference, including its smoothing constants and
//! brevity penalty. GPT4Tools scores free-text arguments with it.

use std::collections::HashMap;

/// pycocoevalcap's smoothing: added to the numerator and the denominator.
const TINY: f64 = 1e-15;
const SMALL: f64 = 1e-9;

/// BLEU-1 of `hypothesis` against `reference`, both split on whitespace.
pub fn bleu1(reference: &str, hypothesis: &str) -> f64 {
    let mut ref_counts: HashMap<&str, usize> = HashMap::new();
    let ref_len = reference
        .split_whitespace()
        .inspect(|w| *ref_counts.entry(w).or_default() += 1)
        .count();
    let mut hyp_counts: HashMap<&str, usize> = HashMap::new();
    let hyp_len = hypothesis
        .split_whitespace()
        .inspect(|w| *hyp_counts.entry(w).or_default() += 1)
        .count();
    // Clipped unigram matches.
    let correct: usize = hyp_counts
        .iter()
        .map(|(w, &n)| n.min(ref_counts.get(w).copied().unwrap_or(0)))
        .sum();
    let precision = (correct as f64 + TINY) / (hyp_len as f64 + SMALL);
    let ratio = (hyp_len as f64 + TINY) / (ref_len as f64 + SMALL);
    if ratio < 1.0 {
        precision * (1.0 - 1.0 / ratio).exp()
    } else {
        precision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_is_one_up_to_smoothing() {
        let s = bleu1("red car", "red car");
        assert!((s - 0.999_999_999).abs() < 1e-12, "{s}");
    }

    #[test]
    fn clipping_and_brevity_penalty() {
        // "the the the" against "the cat": 1 clipped match out of 3 words.
        assert!((bleu1("the cat", "the the the") - 1.0 / 3.0).abs() < 1e-9);
        // A 2-word guess against an 8-word reference with no overlap.
        let s = bleu1("a dog running on a beach at sunset", "mountain landscape");
        assert!((s - 2.489_353_415_903_848_4e-17).abs() < 1e-25, "{s}");
        assert_eq!(bleu1("some words", ""), 0.0);
    }
}
