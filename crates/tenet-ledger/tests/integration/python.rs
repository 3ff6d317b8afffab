//! Proofs and checkpoints emitted by the crate, checked by an independent Python verifier
//! (tests/verify_proof.py, standard library only).

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::support::{numbered, open, signer, verifier};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify_proof.py");

fn run(bundle: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(&path)
        .output()
        .expect("python3 must be installed to run the independent verifier");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A log of 37 entries with checkpoints at 5, 16, 21 and 37, and proofs between them.
fn bundle(dir: &Path) -> Value {
    let mut ledger = open(dir);
    let mut s = signer();
    let mut checkpoints = Vec::new();
    let mut size = 0;
    for next in [5, 16, 21, 37] {
        ledger.append_batch(&numbered(size..next)).unwrap();
        checkpoints.push(ledger.checkpoint(&mut s).unwrap());
        size = next;
    }
    let sizes: Vec<u64> = checkpoints.iter().map(|c| c.size()).collect();
    let mut inclusions = Vec::new();
    for &tree_size in &sizes {
        for index in 0..tree_size {
            let proof = ledger.prove_inclusion(index, tree_size).unwrap();
            inclusions.push(json!({
                "proof": proof,
                "entry_b64": STANDARD.encode(ledger.entry(index).unwrap()),
            }));
        }
    }
    let mut consistencies = Vec::new();
    for (i, &old) in sizes.iter().enumerate() {
        for &new in &sizes[i..] {
            consistencies
                .push(serde_json::to_value(ledger.prove_consistency(old, new).unwrap()).unwrap());
        }
    }
    json!({
        "verifier_key": verifier().to_string(),
        "checkpoints": checkpoints.iter().map(|c| c.text()).collect::<Vec<_>>(),
        "inclusions": inclusions,
        "consistencies": consistencies,
    })
}

#[test]
fn python_verifier_accepts_the_crates_proofs_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path());
    let (ok, out) = run(&bundle);
    println!("python verifier: {}", out.trim());
    assert!(ok, "{out}");
    assert!(
        out.contains("ok: 4 checkpoints, 79 inclusion proofs, 10 consistency proofs"),
        "{out}"
    );
}

#[test]
fn python_verifier_rejects_altered_proofs_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let good = bundle(dir.path());

    let mut flipped = good.clone();
    let hash = flipped["inclusions"][40]["proof"]["hashes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = hex::decode(hash).unwrap();
    bytes[0] ^= 1;
    flipped["inclusions"][40]["proof"]["hashes"][0] = json!(hex::encode(bytes));
    let (ok, out) = run(&flipped);
    assert!(!ok && out.contains("inclusion 40"), "{out}");

    let mut wrong_entry = good.clone();
    wrong_entry["inclusions"][3]["entry_b64"] = json!(STANDARD.encode(b"not the entry"));
    let (ok, out) = run(&wrong_entry);
    assert!(!ok && out.contains("inclusion 3"), "{out}");

    let mut short = good.clone();
    short["consistencies"][1]["hashes"]
        .as_array_mut()
        .unwrap()
        .pop();
    let (ok, out) = run(&short);
    assert!(!ok && out.contains("consistency 1"), "{out}");

    let mut forged = good;
    let note = forged["checkpoints"][1]
        .as_str()
        .unwrap()
        .replacen("\n16\n", "\n15\n", 1);
    forged["checkpoints"][1] = json!(note);
    let (ok, out) = run(&forged);
    assert!(
        !ok && out.contains("checkpoint 1: checkpoint signature does not verify"),
        "{out}"
    );
}
