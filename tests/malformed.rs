//! Malformed inputs give clear errors that name the file and the problem,
//! never a panic, in every loader that reads them: llama.cpp load, candle
//! load, the adapter reader, the merge, the record log and the dataset
//! readers. The malformed GGUF files are made from the real edge model by
//! patching its header, so each one differs from a good file in one way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::loragen;

use loragen_agent::test_util as common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use loragen::agent::runtime::Model;
use loragen::agent::store::Role;
use loragen::generator::edge::EdgeModel;
use loragen::generator::gguf_lora::{read_lora_adapter, write_lora_adapter, LoraPair};
use loragen::generator::merge::{write_merged, MergedType};

/// The byte offset just past `needle` in `bytes`; the needle must occur once.
fn find_once(bytes: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "needle {:?} found {} times",
        String::from_utf8_lossy(needle),
        hits.len()
    );
    hits[0] + needle.len()
}

/// A GGUF string as stored: u64 length, then the bytes.
fn gguf_str(s: &str) -> Vec<u8> {
    [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat()
}

fn header_len(path: &Path) -> usize {
    let (content, _) = loragen::agent::store::read_gguf(path).unwrap();
    usize::try_from(content.tensor_data_offset).unwrap()
}

/// A copy of the model with the bytes right after `needle`, which must
/// occur once in its first `header` bytes (the header), changed by `patch`.
fn patched(base: &[u8], header: usize, needle: &[u8], patch: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut bytes = base.to_vec();
    let at = find_once(&bytes[..header], needle);
    patch(&mut bytes[at..]);
    bytes
}

/// The edge model with the u32 metadata value `key` set to `value`.
fn with_u32_key(base: &[u8], header: usize, key: &str, value: u32) -> Vec<u8> {
    // key, then the value type 4 (UINT32), then the value.
    let needle = [gguf_str(key), 4u32.to_le_bytes().to_vec()].concat();
    patched(base, header, &needle, |v| {
        v[..4].copy_from_slice(&value.to_le_bytes())
    })
}

/// The edge model with the two dimensions of a 2-D tensor swapped: the
/// data size is unchanged, only the shape is wrong.
fn with_swapped_dims(base: &[u8], header: usize, tensor: &str) -> Vec<u8> {
    // name, then the dimension count 2, then two u64 dimensions.
    let needle = [gguf_str(tensor), 2u32.to_le_bytes().to_vec()].concat();
    patched(base, header, &needle, |dims| {
        let (d0, rest) = dims.split_at_mut(8);
        d0.swap_with_slice(&mut rest[..8]);
    })
}

struct Files {
    _dir: tempfile::TempDir,
    truncated: PathBuf,
    wrong_shape: PathBuf,
    zero_heads: PathBuf,
    bad_kv_heads: PathBuf,
    adapter: PathBuf,
    truncated_adapter: PathBuf,
    wrong_shape_adapter: PathBuf,
    qwen_adapter: PathBuf,
    out: PathBuf,
}

fn files() -> Files {
    let base_path = common::model_path(Role::Edge);
    let base = std::fs::read(&base_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let header = header_len(&base_path);
    std::fs::write(p("truncated.gguf"), &base[..header + 4096]).unwrap();
    std::fs::write(
        p("wrong-shape.gguf"),
        with_swapped_dims(&base, header, "blk.0.ffn_gate.weight"),
    )
    .unwrap();
    std::fs::write(
        p("zero-heads.gguf"),
        with_u32_key(&base, header, "gemma3.attention.head_count", 0),
    )
    .unwrap();
    std::fs::write(
        p("bad-kv-heads.gguf"),
        with_u32_key(&base, header, "gemma3.attention.head_count_kv", 3),
    )
    .unwrap();
    // A small adapter on the first gate projection (2048 x 640).
    let pair = LoraPair {
        weight: "blk.0.ffn_gate.weight".into(),
        a: Tensor::zeros((4, 640), DType::F32, &Device::Cpu).unwrap(),
        b: Tensor::zeros((2048, 4), DType::F32, &Device::Cpu).unwrap(),
    };
    write_lora_adapter(
        &p("adapter.gguf"),
        "gemma3",
        4.0,
        std::slice::from_ref(&pair),
    )
    .unwrap();
    let adapter = std::fs::read(p("adapter.gguf")).unwrap();
    // B (2048, 4) stored as (4, 2048): its rank no longer matches A's.
    let adapter_header = header_len(&p("adapter.gguf"));
    std::fs::write(
        p("wrong-shape-adapter.gguf"),
        with_swapped_dims(&adapter, adapter_header, "blk.0.ffn_gate.weight.lora_b"),
    )
    .unwrap();
    std::fs::write(
        p("truncated-adapter.gguf"),
        &adapter[..adapter.len() - 1000],
    )
    .unwrap();
    write_lora_adapter(&p("qwen-adapter.gguf"), "qwen2", 4.0, &[pair]).unwrap();
    Files {
        truncated: p("truncated.gguf"),
        wrong_shape: p("wrong-shape.gguf"),
        zero_heads: p("zero-heads.gguf"),
        bad_kv_heads: p("bad-kv-heads.gguf"),
        adapter: p("adapter.gguf"),
        truncated_adapter: p("truncated-adapter.gguf"),
        wrong_shape_adapter: p("wrong-shape-adapter.gguf"),
        qwen_adapter: p("qwen-adapter.gguf"),
        out: p("merged.gguf"),
        _dir: dir,
    }
}

fn assert_names(err: &dyn std::fmt::Display, file: &Path, problem: &str) {
    let text = err.to_string();
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(
        text.contains(name.as_ref()) && text.contains(problem),
        "expected `{name}` and `{problem}` in: {text}"
    );
}

#[test]
fn malformed_gguf_files_are_clear_errors_in_every_loader() {
    let f = files();
    let base = common::model_path(Role::Edge);
    let adapter = read_lora_adapter(&f.adapter).unwrap();

    // Truncated: the header is whole, the tensor data cut short; and a
    // tensor whose shape contradicts the metadata. Both fail in all three
    // loaders of a model file.
    for (file, problem) in [
        (&f.truncated, "truncated"),
        (&f.wrong_shape, "blk.0.ffn_gate.weight"),
    ] {
        assert_names(&Model::load(file).unwrap_err(), file, problem);
        assert_names(
            &EdgeModel::load(file, &Device::Cpu).unwrap_err(),
            file,
            problem,
        );
        let merge = write_merged(file, &adapter, 1.0, MergedType::Q8_0, &f.out);
        assert_names(&merge.unwrap_err(), file, problem);
    }
    assert_names(
        &read_lora_adapter(&f.truncated_adapter).unwrap_err(),
        &f.truncated_adapter,
        "truncated",
    );
    let mut model = Model::load(&base).unwrap();
    assert_names(
        &model.load_adapter(&f.truncated_adapter).unwrap_err(),
        &f.truncated_adapter,
        "truncated",
    );

    // An adapter whose factors do not fit together.
    assert_names(
        &read_lora_adapter(&f.wrong_shape_adapter).unwrap_err(),
        &f.wrong_shape_adapter,
        "blk.0.ffn_gate.weight",
    );
    assert_names(
        &model.load_adapter(&f.wrong_shape_adapter).unwrap_err(),
        &f.wrong_shape_adapter,
        "LoRA adapter",
    );

    // Metadata with zero heads, or query heads not a multiple of the KV heads.
    // llama.cpp derives the tensor shapes from the head counts and says so.
    assert_names(
        &Model::load(&f.zero_heads).unwrap_err(),
        &f.zero_heads,
        "wrong shape",
    );
    assert_names(
        &EdgeModel::load(&f.zero_heads, &Device::Cpu).unwrap_err(),
        &f.zero_heads,
        "head_count is 0",
    );
    assert_names(
        &Model::load(&f.bad_kv_heads).unwrap_err(),
        &f.bad_kv_heads,
        "wrong shape",
    );
    assert_names(
        &EdgeModel::load(&f.bad_kv_heads, &Device::Cpu).unwrap_err(),
        &f.bad_kv_heads,
        "head_count_kv",
    );

    // A LoRA adapter made for another architecture.
    assert_names(
        &model.load_adapter(&f.qwen_adapter).unwrap_err(),
        &f.qwen_adapter,
        "LoRA adapter",
    );
    let qwen = read_lora_adapter(&f.qwen_adapter).unwrap();
    let err = write_merged(&base, &qwen, 1.0, MergedType::Q8_0, &f.out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`qwen2`") && err.contains("`gemma3`"), "{err}");
    assert!(!f.out.exists(), "a failed merge must write nothing");
}

#[test]
fn malformed_corpus_and_record_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);

    // GPT4Tools files with wrong types.
    for (name, text, problem) in [
        (
            "not-array.json",
            r#"{"instruction": "x"}"#,
            "not-array.json",
        ),
        (
            "output-number.json",
            r#"[{"id": 1, "instruction": "x", "output": 5}]"#,
            "output",
        ),
        (
            "id-object.json",
            r#"[{"id": {}, "instruction": "x", "output": "y"}]"#,
            "`id`",
        ),
    ] {
        std::fs::write(p(name), text).unwrap();
        let err = loragen::gpt4tools::dataset::load(&p(name))
            .unwrap_err()
            .to_string();
        assert!(err.contains(name) && err.contains(problem), "{name}: {err}");
    }

    // Generic tools and queries with wrong types.
    std::fs::write(
        p("tools.json"),
        r#"[{"name": "f", "description": "d", "parameters": {"type": "object"}}]"#,
    )
    .unwrap();
    std::fs::write(p("bad-tools.json"), r#"[{"name": 3, "parameters": {}}]"#).unwrap();
    let err = loragen::gpt4tools::generic::ToolSet::load(&p("bad-tools.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad-tools.json"), "{err}");
    std::fs::write(p("queries.jsonl"), "{\"id\": \"a_0\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n{\"id\": \"a_1\", \"messages\": \"hi\"}\n").unwrap();
    let err = loragen::gpt4tools::generic::load_queries(&p("queries.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("queries.jsonl") && err.contains('2'), "{err}");

    // A records file with a garbage line, through the CLI that reads it.
    let data = p("data.json");
    std::fs::write(&data, r#"[{"id": 1, "instruction": "x", "output": "Thought: Do I need to use a tool? No\nAI: y"}]"#).unwrap();
    let run = p("run");
    std::fs::create_dir(&run).unwrap();
    let sha = format!(
        "{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&data).unwrap())
    );
    let meta = serde_json::json!({"data": data, "data_sha256": sha, "constrained": false, "max_tokens": 8});
    std::fs::write(run.join("run.json"), meta.to_string()).unwrap();
    std::fs::write(run.join("records.jsonl"), "this is not a record\n").unwrap();
    let out = loragen(&[
        "bench",
        "gpt4tools",
        "--rescore",
        "--out",
        run.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("records.jsonl: record 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The same through eval's record log.
    std::fs::write(p("eval.jsonl"), "{\"id\": \"a_0\"}\n").unwrap();
    std::fs::write(
        p("queries-ok.jsonl"),
        "{\"id\": \"a_0\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
    )
    .unwrap();
    let out = loragen(&[
        "eval",
        "--tools",
        p("tools.json").to_str().unwrap(),
        "--queries",
        p("queries-ok.jsonl").to_str().unwrap(),
        "--out",
        p("eval.jsonl").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("eval.jsonl: record 1"),
        "{stderr}"
    );
}
