#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};

use super::*;
use crate::edge::Target;
use crate::test_util::max_diff;

use crate::test_util::{tiny_config as small, tiny_dims as dims};

fn build(varmap: &VarMap) -> Generator {
    let vb = VarBuilder::from_varmap(varmap, DType::F64, &Device::Cpu);
    Generator::new(small(), dims, vb).unwrap()
}

fn features(lengths: &[usize]) -> Vec<Tensor> {
    lengths
        .iter()
        .map(|&t| Tensor::randn(0f64, 1.0, (t, 12), &Device::Cpu).unwrap())
        .collect()
}

#[test]
fn gates_have_one_row_per_element_with_k_kept_summing_to_one() {
    let generator = build(&VarMap::new());
    let gates = generator
        .gates(&features(&[5, 9, 1]), GatePass::Train { noise_seed: 0 })
        .unwrap();
    assert_eq!(gates.len(), 3);
    for g in &gates {
        assert_eq!(g.dims(), &[3, 4]);
        for row in g.to_vec2::<f64>().unwrap() {
            assert_eq!(row.iter().filter(|&&v| v > 0.0).count(), 2, "{row:?}");
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
    let deltas = generator.deltas(&gates).unwrap();
    assert_eq!(deltas.len(), 3);
    let up = deltas[0].get(Target::Up).unwrap();
    assert_eq!((up.a.dims(), up.b.dims()), (&[3, 2, 5][..], &[3, 7, 2][..]));
}

#[test]
fn padding_does_not_change_an_elements_meta_tokens() {
    let generator = build(&VarMap::new());
    let f = features(&[4, 11]);
    let together = generator.meta.forward(&f).unwrap();
    let alone = generator.meta.forward(&f[..1]).unwrap();
    assert!(max_diff(&together.narrow(0, 0, 1).unwrap(), &alone) < 1e-12);
    assert_eq!(together.dims(), &[2, 3, 8]);
}

#[test]
fn batch_norm_trains_on_batch_statistics_and_infers_on_running_ones() {
    let varmap = VarMap::new();
    let generator = build(&varmap);
    let running = |name: &str| {
        varmap.data().lock().unwrap()[&format!("router.0.bn.{name}")]
            .to_vec1::<f64>()
            .unwrap()
    };
    assert_eq!(running("running_mean"), vec![0.0; 4]);
    let f = features(&[3, 6, 2, 8]);
    let t = generator.meta.forward(&f).unwrap();
    let t0 = t.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
    let train = generator.expert_head().unwrap().0[0]
        .forward_t(&t0, true)
        .unwrap();
    // Batch statistics: each expert's logits have mean 0 over the batch.
    for m in train.mean(0).unwrap().to_vec1::<f64>().unwrap() {
        assert!(m.abs() < 1e-9);
    }
    assert_ne!(
        running("running_mean"),
        vec![0.0; 4],
        "training updates the running mean"
    );
    let eval = generator.expert_head().unwrap().0[0]
        .forward_t(&t0, false)
        .unwrap();
    assert!(
        max_diff(&train, &eval) > 1e-3,
        "inference uses the running statistics"
    );
    // One element alone: fine at inference, an error in training.
    let one = t0.narrow(0, 0, 1).unwrap();
    assert!(
        max_diff(
            &generator.expert_head().unwrap().0[0]
                .forward_t(&one, false)
                .unwrap(),
            &eval.narrow(0, 0, 1).unwrap()
        ) < 1e-12
    );
    assert!(generator.expert_head().unwrap().0[0]
        .forward_t(&one, true)
        .is_err());
}

#[test]
fn cv_loss_matches_a_hand_computed_value() {
    let dev = Device::Cpu;
    // Layer 1: masses (2, 0, 0, 0): mean 0.5, variance 0.75, cv^2 = 3.
    // Layer 2: masses (0.5, 0.5, 0.5, 0.5): cv^2 = 0.
    let a = Tensor::new(&[[1f64, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], &dev).unwrap();
    let b = Tensor::new(&[[0.5f64, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]], &dev).unwrap();
    let cv = cv_loss(&[a.clone(), b])
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((cv - 1.5).abs() < 1e-9, "{cv}");
    assert_eq!(utilisation(&[a]).unwrap()[0], vec![1.0, 0.0, 0.0, 0.0]);
    assert!(cv_loss(&[]).is_err());
}

#[test]
fn one_optimiser_step_on_a_toy_batch_lowers_the_loss() {
    let varmap = VarMap::new();
    let generator = build(&varmap);
    let f = features(&[3, 5, 4]);
    let x = Tensor::randn(0f64, 1.0, (3, 6, 5), &Device::Cpu).unwrap();
    let target = Tensor::randn(0f64, 1.0, (3, 6, 7), &Device::Cpu).unwrap();
    let loss = |g: &Generator| {
        let gates = g.gates(&f, GatePass::Train { noise_seed: 0 }).unwrap();
        let deltas = g.deltas(&gates).unwrap();
        let y = deltas[1]
            .get(Target::Gate)
            .unwrap()
            .apply(&x, None)
            .unwrap();
        let mse = (y - &target).unwrap().sqr().unwrap().mean_all().unwrap();
        (mse + (cv_loss(&gates).unwrap() * g.config.cv_weight).unwrap()).unwrap()
    };
    let mut opt = candle_nn::AdamW::new_lr(varmap.all_vars(), 1e-2).unwrap();
    let before = loss(&generator);
    opt.backward_step(&before).unwrap();
    let after = loss(&generator);
    let (b, a) = (
        before.to_scalar::<f64>().unwrap(),
        after.to_scalar::<f64>().unwrap(),
    );
    assert!(a < b, "loss went from {b} to {a}");
}

#[test]
fn the_adapter_is_the_mix_at_inference_gates() {
    let varmap = VarMap::new();
    let generator = build(&varmap);
    // Give B a value, so the factors are not trivially zero.
    for (name, var) in varmap.data().lock().unwrap().iter() {
        if name.ends_with("lora_b") {
            var.set(&Tensor::randn(0f64, 1.0, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let f = features(&[6]);
    let adapter = generator.adapter(&f[0], "llama").unwrap();
    assert_eq!(adapter.pairs.len(), 3 * 3);
    assert_eq!(adapter.alpha, 2.0);
    let gates = generator.gates(&f, GatePass::Eval).unwrap();
    let pool = &generator.expert_head().unwrap().1.layers[2][1].1;
    let mixed = pool.mix(&gates[2]).unwrap();
    let pair = adapter
        .pairs
        .iter()
        .find(|p| p.weight == "blk.2.ffn_up.weight")
        .unwrap();
    assert_eq!(pair.a.dims(), &[2, 5]);
    let expected = mixed.b.squeeze(0).unwrap();
    assert!(max_diff(&pair.b.to_dtype(DType::F64).unwrap(), &expected) < 1e-6);
}

#[test]
fn gumbel_gating_samples_in_training_from_its_seed_and_is_exact_at_inference() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let config = small().with_gating(Gating::GumbelTopK { tau: 0.5 });
    let gumbel = Generator::new(config.clone(), dims, vb).unwrap();
    let f = features(&[4, 6, 3, 5]);
    let train = |seed| {
        gumbel
            .gates(&f, GatePass::Train { noise_seed: seed })
            .unwrap()
            .iter()
            .map(|g| g.to_vec2::<f64>().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(train(3), train(3), "the same seed draws the same noise");
    let kept = |gates: &[Vec<Vec<f64>>]| -> Vec<Vec<bool>> {
        gates
            .iter()
            .flatten()
            .map(|row| row.iter().map(|&v| v > 0.0).collect())
            .collect()
    };
    assert!(
        (0..20).any(|s| kept(&train(s)) != kept(&train(s + 100))),
        "the noise must change which experts are kept"
    );
    for layer in &train(7) {
        for row in layer {
            assert_eq!(row.iter().filter(|&&v| v > 0.0).count(), 2);
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
    // At inference: KeepTop-K of logits / tau, no noise. The same weights
    // under KeepTop-K gating give KeepTop-K of the logits themselves: the
    // same experts, sharper weights.
    let eval = gumbel.gates(&f, GatePass::Eval).unwrap();
    let plain = Generator {
        config: small(),
        ..gumbel.clone()
    }
    .gates(&f, GatePass::Eval)
    .unwrap();
    for (g, p) in eval.iter().zip(&plain) {
        let (g, p) = (g.to_vec2::<f64>().unwrap(), p.to_vec2::<f64>().unwrap());
        for (gr, pr) in g.iter().zip(&p) {
            let on = |r: &[f64]| r.iter().map(|&v| v > 0.0).collect::<Vec<_>>();
            assert_eq!(on(gr), on(pr));
            let (gmax, pmax) = (
                gr.iter().cloned().fold(0.0, f64::max),
                pr.iter().cloned().fold(0.0, f64::max),
            );
            assert!(gmax >= pmax - 1e-12, "tau < 1 sharpens: {gr:?} vs {pr:?}");
        }
    }
    assert!(small()
        .with_gating(Gating::GumbelTopK { tau: 0.0 })
        .validate()
        .is_err());
    let json = serde_json::to_string(&config.gating).unwrap();
    assert_eq!(json, r#"{"gumbel_top_k":{"tau":0.5}}"#);
    assert_eq!(
        serde_json::from_str::<Gating>(r#""keep_top_k""#).unwrap(),
        Gating::KeepTopK
    );
}

fn build_cloud_tokens(varmap: &VarMap) -> Generator {
    let vb = VarBuilder::from_varmap(varmap, DType::F64, &Device::Cpu);
    Generator::new(small().with_meta_source(MetaSource::CloudTokens), dims, vb).unwrap()
}

#[test]
fn cloud_token_meta_source_projects_one_state_per_layer_and_trains() {
    let varmap = VarMap::new();
    let generator = build_cloud_tokens(&varmap);
    // One row per edge layer (3) per element.
    let f = features(&[3, 3]);
    let gates = generator
        .gates(&f, GatePass::Train { noise_seed: 0 })
        .unwrap();
    assert_eq!(gates.len(), 3);
    assert!(gates.iter().all(|g| g.dims() == [2, 4]));
    // Layer i's meta token depends on row i only.
    let mut moved = f[0].to_vec2::<f64>().unwrap();
    // Not a constant shift: the feature norm would remove it.
    moved[2]
        .iter_mut()
        .enumerate()
        .for_each(|(j, v)| *v += 0.3 * j as f64);
    let moved = Tensor::new(moved, &Device::Cpu).unwrap();
    let t = |x: &Tensor| match &generator.meta {
        Meta::CloudTokens(m) => m.forward(std::slice::from_ref(x)).unwrap(),
        Meta::CrossAttention(_) => unreachable!(),
    };
    let (a, b) = (t(&f[0]), t(&moved));
    let diff = |l: usize| max_diff(&a.narrow(1, l, 1).unwrap(), &b.narrow(1, l, 1).unwrap());
    assert_eq!(diff(0), 0.0);
    assert_eq!(diff(1), 0.0);
    assert!(diff(2) > 1e-3);
    // Parameters: offsets, two norms and the projection only.
    let names: Vec<String> = varmap
        .data()
        .lock()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("meta."))
        .cloned()
        .collect();
    assert!(names.iter().any(|n| n == "meta.proj.weight"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("meta.q.")), "{names:?}");

    let x = Tensor::randn(0f64, 1.0, (2, 6, 5), &Device::Cpu).unwrap();
    let target = Tensor::randn(0f64, 1.0, (2, 6, 7), &Device::Cpu).unwrap();
    let loss = |g: &Generator| {
        let gates = g.gates(&f, GatePass::Train { noise_seed: 0 }).unwrap();
        let y = g.deltas(&gates).unwrap()[1]
            .get(Target::Up)
            .unwrap()
            .apply(&x, None)
            .unwrap();
        (y - &target).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let mut opt = candle_nn::AdamW::new_lr(varmap.all_vars(), 1e-2).unwrap();
    let before = loss(&generator);
    opt.backward_step(&before).unwrap();
    let (b, a) = (
        before.to_scalar::<f64>().unwrap(),
        loss(&generator).to_scalar::<f64>().unwrap(),
    );
    assert!(a < b, "loss went from {b} to {a}");
}

#[test]
fn cloud_token_features_of_the_wrong_shape_are_a_clear_error() {
    let generator = build_cloud_tokens(&VarMap::new());
    let err = generator
        .gates(&features(&[7]), GatePass::Eval)
        .unwrap_err()
        .to_string();
    assert!(err.contains("one row per edge layer (3)"), "{err}");
}

#[test]
fn configs_written_before_the_ablation_are_cross_attention_ones() {
    let mut value = serde_json::to_value(small()).unwrap();
    value.as_object_mut().unwrap().remove("meta_source");
    let config: GeneratorConfig = serde_json::from_value(value).unwrap();
    assert_eq!(config.meta_source, MetaSource::CrossAttention);
    assert_eq!(
        "cloud-tokens".parse::<MetaSource>().unwrap(),
        MetaSource::CloudTokens
    );
    assert!("paper".parse::<MetaSource>().is_err());
}

/// The direct head: B starts at zero (the edge model unchanged, as with a
/// fresh LoRA), A at a LoRA's shape; the adapter holds its Eval deltas; a
/// few optimiser steps fit a toy target through the zero-initialised G_B;
/// it has no gates.
#[test]
fn the_direct_head_starts_at_zero_b_exports_its_deltas_and_trains() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let generator = Generator::new(small().with_head(Head::Direct { width: 3 }), dims, vb).unwrap();
    let f = features(&[3, 5, 4]);
    assert!(generator.gates(&f, GatePass::Eval).is_err());
    let generated = generator
        .generate(&f, GatePass::Train { noise_seed: 0 })
        .unwrap();
    assert!(generated.gates.is_none());
    let up = generated.deltas[0].get(Target::Up).unwrap();
    assert_eq!((up.a.dims(), up.b.dims()), (&[3, 2, 5][..], &[3, 7, 2][..]));
    assert_eq!(
        up.b.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        0.0
    );
    assert!(
        up.a.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            > 0.0
    );

    let x = Tensor::randn(0f64, 1.0, (3, 6, 5), &Device::Cpu).unwrap();
    let target = Tensor::randn(0f64, 1.0, (3, 6, 7), &Device::Cpu).unwrap();
    let loss = |g: &Generator| {
        let deltas = g
            .generate(&f, GatePass::Train { noise_seed: 0 })
            .unwrap()
            .deltas;
        let y = deltas[1]
            .get(Target::Gate)
            .unwrap()
            .apply(&x, None)
            .unwrap();
        (y - &target).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let mut opt = candle_nn::AdamW::new_lr(varmap.all_vars(), 1e-2).unwrap();
    let before = loss(&generator).to_scalar::<f64>().unwrap();
    for _ in 0..3 {
        opt.backward_step(&loss(&generator)).unwrap();
    }
    let after = loss(&generator).to_scalar::<f64>().unwrap();
    assert!(after < before, "loss went from {before} to {after}");

    let one = &features(&[6])[0];
    let adapter = generator.adapter(one, "gemma3").unwrap();
    let deltas = generator
        .generate(std::slice::from_ref(one), GatePass::Eval)
        .unwrap()
        .deltas;
    let pair = adapter
        .pairs
        .iter()
        .find(|p| p.weight == "blk.2.ffn_down.weight")
        .unwrap();
    let down = deltas[2].get(Target::Down).unwrap();
    assert!(
        max_diff(
            &pair.b.to_dtype(DType::F64).unwrap(),
            &down.b.squeeze(0).unwrap()
        ) < 1e-6
    );
    assert!(
        max_diff(
            &pair.a.to_dtype(DType::F64).unwrap(),
            &down.a.squeeze(0).unwrap()
        ) < 1e-6
    );
}

/// At the default sizes on the default edge model's FFN (640 wide, 2,048
/// inner, 18 layers, rank 16), the direct head at width 64 has at most
/// about 20 M parameters, where a dense map from a meta token to a layer's
/// factors would have meta_dim x 129,024 per layer.
#[test]
fn the_direct_head_at_width_64_stays_under_20_m_parameters() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let gemma = |t: Target| match t {
        Target::Down => (2048, 640),
        _ => (640, 2048),
    };
    let config = GeneratorConfig::default().with_head(Head::Direct { width: 64 });
    DirectHead::new(&config, 64, gemma, vb).unwrap();
    let params: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let per_layer_factors = 3 * 16 * (640 + 2048);
    assert_eq!(per_layer_factors, 129_024);
    // G_A and G_B: 3 targets x 2 x (256 x 16 x 64); P_A, P_B: 18 x 3 x 64 x 2,688.
    assert_eq!(params, 3 * 2 * 256 * 16 * 64 + 18 * 3 * 64 * 2688);
    assert!(params <= 20_000_000, "{params}");
    assert!(256 * per_layer_factors * 18 > 500_000_000);
}
