//! The compiled artifact: a GGUF LoRA file plus a manifest saying what it
//! was compiled from. The agent's adapter host reads and checks manifests;
//! whatever compiles registries (the generator, a remote cloud service)
//! implements [`AdapterSource`], so neither depends on the other.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::digest::{sha256_file, short};
use crate::error::{Error, Result};

/// The version of the prompt format compiled adapters serve: the
/// GPT4Tools/ReAct protocol with the system part left out.
pub const PROMPT_FORMAT: &str = "react-compiled-v1";

/// What a compiled adapter was made from; it sits beside the adapter as
/// `<adapter>.manifest.json` (see [`manifest_path`]).
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

/// `<adapter>.manifest.json`.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// let m = loragen_protocol::artifact::manifest_path(Path::new("out/tools.gguf"));
/// assert_eq!(m, Path::new("out/tools.gguf.manifest.json"));
/// ```
pub fn manifest_path(adapter: &Path) -> PathBuf {
    let mut name = adapter.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

impl Manifest {
    /// The manifest beside `adapter`, if there is one.
    pub fn read(adapter: &Path) -> Result<Option<Self>> {
        let path = manifest_path(adapter);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Adapter {
                path: path.clone(),
                detail: format!("not a compiled-adapter manifest ({e})"),
            })
    }

    /// Writes the manifest beside `adapter`, atomically.
    pub fn write(&self, adapter: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Adapter {
            path: adapter.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(write_atomic(&manifest_path(adapter), &json)?)
    }

    /// Refuses an adapter compiled for another edge model or prompt format,
    /// or whose file is not the one the manifest describes.
    pub fn check(&self, adapter: &Path, edge_sha256: &str) -> Result<()> {
        let refuse = |detail: String| {
            Err(Error::Adapter {
                path: adapter.to_path_buf(),
                detail,
            })
        };
        if self.edge_sha256 != edge_sha256 {
            return refuse(format!(
                "compiled for the edge model {}, but the edge model here is {}; compile it again for this model",
                short(&self.edge_sha256),
                short(edge_sha256)
            ));
        }
        if self.prompt_format != PROMPT_FORMAT {
            return refuse(format!(
                "compiled for the prompt format {:?}, but this build speaks {PROMPT_FORMAT:?}; compile it again",
                self.prompt_format
            ));
        }
        let actual = sha256_file(adapter).map_err(|source| Error::Io {
            path: adapter.to_path_buf(),
            source,
        })?;
        if actual != self.adapter_sha256 {
            return refuse(format!(
                "the file's sha256 is {}, not the {} its manifest names: it was changed after compiling",
                short(&actual),
                short(&self.adapter_sha256)
            ));
        }
        Ok(())
    }
}

/// A compiled adapter: the file and its manifest.
#[derive(Debug, Clone)]
pub struct CompiledAdapter {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Whether it came from a compile cache rather than a new compile.
    pub cached: bool,
}

/// Something that compiles a registry's system part into an adapter for
/// the edge model: the generator in-process, or a remote cloud service.
pub trait AdapterSource {
    /// Compiles `system` into an adapter at `out` (and its manifest beside
    /// it). With `cache`, an earlier compile of the same inputs is reused.
    fn compile_adapter(&mut self, system: &str, out: &Path, cache: bool)
        -> Result<CompiledAdapter>;

    /// Whether an adapter compiled earlier, described by `manifest`, is
    /// what this source would make now (same generator and models), so a
    /// kept file may be used instead of compiling again. A source that
    /// cannot tell (a remote cloud role) trusts it.
    fn is_current(&self, manifest: &Manifest) -> bool {
        let _ = manifest;
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What the host's check does: the manifest, if any, checked.
    fn check_adapter(adapter: &Path, edge_sha256: &str) -> Result<Option<Manifest>> {
        let manifest = Manifest::read(adapter)?;
        if let Some(m) = &manifest {
            m.check(adapter, edge_sha256)?;
        }
        Ok(manifest)
    }

    fn compiled(dir: &Path) -> (PathBuf, Manifest) {
        let adapter = dir.join("a.gguf");
        std::fs::write(&adapter, b"adapter bytes").unwrap();
        let manifest = Manifest {
            registry_fingerprint: "r".into(),
            edge_sha256: "e".repeat(64),
            cloud_sha256: "c".repeat(64),
            generator_sha256: "g".repeat(64),
            prompt_format: PROMPT_FORMAT.into(),
            adapter_sha256: crate::digest::sha256_hex(b"adapter bytes"),
        };
        manifest.write(&adapter).unwrap();
        (adapter, manifest)
    }

    #[test]
    fn a_matching_manifest_passes_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (adapter, manifest) = compiled(dir.path());
        let read = check_adapter(&adapter, &"e".repeat(64)).unwrap();
        assert_eq!(read, Some(manifest));
    }

    #[test]
    fn another_edge_model_a_changed_file_or_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (adapter, mut manifest) = compiled(dir.path());
        let err = check_adapter(&adapter, &"f".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("edge model") && err.contains("a.gguf"),
            "{err}"
        );

        manifest.prompt_format = "react-compiled-v0".into();
        manifest.write(&adapter).unwrap();
        let err = check_adapter(&adapter, &"e".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(err.contains("prompt format"), "{err}");

        manifest.prompt_format = PROMPT_FORMAT.into();
        manifest.write(&adapter).unwrap();
        std::fs::write(&adapter, b"other bytes").unwrap();
        let err = check_adapter(&adapter, &"e".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(err.contains("changed after compiling"), "{err}");
    }

    #[test]
    fn no_manifest_passes_unchecked_and_a_corrupt_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let adapter = dir.path().join("hand.gguf");
        std::fs::write(&adapter, b"x").unwrap();
        assert_eq!(check_adapter(&adapter, "e").unwrap(), None);
        std::fs::write(manifest_path(&adapter), b"{not json").unwrap();
        let err = check_adapter(&adapter, "e").unwrap_err().to_string();
        assert!(err.contains("not a compiled-adapter manifest"), "{err}");
    }
}
