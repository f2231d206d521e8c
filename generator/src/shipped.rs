//! Which generator checkpoint a command compiles with when none is named:
//! an explicit flag wins, then `LORAGEN_GENERATOR`, then the checkpoint
//! shipped in the checkout this binary was built from.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The environment variable naming a generator checkpoint directory.
pub const GENERATOR_ENV: &str = "LORAGEN_GENERATOR";

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

/// Where a command's generator checkpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--generator` / `--checkpoint`.
    Flag,
    /// [`GENERATOR_ENV`].
    Env,
    /// [`shipped_dir`].
    Shipped,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Flag => "given",
            Origin::Env => GENERATOR_ENV,
            Origin::Shipped => "shipped",
        })
    }
}

/// A generator checkpoint directory and where it came from.
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
/// assert_eq!(found.origin, Origin::Env);
/// let err = locate_in(None, None, shipped).unwrap_err().to_string();
/// assert!(err.contains("--generator") && err.contains("LORAGEN_GENERATOR"));
/// # Ok::<(), loragen_generator::Error>(())
/// ```
pub fn locate_in(
    flag: Option<&Path>,
    env: Option<std::ffi::OsString>,
    shipped: &Path,
) -> Result<Located> {
    if let Some(dir) = flag {
        return Ok(Located {
            dir: dir.to_path_buf(),
            origin: Origin::Flag,
        });
    }
    if let Some(dir) = env.filter(|v| !v.is_empty()) {
        return Ok(Located {
            dir: dir.into(),
            origin: Origin::Env,
        });
    }
    if shipped.exists() {
        return Ok(Located {
            dir: shipped.to_path_buf(),
            origin: Origin::Shipped,
        });
    }
    Err(Error::NoGenerator {
        shipped: shipped.to_path_buf(),
    })
}

/// [`locate_in`] with this process's [`GENERATOR_ENV`] and [`shipped_dir`].
pub fn locate(flag: Option<&Path>) -> Result<Located> {
    locate_in(flag, std::env::var_os(GENERATOR_ENV), &shipped_dir())
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
            (Path::new("env-dir"), Origin::Env)
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
