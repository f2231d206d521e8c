//! A loaded GGUF model and the LoRA adapters attached to it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use super::load_log::{detail, with_error_lines};
use super::params::SessionParams;
use super::session::Session;
use crate::error::{Error, Result};
use crate::store::check_gguf;

/// A model loaded into llama.cpp. Sessions borrow it, so many sessions can
/// share one copy of the weights.
pub struct Model {
    pub(crate) inner: LlamaModel,
    path: PathBuf,
    /// For each byte value, a token whose text is exactly that byte.
    byte_tokens: OnceLock<Vec<Option<LlamaToken>>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("arch", &self.arch())
            .finish()
    }
}

/// A LoRA adapter loaded for one model. llama.cpp frees it with the model.
pub struct Adapter {
    pub(crate) inner: LlamaLoraAdapter,
    path: PathBuf,
    /// Unique in the process: a session knows by it which adapter it has
    /// attached, and keeps its KV cache when asked for the same one again.
    pub(crate) id: u64,
}

/// The id of the next adapter loaded.
static NEXT_ADAPTER_ID: AtomicU64 = AtomicU64::new(0);

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapter").field("path", &self.path).finish()
    }
}

impl Adapter {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Model {
    /// Loads a GGUF file on the CPU.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        check_gguf(path)?;
        let backend = super::backend()?;
        let (loaded, log) = with_error_lines(|| {
            LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
        });
        let inner = loaded.map_err(|e| Error::Load {
            path: path.to_path_buf(),
            detail: detail(&log, e),
        })?;
        Ok(Model {
            inner,
            path: path.to_path_buf(),
            byte_tokens: OnceLock::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF `general.architecture`, e.g. `gemma3` or `qwen2`.
    pub fn arch(&self) -> String {
        self.inner
            .meta_val_str("general.architecture")
            .unwrap_or_default()
    }

    /// Width of the hidden states.
    pub fn n_embd(&self) -> usize {
        usize::try_from(self.inner.n_embd()).unwrap_or(0)
    }

    pub fn n_layer(&self) -> usize {
        self.inner.n_layer() as usize
    }

    pub fn n_vocab(&self) -> usize {
        usize::try_from(self.inner.n_vocab()).unwrap_or(0)
    }

    pub fn n_ctx_train(&self) -> u32 {
        self.inner.n_ctx_train()
    }

    /// Tokenizes with the model's own vocabulary. Special-token text such
    /// as `<start_of_turn>` is parsed as the special token; BOS is added only
    /// when `add_bos` is set and the vocabulary wants one.
    pub fn tokenize(&self, text: &str, add_bos: bool) -> Vec<LlamaToken> {
        let vocab = self.inner.vocab();
        let mut tokens = vocab.tokenize(text.as_bytes(), false, true);
        if add_bos && vocab.should_add_bos() && tokens.first() != Some(&vocab.bos()) {
            tokens.insert(0, vocab.bos());
        }
        tokens
    }

    /// Raw bytes of one token (may be part of a UTF-8 sequence).
    pub fn token_bytes(&self, token: LlamaToken) -> Vec<u8> {
        self.inner.vocab().token_to_piece(token, false, None)
    }

    /// Text of a token sequence, with invalid UTF-8 replaced.
    pub fn detokenize(&self, tokens: &[LlamaToken]) -> String {
        let bytes: Vec<u8> = tokens.iter().flat_map(|&t| self.token_bytes(t)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn is_end_of_generation(&self, token: LlamaToken) -> bool {
        self.inner.vocab().is_eog(token)
    }

    /// Whether the GBNF `grammar` (root rule `root`) admits `text` whole,
    /// checked by llama.cpp's own grammar engine on this model's
    /// tokenization of it: what constrained decoding could produce.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> loragen_agent::Result<()> {
    /// let model = loragen_agent::runtime::Model::load("edge.gguf")?;
    /// assert!(model.grammar_admits(r#"root ::= "a" [0-9]{1,3}"#, "a42")?);
    /// assert!(!model.grammar_admits(r#"root ::= "a" [0-9]{1,3}"#, "a 42")?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn grammar_admits(&self, grammar: &str, text: &str) -> Result<bool> {
        super::sampler::grammar_admits(&self.inner, grammar, &self.tokenize(text, false))
    }

    /// For each byte value, a token whose text is exactly that byte (the
    /// ASCII characters and the vocabulary's byte-fallback tokens), found
    /// by one pass over the vocabulary on first use. Jump-forward decoding
    /// probes the grammar with them.
    pub(crate) fn byte_tokens(&self) -> &[Option<LlamaToken>] {
        self.byte_tokens.get_or_init(|| {
            let mut table = vec![None; 256];
            for id in 0..self.inner.n_vocab() {
                let token = LlamaToken(id);
                if let [byte] = self.token_bytes(token)[..] {
                    table[usize::from(byte)].get_or_insert(token);
                }
            }
            table
        })
    }

    /// Loads a GGUF LoRA adapter made for this model. It stays in memory
    /// until the model is dropped (see [`super::ADAPTERS_PER_MODEL_LOAD`]).
    pub fn load_adapter(&mut self, path: impl AsRef<Path>) -> Result<Adapter> {
        let path = path.as_ref();
        check_gguf(path)?;
        let (loaded, log) = with_error_lines(|| self.inner.lora_adapter_init(path));
        let inner = loaded.map_err(|e| Error::Load {
            path: path.to_path_buf(),
            detail: format!("LoRA adapter: {}", detail(&log, e)),
        })?;
        Ok(Adapter {
            inner,
            path: path.to_path_buf(),
            id: NEXT_ADAPTER_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Opens a session: a context with its own KV cache.
    pub fn session(&self, params: SessionParams) -> Result<Session<'_>> {
        Session::new(self, params)
    }
}
