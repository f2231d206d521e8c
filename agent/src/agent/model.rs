//! What the agent loop needs from a language model.

use std::ops::ControlFlow;

use crate::error::Result;
use crate::runtime::{Completion, GenerateParams, Session};

/// A model that continues a prompt. The llama.cpp [`Session`] is the real
/// one; tests use a scripted model.
pub trait LanguageModel {
    /// Continues `prompt`, streaming text to `on_text` as it appears.
    fn complete(
        &mut self,
        prompt: &str,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion>;
}

impl LanguageModel for Session<'_> {
    fn complete(
        &mut self,
        prompt: &str,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        self.generate_streaming(prompt, params, on_text)
    }
}
