//! Turning "edge", "cloud" or a path into a GGUF file on disk.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::quantized::gguf_file::Content;

use super::{ModelSpec, ModelStore, Presence, Role};
use crate::error::{Error, Result};

/// A model named on the command line: a default role or any GGUF path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    Role(Role),
    Path(PathBuf),
}

impl FromStr for ModelChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "edge" => ModelChoice::Role(Role::Edge),
            "cloud" => ModelChoice::Role(Role::Cloud),
            path => ModelChoice::Path(PathBuf::from(path)),
        })
    }
}

impl ModelStore {
    /// Resolves a choice to a readable GGUF file.
    ///
    /// `override_path` replaces the cached default for a role (the
    /// `--edge-model`/`--cloud-model` flags and their env variables).
    pub fn resolve(&self, choice: &ModelChoice, override_path: Option<&Path>) -> Result<PathBuf> {
        let role = match (choice, override_path) {
            // The header is parsed when the file is loaded; here only that
            // it is a readable GGUF file, so a load parses it once.
            (ModelChoice::Path(path), _) => return open_gguf(path).map(|_| path.clone()),
            (ModelChoice::Role(_), Some(path)) => {
                return open_gguf(path).map(|_| path.to_path_buf())
            }
            (ModelChoice::Role(role), None) => *role,
        };
        let spec = ModelSpec::for_role(role);
        match self.presence(&spec) {
            Presence::Verified => {}
            Presence::Unverified => self.verify(&spec)?,
            Presence::Missing => {
                return Err(Error::NotFetched {
                    role: role.to_string(),
                    path: self.path_of(&spec),
                })
            }
        }
        Ok(self.path_of(&spec))
    }
}

impl ModelStore {
    /// The model for `role`, honouring its `LORAGEN_*_MODEL` override.
    pub fn resolve_role(&self, role: Role) -> Result<PathBuf> {
        let override_path = std::env::var_os(role.env_var()).map(PathBuf::from);
        self.resolve(&ModelChoice::Role(role), override_path.as_deref())
    }
}

/// Fails unless `path` is a readable GGUF file whose header parses and
/// whose tensor data all lies inside the file.
pub fn check_gguf(path: &Path) -> Result<()> {
    read_gguf(path).map(|_| ())
}

/// Opens a GGUF file and reads its header (metadata and tensor table); the
/// reader stays open for the tensor data. Every loader of GGUF files (the
/// llama.cpp runtime, the candle edge model, the adapter reader and the
/// merge) goes through here, so a truncated or malformed file gets one
/// clear error naming the file and the problem.
pub fn read_gguf(path: &Path) -> Result<(Content, BufReader<File>)> {
    let bad = |detail: String| Error::BadGguf {
        path: path.to_path_buf(),
        detail,
    };
    let (file, meta) = open_gguf(path)?;
    let mut reader = BufReader::new(file);
    let content =
        Content::read(&mut reader).map_err(|e| bad(format!("the header does not parse ({e})")))?;
    for (name, info) in &content.tensor_infos {
        let (block, bytes_per_block) = (info.ggml_dtype.block_size(), info.ggml_dtype.type_size());
        let elems = info
            .shape
            .dims()
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d));
        let size = elems
            .filter(|n| n % block == 0)
            .and_then(|n| (n / block).checked_mul(bytes_per_block))
            .ok_or_else(|| {
                bad(format!(
                    "tensor `{name}` has an impossible shape {:?} for {:?}",
                    info.shape.dims(),
                    info.ggml_dtype
                ))
            })?;
        let end = content
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|o| o.checked_add(size as u64));
        if end.is_none_or(|end| end > meta.len()) {
            return Err(bad(format!(
                "truncated: the data of tensor `{name}` ends past the end of the file ({} bytes)",
                meta.len()
            )));
        }
    }
    Ok((content, reader))
}

/// Opens `path` after checking that it is a readable file that starts
/// with the GGUF magic bytes; the file is positioned at its start.
fn open_gguf(path: &Path) -> Result<(File, std::fs::Metadata)> {
    let unreadable = |source| Error::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if meta.is_dir() {
        return Err(unreadable(std::io::Error::other("is a directory")));
    }
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => {}
        Ok(()) => {
            return Err(Error::NotGguf {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(Error::NotGguf {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(unreadable(e)),
    }
    file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_gguf_and_missing_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("model.gguf");
        std::fs::write(&text, b"not a model").unwrap();
        assert!(matches!(check_gguf(&text), Err(Error::NotGguf { .. })));
        let empty = dir.path().join("empty.gguf");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(check_gguf(&empty), Err(Error::NotGguf { .. })));
        assert!(matches!(
            check_gguf(&dir.path().join("absent")),
            Err(Error::Unreadable { .. })
        ));
        assert!(matches!(
            check_gguf(dir.path()),
            Err(Error::Unreadable { .. })
        ));
    }

    #[test]
    fn choices_parse() {
        assert_eq!("edge".parse(), Ok(ModelChoice::Role(Role::Edge)));
        assert_eq!("cloud".parse(), Ok(ModelChoice::Role(Role::Cloud)));
        assert_eq!("x.gguf".parse(), Ok(ModelChoice::Path("x.gguf".into())));
    }
}
