//! `loragen compile`: a registry's system part, through the cloud features
//! and a trained generator, into a GGUF LoRA adapter for the edge model,
//! with a manifest that says what it was compiled from. Results are cached
//! by everything they depend on, so compiling a registry again is a copy.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::edge::EdgeConfig;
use crate::error::{Error, Result};
use crate::features::{Cloud, FeatureCache};
use crate::gguf_lora::write_lora_adapter;
use crate::model::Generator;
use crate::train::{read_state, trainer::MODEL_FILE};
use loragen_agent::store::read_gguf;
use loragen_tools::atomic::{write_atomic, write_atomic_with};

/// The version of the prompt format a compiled adapter serves (the
/// GPT4Tools/ReAct protocol without the system part).
pub const PROMPT_FORMAT: &str = "react-compiled-v1";

/// What a compiled adapter was made from; written beside it as
/// `<adapter>.manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// sha256 of the system part's text.
    pub registry_fingerprint: String,
    pub edge_sha256: String,
    pub cloud_sha256: String,
    /// sha256 of the generator's `model.safetensors`.
    pub generator_sha256: String,
    pub prompt_format: String,
    /// sha256 of the adapter file.
    pub adapter_sha256: String,
}

/// The inputs of a compile.
#[derive(Debug, Clone)]
pub struct CompileRequest<'a> {
    pub system: &'a str,
    /// A generator checkpoint or snapshot directory (`config.json`,
    /// `model.safetensors`).
    pub checkpoint: &'a Path,
    pub edge_path: &'a Path,
    pub edge_sha256: &'a str,
    pub cloud_path: &'a Path,
    pub cloud_sha256: &'a str,
    /// `$LORAGEN_HOME`: features/ and compiled/ live under it.
    pub home: &'a Path,
    /// Keep the adapter in the compile cache (`compiled/`). Validation runs
    /// that compile hundreds of registries once each turn it off.
    pub cache: bool,
}

/// What a compile produced, and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub adapter: PathBuf,
    pub manifest: Manifest,
    pub cached: bool,
    /// Cloud tokens encoded for blocks not in the feature cache.
    pub cloud_tokens: usize,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(sha256_hex(&bytes))
}

/// Compiles `req.system` into `out` (a `.gguf` adapter) and its manifest.
/// Nothing is written under `out` unless the compile succeeds.
pub fn compile(req: &CompileRequest<'_>, out: &Path) -> Result<Compiled> {
    if req.system.trim().is_empty() {
        return Err(Error::Config(
            "the registry is empty: there is nothing to compile".into(),
        ));
    }
    let state = read_state(req.checkpoint)?;
    let Some(generator_config) = state.generator.clone() else {
        return Err(Error::Config(format!(
            "{}: a plain LoRA checkpoint, not a generator; export it with `loragen adapter export`",
            req.checkpoint.display()
        )));
    };
    if state.edge_sha256 != req.edge_sha256 {
        return Err(Error::Config(format!(
            "{}: the generator was trained for the edge model {}, not {} ({})",
            req.checkpoint.display(),
            short(&state.edge_sha256),
            short(req.edge_sha256),
            req.edge_path.display()
        )));
    }
    let weights = req.checkpoint.join(MODEL_FILE);
    let generator_sha256 = sha256_file(&weights)?;
    let registry_fingerprint = sha256_hex(req.system.as_bytes());
    let key = sha256_hex(
        format!(
            "{registry_fingerprint} {generator_sha256} {} {} {PROMPT_FORMAT}",
            req.edge_sha256, req.cloud_sha256
        )
        .as_bytes(),
    );
    let dir = if req.cache {
        req.home.join("compiled")
    } else {
        out.parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    let cached = dir.join(format!("{key}.gguf"));
    let mut cloud_tokens = 0;
    let was_cached = req.cache && cached.exists();
    if !was_cached {
        let (content, _) = read_gguf(req.edge_path)?;
        let edge = EdgeConfig::from_gguf(req.edge_path, &content)?;
        let mut varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let generator = Generator::new(generator_config, |t| edge.dims(t), vb)?;
        varmap.load(&weights).map_err(|e| {
            Error::Config(format!(
                "{}: does not fit the generator its config.json describes ({e})",
                weights.display()
            ))
        })?;
        let cache = FeatureCache::new(&req.home.join("features"), req.cloud_sha256);
        let (features, encoded) = cache.features([req.system], &mut Cloud::new(req.cloud_path))?;
        cloud_tokens = encoded.tokens;
        let adapter = generator.adapter(&features.of(req.system)?, edge.arch.gguf_name())?;
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        write_lora_adapter(&cached, &adapter.arch, adapter.alpha, &adapter.pairs)?;
    }
    let bytes = std::fs::read(&cached).map_err(|source| Error::Io {
        path: cached.clone(),
        source,
    })?;
    let manifest = Manifest {
        registry_fingerprint,
        edge_sha256: req.edge_sha256.to_owned(),
        cloud_sha256: req.cloud_sha256.to_owned(),
        generator_sha256,
        prompt_format: PROMPT_FORMAT.to_owned(),
        adapter_sha256: sha256_hex(&bytes),
    };
    if req.cache {
        write_atomic_with(out, |tmp| {
            std::fs::write(tmp, &bytes).map_err(|source| Error::Io {
                path: tmp.to_path_buf(),
                source,
            })
        })?;
    } else {
        std::fs::rename(&cached, out).map_err(|source| Error::Io {
            path: out.to_path_buf(),
            source,
        })?;
    }
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(&manifest_path(out), &json)?;
    Ok(Compiled {
        adapter: out.to_path_buf(),
        manifest,
        cached: was_cached,
        cloud_tokens,
    })
}

/// `<adapter>.manifest.json`.
pub fn manifest_path(adapter: &Path) -> PathBuf {
    let mut name = adapter.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
