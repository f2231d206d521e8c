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
    /// The tool selector's part, when the registry was compiled with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorPart>,
}

/// The tool selector's part of a compiled artifact (issue 29): the
/// registry's tools embedded by a selector's tool tower, in the file
/// [`selector_path`] names beside the adapter. Its query side runs on the
/// base edge model at each prompt, so the selector that made the part must
/// be the one that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorPart {
    /// sha256 of the selector's `model.safetensors`.
    pub selector_sha256: String,
    /// sha256 of the part's file.
    pub sha256: String,
}

/// `<adapter>.selector.json`: the tool selector's part of a compiled
/// artifact.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// let p = loragen_protocol::artifact::selector_path(Path::new("out/tools.gguf"));
/// assert_eq!(p, Path::new("out/tools.gguf.selector.json"));
/// ```
pub fn selector_path(adapter: &Path) -> PathBuf {
    let mut name = adapter.as_os_str().to_owned();
    name.push(".selector.json");
    PathBuf::from(name)
}

/// What the selector's part holds: each tool of the registry, in registry
/// order, with its unit embedding from the selector's tool tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectorTools {
    /// sha256 of the selector's `model.safetensors`.
    pub selector_sha256: String,
    pub names: Vec<String>,
    /// One row per name.
    pub embeddings: Vec<Vec<f32>>,
}

impl SelectorTools {
    /// Writes the part beside `adapter`, atomically, and describes it for
    /// the manifest.
    pub fn write(&self, adapter: &Path) -> Result<SelectorPart> {
        let path = selector_path(adapter);
        let json = serde_json::to_vec(self)?;
        write_atomic(&path, &json)?;
        Ok(SelectorPart {
            selector_sha256: self.selector_sha256.clone(),
            sha256: crate::digest::sha256_hex(&json),
        })
    }

    /// The selector's part of the artifact at `adapter`, for the selector
    /// whose weights hash to `selector_sha256`. An artifact compiled
    /// without a selector or with another one, or whose part is not the
    /// file its manifest describes, is refused by name.
    pub fn read(adapter: &Path, manifest: &Manifest, selector_sha256: &str) -> Result<Self> {
        let refuse = |detail: String| Error::Adapter {
            path: adapter.to_path_buf(),
            detail,
        };
        let part = manifest.selector.as_ref().ok_or_else(|| {
            refuse(format!(
                "compiled without a tool selector, but the selector {} is in use; compile it again",
                short(selector_sha256)
            ))
        })?;
        if part.selector_sha256 != selector_sha256 {
            return Err(refuse(format!(
                "compiled with the tool selector {}, but the selector here is {}; compile it again",
                short(&part.selector_sha256),
                short(selector_sha256)
            )));
        }
        let path = selector_path(adapter);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let actual = crate::digest::sha256_hex(&bytes);
        if actual != part.sha256 {
            return Err(Error::Adapter {
                path,
                detail: format!(
                    "the file's sha256 is {}, not the {} its manifest names: it was changed after compiling",
                    short(&actual),
                    short(&part.sha256)
                ),
            });
        }
        let tools: SelectorTools = serde_json::from_slice(&bytes).map_err(|e| Error::Adapter {
            path: path.clone(),
            detail: format!("not a tool selector's part ({e})"),
        })?;
        if tools.names.len() != tools.embeddings.len() || tools.selector_sha256 != selector_sha256 {
            return Err(Error::Adapter {
                path,
                detail: format!(
                    "{} names against {} embeddings, for the selector {}",
                    tools.names.len(),
                    tools.embeddings.len(),
                    short(&tools.selector_sha256)
                ),
            });
        }
        Ok(tools)
    }
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

impl CompiledAdapter {
    /// Copies the artifact (the adapter, the selector's part if its
    /// manifest lists one, and the manifest) to `out`, each file
    /// atomically.
    pub fn copy_to(&self, out: &Path) -> Result<CompiledAdapter> {
        crate::atomic::copy_atomic(&self.path, out)?;
        if self.manifest.selector.is_some() {
            crate::atomic::copy_atomic(&selector_path(&self.path), &selector_path(out))?;
        }
        self.manifest.write(out)?;
        Ok(CompiledAdapter {
            path: out.to_path_buf(),
            ..self.clone()
        })
    }
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
            selector: None,
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
    fn the_selectors_part_is_read_only_by_its_selector_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (adapter, mut manifest) = compiled(dir.path());
        let (ours, theirs) = ("a".repeat(64), "b".repeat(64));
        let err = SelectorTools::read(&adapter, &manifest, &ours)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.gguf") && err.contains("compiled without a tool selector"),
            "{err}"
        );

        let tools = SelectorTools {
            selector_sha256: ours.clone(),
            names: vec!["f".into(), "g".into()],
            embeddings: vec![vec![0.6, 0.8], vec![1.0, -0.0]],
        };
        manifest.selector = Some(tools.write(&adapter).unwrap());
        manifest.write(&adapter).unwrap();
        let manifest = Manifest::read(&adapter).unwrap().unwrap();
        assert_eq!(
            SelectorTools::read(&adapter, &manifest, &ours).unwrap(),
            tools
        );

        let err = SelectorTools::read(&adapter, &manifest, &theirs)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("compiled with the tool selector aaaa") && err.contains("bbbb"),
            "{err}"
        );

        std::fs::write(selector_path(&adapter), b"{}").unwrap();
        let err = SelectorTools::read(&adapter, &manifest, &ours)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.gguf.selector.json") && err.contains("changed after compiling"),
            "{err}"
        );
        std::fs::remove_file(selector_path(&adapter)).unwrap();
        let err = SelectorTools::read(&adapter, &manifest, &ours)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.gguf.selector.json"), "{err}");
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
