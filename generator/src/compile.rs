//! `loragen compile`: a registry's system part, through the cloud features
//! and a trained generator, into a GGUF LoRA adapter for the edge model,
//! with a manifest that says what it was compiled from. Results are cached
//! by everything they depend on, so compiling a registry again is a copy.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

use crate::checkpoint::{open_generator, MODEL_FILE};
use crate::edge::EdgeConfig;
use crate::error::{io_at, Error, Result};
use crate::features::{Cloud, FeatureCache, MetaSource};
use crate::gguf_lora::write_lora_adapter;
use crate::model::{Generator, GeneratorConfig};
use crate::selector::compile_tools;
use loragen_agent::selector::Selector;
use loragen_agent::store::read_gguf;
use loragen_protocol::artifact::{
    selector_path, AdapterSource, CompiledAdapter, Manifest, SelectorPart, PROMPT_FORMAT,
};
use loragen_protocol::atomic::copy_atomic;
use loragen_protocol::digest::{sha256_file, sha256_hex};

/// Where a compiler finds its generator, models and caches.
#[derive(Debug, Clone)]
pub struct CompilerSpec<'a> {
    /// A generator checkpoint or snapshot directory (`config.json`,
    /// `model.safetensors`).
    pub checkpoint: &'a Path,
    pub edge_path: &'a Path,
    pub edge_sha256: &'a str,
    pub cloud_path: &'a Path,
    pub cloud_sha256: &'a str,
    /// The cache of cloud features per block.
    pub features_dir: &'a Path,
    /// The compile cache.
    pub compiled_dir: &'a Path,
}

/// What a compile produced.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub artifact: CompiledAdapter,
    /// Cloud tokens encoded for blocks not in the feature cache.
    pub cloud_tokens: usize,
}

/// A generator checkpoint, checked against the edge model and hashed once,
/// that compiles any number of registries. The generator, the edge model's
/// shapes and the cloud model are loaded by the first compile that misses
/// the cache, then kept: a validation run compiling hundreds of registries
/// pays for them once.
#[derive(Debug)]
pub struct Compiler {
    checkpoint: PathBuf,
    config: GeneratorConfig,
    generator_sha256: String,
    edge_path: PathBuf,
    edge_sha256: String,
    cloud_sha256: String,
    compiled_dir: PathBuf,
    features_dir: PathBuf,
    features: FeatureCache,
    cloud: Cloud,
    built: Option<(Generator, &'static str)>,
    selector: Option<ToolSelector>,
}

/// The tool selector a compiler adds to its artifacts, and the cache of the
/// cloud states its tool tower reads.
#[derive(Debug)]
struct ToolSelector {
    selector: Selector,
    sha256: String,
    features: FeatureCache,
}

impl Compiler {
    /// Checks that `spec.checkpoint` is a generator made for this edge model
    /// and hashes its weights; loads nothing else yet.
    pub fn open(spec: &CompilerSpec<'_>) -> Result<Self> {
        let config = open_generator(spec.checkpoint, spec.edge_sha256, spec.edge_path)?;
        let weights = spec.checkpoint.join(MODEL_FILE);
        let generator_sha256 = sha256_file(&weights).map_err(io_at(&weights))?;
        let features = FeatureCache::new(
            spec.features_dir,
            spec.cloud_sha256,
            config.meta_source,
            config.edge_layers,
        );
        Ok(Compiler {
            checkpoint: spec.checkpoint.to_path_buf(),
            config,
            generator_sha256,
            edge_path: spec.edge_path.to_path_buf(),
            edge_sha256: spec.edge_sha256.to_owned(),
            cloud_sha256: spec.cloud_sha256.to_owned(),
            compiled_dir: spec.compiled_dir.to_path_buf(),
            features_dir: spec.features_dir.to_path_buf(),
            features,
            cloud: Cloud::new(spec.cloud_path),
            built: None,
            selector: None,
        })
    }

    /// Adds `selector` (whose `model.safetensors` hashes to `sha256`) to
    /// every artifact: the registry's tools embedded by its tool tower, a
    /// part the manifest lists (issue 29).
    #[must_use]
    pub fn with_selector(mut self, selector: Selector, sha256: String) -> Self {
        self.selector = Some(ToolSelector {
            selector,
            sha256,
            features: FeatureCache::new(
                &self.features_dir,
                &self.cloud_sha256,
                MetaSource::CrossAttention,
                0,
            ),
        });
        self
    }

    /// sha256 of the weights of the selector the artifacts carry, if any.
    pub fn selector_sha256(&self) -> Option<&str> {
        self.selector.as_ref().map(|s| s.sha256.as_str())
    }

    /// sha256 of the generator's `model.safetensors`.
    pub fn generator_sha256(&self) -> &str {
        &self.generator_sha256
    }

    /// Compiles `system` into `out` (a `.gguf` adapter) and its manifest.
    /// With `cache`, the adapter is taken from (or kept in) the compile
    /// cache; validation runs that compile hundreds of registries once each
    /// turn it off. Nothing is written under `out` unless the compile
    /// succeeds.
    pub fn compile(&mut self, system: &str, out: &Path, cache: bool) -> Result<Compiled> {
        let _span = tracing::info_span!("compile", bytes = system.len(), cache).entered();
        if system.trim().is_empty() {
            return Err(Error::Config(
                "the registry is empty: there is nothing to compile".into(),
            ));
        }
        let registry_fingerprint = loragen_protocol::render::fingerprint(system);
        let mut inputs = format!(
            "{registry_fingerprint} {} {} {} {PROMPT_FORMAT}",
            self.generator_sha256, self.edge_sha256, self.cloud_sha256
        );
        if let Some(s) = &self.selector {
            inputs.push_str(&format!(" selector {}", s.sha256));
        }
        let key = sha256_hex(inputs.as_bytes());
        let dir = if cache {
            self.compiled_dir.clone()
        } else {
            out.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        };
        let staged = dir.join(format!("{key}.gguf"));
        let was_cached = cache && staged.exists();
        let mut cloud_tokens = 0;
        if !was_cached {
            self.build()?;
            let (features, encoded) = self.features.features([system], &mut self.cloud)?;
            cloud_tokens = encoded.tokens;
            let Some((generator, arch)) = &self.built else {
                return Err(Error::Config("the generator was not built".into()));
            };
            let adapter = generator.adapter(&features.of(system)?, arch)?;
            std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
            write_lora_adapter(&staged, &adapter.arch, adapter.alpha, &adapter.pairs)?;
        }
        let selector = self.selector_part(system, &staged, was_cached)?;
        let manifest = Manifest {
            registry_fingerprint,
            edge_sha256: self.edge_sha256.clone(),
            cloud_sha256: self.cloud_sha256.clone(),
            generator_sha256: self.generator_sha256.clone(),
            prompt_format: PROMPT_FORMAT.to_owned(),
            adapter_sha256: sha256_file(&staged).map_err(io_at(&staged))?,
            selector,
        };
        let mut files = vec![(staged.clone(), out.to_path_buf())];
        if manifest.selector.is_some() {
            files.push((selector_path(&staged), selector_path(out)));
        }
        for (from, to) in files {
            if cache {
                copy_atomic(&from, &to)?;
            } else {
                std::fs::rename(&from, &to).map_err(io_at(&to))?;
            }
        }
        manifest.write(out)?;
        Ok(Compiled {
            artifact: CompiledAdapter {
                path: out.to_path_buf(),
                manifest,
                cached: was_cached,
            },
            cloud_tokens,
        })
    }

    /// The selector's part of the artifact staged at `staged`: written now,
    /// or found beside a cached adapter.
    fn selector_part(
        &mut self,
        system: &str,
        staged: &Path,
        cached: bool,
    ) -> Result<Option<SelectorPart>> {
        let Some(s) = &self.selector else {
            return Ok(None);
        };
        let path = selector_path(staged);
        if cached && path.exists() {
            return Ok(Some(SelectorPart {
                selector_sha256: s.sha256.clone(),
                sha256: sha256_file(&path).map_err(io_at(&path))?,
            }));
        }
        let _span = tracing::info_span!("compile_selector").entered();
        let tools = compile_tools(&s.selector, system, &s.features, &mut self.cloud)?;
        Ok(Some(tools.to_part(&s.sha256)?.write(staged)?))
    }

    /// Builds the generator with its weights, once.
    fn build(&mut self) -> Result<()> {
        if self.built.is_some() {
            return Ok(());
        }
        let (content, _) = read_gguf(&self.edge_path)?;
        let edge = EdgeConfig::from_gguf(&self.edge_path, &content)?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let generator = Generator::new(self.config.clone(), |t| edge.dims(t), vb)?;
        crate::checkpoint::load_weights(&varmap, &self.checkpoint.join(MODEL_FILE))?;
        self.built = Some((generator, edge.arch.gguf_name()));
        Ok(())
    }
}

impl AdapterSource for Compiler {
    fn compile_adapter(
        &mut self,
        system: &str,
        out: &Path,
        cache: bool,
    ) -> loragen_protocol::Result<CompiledAdapter> {
        self.compile(system, out, cache)
            .map(|c| c.artifact)
            .map_err(|e| loragen_protocol::Error::Compile(Box::new(e)))
    }

    fn is_current(&self, manifest: &Manifest) -> bool {
        manifest.generator_sha256 == self.generator_sha256
            && manifest.edge_sha256 == self.edge_sha256
            && manifest.cloud_sha256 == self.cloud_sha256
            && manifest
                .selector
                .as_ref()
                .map(|s| s.selector_sha256.as_str())
                == self.selector_sha256()
    }
}
