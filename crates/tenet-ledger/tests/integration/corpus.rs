//! The transparency-dev/merkle proof vectors and RFC 6962 reference roots.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tenet_ledger::{Hash, tree_root, verify_consistency, verify_inclusion};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/transparency-dev-merkle"
);

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {dir:?} is missing: {e}"))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn b64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap_or("")).unwrap()
}

fn proof(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| a.iter().map(b64).collect())
        .unwrap_or_default()
}

/// Run every vector in `kind` and return (passed, total, failures).
fn run(kind: &str, check: impl Fn(&Value) -> bool) -> (usize, usize, Vec<String>) {
    let files = json_files(&Path::new(CORPUS).join("testdata").join(kind));
    let mut failures = Vec::new();
    for file in &files {
        let v = read(file);
        let accepted = check(&v);
        if accepted == v["wantErr"].as_bool().unwrap() {
            failures.push(format!("{}: {}", file.display(), v["desc"]));
        }
    }
    (files.len() - failures.len(), files.len(), failures)
}

#[test]
fn inclusion_vectors_give_the_expected_verdict() {
    let (passed, total, failures) = run("inclusion", |v| {
        verify_inclusion(
            &b64(&v["leafHash"]),
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
            &proof(&v["proof"]),
            &b64(&v["root"]),
        )
        .is_ok()
    });
    println!("transparency-dev-merkle inclusion vectors: {passed}/{total} passed");
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(passed >= 98, "floor: 98 vectors");
}

#[test]
fn consistency_vectors_give_the_expected_verdict() {
    let (passed, total, failures) = run("consistency", |v| {
        verify_consistency(
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
            &b64(&v["root1"]),
            &b64(&v["root2"]),
            &proof(&v["proof"]),
        )
        .is_ok()
    });
    println!("transparency-dev-merkle consistency vectors: {passed}/{total} passed");
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(passed >= 98, "floor: 98 vectors");
}

fn reference() -> (Vec<Vec<u8>>, Value) {
    let v = read(&Path::new(CORPUS).join("rfc6962-reference-vectors.json"));
    let leaves = v["leaf_inputs_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
        .collect();
    (leaves, v)
}

#[test]
fn reference_roots_for_sizes_0_to_8_match() {
    let (leaves, v) = reference();
    let roots = v["root_hash_by_tree_size"].as_array().unwrap();
    let mut passed = 0;
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = super::support::open(dir.path());
    ledger.append_batch(&leaves).unwrap();
    for (size, want) in roots.iter().enumerate() {
        let want = Hash::from_hex(want.as_str().unwrap()).unwrap();
        let in_memory = tree_root(&leaves[..size]);
        let stored = ledger.root_at(size as u64).unwrap();
        if in_memory == want && stored == want {
            passed += 1;
        }
    }
    let mut nodes = 0;
    let mut nodes_ok = 0;
    for (level, hashes) in v["node_hashes_by_level"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (index, want) in hashes.as_array().unwrap().iter().enumerate() {
            let width = 1usize << level;
            let got = tree_root(&leaves[index * width..(index + 1) * width]);
            nodes += 1;
            if got.to_hex() == want.as_str().unwrap() {
                nodes_ok += 1;
            }
        }
    }
    println!("rfc6962 reference roots: {passed}/{} passed", roots.len());
    println!("rfc6962 reference subtree hashes: {nodes_ok}/{nodes} passed");
    assert_eq!(passed, 9);
    assert_eq!(nodes_ok, nodes);
    assert!(nodes >= 15);
}

/// The corpus's happy-path proofs are over the reference leaves: the ledger must generate
/// exactly the same hashes.
#[test]
fn generated_proofs_equal_the_happy_path_vectors() {
    let (leaves, _) = reference();
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = super::support::open(dir.path());
    ledger.append_batch(&leaves).unwrap();
    let mut compared = 0;
    for file in json_files(&Path::new(CORPUS).join("testdata/inclusion")) {
        let v = read(&file);
        if !file.ends_with("happy-path.json") {
            continue;
        }
        let (index, size) = (
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
        );
        let generated = ledger.prove_inclusion(index, size).unwrap();
        let want: Vec<Vec<u8>> = proof(&v["proof"]);
        let got: Vec<Vec<u8>> = generated
            .hashes
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        assert_eq!(got, want, "{}", file.display());
        assert_eq!(generated.leaf_hash.as_bytes().to_vec(), b64(&v["leafHash"]));
        compared += 1;
    }
    for file in json_files(&Path::new(CORPUS).join("testdata/consistency")) {
        let v = read(&file);
        if !file.ends_with("happy-path.json") {
            continue;
        }
        let (old, new) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
        let generated = ledger.prove_consistency(old, new).unwrap();
        let got: Vec<Vec<u8>> = generated
            .hashes
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        assert_eq!(got, proof(&v["proof"]), "{}", file.display());
        compared += 1;
    }
    println!("transparency-dev-merkle happy paths reproduced: {compared}/{compared}");
    assert!(compared >= 10, "only {compared} happy paths found");
}
