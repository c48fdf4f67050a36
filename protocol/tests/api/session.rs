//! spec/session.md: one test per `session.*` code, and the envelope's round trip.

use crate::common::*;
use bkv_protocol::Error;
use bkv_protocol::cbor;
use bkv_protocol::session::{self, SealedRequest, SessionSecretKey, SessionServer, SessionTarget};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn setup() -> (SessionServer, SessionTarget, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let key = SessionSecretKey::generate(&mut rng);
    let server = SessionServer::new(FLEET, EPOCH, NODE, key);
    let target = SessionTarget {
        fleet_id: FLEET.into(),
        epoch: EPOCH,
        node_id: NODE.into(),
        session_key: server.public_key(),
    };
    (server, target, rng)
}

/// Re-encode a request after changing its header.
fn edit(request: &[u8], f: impl FnOnce(&mut SealedRequest)) -> Vec<u8> {
    let mut r: SealedRequest = cbor::from_slice(request).unwrap();
    f(&mut r);
    cbor::to_vec(&r)
}

#[test]
fn round_trip() {
    let (server, target, mut rng) = setup();
    let (req, wait) = session::seal_request(&mut rng, &target, NOW, b"body").unwrap();
    let opened = server.open(&req, NOW + 10).unwrap();
    assert_eq!(opened.body, b"body");
    assert_eq!(opened.request_id, wait.request_id());
    assert_eq!(opened.time, NOW);
    let resp = opened.responder.seal_ok(&mut rng, b"answer");
    assert_eq!(wait.open(&resp).unwrap(), b"answer");
}

#[test]
fn sealed_error_reaches_the_client() {
    let (server, target, mut rng) = setup();
    let (req, wait) = session::seal_request(&mut rng, &target, NOW, b"body").unwrap();
    let opened = server.open(&req, NOW).unwrap();
    let resp = opened.responder.seal_error(&mut rng, Error::VaultRecordLocked);
    assert_eq!(wait.open(&resp), Err(Error::VaultRecordLocked));
}

#[test]
fn suite_unsupported() {
    let (server, target, mut rng) = setup();
    let (req, _) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    for (kem, kdf, aead) in [(16, 1, 3), (32, 2, 3), (32, 1, 1)] {
        let bad = edit(&req, |r| {
            r.kem = kem;
            r.kdf = kdf;
            r.aead = aead;
        });
        assert_eq!(server.open(&bad, NOW).unwrap_err(), Error::SessionSuiteUnsupported);
    }
}

#[test]
fn fleet_mismatch_for_a_request_addressed_to_another_fleet() {
    let (server, mut target, mut rng) = setup();
    target.fleet_id = "other-fleet".into();
    let (req, wait) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    let err = server.open(&req, NOW).unwrap_err();
    assert_eq!(err, Error::SessionFleetMismatch);
    // The client reads the unsealed error.
    assert_eq!(wait.open(&session::reject(err)), Err(Error::SessionFleetMismatch));
}

#[test]
fn request_sealed_to_another_fleets_key_is_rejected() {
    let (server, mut target, mut rng) = setup();
    // Same header as this node, but sealed to the session key of another fleet's node.
    let other = SessionSecretKey::generate(&mut rng);
    target.session_key = other.public_key();
    let (req, _) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    assert_eq!(server.open(&req, NOW).unwrap_err(), Error::SessionOpenFailed);
    // And the other fleet's node (same key, its own fleet id) refuses it by header.
    let other_node = SessionServer::new("other-fleet", EPOCH, NODE, other);
    assert_eq!(other_node.open(&req, NOW).unwrap_err(), Error::SessionFleetMismatch);
}

#[test]
fn info_binds_fleet_epoch_and_node() {
    // A node that shares a key but believes it is a different node, epoch or fleet cannot
    // open the request even when the header is rewritten to match it.
    let (_, target, mut rng) = setup();
    let (req, _) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    let key = || SessionSecretKey::generate(&mut ChaCha20Rng::seed_from_u64(7));
    let cases: [(&str, u64, &str); 3] =
        [("other-fleet", EPOCH, NODE), (FLEET, EPOCH + 1, NODE), (FLEET, EPOCH, "node-2")];
    for (fleet, epoch, node) in cases {
        let server = SessionServer::new(fleet, epoch, node, key());
        let bad = edit(&req, |r| {
            r.fleet_id = fleet.into();
            r.epoch = epoch;
            r.node_id = node.into();
        });
        assert_eq!(server.open(&bad, NOW).unwrap_err(), Error::SessionOpenFailed);
    }
}

#[test]
fn epoch_mismatch() {
    let (server, mut target, mut rng) = setup();
    target.epoch = EPOCH + 1;
    let (req, _) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    assert_eq!(server.open(&req, NOW).unwrap_err(), Error::SessionEpochMismatch);
}

#[test]
fn node_mismatch() {
    let (server, mut target, mut rng) = setup();
    target.node_id = "node-2".into();
    let (req, _) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    assert_eq!(server.open(&req, NOW).unwrap_err(), Error::SessionNodeMismatch);
}

#[test]
fn open_failed_is_one_code_for_every_cause() {
    let (server, target, mut rng) = setup();
    let (req, _) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    let flipped_ct = edit(&req, |r| r.ct[0] ^= 1);
    let flipped_enc = edit(&req, |r| r.enc[0] ^= 1);
    let zero_enc = edit(&req, |r| r.enc = vec![0; 32]); // low-order point: all-zero DH
    let short_enc = edit(&req, |r| r.enc.truncate(31));
    let short_ct = edit(&req, |r| r.ct.truncate(5));
    for bad in [flipped_ct, flipped_enc, zero_enc, short_enc, short_ct] {
        assert_eq!(server.open(&bad, NOW).unwrap_err(), Error::SessionOpenFailed);
    }
}

#[test]
fn request_stale_outside_the_window() {
    let (server, target, mut rng) = setup();
    let (req, _) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    assert!(server.open(&req, NOW + session::REQUEST_WINDOW_SECS).is_ok());
    assert!(server.open(&req, NOW - session::REQUEST_WINDOW_SECS).is_ok());
    assert_eq!(
        server.open(&req, NOW + session::REQUEST_WINDOW_SECS + 1).unwrap_err(),
        Error::SessionRequestStale
    );
    assert_eq!(
        server.open(&req, NOW - session::REQUEST_WINDOW_SECS - 1).unwrap_err(),
        Error::SessionRequestStale
    );
}

#[test]
fn malformed_and_wrong_version_requests() {
    let (server, target, mut rng) = setup();
    let (req, _) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    assert_eq!(server.open(&req[..req.len() - 1], NOW).unwrap_err(), Error::CborMalformed);
    let v2 = edit(&req, |r| r.v = 2);
    assert_eq!(server.open(&v2, NOW).unwrap_err(), Error::CborSchema);
}

#[test]
fn response_invalid_when_tampered_or_for_another_request() {
    let (server, target, mut rng) = setup();
    let (req1, wait1) = session::seal_request(&mut rng, &target, NOW, b"one").unwrap();
    let (req2, wait2) = session::seal_request(&mut rng, &target, NOW, b"two").unwrap();
    let resp1 = server.open(&req1, NOW).unwrap().responder.seal_ok(&mut rng, b"a");
    let resp2 = server.open(&req2, NOW).unwrap().responder.seal_ok(&mut rng, b"b");
    // The answer to another request does not open.
    assert_eq!(wait1.open(&resp2), Err(Error::SessionResponseInvalid));
    // A flipped bit in the sealed answer.
    let mut bad = resp2.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(wait2.open(&bad), Err(Error::SessionResponseInvalid));
    let _ = resp1;
}

#[test]
fn response_invalid_for_unsealed_codes_a_node_never_sends_unsealed() {
    let (_, target, mut rng) = setup();
    for (code, expected) in [
        (Error::VaultRecordLocked, Error::SessionResponseInvalid),
        (Error::SessionRequestReplayed, Error::SessionRequestReplayed),
        (Error::SessionResponseInvalid, Error::SessionResponseInvalid),
        (Error::SessionEpochMismatch, Error::SessionEpochMismatch),
    ] {
        let (_, wait) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
        assert_eq!(wait.open(&session::reject(code)), Err(expected), "{code:?}");
    }
    let (_, wait) = session::seal_request(&mut rng, &target, NOW, b"x").unwrap();
    assert_eq!(wait.open(b"\xa0"), Err(Error::SessionResponseInvalid));
}
