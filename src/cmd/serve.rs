//! `loragen serve`: builds the roles' workers (the edge model thread, the
//! compile thread or a remote cloud role) and runs the server until Ctrl-C
//! or SIGTERM, then lets in-flight requests finish.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use loragen::serve::{CloudWorker, EdgeWorker, LlamaEdge, Metrics, ServeConfig, Server};
use loragen_agent::adapter::AdapterSource;
use loragen_agent::runtime::SessionParams;
use loragen_agent::store::{model_sha256, ModelChoice, ModelStore, Role};

use crate::cli::{ModelArgs, ServeArgs, ServeRole};

pub fn run(args: ServeArgs, models: &ModelArgs) -> anyhow::Result<()> {
    // The servers are asked for their tools, then closed: the calls go
    // back to the client, which runs them.
    let default_tools = match &args.mcp_config {
        None => Vec::new(),
        Some(config) => {
            let toolset = super::toolset::Toolset::load(None, Some(config), true)?;
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
    let home = ModelStore::from_env()?.home().to_owned();
    let metrics = Arc::new(Metrics::default());
    let remote = super::compile::is_url(&args.generator);
    anyhow::ensure!(
        !(remote && args.role != ServeRole::Edge),
        "--generator {} is a URL, so this server can only be an edge role (--role edge); the cloud role needs a checkpoint directory",
        args.generator
    );
    let cloud = if remote {
        None
    } else {
        Some(cloud_worker(
            PathBuf::from(&args.generator),
            models,
            &home,
            &metrics,
        )?)
    };
    let edge = match args.role {
        ServeRole::Cloud => None,
        ServeRole::Edge | ServeRole::Both => {
            let source: Box<dyn AdapterSource + Send> = match &cloud {
                Some(worker) => Box::new(worker.clone()),
                None => Box::new(super::compile::remote(&args.generator)?),
            };
            let edge_path = super::resolve_model(&ModelChoice::Role(Role::Edge), models)?;
            let edge_sha256 = model_sha256(&edge_path)?;
            let dir = home.join("edge-adapters");
            println!("loading the edge model {}", edge_path.display());
            Some(EdgeWorker::spawn(
                move || {
                    LlamaEdge::new(
                        &edge_path,
                        edge_sha256,
                        source,
                        dir,
                        SessionParams::default(),
                    )
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
            let system = loragen_tools::render::system_prompt(&config.default_tools);
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

/// The compile thread over the generator checkpoint at `checkpoint`; its
/// artifacts are kept per generator, under `$LORAGEN_HOME/served/`.
fn cloud_worker(
    checkpoint: PathBuf,
    models: &ModelArgs,
    home: &std::path::Path,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<CloudWorker> {
    let compiler = super::compile::open_compiler(&checkpoint, models, None)
        .with_context(|| format!("cannot open the generator in {}", checkpoint.display()))?;
    let dir = home
        .join("served")
        .join(compiler.generator_sha256().get(..16).unwrap_or("generator"));
    println!(
        "cloud role: generator {} ({})",
        checkpoint.display(),
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
