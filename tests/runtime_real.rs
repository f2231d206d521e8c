//! The edge runtime on the real default models.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use loragen::agent::runtime::{FinishReason, GenerateParams, Model, SessionParams};
use loragen::generator::gguf_lora::{weight_shapes, write_lora_adapter, LoraPair};
use loragen::protocol::gpt4tools::{render_instruction, TOOLS};
use loragen_generator::test_util::max_diff;

const IMAGE: Option<(&str, &str)> = Some((
    "image/kdwpqzla.png",
    "Two dogs playing with a ball on green grass.",
));

fn prompt(request: &str) -> String {
    render_instruction(&TOOLS[..4], IMAGE, request)
}

fn greedy(n: usize) -> GenerateParams {
    GenerateParams::default().with_max_tokens(n)
}

fn fresh_completion(model: &Model, text: &str, n: usize) -> Vec<i32> {
    let mut session = model
        .session(SessionParams::default().with_n_ctx(2048))
        .unwrap();
    session
        .generate(text, &greedy(n))
        .unwrap()
        .tokens
        .iter()
        .map(|t| t.0)
        .collect()
}

#[test]
fn both_default_models_generate_deterministically() {
    for (model, arch) in [(common::edge(), "gemma3"), (common::cloud(), "qwen2")] {
        assert_eq!(model.arch(), arch);
        let text = prompt("Find the ball in the picture.");
        let first = fresh_completion(model, &text, 24);
        let second = fresh_completion(model, &text, 24);
        assert!(!first.is_empty(), "{arch}: empty completion");
        assert_eq!(
            first, second,
            "{arch}: greedy decoding differs between runs"
        );
    }
}

/// What prefix reuse promises: the shared tokens come from the cache, and
/// the next-token distributions after them match a full prefill. Not
/// token-for-token equality of a long greedy continuation: llama.cpp does
/// not promise bit-equal logits across batch splits, and a near-tie can
/// flip (on one machine the two agreed for 20 of 24 tokens).
#[test]
fn prefix_reuse_matches_a_full_prefill() {
    let model = common::edge();
    let warm_up = prompt("Remove the ball from the photo.");
    let target = prompt("What colour is the grass?");
    let tokens = model.tokenize(&target, true);
    let shared = model
        .tokenize(&warm_up, true)
        .iter()
        .zip(&tokens)
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        shared > tokens.len() / 2,
        "the two prompts share their system part"
    );

    let mut reusing = model
        .session(SessionParams::default().with_n_ctx(2048))
        .unwrap();
    reusing.generate(&warm_up, &greedy(8)).unwrap();
    let reused = reusing.generate(&target, &greedy(4)).unwrap();
    assert_eq!(
        reused.stats.reused_tokens, shared,
        "exactly the shared prefix comes from the cache: {}",
        reused.stats
    );

    // The first eight new positions, computed on top of the cached prefix
    // (which the warm-up computed) and in a cold session.
    let positions: Vec<usize> = (shared..tokens.len()).take(8).collect();
    let warm = reusing.logits(&tokens, &positions).unwrap();
    let mut cold = model
        .session(
            SessionParams::default()
                .with_n_ctx(2048)
                .with_prefix_reuse(false),
        )
        .unwrap();
    let full = cold.logits(&tokens, &positions).unwrap();
    let a = loragen::generator::edge::parity::agreement(&full, &warm);
    println!(
        "prefix reuse vs full prefill at {} new positions: {a:?}",
        positions.len()
    );
    // The bound of the parity tests: llama.cpp's own batch-split noise is
    // about 0.005 nats; a cache holding the wrong state moves it by nats.
    assert!(
        a.mean_kl <= 0.02,
        "reused prefix changed the next-token distributions: {a:?}"
    );
}

#[test]
fn stop_strings_and_token_limits_end_generation() {
    let model = common::edge();
    // Without reuse both calls run the same kernels, so greedy output repeats.
    let mut session = model
        .session(
            SessionParams::default()
                .with_n_ctx(2048)
                .with_prefix_reuse(false),
        )
        .unwrap();
    let text = prompt("Find the ball in the picture.");
    let free = session.generate(&text, &greedy(40)).unwrap();
    assert_eq!(
        free.finish,
        FinishReason::MaxTokens,
        "needs 40 free tokens to cut: {:?}",
        free.text
    );
    // Stop on a piece of text the model is known to produce.
    let cut_at = free
        .text
        .char_indices()
        .nth(free.text.chars().count() / 2)
        .unwrap()
        .0;
    let stop: String = free.text[cut_at..].chars().take(3).collect();
    let stopped = session
        .generate(&text, &greedy(40).with_stop([stop.clone()]))
        .unwrap();
    assert_eq!(stopped.finish, FinishReason::Stop(stop.clone()));
    assert!(free.text.starts_with(&stopped.text) && !stopped.text.contains(&stop));
}

/// The edge model's path, and that of a LoRA adapter written in `dir` on
/// every FFN weight of it whose deltas B·A are exactly zero (A is ones, B
/// zeros).
fn edge_and_zero_adapter(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = common::model_path(loragen::agent::store::Role::Edge);
    let out = dir.join("zero.gguf");
    let ffn = weight_shapes(&model, |n| n.contains(".ffn_")).unwrap();
    assert_eq!(ffn.len(), 18 * 3, "gate, up and down in each of 18 blocks");
    let rank = 4;
    let pairs: Vec<LoraPair> = ffn
        .iter()
        .map(|(name, (n_out, n_in))| LoraPair {
            weight: name.clone(),
            a: candle_core::Tensor::ones(
                (rank, *n_in),
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            )
            .unwrap(),
            b: candle_core::Tensor::zeros(
                (*n_out, rank),
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            )
            .unwrap(),
        })
        .collect();
    write_lora_adapter(&out, "gemma3", rank as f32, &pairs).unwrap();
    (model, out)
}

#[test]
fn zero_delta_adapter_reproduces_the_base_model() {
    let dir = tempfile::tempdir().unwrap();
    let (path, adapter_path) = edge_and_zero_adapter(dir.path());

    let text = prompt("Segment the dogs in the image.");
    // A separate model instance keeps the adapter out of the shared one.
    let mut model = Model::load(&path).unwrap();
    let mut adapter = model.load_adapter(&adapter_path).unwrap();
    let mut session = model
        .session(SessionParams::default().with_n_ctx(2048))
        .unwrap();
    let base = session.generate(&text, &greedy(24)).unwrap();
    session.set_adapter(&mut adapter, 1.0).unwrap();
    let adapted = session.generate(&text, &greedy(24)).unwrap();
    assert_eq!(
        adapted.stats.reused_tokens, 0,
        "attaching an adapter must invalidate the cache"
    );
    assert_eq!(
        base.tokens, adapted.tokens,
        "a zero adapter changed the output"
    );
    // Exactly, not just the same greedy tokens: every logit is bit-identical.
    let tokens = model.tokenize(&text, true);
    let positions: Vec<usize> = (0..tokens.len()).collect();
    let with_zero = session.logits(&tokens, &positions).unwrap();
    session.remove_adapter(&mut adapter).unwrap();
    assert_eq!(
        session.generate(&text, &greedy(24)).unwrap().tokens,
        base.tokens
    );
    let without = session.logits(&tokens, &positions).unwrap();
    assert!(with_zero == without, "a zero adapter changed the logits");
}

#[test]
fn adapter_for_another_architecture_is_a_clear_error() {
    let path = common::model_path(loragen::agent::store::Role::Edge);
    let dir = tempfile::tempdir().unwrap();
    let adapter_path = dir.path().join("qwen.gguf");
    write_lora_adapter(&adapter_path, "qwen2", 1.0, &[]).unwrap();
    let mut model = Model::load(&path).unwrap();
    let err = model.load_adapter(&adapter_path).unwrap_err();
    assert!(err.to_string().contains("LoRA adapter"), "{err}");
}

#[test]
fn hidden_states_have_the_model_width_and_are_finite() {
    for model in [common::edge(), common::cloud()] {
        let mut session = model
            .session(
                SessionParams::default()
                    .with_n_ctx(2048)
                    .with_embeddings(true),
            )
            .unwrap();
        let tokens = model.tokenize(&prompt("Describe the image."), true);
        let positions = [0, tokens.len() / 2, tokens.len() - 1];
        let states = session.hidden_states(&tokens, &positions).unwrap();
        assert_eq!(states.len(), 3);
        for h in &states {
            assert_eq!(h.len(), model.n_embd());
            assert!(h.iter().all(|x| x.is_finite()));
            assert!(h.iter().any(|&x| x != 0.0));
        }
        assert_ne!(states[1], states[2], "different positions must differ");
        // Asking again with the cache warm recomputes only the last token.
        // llama.cpp's one-token kernels round differently from its batched
        // ones (a fully token-by-token prefill measured cosine 0.9992 on
        // gemma3 and 0.9997 on qwen2 against the batched one), so compare
        // by direction.
        let again = session.hidden_states(&tokens, &positions[2..]).unwrap();
        let cos = cosine(&again[0], &states[2]);
        assert!(
            cos > 0.995,
            "warm and cold hidden states disagree: cosine {cos}"
        );
        assert!(cosine(&states[1], &states[2]) < cos);
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn grammar_restricts_output_to_the_allowed_calls() {
    let model = common::edge();
    let mut session = model
        .session(SessionParams::default().with_n_ctx(2048))
        .unwrap();
    let grammar = r#"root ::= "Action: " ("Segment the Image" | "Get Photo Description") "\n""#;
    let params = greedy(32).with_grammar(Some(grammar.to_owned()));
    for request in [
        "Segment the picture.",
        "What is in this photo?",
        "Tell me a joke.",
    ] {
        let out = session.generate(&prompt(request), &params).unwrap();
        assert!(
            [
                "Action: Segment the Image\n",
                "Action: Get Photo Description\n"
            ]
            .contains(&out.text.as_str()),
            "grammar violated: {:?}",
            out.text
        );
        assert_eq!(out.finish, FinishReason::EndOfGeneration);
    }
    let broken = greedy(4).with_grammar(Some("root ::= (".to_owned()));
    let err = session.generate(&prompt("x"), &broken).unwrap_err();
    assert!(err.to_string().contains("grammar"), "{err}");
}

#[test]
fn cloud_features_of_a_text_do_not_depend_on_what_the_session_encoded_before() {
    use loragen::generator::features::Cloud;
    let mut cloud = Cloud::new(common::model_path(loragen::agent::store::Role::Cloud));
    let long = "> Segment the Image: useful when you want to segment all the parts of the image. The input to this tool should be a string, representing the image_path.";
    let short = "> Answer Question About The Image: useful when you need an answer about an image.";
    let encode = |cloud: &mut Cloud, texts: &[&str]| {
        let mut out = Vec::new();
        cloud
            .encode_each(texts, |i, t| {
                assert_eq!(i, out.len());
                out.push(t);
                Ok(())
            })
            .unwrap();
        out
    };
    let together = encode(&mut cloud, &[long, short]);
    let alone = encode(&mut cloud, &[short]);
    assert_eq!(together[1].dims(), alone[0].dims());
    let diff = max_diff(&together[1], &alone[0]);
    assert!(diff < 1e-4, "features differ by {diff} after another text");
}

#[test]
fn feature_cache_stores_each_block_as_it_is_encoded_and_reports_progress() {
    use loragen::generator::features::{
        system_blocks, Cloud, EncodeProgress, FeatureCache, MetaSource,
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = FeatureCache::new(dir.path(), "test-cloud", MetaSource::CrossAttention, 18);
    let mut cloud = Cloud::new(common::model_path(loragen::agent::store::Role::Cloud));
    let two = "Persona.\n> A: does a.\n> B: does b.\nAction: one of [A, B]\n";
    let three = "Persona.\n> A: does a.\n> B: does b.\n> C: does c.\nAction: one of [A, B, C]\n";
    let mut seen = Vec::new();
    let (features, counts) = cache
        .features_with_progress([two], &mut cloud, |p| seen.push(p))
        .unwrap();
    let blocks = system_blocks(two).len();
    assert_eq!(counts.computed, blocks);
    let expected: Vec<usize> = (1..=blocks).collect();
    assert_eq!(seen.iter().map(|p| p.done).collect::<Vec<_>>(), expected);
    assert!(seen.iter().all(|p: &EncodeProgress| p.total == blocks));
    assert_eq!(seen.last().unwrap().tokens, counts.tokens);
    assert!(features.covers(two));
    let files = std::fs::read_dir(dir.path().join("test-cloud").join("blocks-v1"))
        .unwrap()
        .count();
    assert_eq!(files, blocks, "one cache file per block");
    // One more tool costs one cloud pass: the rest comes from the cache.
    let (features, counts) = cache.features([two, three], &mut cloud).unwrap();
    assert_eq!(counts.computed, 1);
    assert!(features.covers(three));
}

#[test]
fn adapter_host_reloads_the_model_after_its_adapter_budget() {
    use loragen::agent::runtime::{AdapterHost, ADAPTERS_PER_MODEL_LOAD};
    let dir = tempfile::tempdir().unwrap();
    let (path, adapter_path) = edge_and_zero_adapter(dir.path());
    let text = prompt("Segment the dogs in the image.");
    let mut host = AdapterHost::load(&path).unwrap();
    let base = host
        .model()
        .unwrap()
        .session(SessionParams::default())
        .unwrap()
        .generate(&text, &greedy(12))
        .unwrap();
    let mut reloads = Vec::new();
    for n in 0..=ADAPTERS_PER_MODEL_LOAD {
        let (adapter, reloaded) = host.load_adapter(&adapter_path).unwrap();
        if reloaded {
            reloads.push(n);
        }
        drop(adapter);
    }
    assert_eq!(
        reloads,
        vec![ADAPTERS_PER_MODEL_LOAD],
        "one reload, at the budget"
    );
    // The reloaded model serves with a fresh adapter as before.
    let (mut adapter, reloaded) = host.load_adapter(&adapter_path).unwrap();
    assert!(!reloaded);
    let mut session = host
        .model()
        .unwrap()
        .session(SessionParams::default())
        .unwrap();
    session.set_adapter(&mut adapter, 1.0).unwrap();
    assert_eq!(
        session.generate(&text, &greedy(12)).unwrap().tokens,
        base.tokens
    );
}

#[test]
fn adapter_host_keeps_its_session_and_cache_while_the_adapter_stays() {
    use loragen::agent::runtime::{AdapterHost, ADAPTERS_PER_MODEL_LOAD};
    let dir = tempfile::tempdir().unwrap();
    let (path, adapter_path) = edge_and_zero_adapter(dir.path());
    let text = prompt("Segment the dogs in the image.");
    let params = SessionParams::default().with_n_ctx(1024);
    let mut host = AdapterHost::load(&path).unwrap();
    let run = |host: &mut AdapterHost, adapter: Option<&str>| {
        host.with_session(&params, adapter, |s| s.generate(&text, &greedy(12)))
            .unwrap()
    };
    let base = run(&mut host, None);
    assert_eq!(base.stats.reused_tokens, 0);
    assert!(
        run(&mut host, None).stats.reused_tokens > 0,
        "the kept session's cache serves the same prompt again"
    );
    host.hold_adapter("a", &adapter_path).unwrap();
    host.hold_adapter("b", &adapter_path).unwrap();
    let first = run(&mut host, Some("a"));
    assert_eq!(
        first.stats.reused_tokens, 0,
        "a new adapter clears the cache"
    );
    assert_eq!(
        first.tokens, base.tokens,
        "a zero adapter changed the output"
    );
    assert!(run(&mut host, Some("a")).stats.reused_tokens > 0);
    assert_eq!(run(&mut host, Some("b")).stats.reused_tokens, 0);
    // No adapter after one: a fresh session, since only an adapter detaches.
    let plain = run(&mut host, None);
    assert_eq!(plain.stats.reused_tokens, 0);
    assert_eq!(plain.tokens, base.tokens);

    let err = host
        .with_session(&params, Some("c"), |s| s.generate(&text, &greedy(1)))
        .unwrap_err();
    assert!(err.to_string().contains("\"c\""), "{err}");
    // "a" and "b" and 30 more fill the budget; the next load reloads the
    // model, and the held adapters go with it.
    for n in 0..ADAPTERS_PER_MODEL_LOAD - 2 {
        host.hold_adapter(&n.to_string(), &adapter_path).unwrap();
    }
    assert!(host.holds("a") && host.holds("29"));
    host.hold_adapter("last", &adapter_path).unwrap();
    assert!(!host.holds("a") && !host.holds("29") && host.holds("last"));
    assert_eq!(run(&mut host, Some("last")).tokens, base.tokens);
}

#[test]
fn meta_token_features_are_one_cloud_state_per_layer_of_the_whole_system_part() {
    use loragen::generator::features::{system_blocks, Cloud, FeatureCache, MetaSource};
    let dir = tempfile::tempdir().unwrap();
    let cache = FeatureCache::new(dir.path(), "test-cloud", MetaSource::CloudTokens, 4);
    let mut cloud = Cloud::new(common::model_path(loragen::agent::store::Role::Cloud));
    let two = "Persona.\n> A: does a.\n> B: does b.\nAction: one of [A, B]\n";
    let three = "Persona.\n> A: does a.\n> B: does b.\n> C: does c.\nAction: one of [A, B, C]\n";
    let (features, counts) = cache.features([two, three, two], &mut cloud).unwrap();
    assert_eq!(
        counts.computed, 2,
        "one cloud pass per distinct system part"
    );
    // Counted as tokens read (each system part and 4 meta strings), not rows kept.
    assert!(counts.tokens > 2 * 4 + 20, "{} tokens", counts.tokens);
    let (a, b) = (features.of(two).unwrap(), features.of(three).unwrap());
    assert_eq!(a.dims(), &[4, 896]);
    let row_gap = max_diff(&a.narrow(0, 0, 1).unwrap(), &a.narrow(0, 3, 1).unwrap());
    assert!(row_gap > 1e-2, "meta tokens 0 and 3 read the same state");
    let part_gap = max_diff(&a, &b);
    assert!(part_gap > 1e-2, "the states ignore the system part");
    // A second call is all cache; the block features are a cache apart.
    let (_, again) = cache.features([two], &mut cloud).unwrap();
    assert_eq!(again.computed, 0);
    let blocks = FeatureCache::new(dir.path(), "test-cloud", MetaSource::CrossAttention, 4);
    let (_, counts) = blocks.features([two], &mut cloud).unwrap();
    assert_eq!(counts.computed, system_blocks(two).len());
}

#[test]
fn the_selector_s_query_input_is_the_last_state_then_the_request_s_mean() {
    use loragen::agent::selector::query_input;
    use loragen::protocol::react::{conversation_prompt, request_span};

    let model = common::edge();
    let prompt = conversation_prompt(None, &[], "Segment the dog in dog.png, please", "");
    let request = request_span(&prompt).unwrap();
    let mut session = model
        .session(SessionParams::default().with_embeddings(true))
        .unwrap();
    let input = query_input(&mut session, &prompt, request.clone()).unwrap();
    let d = model.n_embd();
    assert_eq!(input.len(), 2 * d);

    // The reference: every state of a cold session, the request's tokens
    // found by tokenizing the prompt up to each end of the request.
    let tokens = model.tokenize(&prompt, true);
    let start = model.tokenize(&prompt[..request.start], true).len();
    let end = model.tokenize(&prompt[..request.end], true).len();
    assert!(end > start + 3, "the request has several tokens");
    let mut cold = model
        .session(SessionParams::default().with_embeddings(true))
        .unwrap();
    let all: Vec<usize> = (0..tokens.len()).collect();
    let states = cold.hidden_states(&tokens, &all).unwrap();
    let last = &states[tokens.len() - 1];
    let mean: Vec<f32> = (0..d)
        .map(|j| states[start..end].iter().map(|s| s[j]).sum::<f32>() / (end - start) as f32)
        .collect();
    // The same computation in one batch: equal up to float summation order.
    assert!(cosine(&input[..d], last) > 0.9999, "the anchor state");
    assert!(cosine(&input[d..], &mean) > 0.9999, "the request's mean");
    // Not the mean of the whole prompt.
    let whole: Vec<f32> = (0..d)
        .map(|j| states.iter().map(|s| s[j]).sum::<f32>() / states.len() as f32)
        .collect();
    assert!(cosine(&input[d..], &whole) < 0.9999);

    // A request that holds no token reads the last state for both halves.
    let empty = query_input(&mut session, &prompt, 0..0).unwrap();
    assert!(cosine(&empty[..d], &empty[d..]) > 0.9999);
    // A bound inside a character is an error, not a panic.
    let bad = query_input(&mut session, "héllo New input: x", 2..3);
    assert!(bad.is_err());
}
