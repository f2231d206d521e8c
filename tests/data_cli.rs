//! `loragen data`: the corpus is deterministic given the seed, its splits
//! pass `data check`, and bad files are named, not panicked on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::loragen;

use std::path::Path;

fn build(dir: &Path, seed: &str) {
    let out = loragen(&[
        "data",
        "gpt4tools",
        "--out",
        dir.to_str().unwrap(),
        "--seed",
        seed,
        "--train",
        "400",
        "--val-seen",
        "60",
        "--test-unseen",
        "80",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_corpus_is_reproducible_and_passes_its_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    build(&a, "9");
    build(&b, "9");
    for split in ["train", "val_seen", "test_unseen"] {
        let file = format!("{split}.json");
        assert_eq!(
            std::fs::read(a.join(&file)).unwrap(),
            std::fs::read(b.join(&file)).unwrap(),
            "{split} differs"
        );
        let out = loragen(&["data", "check", a.join(&file).to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{split}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("0 problem(s)"));
    }
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(a.join("test_unseen.json")).unwrap()).unwrap();
    assert_eq!(items.len(), 80);
}

#[test]
fn a_test_file_checked_as_training_data_shows_its_leaks() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), "2");
    let test = dir.path().join("test_unseen.json");
    let out = loragen(&["data", "check", "--split", "train", test.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("lists an unseen tool") || stdout.contains("held-out template"),
        "{stdout}"
    );
}

#[test]
fn bad_files_get_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"[{"id": "x7", "instruction": "hello"}]"#).unwrap();
    for args in [
        vec!["data", "check", bad.to_str().unwrap()],
        vec!["bench", "gpt4tools", "--data", bad.to_str().unwrap()],
    ] {
        let out = loragen(&args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("`x7`")
                && stderr.contains("no `output`")
                && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
    std::fs::write(&bad, "not json").unwrap();
    let out = loragen(&["data", "check", bad.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a GPT4Tools file"));
    let out = loragen(&[
        "data",
        "gpt4tools",
        "--out",
        dir.path().to_str().unwrap(),
        "--negative-share",
        "1.5",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("negative share"));
}
