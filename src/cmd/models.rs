//! `loragen models fetch | list | verify | path`.

use loragen::setup::Setup;
use loragen_agent::store::{FetchOutcome, ModelSpec, Presence, Role};

use crate::cli::ModelsCommand;

pub fn run(cmd: ModelsCommand, models: &Setup) -> anyhow::Result<()> {
    let store = models.store();
    match cmd {
        ModelsCommand::Fetch { which } => {
            let specs = ModelSpec::defaults()
                .into_iter()
                .filter(|s| which == "all" || s.role.as_str() == which);
            for spec in specs {
                let outcome = store.fetch(&spec)?;
                let what = match outcome {
                    FetchOutcome::AlreadyPresent => "already present",
                    FetchOutcome::Fetched => "fetched and verified",
                };
                println!(
                    "{} model {}: {what} at {}",
                    spec.role,
                    spec.name,
                    store.path_of(&spec).display()
                );
            }
        }
        ModelsCommand::List => {
            println!("cache: {}", store.models_dir().display());
            for spec in ModelSpec::defaults() {
                let state = match store.presence(&spec) {
                    Presence::Missing => "missing",
                    Presence::Verified => "verified",
                    Presence::Unverified => "present, not verified",
                };
                println!(
                    "{:5}  {:28}  {:>7.1} MB  {:22}  {}  licence: {}",
                    spec.role.as_str(),
                    spec.name,
                    spec.size as f64 / 1e6,
                    state,
                    spec.file_name,
                    spec.licence
                );
            }
            for role in [Role::Edge, Role::Cloud] {
                if let Some(path) = models.override_of(role) {
                    println!("{role} override in effect: {}", path.display());
                }
            }
        }
        ModelsCommand::Verify => {
            let mut failed = 0;
            for spec in ModelSpec::defaults() {
                match store.verify(&spec) {
                    Ok(()) => println!(
                        "{} model: ok ({})",
                        spec.role,
                        store.path_of(&spec).display()
                    ),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{} model: {e}", spec.role);
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} model(s) failed verification");
        }
        ModelsCommand::Path { model } => {
            println!("{}", models.model(&model)?.display())
        }
    }
    Ok(())
}
