//! Cloud features: the frozen cloud model's final-layer hidden states of a
//! registry's system part, which the meta tokens attend over.
//!
//! A system part is split into blocks (the shared preamble, one block per
//! tool, the shared protocol rules) and each block is encoded on its own,
//! so a registry's features are the concatenation of its blocks' and a new
//! registry costs one cloud pass per tool never seen before. Blocks are
//! cached on disk as f16 under `features/<cloud sha256>/<renderer>/`,
//! keyed by the sha256 of the block's text.
//!
//! The paper's own variant ([`MetaSource::CloudTokens`], the ablation)
//! instead encodes a whole system part followed by L literal meta-token
//! strings and keeps the states at those L positions only, cached per
//! system part: every distinct registry costs a full cloud pass.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{io_at, Error, Result};
use loragen_agent::runtime::{Model, SessionParams};
use loragen_protocol::atomic::write_atomic_with;
use loragen_protocol::digest::sha256_hex;

/// How system parts are cut into blocks; part of every cache key.
pub const RENDERER: &str = "blocks-v1";

/// Where the meta tokens T_1..T_L come from, and so what the cloud
/// model gives them; part of the generator's config.
///
/// # Examples
///
/// ```
/// use loragen_generator::features::MetaSource;
/// use loragen_generator::model::GeneratorConfig;
///
/// let source: MetaSource = "cloud-tokens".parse()?;
/// let config = GeneratorConfig::default().with_meta_source(source);
/// assert_eq!(config.meta_source, MetaSource::CloudTokens);
/// assert!("paper".parse::<MetaSource>().is_err());
/// # Ok::<(), loragen_generator::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaSource {
    /// L learned queries cross-attend over every token's frozen cloud
    /// state, block by block ([`system_blocks`]; ours, cached per tool).
    #[default]
    CrossAttention,
    /// The frozen cloud's states at L literal meta-token strings
    /// ([`meta_token`]) appended to the whole system part, through a
    /// trainable projection (the paper's variant, with the cloud frozen;
    /// the ablation). Cached per system part.
    CloudTokens,
}

impl std::str::FromStr for MetaSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cross-attention" => Ok(MetaSource::CrossAttention),
            "cloud-tokens" => Ok(MetaSource::CloudTokens),
            other => Err(Error::Config(format!(
                "unknown meta source `{other}`: cross-attention or cloud-tokens"
            ))),
        }
    }
}

impl MetaSource {
    /// The cache directory's name: the renderer and its version (and the
    /// number of meta tokens read, for the paper's variant).
    fn dir_name(self, layers: usize) -> String {
        match self {
            MetaSource::CrossAttention => RENDERER.to_owned(),
            MetaSource::CloudTokens => format!("meta-tokens-v1-l{layers}"),
        }
    }

    /// The texts the cloud encodes for `system`: its blocks, or itself.
    fn units(self, system: &str) -> Vec<String> {
        match self {
            MetaSource::CrossAttention => system_blocks(system),
            MetaSource::CloudTokens if system.is_empty() => Vec::new(),
            MetaSource::CloudTokens => vec![system.to_owned()],
        }
    }
}

/// The i-th literal meta-token string appended to a system part in the
/// paper's variant; the frozen cloud's state at its last token is T_i's
/// source.
///
/// # Examples
///
/// ```
/// use loragen_generator::features::meta_token;
///
/// assert_eq!(meta_token(17), "<meta_17>");
/// ```
pub fn meta_token(i: usize) -> String {
    format!("<meta_{i}>")
}

/// The protocol rules name the registry's tools (`one of [A, B]`); the tool
/// blocks carry the names already, so the shared block gets this instead
/// and is the same text for every registry.
const TOOL_LIST_STANDIN: &str = "one of the tools above";

/// The blocks of a system part: everything before the first tool line,
/// each tool line, and the rest (with its list of tool names replaced, so
/// that block is shared). Tool lines are GPT4Tools' `> name: description`
/// and the JSON protocol's one-object-per-line specs (`{"...`). A system
/// part without tool lines is one block.
///
/// # Examples
///
/// ```
/// use loragen_generator::features::system_blocks;
///
/// let s = "Persona.\n> A: does a.\n> B: does b.\nAction: one of [A, B]\nEnd.";
/// assert_eq!(
///     system_blocks(s),
///     vec!["Persona.\n", "> A: does a.\n", "> B: does b.\n", "Action: one of the tools above\nEnd."]
/// );
/// ```
pub fn system_blocks(system: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut preamble = String::new();
    let mut rest = String::new();
    for line in system.split_inclusive('\n') {
        let tool_line = line.starts_with("> ") || line.starts_with("{\"");
        if tool_line && rest.is_empty() {
            blocks.push(line.to_owned());
        } else if blocks.is_empty() {
            preamble.push_str(line);
        } else {
            rest.push_str(line);
        }
    }
    let rest = match (rest.find("one of ["), rest.find(']')) {
        (Some(start), Some(_)) => {
            let end = rest[start..]
                .find(']')
                .map_or(rest.len(), |e| start + e + 1);
            format!("{}{TOOL_LIST_STANDIN}{}", &rest[..start], &rest[end..])
        }
        _ => rest,
    };
    let mut out = Vec::with_capacity(blocks.len() + 2);
    if !preamble.is_empty() {
        out.push(preamble);
    }
    out.extend(blocks);
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Block features in memory, and registries' features assembled from them
/// on demand: 24,000 training prompts share a few dozen blocks, but as
/// concatenated tensors they would not fit in memory.
#[derive(Debug, Clone)]
pub struct RegistryFeatures {
    source: MetaSource,
    /// Keyed by the text the cloud encoded: a block, or for
    /// [`MetaSource::CloudTokens`] a whole system part.
    units: HashMap<String, Tensor>,
}

impl Default for RegistryFeatures {
    fn default() -> Self {
        RegistryFeatures::new(MetaSource::CrossAttention)
    }
}

impl RegistryFeatures {
    /// Empty features for `source`: their units are blocks, or whole
    /// system parts.
    pub fn new(source: MetaSource) -> Self {
        RegistryFeatures {
            source,
            units: HashMap::new(),
        }
    }

    /// Adds the features of one unit (a block, or a system part).
    pub fn insert_unit(&mut self, text: String, features: Tensor) {
        self.units.insert(text, features);
    }

    /// The features of one unit, if present.
    pub fn unit(&self, text: &str) -> Option<&Tensor> {
        self.units.get(text)
    }

    pub fn has_unit(&self, text: &str) -> bool {
        self.units.contains_key(text)
    }

    pub fn unit_count(&self) -> usize {
        self.units.len()
    }

    /// Whether every unit of `system` is present.
    pub fn covers(&self, system: &str) -> bool {
        let units = self.source.units(system);
        !units.is_empty() && units.iter().all(|u| self.has_unit(u))
    }

    /// The features of a system part: its units' concatenated.
    pub fn of(&self, system: &str) -> Result<Tensor> {
        let parts = self
            .source
            .units(system)
            .iter()
            .map(|u| {
                self.units.get(u).cloned().ok_or_else(|| {
                    Error::Config(format!("no cloud features for the text {:?}", short(u)))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if parts.is_empty() {
            return Err(Error::Config(
                "the system part is empty: nothing to compile".into(),
            ));
        }
        Ok(Tensor::cat(&parts, 0)?)
    }
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

/// How far the cloud has got with the blocks a `features` call had to
/// encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeProgress {
    /// Blocks encoded (and cached) so far.
    pub done: usize,
    /// Blocks to encode in all.
    pub total: usize,
    /// Cloud tokens read so far.
    pub tokens: usize,
}

/// Tensors on disk, one file per text keyed by the sha256 of the text,
/// stored as f16 and written atomically: the cloud features of blocks,
/// and the edge states of the selector's queries.
#[derive(Debug, Clone)]
pub struct TextTensors {
    dir: PathBuf,
}

impl TextTensors {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TextTensors { dir: dir.into() }
    }

    fn path_of(&self, text: &str) -> PathBuf {
        self.dir
            .join(format!("{}.safetensors", sha256_hex(text.as_bytes())))
    }

    /// The tensor stored for `text`, as f32, if there is one.
    pub fn get(&self, text: &str) -> Result<Option<Tensor>> {
        let path = self.path_of(text);
        if !path.exists() {
            return Ok(None);
        }
        let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| {
            Error::Config(format!(
                "{}: unreadable cached tensor ({e}); delete the file to recompute it",
                path.display()
            ))
        })?;
        let t = tensors
            .remove("features")
            .ok_or_else(|| Error::Config(format!("{}: no `features` tensor", path.display())))?;
        Ok(Some(t.to_dtype(DType::F32)?))
    }

    /// Stores `tensor` for `text`, as f16.
    pub fn store(&self, text: &str, tensor: &Tensor) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        let f16 = tensor.to_dtype(DType::F16)?;
        write_atomic_with(&self.path_of(text), |tmp| {
            f16.save_safetensors("features", tmp).map_err(Error::from)
        })
    }
}

/// The on-disk cache of block features for one cloud model.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    store: TextTensors,
    source: MetaSource,
    /// Meta-token strings appended to each system part (the paper's
    /// variant); 0 for block features.
    meta_tokens: usize,
}

/// Counts of one `features` call, for the logs and the compile report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Distinct blocks.
    pub blocks: usize,
    /// Blocks that needed a cloud pass.
    pub computed: usize,
    /// Cloud tokens those passes read.
    pub tokens: usize,
}

impl FeatureCache {
    /// The cache under `root` (usually `$LORAGEN_HOME/features`) for the
    /// cloud model whose file has `cloud_sha256`, for a generator whose
    /// meta tokens come from `source`, with one meta token for each of
    /// `edge_layers` (read from the cloud by [`MetaSource::CloudTokens`]).
    pub fn new(root: &Path, cloud_sha256: &str, source: MetaSource, edge_layers: usize) -> Self {
        FeatureCache {
            store: TextTensors::new(root.join(cloud_sha256).join(source.dir_name(edge_layers))),
            source,
            meta_tokens: match source {
                MetaSource::CrossAttention => 0,
                MetaSource::CloudTokens => edge_layers,
            },
        }
    }

    /// A cached block's features (tokens, cloud_dim) as f32, if present.
    pub fn get(&self, text: &str) -> Result<Option<Tensor>> {
        self.store.get(text)
    }

    /// The features of every block of `systems`: from the cache, or from
    /// one pass of the cloud model each (then cached). The blocks missing
    /// from the cache are encoded together, in one cloud session.
    pub fn features<'s>(
        &self,
        systems: impl IntoIterator<Item = &'s str>,
        cloud: &mut Cloud,
    ) -> Result<(RegistryFeatures, Encoded)> {
        self.features_with_progress(systems, cloud, |_| {})
    }

    /// [`FeatureCache::features`], calling `progress` after each block the
    /// cloud encodes. Each block is cached as soon as it is encoded, so an
    /// interrupted run loses at most the block in hand.
    pub fn features_with_progress<'s>(
        &self,
        systems: impl IntoIterator<Item = &'s str>,
        cloud: &mut Cloud,
        mut progress: impl FnMut(EncodeProgress),
    ) -> Result<(RegistryFeatures, Encoded)> {
        let mut features = RegistryFeatures::new(self.source);
        let mut counts = Encoded::default();
        let mut missing: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for system in systems {
            let blocks = self.source.units(system);
            if blocks.is_empty() {
                return Err(Error::Config(
                    "the system part is empty: nothing to compile".into(),
                ));
            }
            for block in blocks {
                if !seen.insert(block.clone()) {
                    continue;
                }
                counts.blocks += 1;
                match self.get(&block)? {
                    Some(t) => features.insert_unit(block, t),
                    None => missing.push(block),
                }
            }
        }
        let texts: Vec<&str> = missing.iter().map(String::as_str).collect();
        cloud.encode(&texts, self.meta_tokens, |i, read, t| {
            self.store.store(texts[i], &t)?;
            counts.computed += 1;
            counts.tokens += read;
            // As the cache gives it back (f16), so a run that reads it
            // from the cache sees the same numbers as the one that made it.
            let t = t.to_dtype(DType::F16)?.to_dtype(DType::F32)?;
            features.insert_unit(texts[i].to_owned(), t);
            progress(EncodeProgress {
                done: i + 1,
                total: texts.len(),
                tokens: counts.tokens,
            });
            Ok(())
        })?;
        Ok((features, counts))
    }
}

/// The frozen cloud model, loaded on first use (a run whose blocks are
/// all cached never loads it). Each text is encoded on its own, in a fresh
/// session with hidden states on.
#[derive(Debug)]
pub struct Cloud {
    path: PathBuf,
    model: Option<Model>,
}

impl Cloud {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Cloud {
            path: path.into(),
            model: None,
        }
    }

    /// Final-layer hidden states of every token of each text (tokens,
    /// n_embd), each text encoded on its own and handed to `each` with its
    /// index as soon as it is ready. One session serves them all: making a
    /// llama.cpp context costs more than encoding a short block.
    pub fn encode_each(
        &mut self,
        texts: &[&str],
        mut each: impl FnMut(usize, Tensor) -> Result<()>,
    ) -> Result<()> {
        self.encode(texts, 0, |i, _, t| each(i, t))
    }

    /// The paper's variant: each text followed by `layers` meta-token
    /// strings ([`meta_token`]), and the states at the last token of each
    /// (layers, n_embd), handed to `each` as they are ready.
    pub fn encode_meta_tokens(
        &mut self,
        texts: &[&str],
        layers: usize,
        mut each: impl FnMut(usize, Tensor) -> Result<()>,
    ) -> Result<()> {
        if layers == 0 {
            return Err(Error::Config(
                "meta-token features need at least one layer".into(),
            ));
        }
        self.encode(texts, layers, |i, _, t| each(i, t))
    }

    /// Every token's state when `meta_tokens` is 0, else the states at the
    /// ends of that many meta-token strings appended to each text; `each`
    /// gets the text's index, the tokens the cloud read, and the states.
    fn encode(
        &mut self,
        texts: &[&str],
        meta_tokens: usize,
        mut each: impl FnMut(usize, usize, Tensor) -> Result<()>,
    ) -> Result<()> {
        if texts.is_empty() {
            return Ok(());
        }
        if self.model.is_none() {
            tracing::info!(path = %self.path.display(), "loading the cloud model for features");
            self.model = Some(Model::load(&self.path)?);
        }
        let Some(model) = self.model.as_ref() else {
            return Err(Error::Config("the cloud model did not load".into()));
        };
        let meta: Vec<_> = (0..meta_tokens)
            .map(|i| model.tokenize(&meta_token(i), false))
            .collect();
        let mut inputs = Vec::with_capacity(texts.len());
        for text in texts {
            let mut tokens = model.tokenize(text, false);
            if tokens.is_empty() {
                return Err(Error::Config(format!("{text:?} has no tokens to encode")));
            }
            let positions: Vec<usize> = if meta.is_empty() {
                (0..tokens.len()).collect()
            } else {
                meta.iter()
                    .map(|m| {
                        tokens.extend_from_slice(m);
                        tokens.len() - 1
                    })
                    .collect()
            };
            inputs.push((tokens, positions));
        }
        let longest = inputs.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
        let mut session = model.session(
            SessionParams::default()
                .with_embeddings(true)
                .with_prefix_reuse(false)
                .with_n_ctx((longest as u32 + 16).max(64)),
        )?;
        for (i, (text, (tokens, positions))) in texts.iter().zip(&inputs).enumerate() {
            let _span = tracing::info_span!("cloud_encode", bytes = text.len()).entered();
            session.clear_cache();
            let states = session.hidden_states(tokens, positions)?;
            let flat: Vec<f32> = states.into_iter().flatten().collect();
            each(
                i,
                tokens.len(),
                Tensor::from_vec(flat, (positions.len(), model.n_embd()), &Device::Cpu)?,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn blocks_of_a_real_system_part_share_the_preamble_and_rules() {
        let lines = |names: &[&str]| {
            let tools: String = names
                .iter()
                .map(|n| format!("> {n}: does {n}.\n"))
                .collect();
            format!(
                "Persona line.\n\nTOOLS:\n------\n\nVisual assistant has access to the following tools:\n{tools}\nTo use a tool:\nAction: the tool to use, one of [{}]\nAction Input: x\n",
                names.join(", ")
            )
        };
        let (a, b) = (
            system_blocks(&lines(&["A", "B"])),
            system_blocks(&lines(&["B"])),
        );
        assert_eq!(a.len(), 4);
        assert_eq!(a[0], b[0], "the preamble is shared");
        assert_eq!(a[2], b[1], "a tool's block does not depend on the others");
        assert_eq!(
            a[3], b[2],
            "the rules are shared once the names are replaced"
        );
        assert_eq!(
            a.concat(),
            lines(&["A", "B"]).replace("one of [A, B]", "one of the tools above")
        );
        assert_eq!(system_blocks("no tools here"), vec!["no tools here"]);
        assert!(system_blocks("").is_empty());
    }

    #[test]
    fn json_protocol_system_parts_cut_at_each_spec_line() {
        use loragen_protocol::render::json_system_prompt;
        use loragen_protocol::ToolSpec;
        let spec = |name: &str| ToolSpec {
            name: name.into(),
            description: format!("does {name}"),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
        };
        let ab = system_blocks(&json_system_prompt(&[spec("a"), spec("b")]));
        let cb = system_blocks(&json_system_prompt(&[spec("c"), spec("b")]));
        assert_eq!(ab.len(), 4, "{ab:?}");
        assert!(ab[1].starts_with("{\"") && ab[1].contains("\"a\""));
        // Preamble and rules are shared; the `b` spec is the same block.
        assert_eq!((&ab[0], &ab[2], &ab[3]), (&cb[0], &cb[2], &cb[3]));
        assert!(ab[3].contains("several calls at once"));
    }

    #[test]
    fn each_meta_source_has_its_own_cache_and_units() {
        let root = Path::new("/h");
        let blocks = FeatureCache::new(root, "abc", MetaSource::CrossAttention, 3);
        let tokens = FeatureCache::new(root, "abc", MetaSource::CloudTokens, 3);
        assert_eq!(blocks.store.dir, root.join("abc").join(RENDERER));
        assert_eq!(blocks.meta_tokens, 0);
        assert_eq!(tokens.store.dir, root.join("abc").join("meta-tokens-v1-l3"));
        assert_eq!(tokens.meta_tokens, 3);

        // A system part's units: its blocks, or itself whole.
        let system = "Persona.\n> A: does a.\n";
        let mut whole = RegistryFeatures::new(MetaSource::CloudTokens);
        let state = Tensor::ones((3, 2), DType::F32, &Device::Cpu).unwrap();
        whole.insert_unit(system.to_owned(), state.clone());
        assert!(whole.covers(system));
        assert_eq!(whole.of(system).unwrap().dims(), &[3, 2]);
        let mut parts = RegistryFeatures::new(MetaSource::CrossAttention);
        parts.insert_unit(system.to_owned(), state);
        assert!(!parts.covers(system), "block features need every block");
        let err = parts.of(system).unwrap_err().to_string();
        assert!(err.contains("Persona."), "{err}");
        assert!(RegistryFeatures::default().of("").is_err());
    }

    #[test]
    fn a_cached_block_comes_back_as_f32_and_corrupt_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::new(dir.path(), "abc", MetaSource::CrossAttention, 18);
        assert!(cache.get("block").unwrap().is_none());
        let t = Tensor::new(&[[1f32, 2.5], [-3.0, 0.125]], &Device::Cpu).unwrap();
        cache.store.store("block", &t).unwrap();
        let back = cache.get("block").unwrap().unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        std::fs::write(cache.store.path_of("block"), b"garbage").unwrap();
        let err = cache.get("block").unwrap_err().to_string();
        assert!(err.contains("unreadable cached tensor"), "{err}");
    }
}
