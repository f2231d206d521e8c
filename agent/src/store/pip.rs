//! Downloading wheels with `python -m pip download`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Checks that `python -m pip` runs at all, before any download starts.
pub(crate) fn check_pip(python: &str) -> Result<()> {
    let out = Command::new(python)
        .args(["-m", "pip", "--version"])
        .output()
        .map_err(|_| Error::PythonMissing {
            python: python.to_owned(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::PipMissing {
            python: python.to_owned(),
            detail: last_line(&out.stderr),
        })
    }
}

/// Downloads the wheel of `package==version` into `dir` and returns its path.
pub(crate) fn download(
    python: &str,
    extra_args: &[String],
    package: &str,
    version: &str,
    dir: &Path,
) -> Result<PathBuf> {
    let requirement = format!("{package}=={version}");
    let out = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--progress-bar", "off", "--disable-pip-version-check", "-d"])
        .arg(dir)
        .args(extra_args)
        .arg(&requirement)
        .output()
        .map_err(|_| Error::PythonMissing {
            python: python.to_owned(),
        })?;
    if !out.status.success() {
        return Err(classify_failure(package, &out.stderr));
    }
    find_wheel(dir, package, version)?.ok_or_else(|| Error::PipFailed {
        package: package.to_owned(),
        detail: format!(
            "pip reported success but no wheel of {requirement} is in {}",
            dir.display()
        ),
    })
}

/// The wheel of `package==version` in `dir`, if there is one.
pub(crate) fn find_wheel(dir: &Path, package: &str, version: &str) -> Result<Option<PathBuf>> {
    // Wheel file names use the normalised project name (PEP 427).
    let prefix = format!("{}-{version}-", package.replace(['-', '.'], "_"));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(&prefix) && name.ends_with(".whl") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn classify_failure(package: &str, stderr: &[u8]) -> Error {
    let text = String::from_utf8_lossy(stderr);
    let detail = last_line(stderr);
    let package = package.to_owned();
    let network = [
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "Max retries exceeded",
        "Connection refused",
    ];
    if network.iter().any(|m| text.contains(m)) {
        Error::RegistryUnreachable { package, detail }
    } else if text.contains("No matching distribution") || text.contains("Could not find a version")
    {
        Error::PackageNotFound { package, detail }
    } else {
        Error::PipFailed { package, detail }
    }
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_errors_are_classified() {
        let err = classify_failure(
            "p",
            b"WARNING: Retrying ... Failed to establish a new connection\nERROR: No matching distribution found for p==1",
        );
        assert!(matches!(err, Error::RegistryUnreachable { .. }), "{err}");
        let err = classify_failure("p", b"ERROR: No matching distribution found for p==1\n");
        assert!(matches!(err, Error::PackageNotFound { .. }), "{err}");
    }
}
