//! `loragen serve`: builds the roles' workers (the edge model thread, the
//! compile thread or a remote cloud role) and runs the server until Ctrl-C
//! or SIGTERM, then lets in-flight requests finish.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use loragen::serve::{CloudWorker, EdgeNames, EdgeWorker, LlamaEdge, Metrics, ServeConfig, Server};
use loragen::setup::{dir_or_url, remote, HomeDir, Setup};
use loragen_agent::adapter::AdapterCache;
use loragen_agent::agent::SelectorParams;
use loragen_agent::runtime::{AdapterHost, SessionParams};
use loragen_agent::selector::{weights_sha256, EdgeSelector, Selector};
use loragen_protocol::artifact::AdapterSource;

use crate::cli::{ServeArgs, ServeRole};
use crate::cmd::name_scoring::SELECTOR_CONTEXT;

pub fn run(args: ServeArgs, models: Setup) -> anyhow::Result<()> {
    // The servers are asked for their tools, then closed: the calls go
    // back to the client, which runs them.
    let default_tools = match &args.mcp_config {
        None => Vec::new(),
        Some(config) => {
            let toolset = loragen_agent::toolset::Toolset::load(None, Some(config), true)?;
            for warning in toolset.warnings() {
                eprintln!("warning: {warning}");
            }
            let specs = toolset.into_specs();
            println!(
                "default tools: {} from the servers of {}",
                specs.len(),
                config.display()
            );
            specs
        }
    };
    let config = ServeConfig::default()
        .with_default_tools(default_tools)
        .with_addr((args.host, args.port).into())
        .with_queue(args.queue)
        .with_max_body(args.max_body)
        .with_max_tools(args.max_tools)
        .with_max_calls(args.max_calls)
        .with_model_id(args.model_id.clone());
    config.validate()?;
    let metrics = Arc::new(Metrics::new()?);
    // A URL names a remote cloud role; otherwise the generator is the
    // given directory, LORAGEN_GENERATOR or the shipped one.
    let (dir, url) = dir_or_url(args.generator.as_deref());
    if let Some(url) = &url {
        anyhow::ensure!(
            args.role == ServeRole::Edge,
            "--generator {url} is a URL, so this server can only be an edge role (--role edge); the cloud role needs a checkpoint directory"
        );
    }
    let models = models
        .with_generator(dir)
        .with_selector(args.selection.selector.clone());
    let cloud = match url {
        Some(_) => None,
        None => Some(cloud_worker(&models, &metrics)?),
    };
    let edge = match args.role {
        ServeRole::Cloud => None,
        ServeRole::Edge | ServeRole::Both => {
            let source: Box<dyn AdapterSource + Send> = match (&cloud, &url) {
                (Some(worker), _) => Box::new(worker.clone()),
                (None, Some(url)) => Box::new(remote(url)?),
                (None, None) => anyhow::bail!("an edge role needs a cloud role or --generator URL"),
            };
            let edge = models.edge()?.clone();
            let dir = models.dir(HomeDir::EdgeAdapters);
            let session = SessionParams::default().with_n_ctx(args.ctx);
            let names = edge_names(&args, &models)?;
            println!("loading the edge model {}", edge.path.display());
            Some(EdgeWorker::spawn(
                move || {
                    let host = AdapterHost::load(&edge.path)?.with_sha256(edge.sha256.clone());
                    let adapters = AdapterCache::new(dir, source);
                    let served = LlamaEdge::new(host, adapters, session);
                    Ok(match names {
                        None => served,
                        Some(NamesPlan::Whole) => served.with_names(EdgeNames::whole()),
                        Some(NamesPlan::Selector {
                            selector,
                            sha256,
                            params,
                        }) => {
                            let reader =
                                EdgeSelector::load(&edge.path, *selector, SELECTOR_CONTEXT)?;
                            served.with_names(EdgeNames::with_selector(reader, params, sha256)?)
                        }
                    })
                },
                config.queue,
                Arc::clone(&metrics),
            )?)
        }
    };
    // An edge role with a local generator compiles in-process but does
    // not offer the cloud routes.
    let cloud_routes = match args.role {
        ServeRole::Edge => None,
        ServeRole::Cloud | ServeRole::Both => cloud,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if let (Some(cloud), false) = (&cloud_routes, config.default_tools.is_empty()) {
            let system = loragen_protocol::render::system_prompt(&config.default_tools);
            let compiled = cloud
                .compile(system)
                .await
                .map_err(|e| anyhow::anyhow!("cannot compile the default tools: {}", e.message))?;
            println!(
                "default tools compiled: fingerprint {}",
                compiled.manifest.registry_fingerprint
            );
        }
        let server = Server::start(config, metrics, edge, cloud_routes).await?;
        println!(
            "loragen serve ({:?}) on http://{}; Ctrl-C stops it",
            args.role,
            server.addr()
        );
        shutdown_signal().await?;
        // Whoever read stdout may be gone by now: no panic on a closed pipe.
        let _ = writeln!(
            std::io::stdout(),
            "stopping: finishing the requests in flight"
        );
        server.shutdown().await?;
        anyhow::Ok(())
    })
}

/// How the edge role chooses tool names, resolved and the selector loaded
/// before its thread starts (so a bad flag or selector fails at start-up);
/// the selector's query side loads the edge model on the model thread.
enum NamesPlan {
    Whole,
    Selector {
        selector: Box<Selector>,
        sha256: String,
        params: SelectorParams,
    },
}

fn edge_names(args: &ServeArgs, models: &Setup) -> anyhow::Result<Option<NamesPlan>> {
    if !args.whole_names {
        return Ok(None);
    }
    let params = args.selection.params()?;
    Ok(Some(match models.selector() {
        None => NamesPlan::Whole,
        Some(located) => {
            let sha256 = weights_sha256(&located.dir)?;
            println!(
                "tool names: whole, with the {} selector {} ({})",
                located.origin,
                located.dir.display(),
                loragen_protocol::digest::short(&sha256)
            );
            NamesPlan::Selector {
                selector: Box::new(Selector::load(&located.dir)?),
                sha256,
                params,
            }
        }
    }))
}

/// The compile thread over the setup's generator; its artifacts are kept
/// per generator, under `$LORAGEN_HOME/served/`.
fn cloud_worker(models: &Setup, metrics: &Arc<Metrics>) -> anyhow::Result<CloudWorker> {
    let generator = models.generator()?;
    let compiler = models
        .compiler()
        .with_context(|| format!("cannot open the generator in {}", generator.dir.display()))?;
    let dir = models
        .dir(HomeDir::Served)
        .join(compiler.generator_sha256().get(..16).unwrap_or("generator"));
    println!(
        "cloud role: the {} generator {} ({})",
        generator.origin,
        generator.dir.display(),
        compiler.generator_sha256()
    );
    Ok(CloudWorker::spawn(
        move || Ok(Box::new(compiler) as Box<dyn AdapterSource>),
        dir,
        Arc::clone(metrics),
    )?)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
