//! Cross-crate: the files `bkv demo` (bkv-fleet) writes are verified by the protocol
//! core (bkv-protocol) exactly as a client would, with the fleet size it was asked for.

use bkv_fleet::demo::{DEMO_FLEET, DemoArgs, run};
use bkv_protocol::validation_bundle::{ClientState, KeyRole, TrustAnchors, verify_bundle};

#[test]
fn demo_writes_a_bundle_a_client_accepts() {
    let dir = std::env::temp_dir().join(format!("bkv-tests-demo-{}", std::process::id()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let code = rt
        .block_on(run(DemoArgs { dir: Some(dir.clone()), nodes: 3, insecure_test_ksf: true, json: false }))
        .unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);

    let bundle = std::fs::read(dir.join("bundle.cbor")).unwrap();
    let anchors = TrustAnchors::from_bytes(&std::fs::read(dir.join("anchors.cbor")).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let v = verify_bundle(&bundle, &anchors, &ClientState::default(), now).unwrap();
    let ks = v.keyset();
    assert_eq!(ks.fleet_id, DEMO_FLEET);
    assert_eq!((ks.nodes.len(), ks.quorum, ks.guess_limit), (3, 2, 10));
    // The demo's nodes share one OPAQUE key and have distinct session keys.
    let opaque: Vec<_> = ks.nodes.iter().map(|n| n.key(KeyRole::Opaque).unwrap().key.clone()).collect();
    assert!(opaque.windows(2).all(|w| w[0] == w[1]));
    let session: std::collections::BTreeSet<_> =
        ks.nodes.iter().map(|n| n.key(KeyRole::Session).unwrap().key.clone()).collect();
    assert_eq!(session.len(), 3);
    // A second verification with the persisted state is the same bundle: accepted.
    assert!(verify_bundle(&bundle, &anchors, &v.next_state(), now).is_ok());

    // spec/audit-log.md §7.2: the released wrapper carries exactly this bundle and a proof
    // that verifies under the log anchors the demo wrote.
    use bkv_protocol::audit_log::{LogAnchors, LogState, LoggedBundle, verify_logged_bundle};
    let logged =
        LoggedBundle::from_cbor(&std::fs::read(dir.join("fleet/released-bundle.cbor")).unwrap()).unwrap();
    assert_eq!(logged.bundle, bundle);
    let trust: bkv_client::Trust =
        bkv_protocol::cbor::from_slice(&std::fs::read(dir.join("trust.cbor")).unwrap()).unwrap();
    assert_eq!(trust.anchors, anchors);
    let log_anchors: LogAnchors = trust.log;
    assert_eq!(log_anchors.threshold, 2);
    let included = verify_logged_bundle(
        &bundle,
        &ks.fleet_id,
        ks.epoch,
        &logged.proof,
        &log_anchors,
        &LogState::default(),
        None,
    )
    .unwrap();
    assert!(!included.development_only);

    // The story's backup restored to the same bytes, and the backup file is not plaintext.
    let history = std::fs::read(dir.join("chat-history.txt")).unwrap();
    assert!(history.len() > 1_000_000);
    assert_eq!(std::fs::read(dir.join("chat-history.restored.txt")).unwrap(), history);
    let sealed = std::fs::read(dir.join("chat.bkv")).unwrap();
    assert!(!sealed.windows(12).any(|w| w == b"alice: see y" || w == &history[20..32]));

    // The demo ended with a rotation: epoch 2 chains from the epoch 1 state, epoch 1 is retired.
    let epoch2 =
        LoggedBundle::from_cbor(&std::fs::read(dir.join("fleet-epoch-2/released-bundle.cbor")).unwrap())
            .unwrap();
    let v2 = verify_bundle(&epoch2.bundle, &anchors, &v.next_state(), now).unwrap();
    assert_eq!(v2.keyset().epoch, 2);
    assert!(dir.join("fleet/RETIRED").exists());
    assert!(!dir.join("fleet/node-1/hsm.sealed").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
