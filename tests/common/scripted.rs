//! A scripted mock model for the agent loop's tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::VecDeque;
use std::ops::ControlFlow;

use loragen::agent::agent::LanguageModel;
use loragen::agent::runtime::{Completion, FinishReason, GenerateParams, Stats};

/// Replies with a fixed script, honouring stop strings, and records prompts.
pub struct Scripted {
    pub replies: VecDeque<String>,
    pub prompts: Vec<String>,
}

impl Scripted {
    pub fn new(replies: &[&str]) -> Self {
        Scripted {
            replies: replies.iter().map(|r| r.to_string()).collect(),
            prompts: Vec::new(),
        }
    }
}

impl LanguageModel for Scripted {
    fn complete(
        &mut self,
        prompt: &str,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> loragen::agent::Result<Completion> {
        self.prompts.push(prompt.to_owned());
        let mut text = self.replies.pop_front().expect("script ran out of replies");
        let mut finish = FinishReason::EndOfGeneration;
        if let Some((at, stop)) = params
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
            .min()
        {
            finish = FinishReason::Stop(stop.clone());
            text.truncate(at);
        }
        let _ = on_text(&text);
        Ok(Completion {
            text,
            tokens: Vec::new(),
            finish,
            stats: Stats::default(),
        })
    }
}
