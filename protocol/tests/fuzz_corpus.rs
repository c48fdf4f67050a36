//! Replays the committed fuzz corpus (`fuzz/corpus/`) through the same properties the
//! fuzz targets check, so every input a fuzzer ever kept (and every crash it found,
//! once added) is a regression test of plain `cargo test`.

use bkv_protocol::validation_bundle::{ClientState, FleetKeySet, Parsed, TrustAnchors, verify_bundle};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn cbor_check_corpus() {
    let inputs = corpus("cbor_check");
    assert!(!inputs.is_empty());
    for data in inputs {
        if bkv_protocol::cbor::check(&data, &[18]).is_ok() {
            let v = bkv_protocol::cbor::value_from_slice(&data, &[18]).unwrap();
            assert_eq!(bkv_protocol::cbor::value_to_vec(&v), data, "accepted input is canonical");
            let _ = Parsed::parse(&data);
        }
    }
}

#[test]
fn keyset_and_anchors_corpus() {
    for data in corpus("keyset_decode") {
        if let Ok(ks) = FleetKeySet::from_bytes(&data) {
            assert_eq!(ks.to_bytes(), data);
        }
    }
    let anchors = corpus("anchors_decode");
    assert!(!anchors.is_empty());
    let mut decoded = Vec::new();
    for data in &anchors {
        if let Ok(a) = TrustAnchors::from_bytes(data) {
            assert_eq!(&a.to_bytes(), data);
            decoded.push(a);
        }
    }
    // Every corpus input as a bundle, against a few of the anchors.
    for a in decoded.iter().take(3) {
        for bundle in corpus("cbor_check") {
            let _ = verify_bundle(&bundle, a, &ClientState::default(), 1_800_000_000);
        }
    }
}

#[test]
fn session_envelope_and_evidence_corpora() {
    use bkv_protocol::session::{SessionSecretKey, SessionServer};
    let node = SessionServer::new("fuzz.example/vault", 1, "node-1", SessionSecretKey::derive(b"fuzz"));
    let sessions = corpus("session_open");
    assert!(!sessions.is_empty());
    for data in sessions {
        // A fuzzer cannot seal to the node's key: nothing it found may open.
        assert!(node.open(&data, 1_800_000_000).is_err());
    }
    for data in corpus("envelope_open") {
        let mut out = Vec::new();
        let key = bkv_protocol::vault::BackupKey::from_bytes([7; 32]);
        assert!(bkv_protocol::backup_envelope::open(&key, None, &data[..], &mut out, |_| {}).is_err());
    }
    let me = bkv_protocol::rotation::Importer {
        fleet_id: "f",
        epoch: 2,
        node_id: "n",
        bundle_digest: [0; 32],
        guess_limit: 10,
    };
    for data in corpus("evidence_parse") {
        let _ = bkv_protocol::evidence::Sign1::parse(&data, bkv_protocol::evidence::CT_EVIDENCE);
        assert!(bkv_protocol::rotation::open_export(&data, &SessionSecretKey::derive(b"fuzz"), &me).is_err());
    }
}
