//! `loragen adapter export` and `loragen adapter merge` on the real edge
//! model: a LoRA checkpoint becomes a GGUF adapter holding the same
//! factors; merging it keeps every other tensor byte for byte; and the
//! merged model follows the adapter path in llama.cpp, while both move
//! away from the base model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::loragen;

use loragen_agent::test_util as common;

use std::io::BufReader;
use std::path::Path;
use std::process::Output;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};
use loragen::agent::runtime::{LlamaToken, Model, SessionParams};
use loragen::agent::store::Role;
use loragen::generator::checkpoint::lora::{self as checkpoint, CheckpointConfig};
use loragen::generator::edge::{agreement, random_lora, EdgeModel, FixedLora, LoraConfig, Target};
use loragen::generator::gguf_lora::{read_lora_adapter, write_lora_adapter};
use loragen::protocol::gpt4tools::{render_instruction, TOOLS};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fixed-LoRA checkpoint whose factors are a random LoRA with
/// |ΔW| = 10% |W|, as a trainer would save it.
fn checkpoint_dir(edge: &EdgeModel, dir: &Path) {
    let rank = 16;
    let config = LoraConfig::default()
        .with_rank(rank)
        .with_alpha(rank as f64);
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, edge.device());
    FixedLora::new(config.clone(), edge.config.n_layer, |t| edge.dims(t), vb).unwrap();
    let (_, pairs) = random_lora(edge, &Target::FFN, rank, 0.1, 11).unwrap();
    {
        let vars = varmap.data().lock().unwrap();
        for pair in &pairs {
            let stem = pair.weight.trim_end_matches(".weight");
            vars[&format!("{stem}.lora_a")].set(&pair.a).unwrap();
            vars[&format!("{stem}.lora_b")].set(&pair.b).unwrap();
        }
    }
    let meta = CheckpointConfig {
        arch: "gemma3".into(),
        n_layer: edge.config.n_layer,
        lora: config,
    };
    checkpoint::save(dir, &meta, &varmap).unwrap();
}

#[test]
fn export_and_merge_round_trip() {
    let base_path = common::model_path(Role::Edge);
    let edge = EdgeModel::load(&base_path, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    checkpoint_dir(&edge, &ckpt);
    drop(edge);

    let adapter_path = dir.path().join("adapter.gguf");
    let out = loragen(&[
        "adapter",
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        adapter_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let adapter = read_lora_adapter(&adapter_path).unwrap();
    let mut saved = checkpoint::to_adapter(&ckpt).unwrap();
    saved.pairs.sort_by(|a, b| a.weight.cmp(&b.weight));
    assert_eq!(
        (adapter.arch.as_str(), adapter.alpha, adapter.pairs.len()),
        ("gemma3", 16.0, saved.pairs.len())
    );
    for (a, b) in adapter.pairs.iter().zip(&saved.pairs) {
        assert_eq!(a.weight, b.weight);
        assert_eq!(a.a.to_vec2::<f32>().unwrap(), b.a.to_vec2::<f32>().unwrap());
        assert_eq!(a.b.to_vec2::<f32>().unwrap(), b.b.to_vec2::<f32>().unwrap());
    }

    let merged_path = dir.path().join("merged-q8_0.gguf");
    let out = loragen(&[
        "adapter",
        "merge",
        "--adapter",
        adapter_path.to_str().unwrap(),
        "--type",
        "q8_0",
        "--out",
        merged_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_except_ffn(&base_path, &merged_path, adapter.pairs.len());

    // In llama.cpp: the merged model against the adapter path, on a real text.
    let text = render_instruction(&TOOLS[..6], common::DEMO_IMAGE, common::DEMO_REQUEST);
    let mut base = Model::load(&base_path).unwrap();
    let tokens: Vec<LlamaToken> = base.tokenize(&text, true).into_iter().take(256).collect();
    let positions: Vec<usize> = (0..tokens.len()).collect();
    let params = SessionParams::default()
        .with_n_ctx(512)
        .with_prefix_reuse(false);
    let mut lora = base.load_adapter(&adapter_path).unwrap();
    let with_adapter = {
        let mut s = base.session(params.clone()).unwrap();
        s.set_adapter(&mut lora, 1.0).unwrap();
        s.logits(&tokens, &positions).unwrap()
    };
    let plain = base
        .session(params.clone())
        .unwrap()
        .logits(&tokens, &positions)
        .unwrap();
    let merged_model = Model::load(&merged_path).unwrap();
    let merged = merged_model
        .session(params)
        .unwrap()
        .logits(&tokens, &positions)
        .unwrap();
    let follows = agreement(&with_adapter, &merged);
    let moved = agreement(&with_adapter, &plain);
    eprintln!("merged q8_0 vs adapter: {follows:?}\nbase vs adapter: {moved:?}");
    assert!(follows.mean_kl <= 0.02, "{follows:?}");
    assert!(
        moved.mean_kl > 10.0 * follows.mean_kl,
        "{moved:?} vs {follows:?}"
    );
}

/// Every tensor of `merged` but the adapted FFN ones has the base file's
/// type, shape and bytes; the adapted ones are Q8_0.
fn assert_same_except_ffn(base: &Path, merged: &Path, n_adapted: usize) {
    let open = |p: &Path| {
        let mut r = BufReader::new(std::fs::File::open(p).unwrap());
        let c = Content::read(&mut r).unwrap();
        (r, c)
    };
    let (mut rb, cb) = open(base);
    let (mut rm, cm) = open(merged);
    assert_eq!(cb.tensor_infos.len(), cm.tensor_infos.len());
    let mut adapted = 0;
    for (name, info) in &cb.tensor_infos {
        let other = &cm.tensor_infos[name];
        assert_eq!(info.shape, other.shape, "{name}");
        let is_ffn = [".ffn_gate.", ".ffn_up.", ".ffn_down."]
            .iter()
            .any(|s| name.contains(s));
        if is_ffn {
            assert_eq!(other.ggml_dtype, GgmlDType::Q8_0, "{name}");
            adapted += 1;
        } else {
            assert_eq!(info.ggml_dtype, other.ggml_dtype, "{name}");
            let a = cb
                .tensor(&mut rb, name, &Device::Cpu)
                .unwrap()
                .data()
                .unwrap()
                .into_owned();
            let b = cm
                .tensor(&mut rm, name, &Device::Cpu)
                .unwrap()
                .data()
                .unwrap()
                .into_owned();
            assert!(a == b, "{name} changed");
        }
    }
    assert_eq!(adapted, n_adapted);
    assert_eq!(
        cb.metadata.len(),
        cm.metadata.len() + usize::from(cb.metadata.contains_key("general.alignment"))
    );
}

#[test]
fn bad_inputs_get_errors_that_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();

    let out = loragen(&[
        "adapter",
        "export",
        "--checkpoint",
        d,
        "--out",
        &format!("{d}/a.gguf"),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("lora.json"), "{}", stderr(&out));

    // An adapter for another architecture.
    let a = candle_core::Tensor::zeros((4, 640), DType::F32, &Device::Cpu).unwrap();
    let b = candle_core::Tensor::zeros((2048, 4), DType::F32, &Device::Cpu).unwrap();
    let foreign = dir.path().join("llama.gguf");
    let pair = loragen::generator::gguf_lora::LoraPair {
        weight: "blk.0.ffn_up.weight".into(),
        a,
        b,
    };
    write_lora_adapter(&foreign, "llama", 4.0, &[pair]).unwrap();
    let out = loragen(&[
        "adapter",
        "merge",
        "--adapter",
        foreign.to_str().unwrap(),
        "--out",
        &format!("{d}/m.gguf"),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the adapter is for `llama`"),
        "{}",
        stderr(&out)
    );

    // Not an adapter at all: the base model itself.
    let base = common::model_path(Role::Edge);
    let out = loragen(&[
        "adapter",
        "merge",
        "--adapter",
        base.to_str().unwrap(),
        "--out",
        &format!("{d}/m.gguf"),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a LoRA adapter"),
        "{}",
        stderr(&out)
    );

    let out = loragen(&[
        "adapter",
        "merge",
        "--adapter",
        foreign.to_str().unwrap(),
        "--type",
        "q4_0",
        "--out",
        &format!("{d}/m.gguf"),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("f32, f16 or q8_0"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("m.gguf").exists(),
        "a failed merge left a file"
    );
}
