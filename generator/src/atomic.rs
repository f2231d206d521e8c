//! Files that appear under their final name only when complete.

use std::path::Path;

use crate::error::{Error, Result};

/// Lets `write` fill a temporary file beside `path` (given its path), then
/// syncs it, makes it an ordinary readable file (temporary files are
/// private) and renames it into place. On error nothing is left behind.
pub(crate) fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    write(tmp.path())?;
    let file = std::fs::File::open(tmp.path()).map_err(io)?;
    file.sync_all().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
