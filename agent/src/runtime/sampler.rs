//! Building a llama.cpp sampler chain from [`GenerateParams`].

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;

use super::params::{GenerateParams, Sampling};
use crate::error::{Error, Result};

pub(crate) fn build(model: &LlamaModel, params: &GenerateParams) -> Result<LlamaSampler> {
    let mut chain = Vec::with_capacity(4);
    if let Some(grammar) = &params.grammar {
        // The grammar masks tokens before the choice, so it goes first.
        let sampler = LlamaSampler::grammar(model, grammar, "root").map_err(|e| Error::Grammar { detail: e.to_string() })?;
        chain.push(sampler);
    }
    match params.sampling {
        Sampling::Greedy => chain.push(LlamaSampler::greedy()),
        Sampling::Random { temperature, top_p, seed } => {
            chain.push(LlamaSampler::top_p(top_p, 1));
            chain.push(LlamaSampler::temp(temperature));
            chain.push(LlamaSampler::dist(seed));
        }
    }
    Ok(LlamaSampler::chain_simple(chain))
}
