//! Run with: cargo run --release --example agent_demo
//!
//! The agent on the default edge model with the 23 GPT4Tools tools: a few
//! requests about a picture drawn here, each with its thought, action,
//! observation, answer and timings. With a generator (the shipped one,
//! `LORAGEN_GENERATOR`, or `loragen train generator`'s checkpoint there)
//! the registry is compiled once into an adapter and the agent runs in
//! compiled mode, without the definitions in its prompt; without one it
//! runs with them in context. Constrained decoding (the call grammar) is on.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use image::{Rgb, RgbImage};
use loragen::agent::agent::{Agent, AgentConfig, Event};
use loragen::agent::runtime::SessionParams;
use loragen::protocol::mode::Mode;
use loragen::protocol::render::system_prompt;
use loragen::setup::Setup;
use loragen::tools::gpt4tools::registry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let picture = dir.path().join("image").join("hzmkqwtb.png");
    std::fs::create_dir_all(picture.parent().unwrap_or(dir.path()))?;
    RgbImage::from_fn(128, 96, |x, y| {
        if (32..96).contains(&x) && (24..72).contains(&y) {
            Rgb([200, 30, 30])
        } else {
            Rgb([240, 240, 230])
        }
    })
    .save(&picture)?;

    let setup = Setup::from_env(None, None, None)?;
    let tools = Arc::new(registry()?);
    let mut host = setup.edge_host()?;
    let adapter = match setup.generator() {
        Ok(generator) => {
            println!(
                "compiling the 23 GPT4Tools tools with the {} generator {}",
                generator.origin,
                generator.dir.display()
            );
            let specs: Vec<_> = tools.specs().cloned().collect();
            let mut cache = setup.adapter_cache(setup.adapter_source(None)?);
            let started = Instant::now();
            let ensured = cache.ensure(&mut host, &system_prompt(&specs))?;
            println!(
                "adapter {} in {:.1} s ({})",
                ensured.key,
                started.elapsed().as_secs_f64(),
                if ensured.on_disk || ensured.held {
                    "from the cache"
                } else {
                    "compiled now"
                }
            );
            Some(ensured.key)
        }
        Err(e) => {
            println!(
                "{e}
so the agent runs with the definitions in context"
            );
            None
        }
    };
    let mode = if adapter.is_some() {
        Mode::Compiled
    } else {
        Mode::InContext
    };
    let session = host.session_with(&SessionParams::default(), adapter.as_deref())?;
    // The base model rarely follows the protocol on its own; the call grammar
    // makes every step a well-formed call or answer.
    let config = AgentConfig::for_mode(mode)
        .with_max_steps(3)
        .with_constrained(true);
    let mut agent = Agent::new(session, tools, config)?;
    println!("agent in {mode} mode");

    for request in [
        "Show me the edges of this image.",
        "Detect the straight lines in the picture.",
        "What is the capital of France?",
    ] {
        agent.reset();
        agent.remember(
            format!("Provide an image named {}. Description: a red box on a pale background. Understand the image using tools.", picture.display()),
            "Received.",
        );
        println!("\n== {request}");
        let outcome = agent
            .run(request, &mut |event| {
                match event {
                    Event::Action { tool, input } => println!("action: {tool} | input: {input}"),
                    Event::Observation { text, failed } => println!(
                        "observation{}: {text}",
                        if *failed { " (error)" } else { "" }
                    ),
                    Event::Answer(text) => println!("AI: {text}"),
                    Event::StepDone { stats, tool_ms } => {
                        println!("  [{stats} | tool {tool_ms:.1} ms]")
                    }
                    Event::Thought(t) => println!("thought: {t}"),
                    Event::Text(_) => {}
                }
                ControlFlow::Continue(())
            })
            .await?;
        println!(
            "-> {:?} after {} step(s)",
            outcome.finish,
            outcome.steps.len()
        );
    }
    Ok(())
}
