//! Turning "edge", "cloud" or a path into a GGUF file on disk.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

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
            (ModelChoice::Path(path), _) => return check_gguf(path).map(|()| path.clone()),
            (ModelChoice::Role(_), Some(path)) => return check_gguf(path).map(|()| path.to_path_buf()),
            (ModelChoice::Role(role), None) => *role,
        };
        let spec = ModelSpec::for_role(role);
        match self.presence(&spec) {
            Presence::Verified => {}
            Presence::Unverified => self.verify(&spec)?,
            Presence::Missing => return Err(Error::NotFetched { role: role.to_string(), path: self.path_of(&spec) }),
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

/// Fails unless `path` is a readable file starting with the GGUF magic.
pub fn check_gguf(path: &Path) -> Result<()> {
    let unreadable = |source| Error::Unreadable { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    if file.metadata().map_err(unreadable)?.is_dir() {
        return Err(unreadable(std::io::Error::other("is a directory")));
    }
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) => Err(Error::NotGguf { path: path.to_path_buf() }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::NotGguf { path: path.to_path_buf() }),
        Err(e) => Err(unreadable(e)),
    }
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
        assert!(matches!(check_gguf(&dir.path().join("absent")), Err(Error::Unreadable { .. })));
        assert!(matches!(check_gguf(dir.path()), Err(Error::Unreadable { .. })));
    }

    #[test]
    fn choices_parse() {
        assert_eq!("edge".parse(), Ok(ModelChoice::Role(Role::Edge)));
        assert_eq!("cloud".parse(), Ok(ModelChoice::Role(Role::Cloud)));
        assert_eq!("x.gguf".parse(), Ok(ModelChoice::Path("x.gguf".into())));
    }
}
