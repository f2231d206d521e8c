//! The compiled tool selector: which of a registry's tools a request is
//! for, scored with no definition in the edge prompt.
//!
//! Two towers map into one space. The **query tower** reads the base edge
//! model's final hidden states (no adapter, so a new generator checkpoint
//! does not make it stale): the state at the prompt's last token, where the
//! model is about to decide, and the mean over the request's tokens. The
//! **tool tower** reads the mean and the last of the frozen cloud model's
//! states over a tool's definition block, the features compiling already
//! caches. A tool's score is the scaled cosine of the two embeddings; "no
//! call" is a learned vector scored the same way.
//!
//! The tool tower runs once per tool when a registry is compiled; the query
//! tower runs on the edge at each request. Training is
//! `loragen_generator::selector`'s.

use std::ops::Range;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use loragen_protocol::artifact::{Manifest, SelectorTools};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runtime::Session;

/// The selector's shape.
///
/// # Examples
///
/// ```
/// use loragen_agent::selector::SelectorConfig;
///
/// let cfg = SelectorConfig::default().with_query_dim(640).with_tool_dim(896);
/// assert!(cfg.validate().is_ok());
/// assert!(SelectorConfig::default().with_out_dim(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectorConfig {
    /// The edge model's hidden size; the query tower reads twice as many.
    pub query_dim: usize,
    /// The cloud model's hidden size; the tool tower reads twice as many.
    pub tool_dim: usize,
    /// Each tower's hidden layer.
    pub hidden: usize,
    /// The shared embedding space.
    pub out_dim: usize,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        SelectorConfig {
            query_dim: 640,
            tool_dim: 896,
            hidden: 512,
            out_dim: 256,
        }
    }
}

impl SelectorConfig {
    #[must_use]
    pub fn with_query_dim(mut self, n: usize) -> Self {
        self.query_dim = n;
        self
    }

    #[must_use]
    pub fn with_tool_dim(mut self, n: usize) -> Self {
        self.tool_dim = n;
        self
    }

    #[must_use]
    pub fn with_hidden(mut self, n: usize) -> Self {
        self.hidden = n;
        self
    }

    #[must_use]
    pub fn with_out_dim(mut self, n: usize) -> Self {
        self.out_dim = n;
        self
    }

    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("query_dim", self.query_dim),
            ("tool_dim", self.tool_dim),
            ("hidden", self.hidden),
            ("out_dim", self.out_dim),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, n)| *n == 0) {
            return Err(Error::InvalidParam(format!(
                "selector {name} must be positive"
            )));
        }
        Ok(())
    }
}

/// Layer norm through candle's composed ops, which have a backward (the
/// fused kernel has none).
#[derive(Debug, Clone)]
pub struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    pub fn new(n: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Norm {
            weight: vb.get_with_hints(n, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(n, "bias", candle_nn::Init::Const(0.0))?,
        })
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, 1e-5)
    }
}

/// norm, linear, GELU, linear, then unit length.
#[derive(Debug, Clone)]
struct Tower {
    norm: Norm,
    hidden: Linear,
    out: Linear,
}

impl Tower {
    fn new(input: usize, cfg: &SelectorConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Tower {
            norm: Norm::new(input, vb.pp("norm"))?,
            hidden: candle_nn::linear(input, cfg.hidden, vb.pp("hidden"))?,
            out: candle_nn::linear(cfg.hidden, cfg.out_dim, vb.pp("out"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.hidden.forward(&self.norm.forward(x)?)?.gelu_erf()?;
        unit(&self.out.forward(&h)?)
    }
}

/// Rows scaled to unit length.
fn unit(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-6, f64::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}

/// The two towers, the "no call" vector and the score scale.
///
/// # Examples
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// use loragen_agent::selector::{Selector, SelectorConfig};
///
/// let cfg = SelectorConfig::default().with_query_dim(4).with_tool_dim(3).with_hidden(8).with_out_dim(5);
/// let vars = VarMap::new();
/// let selector = Selector::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu))?;
/// let queries = selector.embed_queries(&Tensor::ones((2, 8), DType::F32, &Device::Cpu)?)?;
/// let tools = selector.embed_tools(&Tensor::ones((3, 6), DType::F32, &Device::Cpu)?)?;
/// assert_eq!(selector.scores(&queries, &tools)?.dims(), &[2, 3]);
/// # Ok::<(), loragen_agent::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Selector {
    cfg: SelectorConfig,
    query: Tower,
    tool: Tower,
    none: Tensor,
    log_scale: Tensor,
}

impl Selector {
    pub fn new(cfg: &SelectorConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(Selector {
            cfg: cfg.clone(),
            query: Tower::new(2 * cfg.query_dim, cfg, vb.pp("query"))?,
            tool: Tower::new(2 * cfg.tool_dim, cfg, vb.pp("tool"))?,
            none: vb.get_with_hints(
                (1, cfg.out_dim),
                "none",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )?,
            // CLIP's start: a temperature of 1/10.
            log_scale: vb.get_with_hints(1, "log_scale", candle_nn::Init::Const(10f64.ln()))?,
        })
    }

    pub fn config(&self) -> &SelectorConfig {
        &self.cfg
    }

    /// Unit embeddings (batch, out_dim) of query inputs (batch, 2 *
    /// query_dim), from [`query_input`].
    pub fn embed_queries(&self, inputs: &Tensor) -> Result<Tensor> {
        self.query.forward(inputs)
    }

    /// Unit embeddings (tools, out_dim) of tool inputs (tools, 2 *
    /// tool_dim), from [`tool_input`].
    pub fn embed_tools(&self, inputs: &Tensor) -> Result<Tensor> {
        self.tool.forward(inputs)
    }

    /// The "no call" embedding (1, out_dim).
    pub fn none(&self) -> Result<Tensor> {
        unit(&self.none)
    }

    /// Scaled cosines (queries, tools) of unit embeddings.
    pub fn scores(&self, queries: &Tensor, tools: &Tensor) -> Result<Tensor> {
        let scale = self.log_scale.clamp(0.0, 100f64.ln())?.exp()?;
        Ok(queries.matmul(&tools.t()?)?.broadcast_mul(&scale)?)
    }
}

/// The tool tower's input for a tool's block of cloud states (tokens,
/// tool_dim): their mean and the last one, (2 * tool_dim).
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// let states = Tensor::new(&[[1f32, 2.], [3., 6.]], &Device::Cpu)?;
/// let input = loragen_agent::selector::tool_input(&states)?;
/// assert_eq!(input.to_vec1::<f32>()?, vec![2., 4., 3., 6.]);
/// # Ok::<(), loragen_agent::Error>(())
/// ```
pub fn tool_input(states: &Tensor) -> Result<Tensor> {
    let n = states.dim(0)?;
    if n == 0 {
        return Err(Error::InvalidParam("a tool block without states".into()));
    }
    let mean = states.to_dtype(DType::F32)?.mean(0)?;
    let last = states.get(n - 1)?.to_dtype(DType::F32)?;
    Ok(Tensor::cat(&[mean, last], 0)?)
}

/// The query tower's input for `prompt` (as the edge model will read it,
/// with BOS): the base model's final hidden state at the last token, then
/// the mean of its states over the tokens of `request`, a byte range of
/// `prompt` (the last token's alone when the range holds none),
/// (2 * n_embd). `session` needs hidden states on and no adapter set.
pub fn query_input(session: &mut Session, prompt: &str, request: Range<usize>) -> Result<Vec<f32>> {
    let model = session.model();
    let bounds = |at: usize| {
        prompt
            .get(..at)
            .map(|p| model.tokenize(p, true).len())
            .ok_or_else(|| {
                Error::InvalidParam(format!(
                    "the request's bound {at} is not a character boundary of the prompt"
                ))
            })
    };
    let tokens = model.tokenize(prompt, true);
    let last = tokens
        .len()
        .checked_sub(1)
        .ok_or_else(|| Error::InvalidParam("an empty prompt has no state".into()))?;
    let (start, end) = (bounds(request.start)?, bounds(request.end)?.min(last + 1));
    let mut positions: Vec<usize> = (start.min(end)..end).collect();
    if positions.is_empty() {
        positions.push(last);
    }
    positions.push(last);
    let states = session.hidden_states(&tokens, &positions)?;
    let (anchor, request) = states
        .split_last()
        .ok_or_else(|| Error::InvalidParam("no states came back".into()))?;
    let n = request.len() as f32;
    let mut input = anchor.clone();
    input.extend((0..anchor.len()).map(|j| request.iter().map(|s| s[j]).sum::<f32>() / n));
    Ok(input)
}

/// A registry compiled for the selector: its tools' embeddings in registry
/// order, ready to score queries against on the edge.
#[derive(Debug, Clone)]
pub struct CompiledTools {
    pub names: Vec<String>,
    /// (tools, out_dim), unit rows.
    pub embeddings: Tensor,
}

impl CompiledTools {
    /// The tools of a compiled artifact's selector part
    /// ([`SelectorTools::read`] has checked whose part it is), for a
    /// selector embedding into `out_dim` values.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::selector::CompiledTools;
    /// use loragen_protocol::artifact::SelectorTools;
    ///
    /// let part = SelectorTools {
    ///     selector_sha256: "s".into(),
    ///     names: vec!["f".into()],
    ///     embeddings: vec![vec![0.6, 0.8]],
    /// };
    /// let tools = CompiledTools::from_part(part.clone(), 2)?;
    /// assert_eq!(tools.to_part("s")?, part);
    /// assert!(CompiledTools::from_part(part, 3).is_err());
    /// # Ok::<(), loragen_agent::Error>(())
    /// ```
    pub fn from_part(part: SelectorTools, out_dim: usize) -> Result<Self> {
        if let Some(row) = part.embeddings.iter().find(|r| r.len() != out_dim) {
            return Err(Error::InvalidParam(format!(
                "a selector part's embeddings have {} values, but the selector's have {out_dim}",
                row.len()
            )));
        }
        let n = part.names.len();
        let flat: Vec<f32> = part.embeddings.into_iter().flatten().collect();
        Ok(CompiledTools {
            names: part.names,
            embeddings: Tensor::from_vec(flat, (n, out_dim), &Device::Cpu)?,
        })
    }

    /// The tools of the compiled artifact at `adapter`, read from its
    /// selector part for the selector whose weights hash to
    /// `selector_sha256` and which embeds into `out_dim` values. An
    /// artifact without a manifest or a part, or with another selector's,
    /// is refused by name.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use loragen_agent::selector::CompiledTools;
    ///
    /// let err = CompiledTools::from_artifact(Path::new("nowhere/tools.gguf"), "s", 2).unwrap_err();
    /// assert!(err.to_string().contains("nowhere/tools.gguf"), "{err}");
    /// ```
    pub fn from_artifact(adapter: &Path, selector_sha256: &str, out_dim: usize) -> Result<Self> {
        let manifest = Manifest::read(adapter)?.ok_or_else(|| {
            Error::InvalidParam(format!("{}: no manifest beside it", adapter.display()))
        })?;
        Self::from_part(
            SelectorTools::read(adapter, &manifest, selector_sha256)?,
            out_dim,
        )
    }

    /// The part a compiled artifact keeps for the selector whose weights
    /// hash to `selector_sha256`.
    pub fn to_part(&self, selector_sha256: &str) -> Result<SelectorTools> {
        Ok(SelectorTools {
            selector_sha256: selector_sha256.to_owned(),
            names: self.names.clone(),
            embeddings: self.embeddings.to_dtype(DType::F32)?.to_vec2()?,
        })
    }
}

impl Selector {
    /// Log-probabilities over the registry's tools and, last, "no call",
    /// for one query input (2 * query_dim).
    pub fn log_probs(&self, tools: &CompiledTools, input: &[f32]) -> Result<Vec<f32>> {
        let device = Device::Cpu;
        let q = self.embed_queries(&Tensor::from_slice(input, (1, input.len()), &device)?)?;
        let all = Tensor::cat(&[&tools.embeddings, &self.none()?], 0)?;
        let scores = self.scores(&q, &all)?;
        Ok(candle_nn::ops::log_softmax(&scores, D::Minus1)?
            .squeeze(0)?
            .to_vec1()?)
    }
}

/// A trained selector's directory: its weights and, under `selector` in
/// `config.json`, its shape.
pub const MODEL_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";

/// sha256 of the weights of the selector trained into `dir`: what a
/// compiled artifact's selector part names.
pub fn weights_sha256(dir: &std::path::Path) -> Result<String> {
    let weights = dir.join(MODEL_FILE);
    loragen_protocol::digest::sha256_file(&weights).map_err(|source| Error::Io {
        path: weights,
        source,
    })
}

#[derive(Deserialize)]
struct SavedShape {
    selector: SelectorConfig,
}

impl Selector {
    /// The selector trained into `dir` (`loragen train selector --out
    /// DIR`).
    pub fn load(dir: &std::path::Path) -> Result<Self> {
        let config = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config).map_err(|source| Error::Io {
            path: config.clone(),
            source,
        })?;
        let shape: SavedShape = serde_json::from_str(&text).map_err(|e| {
            Error::InvalidParam(format!(
                "{}: not a selector's config ({e})",
                config.display()
            ))
        })?;
        let weights = dir.join(MODEL_FILE);
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| {
            Error::InvalidParam(format!(
                "{}: not a selector's weights ({e})",
                weights.display()
            ))
        })?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        Selector::new(&shape.selector, vb)
    }
}

self_cell::self_cell!(
    /// A load of the base edge model and the hidden-state session on it.
    struct Reader {
        owner: crate::runtime::Model,
        #[covariant]
        dependent: Session,
    }
);

/// The selector on the edge: the query tower over the base model's states,
/// scored against a compiled registry. It loads the edge model on its own,
/// with hidden states on and no adapter; llama.cpp maps the file, so the
/// weights are shared with the generating model's load.
pub struct EdgeSelector {
    selector: Selector,
    reader: Reader,
}

impl EdgeSelector {
    /// `selector` over the base edge model at `edge`, reading prompts of up
    /// to `n_ctx` tokens.
    pub fn load(edge: &std::path::Path, selector: Selector, n_ctx: u32) -> Result<Self> {
        let model = crate::runtime::Model::load(edge)?;
        if model.n_embd() != selector.config().query_dim {
            return Err(Error::InvalidParam(format!(
                "the selector reads states of {} values, but {} has {}: it was trained for another edge model",
                selector.config().query_dim,
                edge.display(),
                model.n_embd()
            )));
        }
        let reader = Reader::try_new(model, |model| {
            model.session(
                crate::runtime::SessionParams::default()
                    .with_embeddings(true)
                    .with_n_ctx(n_ctx),
            )
        })?;
        Ok(EdgeSelector { selector, reader })
    }

    /// The selector, whose tool tower compiles registries for it.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// Log-probabilities of `tools` and, last, "no call" for `prompt`, the
    /// prompt the edge model is about to continue (its request found by
    /// `react::request_span`; the last token's state alone without one).
    pub fn log_probs(&mut self, tools: &CompiledTools, prompt: &str) -> Result<Vec<f32>> {
        let _span = tracing::info_span!("selector", tools = tools.names.len()).entered();
        let request = loragen_protocol::react::request_span(prompt).unwrap_or(0..0);
        let input = self
            .reader
            .with_dependent_mut(|_, session| query_input(session, prompt, request))?;
        self.selector.log_probs(tools, &input)
    }
}

impl std::fmt::Debug for EdgeSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeSelector")
            .field("selector", self.selector.config())
            .finish_non_exhaustive()
    }
}
