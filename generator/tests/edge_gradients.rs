//! The generated-LoRA path's backward against finite differences, in f64,
//! through the real edge model's forward (its fused norm, GELU, rope and
//! masked-softmax kernels, seeded dropout, frozen products and fused loss
//! included): KeepTop-K gates
//! over a pool of experts, mixed into per-element deltas on the FFN of
//! every layer, a padded batch, and the loss on a few positions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_agent::test_util as common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use loragen_agent::store::Role;
use loragen_generator::edge::{cross_entropy, EdgeModel, ExpertLora, LoraConfig, Phase};
use loragen_generator::gating::keep_top_k;
use rand::{Rng, SeedableRng};

const EXPERTS: usize = 4;
const TOP_K: usize = 2;
const SEQ: usize = 12;
const LENGTHS: [usize; 2] = [12, 9];

/// Uniform values in [-scale, scale) from a fixed seed.
fn seeded(dims: &[usize], seed: u64, scale: f64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

struct Problem {
    edge: EdgeModel,
    experts: ExpertLora,
    gate_logits: Vec<Var>,
    tokens: Tensor,
    at: Vec<(usize, usize)>,
    targets: Vec<u32>,
}

impl Problem {
    fn loss(&self) -> Tensor {
        let gates: Vec<Tensor> = self
            .gate_logits
            .iter()
            .map(|l| keep_top_k(l.as_tensor(), TOP_K).unwrap())
            .collect();
        let deltas = self.experts.deltas(&gates).unwrap();
        let hidden = self
            .edge
            .hidden(
                &self.tokens,
                &LENGTHS,
                Some(&deltas),
                // Dropout stays on: its masks are a function of the seed,
                // so every evaluation sees the same ones.
                Phase::Train {
                    dropout: 0.1,
                    seed: 3,
                },
            )
            .unwrap();
        let logits = self
            .edge
            .logits(&self.edge.select(&hidden, &self.at).unwrap())
            .unwrap();
        cross_entropy(&logits, &self.targets).unwrap()
    }

    fn loss_value(&self) -> f64 {
        self.loss().to_scalar::<f64>().unwrap()
    }
}

/// One entry of a variable, read and written by flat index.
fn entry(var: &Var, i: usize) -> f64 {
    var.flatten_all().unwrap().to_vec1::<f64>().unwrap()[i]
}

fn set_entry(var: &Var, i: usize, value: f64) {
    let mut v = var.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    v[i] = value;
    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
        .unwrap();
}

#[test]
fn generated_lora_gradients_match_finite_differences_in_f64() {
    let edge = EdgeModel::load(&common::model_path(Role::Edge), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let n_layer = edge.config.n_layer;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let experts = ExpertLora::new(
        LoraConfig::default().with_rank(4).with_alpha(4.0),
        EXPERTS,
        n_layer,
        |t| edge.dims(t),
        vb,
    )
    .unwrap();
    // B starts at zero, which would leave the gates without a gradient:
    // give every factor a seeded value, large enough to move the logits.
    let mut named: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (seed, (_, var)) in named.iter().enumerate() {
        var.set(&seeded(var.dims(), seed as u64, 0.05)).unwrap();
    }
    let gate_logits: Vec<Var> = (0..n_layer)
        .map(|il| Var::from_tensor(&seeded(&[2, EXPERTS], 1000 + il as u64, 2.0)).unwrap())
        .collect();
    let ids: Vec<u32> = [
        2u32, 818, 3823, 563, 496, 1722, 236761, 107, 5257, 532, 1164, 10,
    ]
    .repeat(2);
    let tokens = Tensor::from_vec(ids.clone(), (2, SEQ), &Device::Cpu).unwrap();
    let at = vec![(0, 9), (0, 10), (1, 7)];
    let targets: Vec<u32> = at.iter().map(|&(b, t)| ids[b * SEQ + t + 1]).collect();
    let problem = Problem {
        edge,
        experts,
        gate_logits,
        tokens,
        at,
        targets,
    };

    let grads = problem.loss().backward().unwrap();
    let var = |name: &str| {
        named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    // A kept gate of the first layer, the other element's kept gate in the
    // last, factor entries of both kinds in lower and upper layers, and a
    // gate logit that KeepTop-K drops (its gradient is exactly zero).
    let kept = |layer: usize, element: usize, rank: usize| {
        let g = keep_top_k(problem.gate_logits[layer].as_tensor(), TOP_K)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let mut order: Vec<usize> = (0..EXPERTS).collect();
        order.sort_by(|&a, &b| g[element][b].total_cmp(&g[element][a]));
        order[rank]
    };
    let (d, ff, r) = (problem.edge.config.n_embd, problem.edge.config.n_ff, 4);
    let e0 = kept(0, 0, 0);
    let checks: Vec<(String, Var, usize)> = vec![
        (
            "gate logit, layer 0".into(),
            problem.gate_logits[0].clone(),
            e0,
        ),
        (
            "gate logit, last layer".into(),
            problem.gate_logits[n_layer - 1].clone(),
            EXPERTS + kept(n_layer - 1, 1, 1),
        ),
        (
            "dropped gate logit, layer 5".into(),
            problem.gate_logits[5].clone(),
            kept(5, 0, EXPERTS - 1),
        ),
        (
            "blk.2.ffn_up.lora_a".into(),
            var("blk.2.ffn_up.lora_a"),
            kept(2, 0, 0) * r * d + 3 * d + 17,
        ),
        (
            "blk.9.ffn_gate.lora_b".into(),
            var("blk.9.ffn_gate.lora_b"),
            kept(9, 1, 0) * ff * r + 100 * r + 2,
        ),
        (
            "blk.16.ffn_down.lora_b".into(),
            var("blk.16.ffn_down.lora_b"),
            kept(16, 0, 1) * d * r + 33 * r + 1,
        ),
    ];
    let eps = 1e-5;
    for (label, v, i) in checks {
        let analytic = grads
            .get(&v)
            .map(|g| g.flatten_all().unwrap().to_vec1::<f64>().unwrap()[i])
            .unwrap_or(0.0);
        let x = entry(&v, i);
        set_entry(&v, i, x + eps);
        let up = problem.loss_value();
        set_entry(&v, i, x - eps);
        let down = problem.loss_value();
        set_entry(&v, i, x);
        let numeric = (up - down) / (2.0 * eps);
        let scale = analytic.abs().max(numeric.abs());
        eprintln!("{label}[{i}]: backward {analytic:.9e}, finite difference {numeric:.9e}");
        if label.starts_with("dropped") {
            assert!(
                analytic.abs() < 1e-12 && numeric.abs() < 1e-9,
                "{label}: a dropped gate must have no gradient"
            );
            continue;
        }
        assert!(
            scale > 1e-7,
            "{label}: the gradient is too small to check ({scale:e})"
        );
        let rel = (analytic - numeric).abs() / scale;
        assert!(rel <= 1e-3, "{label}: relative error {rel:e}");
    }
}
