//! Timings of one generation call.

use serde::Serialize;

/// What one call cost. `prompt_tokens` counts the whole prompt;
/// `reused_tokens` of them came from the KV cache and were not recomputed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    pub prompt_tokens: usize,
    pub reused_tokens: usize,
    pub prefill_ms: f64,
    pub decode_tokens: usize,
    /// Of the decode tokens, those forced by jump-forward decoding.
    pub forced_tokens: usize,
    pub decode_ms: f64,
    /// From the start of the call to the first sampled token.
    pub ttft_ms: f64,
    /// Tool names chosen by whole-name scoring, and the time that scoring
    /// took (part of `decode_ms`).
    pub name_choices: usize,
    pub name_choice_ms: f64,
}

impl Stats {
    /// Tokens actually run through the model during prefill.
    pub fn prefilled_tokens(&self) -> usize {
        self.prompt_tokens - self.reused_tokens
    }

    /// Model time for the call: prefill plus decode.
    pub fn latency_ms(&self) -> f64 {
        self.prefill_ms + self.decode_ms
    }

    pub fn prefill_tok_per_s(&self) -> f64 {
        rate(self.prefilled_tokens(), self.prefill_ms)
    }

    pub fn decode_tok_per_s(&self) -> f64 {
        rate(self.decode_tokens, self.decode_ms)
    }
}

fn rate(tokens: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        tokens as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "prompt {} tok ({} reused) | prefill {:.1} ms ({:.0} tok/s) | decode {} tok in {:.1} ms ({:.1} tok/s) | ttft {:.1} ms",
            self.prompt_tokens,
            self.reused_tokens,
            self.prefill_ms,
            self.prefill_tok_per_s(),
            self.decode_tokens,
            self.decode_ms,
            self.decode_tok_per_s(),
            self.ttft_ms
        )
    }
}
