//! The candle edge forward against llama.cpp on the real default edge
//! model: next-token top-1 agreement and KL over a text of 1,000 tokens,
//! without and with a random LoRA (applied in candle directly and in
//! llama.cpp through the exported GGUF adapter). llama.cpp's own batched
//! and one-token-at-a-time paths are compared too, as the noise floor of
//! its quantised kernels, and llama.cpp on an F32 copy of the weights
//! shows what is left once quantisation is taken out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use candle_core::{Device, Tensor};
use loragen_agent::runtime::{Model, SessionParams};
use loragen_agent::store::Role;
use loragen_generator::edge::{
    agreement, random_lora, Agreement, EdgeModel, LayerDeltas, Phase, Target,
};
use loragen_generator::gguf_lora::write_lora_adapter;
use loragen_generator::merge::{write_dequantised, MergedType};
use loragen_generator::model::GatePass;
use loragen_protocol::gpt4tools::{render_instruction, TOOLS};

const N_TOKENS: usize = 1000;

fn text_tokens(model: &Model) -> Vec<loragen_agent::runtime::LlamaToken> {
    let text = render_instruction(&TOOLS, common::DEMO_IMAGE, common::DEMO_REQUEST);
    let tokens = model.tokenize(&text, true);
    assert!(tokens.len() >= N_TOKENS, "{}", tokens.len());
    tokens[..N_TOKENS].to_vec()
}

fn llama_logits(model: &Model, tokens: &[loragen_agent::runtime::LlamaToken]) -> Vec<Vec<f32>> {
    let mut session = model
        .session(
            SessionParams::default()
                .with_n_ctx(2048)
                .with_prefix_reuse(false),
        )
        .unwrap();
    let positions: Vec<usize> = (0..tokens.len()).collect();
    session.logits(tokens, &positions).unwrap()
}

fn candle_logits(
    edge: &EdgeModel,
    tokens: &[loragen_agent::runtime::LlamaToken],
    deltas: Option<&[LayerDeltas]>,
) -> Vec<Vec<f32>> {
    let ids: Vec<u32> = tokens.iter().map(|t| t.0 as u32).collect();
    let input = Tensor::new(ids.as_slice(), edge.device())
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let hidden = edge
        .hidden(&input, &[tokens.len()], deltas, Phase::Eval)
        .unwrap();
    let rows = hidden.squeeze(0).unwrap();
    edge.logits(&rows).unwrap().to_vec2().unwrap()
}

fn report(label: &str, a: &Agreement) {
    eprintln!(
        "{label}: top-1 agreement {:.4} over {} positions, mean KL {:.2e} nats (max {:.2e}), largest logit gap at a disagreement {:.3}",
        a.top1, a.positions, a.mean_kl, a.max_kl, a.max_disagreement_gap
    );
}

fn edge_model() -> &'static EdgeModel {
    static EDGE: std::sync::OnceLock<EdgeModel> = std::sync::OnceLock::new();
    EDGE.get_or_init(|| EdgeModel::load(&common::model_path(Role::Edge), &Device::Cpu).unwrap())
}

#[test]
fn padding_does_not_change_the_real_tokens() {
    let edge = edge_model();
    let tokens: Vec<u32> = text_tokens(common::edge())
        .iter()
        .take(40)
        .map(|t| t.0 as u32)
        .collect();
    let short = &tokens[..25];
    let mut padded = short.to_vec();
    padded.resize(40, 0);
    let batch =
        Tensor::from_vec([tokens.clone(), padded].concat(), (2, 40), edge.device()).unwrap();
    let both = edge.hidden(&batch, &[40, 25], None, Phase::Eval).unwrap();
    let alone = edge
        .hidden(
            &Tensor::new(short, edge.device())
                .unwrap()
                .unsqueeze(0)
                .unwrap(),
            &[25],
            None,
            Phase::Eval,
        )
        .unwrap();
    let diff = (both.get(1).unwrap().narrow(0, 0, 25).unwrap() - alone.squeeze(0).unwrap())
        .unwrap()
        .abs()
        .unwrap();
    let max = diff.max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(max < 1e-3, "padding changed the hidden states by {max}");
    assert!(
        edge.hidden(&batch, &[40, 41], None, Phase::Eval).is_err(),
        "a length beyond the batch is an error"
    );
}

#[test]
fn only_the_lora_gets_gradients() {
    use loragen_generator::edge::{FixedLora, LoraConfig};
    let edge = edge_model();
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, edge.device());
    let lora = FixedLora::new(
        LoraConfig::default().with_rank(4),
        edge.config.n_layer,
        |t| edge.dims(t),
        vb,
    )
    .unwrap();
    let ids: Vec<u32> = text_tokens(common::edge())
        .iter()
        .take(16)
        .map(|t| t.0 as u32)
        .collect();
    let input = Tensor::new(ids.as_slice(), edge.device())
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let hidden = edge
        .hidden(
            &input,
            &[16],
            Some(&lora.layers),
            Phase::Train {
                dropout: 0.0,
                seed: 0,
            },
        )
        .unwrap();
    // Logits only where the loss is: the last 4 positions.
    let at: Vec<(usize, usize)> = (11..15).map(|t| (0, t)).collect();
    let logits = edge.logits(&edge.select(&hidden, &at).unwrap()).unwrap();
    let targets = Tensor::new(&ids[12..16], edge.device()).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
    let grads = loss.backward().unwrap();
    let vars = varmap.all_vars();
    assert_eq!(vars.len(), edge.config.n_layer * 3 * 2);
    // B starts at zero, so only B has a gradient at the first step.
    let with_grad = vars
        .iter()
        .filter(|v| {
            grads.get(v).is_some_and(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            })
        })
        .count();
    assert_eq!(with_grad, edge.config.n_layer * 3);
    assert!(
        grads.get(edge.weight(0, Target::Gate).unwrap()).is_none(),
        "a frozen weight got a gradient"
    );
}

#[test]
fn candle_matches_llama_cpp_with_and_without_lora() {
    let path = common::model_path(Role::Edge);
    let llama = common::edge();
    let tokens = text_tokens(llama);
    let edge = edge_model();

    let reference = llama_logits(llama, &tokens);
    // llama.cpp against itself, one token per decode call instead of one
    // batch: the noise floor of its own kernels.
    let mut single = llama
        .session(
            SessionParams::default()
                .with_n_ctx(2048)
                .with_n_batch(1)
                .with_prefix_reuse(false),
        )
        .unwrap();
    let positions: Vec<usize> = (0..tokens.len()).collect();
    let base_floor = agreement(&reference, &single.logits(&tokens, &positions).unwrap());
    report(
        "base: llama.cpp batched vs one token at a time",
        &base_floor,
    );
    let base = agreement(&reference, &candle_logits(edge, &tokens, None));
    report("base: candle vs llama.cpp", &base);
    // Top-1 agreement is bounded by llama.cpp's agreement with itself less
    // a point, measured in this run, not by a constant: on the Q4_K_M file
    // llama.cpp rounds activations to 8 bits, which decides near-ties, and
    // that rounding noise differs with the processor and the thread count
    // (97.1-98.4% against candle, 96.8-97.4% against itself, seen on
    // machines of this project; docs/edge.md). The KL bound is absolute.
    assert!(base.mean_kl <= 0.02, "{base:?}");
    assert!(
        base.top1 >= base_floor.top1 - 0.01,
        "{base:?} vs llama.cpp's own {base_floor:?}"
    );

    // Adapters need a model of their own (the shared one stays plain).
    let mut model = Model::load(&path).unwrap();
    // Three draws of the small LoRA the issue names (1% of |W|), since
    // top-1 agreement at this level moves by a point with any change of
    // rounding, and one larger LoRA that clearly moves the model.
    for (relative, seed) in [(0.01, 7), (0.01, 1), (0.01, 2), (0.1, 7)] {
        let label = format!(
            "random LoRA r=16, {}% of |W|, seed {seed}",
            relative * 100.0
        );
        let (deltas, pairs) = random_lora(edge, &Target::FFN, 16, relative, seed).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let adapter_path = dir.path().join("random.gguf");
        // alpha = rank gives llama.cpp the same scale (alpha / r = 1) as candle.
        write_lora_adapter(&adapter_path, "gemma3", 16.0, &pairs).unwrap();
        let mut adapter = model.load_adapter(&adapter_path).unwrap();
        let mut session = model
            .session(
                SessionParams::default()
                    .with_n_ctx(2048)
                    .with_prefix_reuse(false),
            )
            .unwrap();
        session.set_adapter(&mut adapter, 1.0).unwrap();
        let adapted_llama = session.logits(&tokens, &positions).unwrap();
        let adapted_candle = candle_logits(edge, &tokens, Some(&deltas));
        let lora = agreement(&adapted_llama, &adapted_candle);
        report(&format!("{label}: candle vs llama.cpp"), &lora);
        let moved = agreement(&reference, &adapted_llama);
        report(&format!("{label}: llama.cpp with vs without it"), &moved);
        assert!(lora.mean_kl <= 0.02, "{lora:?}");
        if relative >= 0.1 {
            // A LoRA that clearly moves the model must move both paths alike:
            // were it applied differently (or not at all) in llama.cpp, the
            // two would disagree by about as much as it moves the model.
            assert!(moved.mean_kl > 10.0 * lora.mean_kl, "{moved:?} vs {lora:?}");
        }
        // The same bound as for the base model: the F32 copy below agrees
        // on 100%, so the gap is llama.cpp's 8-bit rounding of activations
        // deciding near-ties (docs/edge.md, "Top-1 agreement and
        // llama.cpp's rounding").
        assert!(
            lora.top1 >= base_floor.top1 - 0.01,
            "{lora:?} vs {base_floor:?}"
        );
    }
}

/// With the quantisation taken out (llama.cpp runs an F32 copy holding
/// exactly the weights candle dequantised), the two forwards must agree
/// to float rounding: what separates them on the Q4_K_M file is
/// llama.cpp's quantised kernels alone, not a difference in the model.
#[test]
fn candle_matches_llama_cpp_on_the_exact_f32_weights() {
    let edge = edge_model();
    // Exactness needs no long sample: the first 300 tokens.
    let tokens = &text_tokens(common::edge())[..300];
    let dir = tempfile::tempdir().unwrap();
    let f32_path = dir.path().join("edge-f32.gguf");
    write_dequantised(&common::model_path(Role::Edge), MergedType::F32, &f32_path).unwrap();
    let mut f32_model = Model::load(&f32_path).unwrap();
    let exact = agreement(
        &llama_logits(&f32_model, tokens),
        &candle_logits(edge, tokens, None),
    );
    report("base: candle vs llama.cpp on the F32 copy", &exact);
    assert!(exact.top1 >= 0.99 && exact.mean_kl <= 1e-3, "{exact:?}");

    let (deltas, pairs) = random_lora(edge, &Target::FFN, 16, 0.1, 7).unwrap();
    let adapter_path = dir.path().join("random.gguf");
    write_lora_adapter(&adapter_path, "gemma3", 16.0, &pairs).unwrap();
    let mut adapter = f32_model.load_adapter(&adapter_path).unwrap();
    let mut session = f32_model
        .session(
            SessionParams::default()
                .with_n_ctx(2048)
                .with_prefix_reuse(false),
        )
        .unwrap();
    session.set_adapter(&mut adapter, 1.0).unwrap();
    let positions: Vec<usize> = (0..tokens.len()).collect();
    let adapted = agreement(
        &session.logits(tokens, &positions).unwrap(),
        &candle_logits(edge, tokens, Some(&deltas)),
    );
    report(
        "random LoRA r=16, 10% of |W|: candle vs llama.cpp on the F32 copy",
        &adapted,
    );
    assert!(
        adapted.top1 >= 0.99 && adapted.mean_kl <= 1e-3,
        "{adapted:?}"
    );
}

/// The generator's export rule against its training rule: the adapter
/// `Generator::adapter` writes, loaded in llama.cpp, gives the logits that
/// candle gives with the generated deltas. The experts' B factors are
/// randomised (they start at zero) so that the adapter moves llama.cpp's
/// logits by more than ten times the bound.
#[test]
fn a_generated_adapter_in_llama_cpp_matches_candle_with_its_deltas() {
    use candle_nn::VarMap;
    use loragen_generator::model::{Generator, GeneratorConfig};

    let edge = edge_model();
    let llama = common::edge();
    let tokens = &text_tokens(llama)[..300];
    let positions: Vec<usize> = (0..tokens.len()).collect();
    use loragen_generator::train::seeded_var_builder;
    use rand::{Rng, SeedableRng};

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut seeded = |shape: &candle_core::Shape, scale: f32| {
        let v: Vec<f32> = (0..shape.elem_count())
            .map(|_| rng.random_range(-scale..scale))
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let varmap = VarMap::new();
    let vb = seeded_var_builder(&varmap, 3, candle_core::DType::F32, &Device::Cpu);
    let config = GeneratorConfig::default()
        .with_edge_layers(edge.config.n_layer)
        .with_cloud_dim(32)
        .with_meta_dim(16)
        .with_router_hidden(8);
    let generator = Generator::new(config, |t| edge.dims(t), vb).unwrap();
    let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    for name in names.iter().filter(|n| n.ends_with("lora_b")) {
        let var = varmap.data().lock().unwrap()[name].clone();
        var.set(&seeded(var.shape(), 0.15)).unwrap();
    }
    let features = seeded(&(12, 32).into(), 1.0);
    let gates = generator
        .gates(std::slice::from_ref(&features), GatePass::Eval)
        .unwrap();
    let deltas = generator.deltas(&gates).unwrap();
    let candle = candle_logits(edge, tokens, Some(&deltas));

    let adapter = generator.adapter(&features, "gemma3").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generated.gguf");
    write_lora_adapter(&path, &adapter.arch, adapter.alpha, &adapter.pairs).unwrap();
    let mut model = Model::load(common::model_path(Role::Edge)).unwrap();
    let mut loaded = model.load_adapter(&path).unwrap();
    let mut session = model
        .session(
            SessionParams::default()
                .with_n_ctx(1024)
                .with_prefix_reuse(false),
        )
        .unwrap();
    let base = session.logits(tokens, &positions).unwrap();
    session.set_adapter(&mut loaded, 1.0).unwrap();
    let adapted = session.logits(tokens, &positions).unwrap();

    let parity = agreement(&adapted, &candle);
    let moved = agreement(&base, &adapted);
    report("generated adapter: candle vs llama.cpp", &parity);
    report("generated adapter: llama.cpp with vs without it", &moved);
    assert!(parity.mean_kl <= 0.02, "{parity:?}");
    assert!(
        moved.mean_kl > 10.0 * 0.02,
        "the adapter must move the model: {moved:?}"
    );
}
