//! A model that loads many adapters over its life, and the one session it
//! keeps between calls.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use self_cell::self_cell;

use super::model::{Adapter, Model};
use super::params::SessionParams;
use super::session::Session;
use crate::error::{Error, Result};
use crate::store::model_sha256;
use loragen_protocol::artifact::Manifest;

/// llama.cpp frees a LoRA adapter only with its model, so [`AdapterHost`]
/// reloads the model after this many adapters (each holds about 9 MB).
pub const ADAPTERS_PER_MODEL_LOAD: usize = 32;

/// The session a load of the model keeps, with the parameters it was
/// asked for.
type Kept<'m> = Option<(SessionParams, Session<'m>)>;

self_cell!(
    /// One load of the model and the session kept on it, which borrows it.
    struct Loaded {
        owner: Model,
        #[covariant]
        dependent: Kept,
    }
    impl {Debug}
);

/// A model that loads many adapters over its life (one per registry).
/// Holding [`ADAPTERS_PER_MODEL_LOAD`] adapters and asked for another, it
/// reloads itself from its file first, since llama.cpp frees adapters only
/// with their model. The one owner of that rule for evaluation, benchmarks
/// and the server.
///
/// Every adapter is checked against its manifest, if it has one, before
/// llama.cpp sees it: an adapter compiled for another edge model or prompt
/// format, or changed after compiling, is refused here, for every caller.
///
/// Adapters are held by the caller ([`AdapterHost::load_adapter`]) or by
/// the host under a key ([`AdapterHost::hold_adapter`]). The host also
/// keeps one session between calls of [`AdapterHost::with_session`]: a
/// llama.cpp context costs about 30 ms to make, and its KV cache lets the
/// next turn of a conversation under the same adapter prefill only what is
/// new. Loading an adapter ends the kept session, since llama.cpp needs the
/// model to itself for that.
///
/// # Examples
///
/// ```no_run
/// use loragen_agent::runtime::{AdapterHost, GenerateParams, SessionParams};
///
/// let mut host = AdapterHost::load("edge.gguf")?;
/// let params = SessionParams::default();
/// for registry in ["tools-a.gguf", "tools-b.gguf", "tools-a.gguf"] {
///     if !host.holds(registry) {
///         host.hold_adapter(registry, registry)?;
///     }
///     let text = host.with_session(&params, Some(registry), |session| {
///         Ok(session.generate("Human: hi\n", &GenerateParams::default())?.text)
///     })?;
///     println!("{text}");
/// }
/// # Ok::<(), loragen_agent::Error>(())
/// ```
#[derive(Debug)]
pub struct AdapterHost {
    /// `None` only after a failed reload: the next adapter load retries.
    loaded: Option<Loaded>,
    path: PathBuf,
    /// Adapters loaded into this load of the model.
    adapters: usize,
    /// The adapters the host holds itself, by the caller's key.
    held: HashMap<String, Adapter>,
    /// sha256 of the model file, hashed on the first manifest check unless
    /// given ([`AdapterHost::with_sha256`]).
    sha256: OnceCell<String>,
}

impl AdapterHost {
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Ok(AdapterHost {
            loaded: Some(Loaded::new(Model::load(path)?, |_| None)),
            path: path.to_owned(),
            adapters: 0,
            held: HashMap::new(),
            sha256: OnceCell::new(),
        })
    }

    /// The model file's sha256, when the caller knows it already, so that
    /// manifest checks do not hash the file again.
    #[must_use]
    pub fn with_sha256(self, sha256: impl Into<String>) -> Self {
        let sha256 = OnceCell::from(sha256.into());
        AdapterHost { sha256, ..self }
    }

    /// sha256 of the model file, as adapters' manifests name it.
    pub fn sha256(&self) -> Result<&str> {
        if let Some(sha) = self.sha256.get() {
            return Ok(sha);
        }
        let sha = model_sha256(&self.path)?;
        Ok(self.sha256.get_or_init(|| sha))
    }

    /// Checks the manifest beside `adapter`, if it has one, against this
    /// model: the one place adapters are checked before they are loaded.
    /// Adapters made by hand (`loragen adapter export`) have none and pass.
    pub fn check_adapter(&self, adapter: &Path) -> Result<Option<Manifest>> {
        let manifest = Manifest::read(adapter)?;
        if let Some(m) = &manifest {
            m.check(adapter, self.sha256()?)?;
        }
        Ok(manifest)
    }

    /// The model, for sessions of the caller's own.
    pub fn model(&self) -> Result<&Model> {
        let loaded = self
            .loaded
            .as_ref()
            .ok_or_else(|| reload_failed(&self.path))?;
        Ok(loaded.borrow_owner())
    }

    /// Loads an adapter that the caller holds, reloading the model first
    /// when it holds [`ADAPTERS_PER_MODEL_LOAD`] of them; the flag says
    /// whether it did, in which case every adapter loaded before is void
    /// and must be dropped without use (the host drops those it holds).
    pub fn load_adapter(&mut self, path: impl AsRef<Path>) -> Result<(Adapter, bool)> {
        self.check_adapter(path.as_ref())?;
        let reload = self.adapters == ADAPTERS_PER_MODEL_LOAD || self.loaded.is_none();
        // llama.cpp needs the model to itself: the kept session ends here.
        let mut model = match self.loaded.take() {
            Some(loaded) if !reload => loaded.into_owner(),
            old => {
                // The held adapters and the old model go before the new
                // one is loaded; should that fail, the next call retries.
                self.held.clear();
                drop(old);
                self.adapters = 0;
                Model::load(&self.path)?
            }
        };
        // Put back before the adapter's error, if any, is returned.
        let adapter = model.load_adapter(path);
        self.loaded = Some(Loaded::new(model, |_| None));
        let adapter = adapter?;
        self.adapters += 1;
        Ok((adapter, reload))
    }

    /// Whether the host holds an adapter under `key`.
    pub fn holds(&self, key: &str) -> bool {
        self.held.contains_key(key)
    }

    /// Loads the adapter at `path` and holds it under `key` (a registry
    /// fingerprint, say), for [`AdapterHost::with_session`].
    pub fn hold_adapter(&mut self, key: &str, path: impl AsRef<Path>) -> Result<()> {
        let (adapter, _) = self.load_adapter(path)?;
        self.held.insert(key.to_owned(), adapter);
        Ok(())
    }

    /// Drops the adapter held under `key` (llama.cpp keeps its memory until
    /// the next reload); whether one was held.
    pub fn release(&mut self, key: &str) -> bool {
        self.held.remove(key).is_some()
    }

    /// A session of the caller's own with the adapter held under `adapter`
    /// attached, or none; for callers that own their session for a while
    /// (the REPL's agent). It borrows the host, so no adapter can be loaded
    /// meanwhile.
    pub fn session_with(
        &mut self,
        params: &SessionParams,
        adapter: Option<&str>,
    ) -> Result<Session<'_>> {
        let adapter = held_mut(&mut self.held, adapter)?;
        let loaded = self
            .loaded
            .as_ref()
            .ok_or_else(|| reload_failed(&self.path))?;
        let mut session = loaded.borrow_owner().session(params.clone())?;
        if let Some(adapter) = adapter {
            session.set_adapter(adapter, 1.0)?;
        }
        Ok(session)
    }

    /// Runs `f` on the kept session with the adapter held under `adapter`
    /// attached, or none. The session is made on first use, and made again
    /// when `params` differ from those it was made with, or when it has an
    /// adapter attached and none is wanted (llama.cpp detaches only through
    /// an adapter). Its KV cache stays between calls under one adapter.
    pub fn with_session<R>(
        &mut self,
        params: &SessionParams,
        adapter: Option<&str>,
        f: impl FnOnce(&mut Session<'_>) -> Result<R>,
    ) -> Result<R> {
        let adapter = held_mut(&mut self.held, adapter)?;
        let loaded = self
            .loaded
            .as_mut()
            .ok_or_else(|| reload_failed(&self.path))?;
        let wants_adapter = adapter.is_some();
        let reusable = |(made_with, session): &(SessionParams, Session<'_>)| {
            made_with == params && (wants_adapter || !session.has_adapter())
        };
        loaded.with_dependent_mut(|model, kept| {
            let (_, session) = match kept.take() {
                Some(old) if reusable(&old) => kept.insert(old),
                old => {
                    drop(old);
                    kept.insert((params.clone(), model.session(params.clone())?))
                }
            };
            if let Some(adapter) = adapter {
                session.set_adapter(adapter, 1.0)?;
            }
            f(session)
        })
    }
}

/// The adapter held under `key`, if one is asked for.
fn held_mut<'h>(
    held: &'h mut HashMap<String, Adapter>,
    key: Option<&str>,
) -> Result<Option<&'h mut Adapter>> {
    key.map(|key| {
        held.get_mut(key)
            .ok_or_else(|| Error::InvalidParam(format!("no adapter is held under {key:?}")))
    })
    .transpose()
}

fn reload_failed(path: &Path) -> Error {
    Error::Load {
        path: path.to_owned(),
        detail: "the model's last reload failed; loading an adapter retries it".into(),
    }
}
