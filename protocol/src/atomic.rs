//! Files that appear under their final name only when complete: the one
//! atomic writer of the workspace, for reports, corpora, checkpoints,
//! adapters and model files alike.

use std::path::{Path, PathBuf};

/// An I/O failure while writing `path` atomically.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Lets `write` fill a temporary file beside `path` (given the temporary
/// file's path), then syncs it, makes it an ordinary readable file
/// (temporary files are private) and renames it into place. If `write`
/// fails, for example because a checksum does not match, nothing is left
/// behind and the old file, if any, is untouched.
///
/// # Examples
///
/// ```
/// use loragen_protocol::atomic::{write_atomic_with, WriteError};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("report.md");
/// write_atomic_with(&path, |tmp| {
///     std::fs::write(tmp, "# done\n").map_err(|source| WriteError { path: tmp.to_owned(), source })
/// })?;
/// assert_eq!(std::fs::read_to_string(&path)?, "# done\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_atomic_with<E: From<WriteError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)
        .map_err(io)?;
    write(tmp.path())?;
    let file = std::fs::File::open(tmp.path()).map_err(io)?;
    file.sync_all().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Copies the file `from` to `path` atomically.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let (from, to) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"));
/// std::fs::write(&from, b"adapter")?;
/// loragen_protocol::atomic::copy_atomic(&from, &to)?;
/// assert_eq!(std::fs::read(&to)?, b"adapter");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn copy_atomic(from: &Path, path: &Path) -> Result<(), WriteError> {
    write_atomic_with(path, |tmp| {
        std::fs::copy(from, tmp)
            .map(drop)
            .map_err(|source| WriteError {
                path: tmp.to_owned(),
                source,
            })
    })
}

/// Writes `bytes` to `path` atomically.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("run.json");
/// loragen_protocol::atomic::write_atomic(&path, b"{}")?;
/// assert_eq!(std::fs::read(&path)?, b"{}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic_with(path, |tmp| {
        std::fs::write(tmp, bytes).map_err(|source| WriteError {
            path: tmp.to_owned(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(WriteError {
                path: tmp.to_owned(),
                source: std::io::Error::other("checksum mismatch"),
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["model.gguf"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let err = write_atomic(Path::new("/nonexistent-dir/x/report.md"), b"x").unwrap_err();
        assert!(err.to_string().contains("report.md"), "{err}");
    }
}
