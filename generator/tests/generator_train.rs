//! The trainer on a 2-layer copy of the real edge model, with dropout (and
//! for the generator BatchNorm) active: a run checkpointed, resumed and
//! continued equals an uninterrupted one bit for bit, for the generator and
//! the plain LoRA baseline, and a checkpoint made with other settings or
//! other examples is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use loragen_agent::store::Role;
use loragen_generator::checkpoint::Learner;
use loragen_generator::edge::{EdgeModel, LoraConfig};
use loragen_generator::features::RegistryFeatures;
use loragen_generator::model::{GeneratorConfig, Head};
use loragen_generator::test_util::max_diff;
use loragen_generator::train::{Example, StepLog, TrainConfig, Trainer};
use rand::{Rng, SeedableRng};

const CLOUD_DIM: usize = 24;

fn edge() -> EdgeModel {
    EdgeModel::load(&common::model_path(Role::Edge), &Device::Cpu)
        .unwrap()
        .truncated(2)
        .unwrap()
}

/// Eight examples over three system parts, with seeded tokens and features.
fn data() -> (Vec<Example>, RegistryFeatures) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut features = RegistryFeatures::default();
    for s in 0..3 {
        let rows = 4 + s * 3;
        let v: Vec<f32> = (0..rows * CLOUD_DIM)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        features.insert_unit(
            format!("system {s}"),
            Tensor::from_vec(v, (rows, CLOUD_DIM), &Device::Cpu).unwrap(),
        );
    }
    let examples = (0..8)
        .map(|i| {
            let len = 10 + i % 4;
            Example {
                system: format!("system {}", i % 3),
                tokens: (0..len).map(|_| rng.random_range(10..5000)).collect(),
                output_from: len - 3,
            }
        })
        .collect();
    (examples, features)
}

fn config(edge: &EdgeModel) -> (GeneratorConfig, TrainConfig) {
    (
        GeneratorConfig::default()
            .with_edge_layers(edge.config.n_layer)
            .with_cloud_dim(CLOUD_DIM)
            .with_meta_dim(16)
            .with_router_hidden(8),
        TrainConfig::default()
            .with_steps(6)
            .with_batch(3)
            .with_lr(1e-2)
            .with_warmup(2)
            .with_seed(11),
    )
}

/// What a test trains.
#[derive(Clone, Copy)]
enum Learns {
    Experts,
    /// The generator with the direct head (the Table 9 ablation).
    Direct,
    Lora,
}

fn trainer(edge: &EdgeModel, learns: Learns) -> Trainer<'_> {
    let (examples, features) = data();
    let (g, t) = config(edge);
    let learner = match learns {
        Learns::Lora => Learner::Lora {
            lora: LoraConfig::default().with_rank(4).with_dropout(0.1),
            with_tools: false,
        },
        Learns::Experts => Learner::Generator(g),
        Learns::Direct => Learner::Generator(g.with_head(Head::Direct { width: 4 })),
    };
    Trainer::new(learner, t, edge, "sha".into(), examples, features).unwrap()
}

fn weights(dir: &std::path::Path) -> HashMap<String, Vec<f32>> {
    candle_core::safetensors::load(dir.join("checkpoint/model.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

fn losses(logs: &[StepLog]) -> Vec<f64> {
    logs.iter().map(|l| l.loss).collect()
}

/// Six steps straight against three, a checkpoint, a lost step, a resume
/// and three more: the losses and every saved weight equal bit for bit.
fn check_resume(learns: Learns) -> HashMap<String, Vec<f32>> {
    let edge = edge();
    let (straight, resumed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let mut a = trainer(&edge, learns);
    let logs_a: Vec<StepLog> = (0..6).map(|_| a.train_step().unwrap()).collect();
    a.save(straight.path()).unwrap();

    let mut b = trainer(&edge, learns);
    let mut logs_b: Vec<StepLog> = (0..3).map(|_| b.train_step().unwrap()).collect();
    b.save(resumed.path()).unwrap();
    // One more step that the checkpoint does not hold, as a kill would lose.
    b.train_step().unwrap();
    drop(b);
    let mut c = trainer(&edge, learns);
    c.resume(resumed.path()).unwrap();
    assert_eq!(c.step(), 3);
    logs_b.extend((0..3).map(|_| c.train_step().unwrap()));
    c.save(resumed.path()).unwrap();

    assert_eq!(losses(&logs_a), losses(&logs_b));
    assert!(
        logs_a.iter().any(|l| l.loss != logs_a[0].loss),
        "the steps must differ for the comparison to mean anything"
    );
    let (wa, wb) = (weights(straight.path()), weights(resumed.path()));
    assert_eq!(wa.len(), wb.len());
    for (name, v) in &wa {
        assert_eq!(v, &wb[name], "{name} differs");
    }
    wa
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one_bit_for_bit() {
    let weights = check_resume(Learns::Experts);
    // BatchNorm's running statistics moved, and are part of the checkpoint.
    assert!(weights["router.0.bn.running_mean"]
        .iter()
        .any(|&x| x != 0.0));
}

#[test]
fn a_resumed_lora_baseline_equals_an_uninterrupted_one_bit_for_bit() {
    let weights = check_resume(Learns::Lora);
    assert!(weights["blk.1.ffn_down.lora_b"].iter().any(|&x| x != 0.0));
}

#[test]
fn a_resumed_direct_head_generator_equals_an_uninterrupted_one_bit_for_bit() {
    let weights = check_resume(Learns::Direct);
    // G_B started at zero and has learned.
    assert!(weights["direct.ffn_up.gen_b.weight"]
        .iter()
        .any(|&x| x != 0.0));
    assert!(!weights.keys().any(|k| k.starts_with("experts.")));
}

/// The error of resuming a one-step checkpoint with a trainer whose
/// settings or examples `change` altered.
fn resume_refusal(change: impl FnOnce(TrainConfig, &mut Vec<Example>) -> TrainConfig) -> String {
    let edge = edge();
    let dir = tempfile::tempdir().unwrap();
    let mut a = trainer(&edge, Learns::Experts);
    a.train_step().unwrap();
    a.save(dir.path()).unwrap();
    let (mut examples, features) = data();
    let (g, t) = config(&edge);
    let t = change(t, &mut examples);
    let mut other = Trainer::new(
        Learner::Generator(g),
        t,
        &edge,
        "sha".into(),
        examples,
        features,
    )
    .unwrap();
    other.resume(dir.path()).unwrap_err().to_string()
}

#[test]
fn a_checkpoint_of_other_settings_or_examples_is_refused() {
    let err = resume_refusal(|t, _| t.with_lr(5e-3));
    assert!(
        err.contains("other settings (train.lr: 0.01 -> 0.005)"),
        "{err}"
    );
    // One example left out, as `--hold-out` or another `--bfcl` would.
    let err = resume_refusal(|t, examples| {
        examples.pop();
        t
    });
    assert!(err.contains("other settings (examples_sha256: "), "{err}");
}

#[test]
fn a_warm_started_generator_compiles_every_registry_into_the_lora_it_started_from() {
    let edge = edge();
    let dir = tempfile::tempdir().unwrap();
    let (examples, features) = data();
    let (g, t) = config(&edge);
    let fresh = |learner| {
        Trainer::new(
            learner,
            t.clone(),
            &edge,
            "sha".into(),
            examples.clone(),
            features.clone(),
        )
        .unwrap()
    };
    // Rank 16, as the generator's experts.
    let mut lora = fresh(Learner::Lora {
        lora: LoraConfig::default().with_dropout(0.1),
        with_tools: false,
    });
    for _ in 0..2 {
        lora.train_step().unwrap();
    }
    lora.snapshot(dir.path()).unwrap();
    let baseline = loragen_generator::checkpoint::lora::to_adapter(dir.path()).unwrap();

    let product =
        |a: &Tensor, b: &Tensor, scale: f32| (b.matmul(a).unwrap() * f64::from(scale)).unwrap();
    for (noise, equal) in [(0.0, true), (0.2, false)] {
        let mut generator = fresh(Learner::Generator(g.clone()));
        generator.warm_start_experts(dir.path(), noise).unwrap();
        let gen = generator.generator().unwrap();
        for system in ["system 0", "system 2"] {
            let adapter = gen
                .adapter(&features.of(system).unwrap(), "gemma3")
                .unwrap();
            for (ours, theirs) in adapter.pairs.iter().zip(&baseline.pairs) {
                assert_eq!(ours.weight, theirs.weight);
                let d = max_diff(
                    &product(&ours.a, &ours.b, adapter.scale_of(ours)),
                    &product(&theirs.a, &theirs.b, baseline.scale_of(theirs)),
                );
                let size = max_diff(
                    &product(&theirs.a, &theirs.b, baseline.scale_of(theirs)),
                    &Tensor::zeros_like(&theirs.b.matmul(&theirs.a).unwrap()).unwrap(),
                );
                assert!(size > 0.0, "the LoRA must have moved");
                assert_eq!(
                    d < 1e-5 * size.max(1.0),
                    equal,
                    "noise {noise}: {} differs by {d}",
                    ours.weight
                );
            }
        }
    }
    // After a step the initial weights are gone: no warm start then.
    let mut late = trainer(&edge, Learns::Experts);
    late.train_step().unwrap();
    assert!(late.warm_start_experts(dir.path(), 0.0).is_err());
}

/// The settings of the checkpoints in `tests/fixtures/pre-checkpoint-module`:
/// small enough to commit (2 experts and LoRAs of rank 2 and 1).
fn fixture_trainer(edge: &EdgeModel, lora: bool) -> Trainer<'_> {
    let (examples, features) = data();
    let (g, t) = config(edge);
    let learner = if lora {
        Learner::Lora {
            lora: LoraConfig::default().with_rank(1).with_dropout(0.1),
            with_tools: false,
        }
    } else {
        Learner::Generator(
            g.with_experts(2)
                .with_top_k(1)
                .with_lora(LoraConfig::default().with_rank(2)),
        )
    };
    Trainer::new(learner, t, edge, "sha".into(), examples, features).unwrap()
}

/// Checkpoints written before the checkpoint module (commit d6417ad's
/// trainer, `fixture_trainer`, three steps, then `save`), with the losses
/// that run went on to: resumed by today's code, the run continues as it
/// would have. Losses are compared to a relative 1e-4, not bit for bit:
/// the fixture was written on an AVX-512 machine, and AVX2 kernels round
/// differently.
#[test]
fn a_checkpoint_written_before_the_checkpoint_module_resumes() {
    let edge = edge();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pre-checkpoint-module");
    for (name, lora) in [("generator", false), ("lora", true)] {
        let fixture = root.join(name);
        let want: Vec<f64> = serde_json::from_str(
            &std::fs::read_to_string(fixture.join("next_losses.json")).unwrap(),
        )
        .unwrap();
        let mut trainer = fixture_trainer(&edge, lora);
        trainer.resume(&fixture).unwrap();
        assert_eq!(trainer.step(), 3, "{name}");
        let got: Vec<f64> = (0..3).map(|_| trainer.train_step().unwrap().loss).collect();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs(),
                "{name}: {got:?} against {want:?}"
            );
        }
    }
}
