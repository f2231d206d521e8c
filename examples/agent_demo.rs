//! Run with: cargo run --release --example agent_demo
//!
//! The agent on the default edge model with the 23 GPT4Tools tools in
//! context (InContext mode): a few requests about a picture drawn here,
//! each with its thought, action, observation, answer and timings.
//! Constrained decoding (the call grammar) is on.

use std::ops::ControlFlow;
use std::sync::Arc;

use image::{Rgb, RgbImage};
use loragen::agent::agent::{Agent, AgentConfig, Event};
use loragen::agent::runtime::{Model, SessionParams};
use loragen::agent::store::{ModelStore, Role};
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

    let store = ModelStore::from_env()?;
    let model = Model::load(store.resolve_role(Role::Edge)?)?;
    let session = model.session(SessionParams::default())?;
    // The base model rarely follows the protocol on its own; the call grammar
    // makes every step a well-formed call or answer.
    let config = AgentConfig::default()
        .with_max_steps(3)
        .with_constrained(true);
    let mut agent = Agent::new(session, Arc::new(registry()?), config)?;

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
