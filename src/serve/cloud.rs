//! The cloud role's compile thread: one generator, one compile at a time,
//! every result kept under its registry fingerprint as the artifact of the
//! generator issue (GGUF adapter plus manifest) so that
//! `GET /v1/adapters/{fingerprint}` can serve it, across restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use loragen_protocol::artifact::{AdapterSource, CompiledAdapter, Manifest};
use tokio::sync::oneshot;

use super::error::{ApiError, Result};
use super::metrics::Metrics;

struct CompileWork {
    system: String,
    reply: oneshot::Sender<loragen_protocol::Result<CompiledAdapter>>,
}

/// The handle of the compile thread. It is itself an [`AdapterSource`],
/// so an edge role in the same process compiles through it.
#[derive(Debug, Clone)]
pub struct CloudWorker {
    queue: std::sync::mpsc::Sender<CompileWork>,
    dir: PathBuf,
    metrics: Arc<Metrics>,
}

impl CloudWorker {
    /// Starts the compile thread; `make` builds the compiler on it.
    /// Artifacts are kept in `dir` as `<fingerprint>.gguf` and its manifest.
    pub fn spawn<F>(make: F, dir: PathBuf, metrics: Arc<Metrics>) -> Result<Self>
    where
        F: FnOnce() -> Result<Box<dyn AdapterSource>> + Send + 'static,
    {
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = std::sync::mpsc::channel::<CompileWork>();
        let thread_dir = dir.clone();
        let thread_metrics = Arc::clone(&metrics);
        super::spawn_worker("cloud-compile", make, move |mut source| {
            for work in rx {
                let _span =
                    tracing::info_span!("cloud_compile", bytes = work.system.len()).entered();
                let fingerprint = loragen_protocol::render::fingerprint(&work.system);
                let out = thread_dir.join(format!("{fingerprint}.gguf"));
                let result = source.compile_adapter(&work.system, &out, true);
                if let Ok(c) = &result {
                    let counter = if c.cached {
                        &thread_metrics.compile_cache_hits
                    } else {
                        &thread_metrics.compiles
                    };
                    counter.inc();
                }
                let _ = work.reply.send(result);
            }
        })?;
        Ok(CloudWorker {
            queue: tx,
            dir,
            metrics,
        })
    }

    /// Compiles `system` (or finds it in the cache), without blocking the
    /// executor.
    pub async fn compile(&self, system: String) -> Result<CompiledAdapter, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(CompileWork { system, reply })
            .map_err(|_| ApiError::internal("the compile thread has stopped"))?;
        rx.await
            .map_err(|_| ApiError::internal("the compile thread has stopped"))?
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// The artifact of `fingerprint`, if this server has compiled it.
    pub fn artifact(&self, fingerprint: &str) -> Result<Option<(PathBuf, Manifest)>, ApiError> {
        if fingerprint.len() != 64 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let path = self.dir.join(format!("{fingerprint}.gguf"));
        match Manifest::read(&path) {
            Ok(Some(m)) if path.exists() => Ok(Some((path, m))),
            Ok(_) => Ok(None),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl AdapterSource for CloudWorker {
    /// Compiles on the compile thread (blocking the caller, which must not
    /// be the async executor) and copies the artifact to `out`.
    fn compile_adapter(
        &mut self,
        system: &str,
        out: &Path,
        _cache: bool,
    ) -> loragen_protocol::Result<CompiledAdapter> {
        let (reply, rx) = oneshot::channel();
        let gone = || loragen_protocol::Error::Compile("the compile thread has stopped".into());
        self.queue
            .send(CompileWork {
                system: system.to_owned(),
                reply,
            })
            .map_err(|_| gone())?;
        let compiled = rx.blocking_recv().map_err(|_| gone())??;
        compiled.copy_to(out)
    }
}
