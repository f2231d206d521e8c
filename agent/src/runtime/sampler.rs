//! Choosing the next token from [`GenerateParams`]: greedy or temperature
//! sampling, optionally constrained by a GBNF grammar.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use super::params::{GenerateParams, Sampling};
use crate::error::{Error, Result};

pub(crate) struct Chooser {
    base: LlamaSampler,
    grammar: Option<LlamaSampler>,
    greedy: bool,
}

/// Candidates a greedy constrained step tries, most likely first, before
/// it falls back to checking the whole vocabulary.
const GREEDY_SHORTLIST: usize = 4096;

impl Chooser {
    pub fn new(model: &LlamaModel, params: &GenerateParams) -> Result<Self> {
        let grammar = match &params.grammar {
            Some(g) => {
                Some(
                    LlamaSampler::grammar(model, g, "root").map_err(|e| Error::Grammar {
                        detail: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        let base = match params.sampling {
            Sampling::Greedy => LlamaSampler::greedy(),
            Sampling::Random {
                temperature,
                top_p,
                seed,
            } => LlamaSampler::chain_simple([
                LlamaSampler::top_p(top_p, 1),
                LlamaSampler::temp(temperature),
                LlamaSampler::dist(seed),
            ]),
        };
        let greedy = matches!(params.sampling, Sampling::Greedy);
        Ok(Chooser {
            base,
            grammar,
            greedy,
        })
    }

    /// Picks the token for output `idx` of the last decode.
    ///
    /// Checking a grammar against the whole vocabulary costs about 100 ms
    /// per token at Gemma's 262k entries, so the unconstrained choice is
    /// tried first and kept when the grammar allows it (as llama.cpp's own
    /// common sampler does); only a rejected choice is redone under the
    /// grammar.
    pub fn choose(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> LlamaToken {
        let Some(grammar) = self.grammar.as_mut() else {
            return self.base.sample(ctx, idx);
        };
        let mut all = ctx.token_data_array_ith(idx);
        let token = pick(&mut all, &mut self.base);
        let allowed = allows(grammar, token);
        let token = if allowed {
            token
        } else {
            // Greedy under a grammar is the most likely allowed token, so
            // trying candidates in order of logit finds it exactly; a
            // shortlist spares checking all 262k entries at each step.
            let shortlisted = if self.greedy {
                first_allowed(&all.data, grammar, GREEDY_SHORTLIST)
            } else {
                None
            };
            match shortlisted {
                Some(token) => token,
                None => {
                    let mut all = ctx.token_data_array_ith(idx);
                    all.apply_sampler(grammar);
                    pick(&mut all, &mut self.base)
                }
            }
        };
        grammar.accept(token);
        self.base.accept(token);
        token
    }
}

impl Chooser {
    /// The text the grammar, in its current state, admits as the only
    /// continuation, up to `max_chars` characters: while exactly one byte
    /// value is allowed next, it is ASCII, and the grammar cannot end. Each
    /// byte is probed with its one-byte token; a possible multi-byte
    /// character (an allowed lead byte) ends the span. Without a grammar,
    /// nothing is forced.
    pub fn forced_text(
        &self,
        byte_tokens: &[Option<LlamaToken>],
        eos: LlamaToken,
        max_chars: usize,
    ) -> String {
        let Some(grammar) = self.grammar.as_ref() else {
            return String::new();
        };
        let mut probe = grammar.clone();
        let mut text = String::new();
        while text.len() < max_chars && !allows(&mut probe, eos) {
            let mut allowed = byte_tokens
                .iter()
                .enumerate()
                .filter_map(|(byte, t)| t.map(|t| (byte, t)))
                .filter(|&(_, t)| allows(&mut probe, t));
            match (allowed.next(), allowed.next()) {
                (Some((byte, token)), None) if byte < 0x80 => {
                    probe.accept(token);
                    text.push(char::from(byte as u8));
                }
                _ => break,
            }
        }
        text
    }

    /// Whether the grammar, in its current state, admits `tokens` in turn
    /// (checked on a copy; without a grammar, anything is admitted).
    pub fn admits(&self, tokens: &[LlamaToken]) -> bool {
        let Some(grammar) = self.grammar.as_ref() else {
            return true;
        };
        let mut probe = grammar.clone();
        tokens.iter().all(|&t| {
            let allowed = allows(&mut probe, t);
            if allowed {
                probe.accept(t);
            }
            allowed
        })
    }

    /// Takes a token that was not chosen but forced (jump-forward): the
    /// grammar and the base sampler move past it as if it had been.
    pub fn accept_forced(&mut self, token: LlamaToken) {
        if let Some(grammar) = self.grammar.as_mut() {
            grammar.accept(token);
        }
        self.base.accept(token);
    }
}

/// The most likely of the `n` most likely candidates that `grammar`
/// allows, checked one at a time, or `None` if none is.
fn first_allowed(
    candidates: &[LlamaTokenData],
    grammar: &mut LlamaSampler,
    n: usize,
) -> Option<LlamaToken> {
    let mut order: Vec<(f32, LlamaToken)> =
        candidates.iter().map(|d| (d.logit(), d.id())).collect();
    let n = n.min(order.len());
    if n == 0 {
        return None;
    }
    let by_logit = |a: &(f32, LlamaToken), b: &(f32, LlamaToken)| {
        b.0.total_cmp(&a.0).then(a.1 .0.cmp(&b.1 .0))
    };
    order.select_nth_unstable_by(n - 1, by_logit);
    order.truncate(n);
    order.sort_unstable_by(by_logit);
    order
        .into_iter()
        .map(|(_, token)| token)
        .find(|&token| allows(grammar, token))
}

/// Whether `grammar`, in its current state, allows `token` next.
fn allows(grammar: &mut LlamaSampler, token: LlamaToken) -> bool {
    let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 1.0)], false);
    single.apply_sampler(grammar);
    single.data.first().is_some_and(|d| d.logit().is_finite())
}

/// Whether `grammar` admits exactly `tokens`: each token allowed in turn,
/// and then the end of generation. A disallowed token is never accepted
/// (llama.cpp aborts on that), so any grammar and tokens are safe here.
pub(crate) fn grammar_admits(
    model: &LlamaModel,
    grammar: &str,
    tokens: &[LlamaToken],
) -> Result<bool> {
    let mut sampler =
        LlamaSampler::grammar(model, grammar, "root").map_err(|e| Error::Grammar {
            detail: e.to_string(),
        })?;
    for &token in tokens {
        if !allows(&mut sampler, token) {
            return Ok(false);
        }
        sampler.accept(token);
    }
    Ok(allows(&mut sampler, model.vocab().eos()))
}

/// Applies the base sampler to candidates and returns its choice, or the
/// most likely candidate if it selected none.
fn pick(candidates: &mut LlamaTokenDataArray, base: &mut LlamaSampler) -> LlamaToken {
    candidates.apply_sampler(base);
    candidates.selected_token().unwrap_or_else(|| {
        candidates
            .data
            .iter()
            .max_by(|a, b| a.logit().total_cmp(&b.logit()))
            .map_or(LlamaToken(0), LlamaTokenData::id)
    })
}
