//! Replays every committed fuzz corpus (`fuzz/corpus/<target>/`) through the properties
//! its fuzz target checks, so every input a fuzzer ever kept (and every crash it found,
//! once added) is a regression test of plain `cargo test`. The properties are not
//! repeated here: `fuzz/fuzz_checks.rs` is the one copy, included by the targets and by
//! this test.
//!
//! The corpora of the structured targets are seeded from the committed vectors
//! (`vectors/v1/*.json`): `corpora_hold_the_vector_seeds` checks every seed is there and,
//! with `BKV_WRITE_SEEDS=1`, writes the missing ones (`vector-<operation>-<tcId>`).

#[path = "../../../fuzz/fuzz_checks.rs"]
mod fuzz_checks;

use bkv_protocol::audit_log::note::{Note, VerifierKey};
use bkv_protocol::audit_log::{LogAnchors, LoggedBundle, TreeHead};
use bkv_protocol::cbor;
use bkv_protocol::validation_bundle::{ClientState, TrustAnchors, verify_bundle};
use bkv_protocol::vault::VaultResponse;
use fuzz_checks::{OTHER_CRATE_TARGETS, TARGETS, frame, head_field, opt_hashes_field};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

fn replay(target: &str) {
    let check = TARGETS.iter().find(|(t, _)| *t == target).expect("a target").1;
    let inputs = corpus(target);
    assert!(!inputs.is_empty(), "empty corpus for {target}");
    for (path, data) in inputs {
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target} fails on {}", path.display());
        }
    }
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        #[test]
        fn every_target_has_a_replay_a_corpus_and_a_bin() {
            let replayed: BTreeSet<&str> = [$(stringify!($target)),*].into();
            let checks: BTreeSet<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
            let dirs: BTreeSet<String> = std::fs::read_dir(root().join("fuzz/corpus"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
            let bins: BTreeSet<&str> = manifest
                .split("[[bin]]")
                .skip(1)
                .map(|b| b.split('"').nth(1).expect("name = \"...\""))
                .collect();
            assert_eq!(replayed, checks);
            let all: BTreeSet<&str> = checks.iter().copied().chain(OTHER_CRATE_TARGETS.iter().copied()).collect();
            assert_eq!(dirs.iter().map(String::as_str).collect::<BTreeSet<_>>(), all);
            assert_eq!(bins, all);
        }
    };
}

replay_tests!(
    cbor_check,
    bundle_verify,
    keyset_decode,
    anchors_decode,
    session_open,
    envelope_open,
    vault_apply,
    evidence_parse,
    log_note,
    merkle_verify,
    log_verify,
    audit_run,
    client_response,
    node_api_decode,
    tile_parse,
);

/// Beyond the targets: every CBOR corpus input as a bundle, against a few decoded anchors.
#[test]
fn cbor_corpus_as_bundles() {
    let anchors: Vec<TrustAnchors> =
        corpus("anchors_decode").iter().filter_map(|(_, d)| TrustAnchors::from_bytes(d).ok()).collect();
    assert!(!anchors.is_empty());
    for a in anchors.iter().take(3) {
        for (_, bundle) in corpus("cbor_check") {
            let _ = verify_bundle(&bundle, a, &ClientState::default(), 1_800_000_000);
        }
    }
}

// ---- seeds from the vectors ---------------------------------------------------------------

/// `(operation, tcId, input, output)` of every case of `area` but the `produce_*` ones,
/// whose inputs are what a harness builds from, not bytes a parser reads
/// (spec/conformance.md §3.4).
fn cases(area: &str) -> Vec<(String, u64, Map<String, Value>, Value)> {
    let path = root().join("vectors/v1").join(format!("{area}.json"));
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    let groups = file["testGroups"].as_array().unwrap();
    for g in groups.iter().filter(|g| !g["operation"].as_str().unwrap().starts_with("produce_")) {
        for t in g["tests"].as_array().unwrap() {
            out.push((
                g["operation"].as_str().unwrap().to_owned(),
                t["tcId"].as_u64().unwrap(),
                t["input"].as_object().unwrap().clone(),
                t.get("output").cloned().unwrap_or(Value::Null),
            ));
        }
    }
    out
}

fn hx(v: &Map<String, Value>, key: &str) -> Vec<u8> {
    v.get(key).and_then(Value::as_str).map(|s| hex::decode(s).unwrap()).unwrap_or_default()
}

fn text<'a>(v: &'a Map<String, Value>, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn u64le(v: &Map<String, Value>, key: &str) -> Vec<u8> {
    v.get(key).and_then(Value::as_u64).unwrap_or_default().to_le_bytes().to_vec()
}

fn hashes(v: &Map<String, Value>, key: &str) -> Option<Vec<[u8; 32]>> {
    let a = v.get(key)?.as_array()?;
    Some(a.iter().map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect())
}

fn head(v: &Map<String, Value>, key: &str) -> Option<TreeHead> {
    let h = v.get(key)?.as_object()?;
    Some(TreeHead { size: h["size"].as_u64().unwrap(), root: hx(h, "root").try_into().unwrap() })
}

/// The seeds of every structured target: target → name → bytes.
fn vector_seeds() -> BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> {
    let mut seeds: BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut add = |target: &'static str, name: String, bytes: Vec<u8>| {
        let t = seeds.entry(target).or_default();
        if !t.values().any(|b| *b == bytes) {
            let n = (1..).map(|k| format!("{name}-{k}")).find(|n| !t.contains_key(n)).unwrap();
            t.insert(n, bytes);
        }
    };
    // Notes, checkpoint bodies and verifier keys, wherever a vector has one.
    let texts = |add: &mut dyn FnMut(&'static str, String, Vec<u8>), name: &str, s: &str| {
        add("log_note", name.to_owned(), s.as_bytes().to_vec());
        if let Ok(n) = Note::parse(s) {
            add("log_note", name.to_owned(), n.text.into_bytes());
        }
    };
    let vkeys = |a: &LogAnchors| -> Vec<String> {
        std::iter::once(&a.log_key).chain(&a.witnesses).map(VerifierKey::encode).collect()
    };
    for (op, tc, i, _) in cases("audit_log") {
        let name = format!("vector-{op}-{tc}");
        match op.as_str() {
            "merkle_inclusion" => {
                let path = hashes(&i, "path").unwrap_or_default().concat();
                let f = frame(&[
                    hx(&i, "leaf_hash"),
                    u64le(&i, "leaf_index"),
                    u64le(&i, "tree_size"),
                    path,
                    hx(&i, "root"),
                ]);
                add("merkle_verify", name, [&[0u8][..], &f].concat());
            }
            "merkle_consistency" => {
                let path = hashes(&i, "path").unwrap_or_default().concat();
                let f =
                    frame(&[u64le(&i, "size1"), u64le(&i, "size2"), path, hx(&i, "root1"), hx(&i, "root2")]);
                add("merkle_verify", name, [&[1u8][..], &f].concat());
            }
            "parse_vkey" => texts(&mut add, &name, text(&i, "vkey")),
            "verify_logged_bundle" => {
                let (logged, anchors) = (hx(&i, "logged_bundle"), hx(&i, "anchors"));
                if let Ok(w) = LoggedBundle::from_cbor(&logged) {
                    texts(&mut add, &name, &w.proof.checkpoint);
                }
                if let Ok(a) = cbor::from_slice::<LogAnchors>(&anchors) {
                    vkeys(&a).iter().for_each(|k| texts(&mut add, &name, k));
                }
                let f = frame(&[
                    logged,
                    anchors,
                    text(&i, "fleet_id").as_bytes().to_vec(),
                    u64le(&i, "epoch"),
                    head_field(head(&i, "state")),
                    opt_hashes_field(hashes(&i, "consistency").as_deref()),
                ]);
                add("log_verify", name, f);
            }
            "witness_check" => {
                let (cp, vkey) = (text(&i, "checkpoint"), text(&i, "log_vkey"));
                texts(&mut add, &name, cp);
                texts(&mut add, &name, vkey);
                let f = frame(&[
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    cp.as_bytes().to_vec(),
                    vkey.as_bytes().to_vec(),
                    head_field(head(&i, "held")),
                    hashes(&i, "consistency").unwrap_or_default().concat(),
                ]);
                add("log_verify", name, f);
            }
            other => panic!("audit_log operation {other} has no seed"),
        }
    }
    // Honest proofs over a few tree shapes.
    for (k, (n, size, index, size1)) in
        [(1u64, 0u64, 0u64, 0u64), (6, 5, 2, 3), (7, 6, 6, 0), (32, 31, 17, 15), (47, 40, 39, 32)]
            .into_iter()
            .enumerate()
    {
        let at = (k as u64 * 97).to_le_bytes();
        let f = frame(&[
            &b"bkv"[..],
            &n.to_le_bytes(),
            &size.to_le_bytes(),
            &index.to_le_bytes(),
            &size1.to_le_bytes(),
            &at,
        ]);
        add("merkle_verify", format!("honest-{n}"), [&[2u8][..], &f].concat());
    }
    for (op, tc, i, _) in cases("audit") {
        assert_eq!(op, "audit");
        let name = format!("vector-{op}-{tc}");
        texts(&mut add, &name, text(&i, "checkpoint"));
        let entries: Vec<Vec<u8>> = i["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| hex::decode(e.as_str().unwrap()).unwrap())
            .collect();
        let f = frame(&[
            hx(&i, "evidence"),
            hx(&i, "released"),
            hx(&i, "anchors"),
            hx(&i, "log_anchors"),
            text(&i, "checkpoint").as_bytes().to_vec(),
            frame(&entries),
            hx(&i, "vendor_roots"),
            hx(&i, "software"),
            hx(&i, "firmware"),
            u64le(&i, "now"),
        ]);
        add("audit_run", name, f);
    }
    // Client responses: the first byte picks the parser (fuzz_checks::client_response).
    let mut response = |which: u8, name: String, bytes: Vec<u8>| {
        if !bytes.is_empty() {
            add("client_response", name, [&[which][..], &bytes].concat());
        }
    };
    for (op, tc, i, _) in cases("session") {
        if op == "session_open_response" {
            response(0, format!("vector-{op}-{tc}"), hx(&i, "response"));
        }
    }
    for (op, tc, i, out) in cases("vault") {
        let name = format!("vector-{op}-{tc}");
        let out = out.as_object().cloned().unwrap_or_default();
        match op.as_str() {
            "vault_client_recover" => {
                response(1, name.clone(), hx(&i, "recover_start_response"));
                response(2, name.clone(), hx(&i, "recover_finish_response"));
                response(3, name, hx(&i, "recover_finish_response"));
            }
            "vault_client_register" => response(5, name, hx(&i, "register_start_response")),
            "vault_node_login" => {
                response(1, name.clone(), hx(&out, "recover_start_response"));
                response(2, name, hx(&out, "recover_finish_response"));
            }
            _ => {}
        }
    }
    for (which, name, r) in [
        (4, "registered", VaultResponse::Registered { remaining: 10 }),
        (3, "deleted", VaultResponse::Deleted),
        (2, "code-changed", VaultResponse::CodeChanged { remaining: 10 }),
    ] {
        response(which, format!("response-{name}"), cbor::to_vec(&r));
    }
    seeds
}

#[test]
fn corpora_hold_the_vector_seeds() {
    let write = std::env::var_os("BKV_WRITE_SEEDS").is_some();
    for (target, seeds) in vector_seeds() {
        let dir = root().join("fuzz/corpus").join(target);
        let have: BTreeSet<Vec<u8>> =
            if dir.exists() { corpus(target).into_iter().map(|(_, d)| d).collect() } else { BTreeSet::new() };
        for (name, bytes) in seeds {
            if have.contains(&bytes) {
                continue;
            }
            assert!(write, "{target}: seed {name} is not in the corpus (BKV_WRITE_SEEDS=1 writes it)");
            std::fs::create_dir_all(&dir).unwrap();
            // Case numbers move when cases are added: never overwrite another seed that
            // took this name earlier.
            let mut path = dir.join(&name);
            if path.exists() {
                let digest = hex::encode(&bkv_protocol::crypto::sha256(&bytes)[..4]);
                path = dir.join(format!("{name}-{digest}"));
            }
            std::fs::write(path, bytes).unwrap();
        }
    }
}
