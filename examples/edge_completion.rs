//! Run with: cargo run --release --example edge_completion
//!
//! Completes a GPT4Tools-style prompt (23 tool definitions plus a request)
//! with the default edge model, once with the tool definitions in context
//! and once with only the conversation, and prints both with their timings.
//! Needs the models: `loragen models fetch`.

use loragen::agent::runtime::{GenerateParams, Model, SessionParams};
use loragen::agent::store::{ModelStore, Role};
use loragen::protocol::gpt4tools::{render_conversation, render_system_prompt, TOOLS};
use loragen::protocol::react::STEP_STOPS;

fn main() -> anyhow::Result<()> {
    let store = ModelStore::from_env()?;
    let path = store.resolve_role(Role::Edge)?;
    let model = Model::load(&path)?;
    let mut session = model.session(SessionParams::default())?;

    let image = Some((
        "image/ouqzhvrw.png",
        "A brown horse standing in a snowy field beside a fence.",
    ));
    let request = "Could you remove the fence from this picture?";
    let conversation = render_conversation(image, request);
    let params = GenerateParams::default()
        .with_max_tokens(64)
        .with_stop(STEP_STOPS);

    for (label, prompt) in [
        (
            "with the 23 tool definitions in context",
            format!("{}{conversation}", render_system_prompt(&TOOLS)),
        ),
        (
            "without tool definitions (what a compiled adapter replaces)",
            conversation.clone(),
        ),
    ] {
        session.clear_cache();
        let completion = session.generate(&prompt, &params)?;
        println!(
            "== {label} ==\n{}\n-- {}\n",
            completion.text.trim_end(),
            completion.stats
        );
    }
    Ok(())
}
