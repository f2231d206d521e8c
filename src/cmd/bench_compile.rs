//! `loragen bench compile`: what compiling a registry costs, against the
//! floor of a bare cloud prefill of the same text, in one process. Cold
//! compiles run against an empty cache directory each round (features and
//! adapters both absent); the warm compile that follows hits the cache.

use std::time::Instant;

use loragen_agent::runtime::{Model, SessionParams};
use loragen_protocol::gpt4tools::{render_system_prompt, TOOLS};

use crate::cli::BenchCompileArgs;
use loragen::setup::Setup;

pub fn run(args: &BenchCompileArgs, models: Setup) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds > 0, "--rounds must be positive");
    let models = models.with_generator(args.checkpoint.clone());
    let generator = models.generator()?;
    let system = render_system_prompt(&TOOLS);
    let cloud_path = models.cloud()?.path.clone();
    println!(
        "registry: the {}-tool GPT4Tools system part, {} bytes; generator {}",
        TOOLS.len(),
        system.len(),
        generator.dir.display()
    );
    println!("| round | bare prefill s (load + prefill) | tokens | cold compile s | cloud tokens | cold / bare | warm compile s |");
    println!("|---|---|---|---|---|---|---|");
    for round in 1..=args.rounds {
        // The floor: load the cloud model and prefill the whole text once.
        let started = Instant::now();
        let cloud = Model::load(&cloud_path)?;
        let tokens = cloud.tokenize(&system, false);
        let mut session = cloud.session(
            SessionParams::default()
                .with_prefix_reuse(false)
                .with_n_ctx(tokens.len() as u32 + 16),
        )?;
        session.logits(&tokens, &[tokens.len() - 1])?;
        let bare = started.elapsed().as_secs_f64();
        drop(session);
        drop(cloud);

        let home = tempfile::tempdir()?;
        let out = home.path().join("tools.gguf");
        let started = Instant::now();
        let mut compiler = models.compiler_in(Some(home.path()))?;
        let cold = compiler.compile(&system, &out, true)?;
        let cold_s = started.elapsed().as_secs_f64();
        anyhow::ensure!(!cold.artifact.cached, "the cold compile hit a cache");

        let started = Instant::now();
        let mut compiler = models.compiler_in(Some(home.path()))?;
        let warm = compiler.compile(&system, &out, true)?;
        let warm_s = started.elapsed().as_secs_f64();
        anyhow::ensure!(warm.artifact.cached, "the warm compile missed the cache");
        anyhow::ensure!(
            warm.artifact.manifest == cold.artifact.manifest,
            "the warm compile's manifest differs from the cold one's"
        );
        println!(
            "| {round} | {bare:.2} | {} | {cold_s:.2} | {} | {:.2}x | {warm_s:.3} |",
            tokens.len(),
            cold.cloud_tokens,
            cold_s / bare
        );
    }
    println!("\ncold: a fresh compiler (hash the checkpoint, load the cloud model, encode every block, build the generator, write the adapter); warm: a fresh compiler whose adapter is in the compile cache");
    Ok(())
}
