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
}

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
        Ok(Chooser { base, grammar })
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
        let logit = all
            .data
            .iter()
            .find(|d| d.id() == token)
            .map_or(0.0, LlamaTokenData::logit);
        let mut single =
            LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, logit, 1.0)], false);
        single.apply_sampler(grammar);
        let allowed = single.data.first().is_some_and(|d| d.logit().is_finite());
        let token = if allowed {
            token
        } else {
            let mut all = ctx.token_data_array_ith(idx);
            all.apply_sampler(grammar);
            pick(&mut all, &mut self.base)
        };
        grammar.accept(token);
        self.base.accept(token);
        token
    }
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
