//! A session: one llama.cpp context, its KV cache and the token history
//! that cache holds.

use std::ops::ControlFlow;
use std::time::Instant;

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use super::model::{Adapter, Model};
use super::params::{GenerateParams, SessionParams};
use super::stats::Stats;
use super::{sampler::Chooser, stop::StopScanner};
use crate::error::{Error, LlamaFailure, Result};

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// The model emitted an end-of-generation token.
    EndOfGeneration,
    /// A stop string was produced; it is not part of the text.
    Stop(String),
    MaxTokens,
    /// The context window is full.
    ContextFull,
    /// The caller's callback asked to stop.
    Interrupted,
}

/// The result of one generation call.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub tokens: Vec<LlamaToken>,
    pub finish: FinishReason,
    pub stats: Stats,
}

/// A context with a KV cache. `cached` mirrors the tokens at positions
/// `0..cached.len()` of sequence 0, which is what makes prefix reuse safe.
pub struct Session<'m> {
    model: &'m Model,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    params: SessionParams,
    cached: Vec<LlamaToken>,
    /// Sequences of the KV cache (see `names`).
    sequences: u32,
    /// The adapter attached now, by id, with its scale.
    adapter: Option<(u64, f32)>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("params", &self.params)
            .field("cached", &self.cached.len())
            .finish()
    }
}

/// Hidden states collected during a prefill, one per requested position.
type Collected = Vec<(usize, Vec<f32>)>;

impl<'m> Session<'m> {
    pub(crate) fn new(model: &'m Model, params: SessionParams) -> Result<Self> {
        params.validate()?;
        let n_ctx = params.n_ctx.min(model.n_ctx_train().max(16));
        let n_batch = params.n_batch.min(n_ctx);
        let threads = i32::try_from(params.n_threads).unwrap_or(1);
        let mut ctx_params = LlamaContextParams::default()
            .with_n_ctx(std::num::NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch.min(512))
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        if params.embeddings {
            ctx_params = ctx_params
                .with_embeddings(true)
                .with_pooling_type(LlamaPoolingType::None);
        }
        // Whole-name scoring puts candidates on sequences of their own; a
        // unified cache keeps the whole context for each. llama.cpp keeps
        // an output row per sequence, and no more rows than the batch.
        let sequences = super::names::NAME_SEQUENCES.min(n_batch);
        ctx_params = ctx_params.with_n_seq_max(sequences).with_kv_unified(true);
        let ctx = model
            .inner
            .new_context(super::backend()?, ctx_params)
            .map_err(|e| Error::llama("context creation", e))?;
        let batch = LlamaBatch::new(n_batch as usize, 1);
        Ok(Session {
            model,
            ctx,
            batch,
            params: SessionParams {
                n_ctx,
                n_batch,
                ..params
            },
            cached: Vec::new(),
            sequences,
            adapter: None,
        })
    }

    pub fn model(&self) -> &'m Model {
        self.model
    }

    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Number of tokens whose KV state is currently cached.
    pub fn cached_tokens(&self) -> usize {
        self.cached.len()
    }

    /// Forgets the KV cache.
    pub fn clear_cache(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }

    /// Applies a LoRA adapter with `scale`, in place of any other. The KV
    /// cache is cleared because states computed without the adapter no
    /// longer match; asked for the adapter and scale already attached, it
    /// changes nothing and the cache stays.
    pub fn set_adapter(&mut self, adapter: &mut Adapter, scale: f32) -> Result<()> {
        if self.adapter == Some((adapter.id, scale)) {
            return Ok(());
        }
        self.ctx
            .lora_adapter_set(&mut adapter.inner, scale)
            .map_err(|e| Error::llama("adapter attach", e))?;
        self.adapter = Some((adapter.id, scale));
        self.clear_cache();
        Ok(())
    }

    /// Detaches every adapter again.
    pub fn remove_adapter(&mut self, adapter: &mut Adapter) -> Result<()> {
        self.ctx
            .lora_adapter_remove(&mut adapter.inner)
            .map_err(|e| Error::llama("adapter detach", e))?;
        self.adapter = None;
        self.clear_cache();
        Ok(())
    }

    /// Whether an adapter is attached.
    pub(crate) fn has_adapter(&self) -> bool {
        self.adapter.is_some()
    }

    /// Generates a completion of `prompt`.
    pub fn generate(&mut self, prompt: &str, params: &GenerateParams) -> Result<Completion> {
        self.generate_streaming(prompt, params, |_| ControlFlow::Continue(()))
    }

    /// Like [`Self::generate`], handing each new piece of text to `on_text`
    /// as soon as it can no longer turn out to be part of a stop string.
    pub fn generate_streaming(
        &mut self,
        prompt: &str,
        params: &GenerateParams,
        on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        let tokens = self.model.tokenize(prompt, params.add_bos);
        self.generate_tokens(&tokens, params, on_text)
    }

    /// Generates from an already tokenized prompt.
    pub fn generate_tokens(
        &mut self,
        prompt: &[LlamaToken],
        params: &GenerateParams,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        params.validate()?;
        let start = Instant::now();
        let mut chooser = Chooser::new(&self.model.inner, params)?;
        let (reused, _) = self.prefill(prompt, &[], Collect::Logits)?;
        let prefill_ms = ms_since(start);

        let mut stats = Stats {
            prompt_tokens: prompt.len(),
            reused_tokens: reused,
            prefill_ms,
            ..Stats::default()
        };
        let mut scanner = StopScanner::new(&params.stop);
        let mut tokens = Vec::new();
        let mut logits_index = self.batch.n_tokens() - 1;
        let anchor = params.name_choice.as_ref().map(|c| c.anchor.as_str());
        // A tool name chosen by whole-name scoring, to be forced next.
        let mut named: Option<Vec<LlamaToken>> = None;
        let decode_start = Instant::now();
        let finish = 'generation: loop {
            // The run decoded in this step, how many of its tokens were
            // sampled (the rest are forced), and the name lines open after
            // it. A forced span never ends at a name (it stops at the
            // anchor and leaves its last token to the model), nor does a
            // forced name.
            let (run, sampled, open) = match named.take() {
                Some(name) => (name, 0, None),
                None => {
                    let token = chooser.choose(&self.ctx, logits_index);
                    if tokens.is_empty() {
                        stats.ttft_ms = ms_since(start);
                    }
                    if self.model.is_end_of_generation(token) {
                        break FinishReason::EndOfGeneration;
                    }
                    let mut run = vec![token];
                    let open = params
                        .name_choice
                        .as_ref()
                        .and_then(|c| self.open_lines_after(c, &tokens, token));
                    if params.jump_forward && open.is_none() {
                        run.extend(self.forced_after(&chooser, token, anchor));
                    }
                    (run, 1, open)
                }
            };
            for (i, &t) in run.iter().enumerate() {
                if i >= sampled {
                    chooser.accept_forced(t);
                    stats.forced_tokens += 1;
                }
                tokens.push(t);
                let step = scanner.push(&self.model.token_bytes(t));
                if !step.emit.is_empty() && on_text(&step.emit).is_break() {
                    break 'generation FinishReason::Interrupted;
                }
                if let Some(stop) = step.stopped {
                    break 'generation FinishReason::Stop(stop);
                }
                if tokens.len() >= params.max_tokens {
                    break 'generation FinishReason::MaxTokens;
                }
            }
            if self.cached.len() + run.len() > self.params.n_ctx as usize {
                break FinishReason::ContextFull;
            }
            self.decode_run(&run)?;
            logits_index = run.len() as i32 - 1;
            if let Some(open) = open {
                let scoring = Instant::now();
                if let Some(choice) = &params.name_choice {
                    named = self.choose_name(choice, &open, &chooser, logits_index)?;
                }
                if named.is_some() {
                    stats.name_choices += 1;
                    stats.name_choice_ms += ms_since(scoring);
                }
            }
        };
        stats.decode_tokens = tokens.len();
        stats.decode_ms = ms_since(decode_start);
        let text = scanner.finish(&mut on_text);
        Ok(Completion {
            text,
            tokens,
            finish,
            stats,
        })
    }

    /// Final-layer hidden states (after the output norm) of `tokens` at
    /// `positions`, in the order given. Needs a session with embeddings on.
    pub fn hidden_states(
        &mut self,
        tokens: &[LlamaToken],
        positions: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        if !self.params.embeddings {
            return Err(Error::InvalidParam(
                "hidden states need a session created with embeddings on".into(),
            ));
        }
        if let Some(&bad) = positions.iter().find(|&&p| p >= tokens.len()) {
            return Err(Error::InvalidParam(format!(
                "position {bad} is outside the {} tokens",
                tokens.len()
            )));
        }
        let (_, collected) = self.prefill(tokens, positions, Collect::Hidden)?;
        pick(positions, collected, "hidden states")
    }

    /// Next-token logits after each of `positions` of `tokens` (the full
    /// vocabulary per position), in the order given. Needs a session with
    /// embeddings off.
    pub fn logits(&mut self, tokens: &[LlamaToken], positions: &[usize]) -> Result<Vec<Vec<f32>>> {
        if self.params.embeddings {
            return Err(Error::InvalidParam(
                "logits need a session created with embeddings off".into(),
            ));
        }
        if let Some(&bad) = positions.iter().find(|&&p| p >= tokens.len()) {
            return Err(Error::InvalidParam(format!(
                "position {bad} is outside the {} tokens",
                tokens.len()
            )));
        }
        let (_, collected) = self.prefill(tokens, positions, Collect::Logits)?;
        pick(positions, collected, "logits")
    }

    /// Brings the KV cache to `tokens`, recomputing only what differs from
    /// the cached history. Logits are produced for the last token; hidden
    /// states for `outputs` (whose KV therefore cannot come from the cache).
    /// Returns how many tokens were reused.
    fn prefill(
        &mut self,
        tokens: &[LlamaToken],
        outputs: &[usize],
        what: Collect,
    ) -> Result<(usize, Collected)> {
        if tokens.is_empty() {
            return Err(Error::InvalidParam("empty prompt".into()));
        }
        if tokens.len() >= self.params.n_ctx as usize {
            return Err(Error::ContextOverflow {
                tokens: tokens.len(),
                n_ctx: self.params.n_ctx,
            });
        }
        let mut reuse = if self.params.reuse_prefix {
            common_prefix(&self.cached, tokens)
        } else {
            0
        };
        // At least one token must run to produce logits.
        reuse = reuse.min(tokens.len() - 1);
        if let Some(&first) = outputs.iter().min() {
            reuse = reuse.min(first);
        }
        if reuse < self.cached.len() {
            let removed = self
                .ctx
                .kv_cache_seq_rm(0, u32::try_from(reuse).ok(), None)
                .is_ok();
            if !removed {
                // Some caches cannot drop a suffix; start over instead.
                self.ctx.clear_kv_cache();
                reuse = 0;
            }
            self.cached.truncate(reuse);
        }

        let mut collected = Vec::with_capacity(outputs.len());
        let last = tokens.len() - 1;
        let chunk = self.params.n_batch as usize;
        for (chunk_index, part) in tokens[reuse..].chunks(chunk).enumerate() {
            self.batch.clear();
            let base = reuse + chunk_index * chunk;
            for (i, &token) in part.iter().enumerate() {
                let pos = base + i;
                let wants_output = pos == last || outputs.contains(&pos);
                self.batch
                    .add(token, pos as i32, &[0], wants_output)
                    .map_err(|e| Error::llama("batch", e))?;
            }
            self.ctx
                .decode(&mut self.batch)
                .map_err(|e| Error::llama("prefill decode", e))?;
            self.cached.extend_from_slice(part);
            for (i, _) in part.iter().enumerate() {
                let pos = base + i;
                if outputs.contains(&pos) {
                    let row = match what {
                        Collect::Hidden => self
                            .ctx
                            .embeddings_ith(i as i32)
                            .map_err(|e| Error::llama("hidden states", e))?
                            .to_vec(),
                        Collect::Logits => self.ctx.get_logits_ith(i as i32).to_vec(),
                    };
                    collected.push((pos, row));
                }
            }
        }
        Ok((reuse, collected))
    }

    /// Sequences of the KV cache: 0 for the conversation, the rest for
    /// whole-name scoring.
    pub(super) fn sequences(&self) -> u32 {
        self.sequences
    }

    /// Tokens in the KV cache of sequence 0.
    pub(super) fn cached_len(&self) -> usize {
        self.cached.len()
    }

    /// The logits of output `index` of the last decode.
    pub(super) fn logits_row(&self, index: i32) -> &[f32] {
        self.ctx.get_logits_ith(index)
    }

    /// Sequence `seq` shares the conversation's first `len` cached tokens.
    pub(super) fn copy_sequence(&mut self, seq: i32, len: usize) -> Result<()> {
        self.ctx
            .copy_kv_cache_seq(0, seq, None, u32::try_from(len).ok())
            .map_err(|e| Error::InvalidParam(format!("cannot share the cache: {e}")))
    }

    /// Forgets everything of sequence `seq` (the conversation's cells stay
    /// for sequence 0).
    pub(super) fn drop_sequence(&mut self, seq: i32) -> Result<()> {
        let seq =
            u32::try_from(seq).map_err(|_| Error::InvalidParam(format!("no sequence {seq}")))?;
        self.ctx
            .clear_kv_cache_seq(Some(seq), None, None)
            .map_err(|e| Error::InvalidParam(format!("cannot drop sequence {seq}: {e}")))?;
        Ok(())
    }

    /// Decodes each of `runs` on its sequence of `seqs`, from position
    /// `start` on, in one batch with logits for every token but each run's
    /// last; returns the batch index of each run's first token.
    pub(super) fn decode_candidates(
        &mut self,
        runs: &[Vec<LlamaToken>],
        seqs: &[i32],
        start: usize,
    ) -> Result<Vec<i32>> {
        self.batch.clear();
        let mut offsets = Vec::with_capacity(runs.len());
        for (run, &seq) in runs.iter().zip(seqs) {
            offsets.push(self.batch.n_tokens());
            for (j, &token) in run.iter().enumerate() {
                self.batch
                    .add(token, (start + j) as i32, &[seq], j + 1 < run.len())
                    .map_err(|e| Error::llama("batch", e))?;
            }
        }
        self.ctx
            .decode(&mut self.batch)
            .map_err(|e| Error::llama("name scoring decode", e))?;
        Ok(offsets)
    }

    /// Decodes `run` (a sampled token and any forced after it) in one
    /// batch, with logits for its last token only.
    fn decode_run(&mut self, run: &[LlamaToken]) -> Result<()> {
        self.batch.clear();
        let last = run.len().saturating_sub(1);
        for (i, &token) in run.iter().enumerate() {
            self.batch
                .add(token, (self.cached.len() + i) as i32, &[0], i == last)
                .map_err(|e| Error::llama("batch", e))?;
        }
        self.ctx
            .decode(&mut self.batch)
            .map_err(|e| Error::llama("decode", e))?;
        self.cached.extend_from_slice(run);
        Ok(())
    }

    /// Jump-forward: the tokens the grammar forces after `previous`, which
    /// the chooser has just accepted. The forced text is tokenized on its
    /// own; it is used only if the previous token's text followed by it
    /// tokenizes as that token followed by those tokens (so the boundary is
    /// where the model would have put it), and its last token is left for
    /// the model, since it may merge with what follows. Spans shorter than
    /// two tokens are not worth a batch. A span that passes a whole-name
    /// `anchor` ends with it, so that the names are scored from the anchor
    /// on, not from a prefix that some names share.
    fn forced_after(
        &self,
        chooser: &Chooser,
        previous: LlamaToken,
        anchor: Option<&str>,
    ) -> Vec<LlamaToken> {
        let mut text = chooser.forced_text(
            self.model.byte_tokens(),
            self.model.inner.vocab().eos(),
            MAX_FORCED_CHARS,
        );
        let Ok(before) = String::from_utf8(self.model.token_bytes(previous)) else {
            return Vec::new();
        };
        if let Some(anchor) = anchor {
            let joint = format!("{before}{text}");
            if let Some(at) = joint.find(anchor) {
                let end = at + anchor.len();
                if end > before.len() {
                    text.truncate(end - before.len());
                }
            }
        }
        if text.len() < 2 {
            return Vec::new();
        }
        let mut forced = self.model.tokenize(&text, false);
        let joint = self.model.tokenize(&format!("{before}{text}"), false);
        if joint.first() != Some(&previous) || joint[1..] != forced[..] {
            return Vec::new();
        }
        forced.pop();
        if forced.len() < 2 {
            return Vec::new();
        }
        forced
    }
}

/// Longest span jump-forward decoding forces at once.
const MAX_FORCED_CHARS: usize = 256;

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// What `prefill` keeps for the requested positions.
#[derive(Debug, Clone, Copy)]
enum Collect {
    Hidden,
    Logits,
}

/// The collected rows in the order of `positions`.
fn pick(positions: &[usize], collected: Collected, what: &'static str) -> Result<Vec<Vec<f32>>> {
    positions
        .iter()
        .map(|p| {
            collected
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, h)| h.clone())
                .ok_or_else(|| Error::llama(what, LlamaFailure::MissingOutput(*p)))
        })
        .collect()
}
