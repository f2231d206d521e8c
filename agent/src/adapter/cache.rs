//! Compiled adapters by registry: where their files live, and the one path
//! from a system part to an adapter the host holds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use loragen_protocol::render::fingerprint;

use crate::error::{Error, Result};
use crate::runtime::AdapterHost;
use loragen_protocol::artifact::{AdapterSource, Manifest};

/// The adapters of the registries a command meets, kept as
/// `<dir>/<fingerprint>.gguf` with their manifests, and compiled by a
/// source (the generator in this process, or a remote cloud role) when
/// missing. [`AdapterCache::ensure`] is how the REPL, `eval`, `bench
/// gpt4tools` and the edge server get a registry's adapter into their
/// [`AdapterHost`], which checks it and holds it under the registry's
/// fingerprint.
///
/// # Examples
///
/// ```no_run
/// use loragen_agent::adapter::AdapterCache;
/// use loragen_protocol::artifact::AdapterSource;
/// use loragen_agent::runtime::{AdapterHost, GenerateParams, SessionParams};
///
/// # fn source() -> Box<dyn AdapterSource> { unimplemented!() }
/// let mut host = AdapterHost::load("edge.gguf")?;
/// let mut cache = AdapterCache::new("adapters", source());
/// let ensured = cache.ensure(&mut host, "You are a helpful assistant ...")?;
/// let text = host.with_session(&SessionParams::default(), Some(&ensured.key), |s| {
///     Ok(s.generate("Human: hi\n", &GenerateParams::default())?.text)
/// })?;
/// # Ok::<(), loragen_agent::Error>(())
/// ```
pub struct AdapterCache {
    dir: PathBuf,
    source: Box<dyn AdapterSource>,
    compile_cache: bool,
}

impl std::fmt::Debug for AdapterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterCache")
            .field("dir", &self.dir)
            .field("compile_cache", &self.compile_cache)
            .finish_non_exhaustive()
    }
}

/// How [`AdapterCache::ensure`] found a registry's adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensured {
    /// The host's key for it: the registry fingerprint.
    pub key: String,
    /// The host held it already.
    pub held: bool,
    /// Its file was in the cache directory already (and checked).
    pub on_disk: bool,
    /// Seconds spent compiling it now (0 when held or on disk).
    pub compile_s: f64,
}

impl AdapterCache {
    /// Adapters under `dir` (made on first use), compiled by `source`
    /// through its own compile cache.
    pub fn new(dir: impl Into<PathBuf>, source: Box<dyn AdapterSource>) -> Self {
        AdapterCache {
            dir: dir.into(),
            source,
            compile_cache: true,
        }
    }

    /// Whether the source may answer from its compile cache (default yes).
    /// Validation runs that compile hundreds of registries once each, and
    /// time the compiles, turn it off.
    #[must_use]
    pub fn with_compile_cache(mut self, on: bool) -> Self {
        self.compile_cache = on;
        self
    }

    /// The file of the adapter with host key `key`.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.gguf"))
    }

    /// Makes sure `host` holds the adapter of `system` under its
    /// fingerprint: held already, on disk with a manifest that checks, or
    /// compiled now. A kept file counts only if the source would make the
    /// same adapter now ([`AdapterSource::is_current`]). Whatever the source
    /// wrote is checked by the host like any adapter.
    pub fn ensure(&mut self, host: &mut AdapterHost, system: &str) -> Result<Ensured> {
        let key = fingerprint(system);
        if host.holds(&key) {
            return Ok(Ensured {
                key,
                held: true,
                on_disk: false,
                compile_s: 0.0,
            });
        }
        let path = self.path_of(&key);
        // A kept file is held if its manifest is current; the host's own
        // check (the file's sha256 among it) runs once, as it loads it.
        let on_disk = matches!(
            Manifest::read(&path),
            Ok(Some(manifest)) if self.source.is_current(&manifest)
        ) && host.hold_adapter(&key, &path).is_ok();
        let mut compile_s = 0.0;
        if !on_disk {
            std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            let started = Instant::now();
            self.source
                .compile_adapter(system, &path, self.compile_cache)?;
            compile_s = started.elapsed().as_secs_f64();
            host.hold_adapter(&key, &path)?;
        }
        Ok(Ensured {
            key,
            held: false,
            on_disk,
            compile_s,
        })
    }

    /// The directory the adapters live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
