//! sha256 as lowercase hex: the one way the project names files, models,
//! checkpoints, registries and data by their contents.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Lowercase hex of `bytes`.
///
/// # Examples
///
/// ```
/// assert_eq!(loragen_protocol::digest::hex(&[0x0a, 0xff]), "0aff");
/// ```
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 hex digits of a digest: how messages and names show one.
/// Shorter input comes back whole.
///
/// # Examples
///
/// ```
/// use loragen_protocol::digest::short;
/// assert_eq!(short("ba7816bf8f01cfea414140de5dae2223"), "ba7816bf8f01");
/// assert_eq!(short("ba78"), "ba78");
/// ```
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// sha256 of `bytes`, as hex.
///
/// # Examples
///
/// ```
/// assert_eq!(
///     loragen_protocol::digest::sha256_hex(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// sha256 of everything `reader` yields, as hex, read in 1 MiB chunks so
/// that a model file is never held in memory; `on_chunk` hears each
/// chunk's length (for progress bars).
pub fn sha256_reader(
    mut reader: impl Read,
    mut on_chunk: impl FnMut(usize),
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        on_chunk(n);
    }
}

/// sha256 of the file at `path`, as hex, streamed.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("f");
/// std::fs::write(&path, b"abc")?;
/// assert_eq!(
///     loragen_protocol::digest::sha256_file(&path)?,
///     loragen_protocol::digest::sha256_hex(b"abc")
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sha256_reader(std::fs::File::open(path)?, |_| {})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn streaming_agrees_with_one_shot_across_chunk_boundaries() {
        // 1 MiB chunks: lengths around the boundary and the empty input.
        for len in [0usize, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut chunks = 0;
            let streamed = sha256_reader(&data[..], |n| chunks += n).unwrap();
            assert_eq!(streamed, sha256_hex(&data), "length {len}");
            assert_eq!(chunks, len);
        }
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
