//! The agent and the call grammar on the real default edge model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use std::ops::ControlFlow;
use std::sync::Arc;

use loragen::agent::agent::{Agent, AgentConfig, LanguageModel};
use loragen::agent::grammar::call_grammar;
use loragen::agent::runtime::{FinishReason, GenerateParams, SessionParams};
use loragen::protocol::react::{conversation_prompt, Call, OutputParser, ReactParser, Step};
use loragen::tools::gpt4tools::registry;

/// Twenty requests; `true` where the request needs a tool.
const REQUESTS: [(&str, bool); 20] = [
    ("Find the dog in the picture.", true),
    ("What is in this photo?", true),
    ("Draw me a castle on a hill at night.", true),
    ("Show me the edges of this image.", true),
    ("Remove the car from the photo.", true),
    ("Replace the cat with a tiger.", true),
    ("How deep is the scene? Give me a depth map.", true),
    ("Segment the picture into regions.", true),
    ("Make it look like a snowy winter day.", true),
    ("What colour is the umbrella?", true),
    ("Turn the image into a pencil sketch.", true),
    ("Detect the straight lines in the picture.", true),
    ("Estimate the pose of the people here.", true),
    ("What is 17 times 3?", false),
    ("Write a haiku about autumn.", false),
    ("Give me the surface normals of the photo.", true),
    ("Cut out the bicycle from the image.", true),
    ("Generate an image of a red sports car.", true),
    ("Tell me a fun fact about octopuses.", false),
    ("Produce a soft HED boundary map of this image.", true),
];

/// Every request that needs a tool ends in a call to a registered tool
/// whose arguments validate; requests that need none may answer instead.
#[test]
fn constrained_calls_name_registered_tools_with_valid_arguments() {
    let tools = Arc::new(registry().unwrap());
    let specs: Vec<_> = tools.specs().cloned().collect();
    let grammar = call_grammar(&specs).unwrap();
    let mut session = common::edge()
        .session(SessionParams::default().with_n_ctx(2048))
        .unwrap();
    let params = GenerateParams::default()
        .with_max_tokens(256)
        .with_grammar(Some(grammar));
    let mut calls = 0;
    for (i, (request, needs_tool)) in REQUESTS.iter().enumerate() {
        // The compiled-mode prompt: no tool definitions, an image turn, the
        // request; the grammar alone names the tools.
        let image_turn = (
            format!("Provide an image named image/img{i:05}.png. Description: a photo. Understand the image using tools."),
            "Received.".to_owned(),
        );
        let prompt = conversation_prompt(None, &[image_turn], request, "");
        let out = session
            .complete(&prompt, &params, &mut |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(
            out.finish,
            FinishReason::EndOfGeneration,
            "{request:?}: the grammar must complete: {:?}",
            out.text
        );
        match ReactParser.parse(out.text.as_bytes()) {
            Ok(Step::Calls(made)) => {
                for Call { action, input } in made {
                    calls += 1;
                    tools.prepare(&action, &input).unwrap_or_else(|e| {
                        panic!("{request:?}: invalid call {action:?}({input:?}): {e}")
                    });
                }
            }
            Ok(Step::Answer { text }) => {
                assert!(
                    !needs_tool,
                    "{request:?} needs a tool but the model answered: {text:?}"
                );
                assert!(!text.is_empty(), "{request:?}: empty answer");
            }
            Err(e) => panic!(
                "{request:?}: grammar output did not parse: {e}: {:?}",
                out.text
            ),
        }
    }
    let needing = REQUESTS.iter().filter(|(_, t)| *t).count();
    println!(
        "{calls} calls for {} requests, {needing} of which need a tool",
        REQUESTS.len()
    );
    assert!(calls >= needing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_in_context_turn_runs() {
    let tools = Arc::new(registry().unwrap());
    let session = common::edge().session(SessionParams::default()).unwrap();
    let mut agent = Agent::new(
        session,
        tools,
        AgentConfig::default().with_max_steps(2).with_max_tokens(48),
    )
    .unwrap();
    agent.remember("Provide an image named image/abcdefgh.png. Description: a cat on a sofa. Understand the image using tools.", "Received.");
    let outcome = agent
        .run("Show me the edges of this image.", &mut |_| {
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert!(!outcome.steps.is_empty());
    let first = &outcome.steps[0];
    assert!(
        first.stats.prompt_tokens > 1000,
        "the 23 definitions must be in context: {}",
        first.stats
    );
    assert!(first.stats.decode_tokens > 0);
}
