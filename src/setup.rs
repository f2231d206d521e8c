//! What a command runs with, resolved once: the home, the edge and cloud
//! models with their sha256s, the generator checkpoint, and the adapter
//! cache built from them. Commands build one [`Setup`] from their flags
//! and ask it; nothing else resolves models or spells the home's folders.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use loragen_agent::adapter::AdapterCache;
use loragen_agent::runtime::AdapterHost;
use loragen_agent::selector::{weights_sha256, Selector};
use loragen_agent::store::{model_sha256, ModelChoice, ModelStore, Role};
use loragen_generator::compile::{Compiler, CompilerSpec};
use loragen_generator::shipped::{self, Located};
use loragen_protocol::artifact::AdapterSource;

use crate::serve::RemoteCloud;

/// Errors of resolving a command's models and generator.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Agent(#[from] loragen_agent::Error),
    #[error(transparent)]
    Generator(#[from] loragen_generator::Error),
    #[error("{url}: this build speaks plain HTTP; put a TLS-terminating proxy in front of the cloud role")]
    Https { url: String },
}

pub type Result<T, E = SetupError> = std::result::Result<T, E>;

/// A model file and its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    pub path: PathBuf,
    pub sha256: String,
}

/// The home's folders, spelled once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeDir {
    /// Cached cloud features per block (`features/`).
    Features,
    /// The compile cache of the generator (`compiled/`).
    Compiled,
    /// Adapters the REPL and `eval` hold, by registry fingerprint (`adapters/`).
    Adapters,
    /// Adapters of the edge server, by registry fingerprint (`edge-adapters/`).
    EdgeAdapters,
    /// Artifacts of the cloud role, per generator (`served/`).
    Served,
    /// The base edge model's query states for the selector (`edge-states/`).
    EdgeStates,
}

impl HomeDir {
    fn name(self) -> &'static str {
        match self {
            HomeDir::Features => "features",
            HomeDir::Compiled => "compiled",
            HomeDir::Adapters => "adapters",
            HomeDir::EdgeAdapters => "edge-adapters",
            HomeDir::Served => "served",
            HomeDir::EdgeStates => "edge-states",
        }
    }
}

/// A command's models and generator, each resolved on first use and then
/// kept: a command that never compiles never needs the cloud model.
///
/// # Examples
///
/// ```no_run
/// use loragen::setup::{HomeDir, Setup};
///
/// let setup = Setup::from_env(None, None, None)?;
/// let edge = setup.edge()?;
/// println!("edge model {} ({})", edge.path.display(), edge.sha256);
/// println!("features cached in {}", setup.dir(HomeDir::Features).display());
/// # Ok::<(), loragen::setup::SetupError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Setup {
    store: ModelStore,
    edge_override: Option<PathBuf>,
    cloud_override: Option<PathBuf>,
    generator_flag: Option<PathBuf>,
    selector_flag: Option<PathBuf>,
    edge: OnceCell<ResolvedModel>,
    cloud: OnceCell<ResolvedModel>,
}

impl Setup {
    /// The store at `$LORAGEN_HOME`, the edge and cloud models that the
    /// overrides (`--edge-model`, `--cloud-model`) or the store give, and
    /// the generator `--generator` names (see [`Setup::generator`]).
    pub fn from_env(
        edge_override: Option<PathBuf>,
        cloud_override: Option<PathBuf>,
        generator_flag: Option<PathBuf>,
    ) -> Result<Self> {
        Ok(Setup {
            store: ModelStore::from_env()?,
            edge_override,
            cloud_override,
            generator_flag,
            selector_flag: None,
            edge: OnceCell::new(),
            cloud: OnceCell::new(),
        })
    }

    /// The same setup with `--generator` given (commands whose flag comes
    /// after the models').
    #[must_use]
    pub fn with_generator(mut self, flag: Option<PathBuf>) -> Self {
        self.generator_flag = flag;
        self
    }

    /// The same setup with `--selector` given.
    #[must_use]
    pub fn with_selector(mut self, flag: Option<PathBuf>) -> Self {
        self.selector_flag = flag;
        self
    }

    /// The tool selector, if there is one: `--selector` if given, else
    /// `LORAGEN_SELECTOR`, else the shipped one when it exists.
    pub fn selector(&self) -> Option<Located> {
        shipped::locate_selector(self.selector_flag.as_deref())
    }

    /// The selector, loaded, with the sha256 of its weights.
    pub fn tool_selector(&self) -> Result<Option<(Selector, String)>> {
        let Some(located) = self.selector() else {
            return Ok(None);
        };
        let selector = Selector::load(&located.dir)?;
        Ok(Some((selector, weights_sha256(&located.dir)?)))
    }

    pub fn store(&self) -> &ModelStore {
        &self.store
    }

    pub fn home(&self) -> &Path {
        self.store.home()
    }

    /// A folder of the home.
    pub fn dir(&self, dir: HomeDir) -> PathBuf {
        self.home().join(dir.name())
    }

    /// The edge model.
    pub fn edge(&self) -> Result<&ResolvedModel> {
        self.role(Role::Edge)
    }

    /// The cloud model.
    pub fn cloud(&self) -> Result<&ResolvedModel> {
        self.role(Role::Cloud)
    }

    fn role(&self, role: Role) -> Result<&ResolvedModel> {
        let cell = match role {
            Role::Edge => &self.edge,
            Role::Cloud => &self.cloud,
        };
        let override_path = self.override_of(role);
        if let Some(model) = cell.get() {
            return Ok(model);
        }
        let path = self
            .store
            .resolve(&ModelChoice::Role(role), override_path)?;
        let sha256 = model_sha256(&path)?;
        Ok(cell.get_or_init(|| ResolvedModel { path, sha256 }))
    }

    /// The file `--edge-model` / `--cloud-model` (or their variables) put
    /// in place of the role's default.
    pub fn override_of(&self, role: Role) -> Option<&Path> {
        match role {
            Role::Edge => self.edge_override.as_deref(),
            Role::Cloud => self.cloud_override.as_deref(),
        }
    }

    /// `edge`, `cloud` or a path, as `--model` names it.
    pub fn model(&self, choice: &ModelChoice) -> Result<PathBuf> {
        Ok(match choice {
            ModelChoice::Role(role) => self.role(*role)?.path.clone(),
            ModelChoice::Path(_) => self.store.resolve(choice, None)?,
        })
    }

    /// The generator checkpoint: `--generator` if given, else
    /// `LORAGEN_GENERATOR`, else the shipped default; one line naming all
    /// three when there is none.
    pub fn generator(&self) -> Result<Located> {
        Ok(shipped::locate(self.generator_flag.as_deref())?)
    }

    /// The generator as a compiler over this setup's models, caching its
    /// features and compiles under `home` (default: this setup's home).
    pub fn compiler_in(&self, home: Option<&Path>) -> Result<Compiler> {
        let located = self.generator()?;
        let (edge, cloud) = (self.edge()?, self.cloud()?);
        let home = home.unwrap_or(self.home());
        let compiler = Compiler::open(&CompilerSpec {
            checkpoint: &located.dir,
            edge_path: &edge.path,
            edge_sha256: &edge.sha256,
            cloud_path: &cloud.path,
            cloud_sha256: &cloud.sha256,
            features_dir: &home.join(HomeDir::Features.name()),
            compiled_dir: &home.join(HomeDir::Compiled.name()),
        })?;
        Ok(match self.tool_selector()? {
            Some((selector, sha256)) => compiler.with_selector(selector, sha256),
            None => compiler,
        })
    }

    /// [`Setup::compiler_in`] this setup's home.
    pub fn compiler(&self) -> Result<Compiler> {
        self.compiler_in(None)
    }

    /// What compiles registries: the cloud role at `url` when given, else
    /// the generator in this process.
    pub fn adapter_source(&self, url: Option<&str>) -> Result<Box<dyn AdapterSource>> {
        Ok(match url {
            Some(url) => Box::new(remote(url)?),
            None => Box::new(self.compiler()?),
        })
    }

    /// The edge model, loaded, its sha256 known to the host's manifest
    /// checks.
    pub fn edge_host(&self) -> Result<AdapterHost> {
        self.host(&ModelChoice::Role(Role::Edge))
    }

    /// The model `--model` names, loaded; a role's sha256 is known to the
    /// host's manifest checks, any other file is hashed when a manifest
    /// needs it.
    pub fn host(&self, choice: &ModelChoice) -> Result<AdapterHost> {
        Ok(match choice {
            ModelChoice::Role(role) => {
                let model = self.role(*role)?;
                AdapterHost::load(&model.path)?.with_sha256(model.sha256.clone())
            }
            ModelChoice::Path(_) => AdapterHost::load(self.model(choice)?)?,
        })
    }

    /// The adapter cache of the REPL and `eval` (`adapters/` in the home),
    /// over `source`.
    pub fn adapter_cache(&self, source: Box<dyn AdapterSource>) -> AdapterCache {
        AdapterCache::new(self.dir(HomeDir::Adapters), source)
    }
}

/// A `--generator DIR|URL` flag split into what it names: a checkpoint
/// directory, or the URL of a remote cloud role.
///
/// # Examples
///
/// ```
/// use std::path::PathBuf;
/// use loragen::setup::dir_or_url;
///
/// let url = "http://127.0.0.1:8080";
/// assert_eq!(dir_or_url(Some(url)), (None, Some(url.to_owned())));
/// let dir = "runs/gen/snapshots/step-3000";
/// assert_eq!(dir_or_url(Some(dir)), (Some(PathBuf::from(dir)), None));
/// assert_eq!(dir_or_url(None), (None, None));
/// ```
pub fn dir_or_url(generator: Option<&str>) -> (Option<PathBuf>, Option<String>) {
    match generator {
        Some(g) if g.starts_with("http://") || g.starts_with("https://") => {
            (None, Some(g.to_owned()))
        }
        Some(g) => (Some(PathBuf::from(g)), None),
        None => (None, None),
    }
}

/// The client of the cloud role at `url`; HTTPS is refused, since this
/// build's client speaks plain HTTP.
pub fn remote(url: &str) -> Result<RemoteCloud> {
    if url.starts_with("https://") {
        return Err(SetupError::Https {
            url: url.to_owned(),
        });
    }
    Ok(RemoteCloud::new(url))
}
