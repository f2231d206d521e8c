//! Which generator checkpoint a command compiles with when none is named:
//! an explicit flag wins, then `LORAGEN_GENERATOR`, then the checkpoint
//! shipped in the checkout this binary was built from. The tool selector
//! is found the same way (`--selector`, `LORAGEN_SELECTOR`, the shipped
//! one), but it is optional: without one, artifacts carry no selector part.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The environment variable naming a generator checkpoint directory.
pub const GENERATOR_ENV: &str = "LORAGEN_GENERATOR";

/// The environment variable naming a tool selector directory.
pub const SELECTOR_ENV: &str = "LORAGEN_SELECTOR";

/// The shipped default generator of the checkout this crate was built
/// from (`generator/checkpoints/default`). It is found by path, so a
/// binary copied away from its checkout needs `--generator` or
/// [`GENERATOR_ENV`].
///
/// # Examples
///
/// ```
/// let dir = loragen_generator::shipped::shipped_dir();
/// assert!(dir.ends_with("generator/checkpoints/default"));
/// ```
pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints/default")
}

/// The shipped tool selector of the checkout this crate was built from
/// (`generator/checkpoints/selector`), found by path like [`shipped_dir`].
pub fn shipped_selector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints/selector")
}

/// Where a generator checkpoint or a selector came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--generator` / `--checkpoint` / `--selector`.
    Flag,
    /// The environment variable named.
    Env(&'static str),
    /// The shipped directory.
    Shipped,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Flag => "given",
            Origin::Env(name) => name,
            Origin::Shipped => "shipped",
        })
    }
}

/// A generator checkpoint or selector directory and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub dir: PathBuf,
    pub origin: Origin,
}

/// The generator to use: `flag` if given, else a non-empty `env` (the
/// value of [`GENERATOR_ENV`]), else `shipped` when it exists. Only where
/// the directory is decided here; whether it holds a generator is checked
/// when it is opened (`compile::Compiler::open`), with an error naming the
/// file.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use loragen_generator::shipped::{locate_in, Origin};
///
/// let shipped = Path::new("/nonexistent/default");
/// let found = locate_in(None, Some("runs/gen/snapshots/step-3000".into()), shipped)?;
/// assert_eq!(found.origin, Origin::Env("LORAGEN_GENERATOR"));
/// let err = locate_in(None, None, shipped).unwrap_err().to_string();
/// assert!(err.contains("--generator") && err.contains("LORAGEN_GENERATOR"));
/// # Ok::<(), loragen_generator::Error>(())
/// ```
pub fn locate_in(
    flag: Option<&Path>,
    env: Option<std::ffi::OsString>,
    shipped: &Path,
) -> Result<Located> {
    find(flag, env.map(|v| (GENERATOR_ENV, v)), shipped).ok_or_else(|| Error::NoGenerator {
        shipped: shipped.to_path_buf(),
    })
}

/// [`locate_in`] with this process's [`GENERATOR_ENV`] and [`shipped_dir`].
pub fn locate(flag: Option<&Path>) -> Result<Located> {
    locate_in(flag, std::env::var_os(GENERATOR_ENV), &shipped_dir())
}

/// The tool selector to use, if any: `flag` if given, else a non-empty
/// [`SELECTOR_ENV`], else [`shipped_selector_dir`] when it exists.
pub fn locate_selector(flag: Option<&Path>) -> Option<Located> {
    find(
        flag,
        std::env::var_os(SELECTOR_ENV).map(|v| (SELECTOR_ENV, v)),
        &shipped_selector_dir(),
    )
}

/// `flag`, else a non-empty variable `env` (its name and value), else
/// `shipped` when it exists.
fn find(
    flag: Option<&Path>,
    env: Option<(&'static str, std::ffi::OsString)>,
    shipped: &Path,
) -> Option<Located> {
    if let Some(dir) = flag {
        return Some(Located {
            dir: dir.to_path_buf(),
            origin: Origin::Flag,
        });
    }
    if let Some((name, dir)) = env.filter(|(_, v)| !v.is_empty()) {
        return Some(Located {
            dir: dir.into(),
            origin: Origin::Env(name),
        });
    }
    shipped.exists().then(|| Located {
        dir: shipped.to_path_buf(),
        origin: Origin::Shipped,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_flag_beats_the_variable_which_beats_the_shipped_directory() {
        let shipped = tempfile::tempdir().unwrap();
        let flag = Path::new("flag-dir");
        let env = || Some(std::ffi::OsString::from("env-dir"));
        let found = locate_in(Some(flag), env(), shipped.path()).unwrap();
        assert_eq!((found.dir.as_path(), found.origin), (flag, Origin::Flag));
        let found = locate_in(None, env(), shipped.path()).unwrap();
        assert_eq!(
            (found.dir.as_path(), found.origin),
            (Path::new("env-dir"), Origin::Env(GENERATOR_ENV))
        );
        for empty in [None, Some(std::ffi::OsString::new())] {
            let found = locate_in(None, empty, shipped.path()).unwrap();
            assert_eq!(found.origin, Origin::Shipped);
            assert_eq!(found.dir, shipped.path());
        }
    }

    #[test]
    fn none_of_the_three_is_one_line_naming_all_three() {
        let missing = Path::new("/nonexistent/checkpoints/default");
        let err = locate_in(None, None, missing).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        for part in [
            "--generator",
            GENERATOR_ENV,
            "/nonexistent/checkpoints/default",
        ] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
    }
}
