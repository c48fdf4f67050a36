//! Fleet rotation end to end over HTTP (spec/rotation.md): counters move, locked records
//! stay locked, clients follow the chain, pinned apps are told to update, the old fleet
//! refuses a successor that does not verify, and decommissioning is logged.

use bkv_client::{FleetClient, Persisted, Recovery, Trust};
use bkv_fleet::fleet::{FleetConfig, LocalFleet, OperatorKeys};
use bkv_node::replication::raft::Timing;
use bkv_protocol::audit_log::{EntryType, LogEntry};
use bkv_protocol::crypto::sha256;
use bkv_protocol::validation_bundle::{Claims, countersign, sign};
use bkv_protocol::vault::{BackupKey, KsfParams};
use rand_core::{OsRng, RngCore};

const FLEET: &str = "rotation.bkv.example/vault";

struct Scratch(std::path::PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    Scratch(std::env::temp_dir().join(format!(
        "bkv-rotation-{name}-{}-{}",
        std::process::id(),
        OsRng.next_u64()
    )))
}

fn now() -> u64 {
    bkv_client::clock::system_now()
}

async fn fleet(dir: &Scratch, orgs: &OperatorKeys) -> LocalFleet {
    let mut config = FleetConfig::new(FLEET, 3);
    config.timing = Timing::fast();
    LocalFleet::create_with(&dir.0.join("epoch-1"), &config, orgs, |_| {}).await.unwrap()
}

fn wrong(r: Recovery) -> u32 {
    match r {
        Recovery::WrongCode { remaining } => remaining,
        Recovery::Recovered { .. } => panic!("a wrong code recovered"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_keeps_counters_and_clients_follow_the_chain() {
    let dir = scratch("keeps");
    let orgs = OperatorKeys::generate();
    let mut old = fleet(&dir, &orgs).await;
    let (phone, held) =
        FleetClient::connect(&old.nodes[0].url, &old.trust, &Persisted::default(), KsfParams::TEST, now())
            .await
            .unwrap();
    // A pinned app of the same fleet.
    let mut pinned_trust: Trust = old.trust.clone();
    let payload = bkv_protocol::validation_bundle::Parsed::parse(&old.released.bundle).unwrap().payload;
    pinned_trust.anchors.pinned = vec![serde_bytes::ByteBuf::from(sha256(&payload).to_vec())];
    let pinned =
        FleetClient::connect_pinned(&old.nodes[1].url, &pinned_trust, KsfParams::TEST, now()).await.unwrap();

    let (a, b) = (vec![1u8; 32], vec![2u8; 32]);
    let key = BackupKey::generate(&mut OsRng);
    phone.register(&a, b"right", &key).await.unwrap();
    phone.register(&b, b"other", &BackupKey::generate(&mut OsRng)).await.unwrap();
    for i in 0..7 {
        assert_eq!(wrong(phone.recover(&a, format!("w{i}").as_bytes()).await.unwrap()), 9 - i);
    }
    for _ in 0..10 {
        phone.recover(&b, b"nope").await.unwrap();
    }

    let (new, report) = old.rotate(&dir.0.join("epoch-2"), &orgs, |_| {}).await.unwrap();
    assert_eq!((report.from_epoch, report.to_epoch), (1, 2));
    assert_eq!((report.registered, report.unregistered, report.locked), (1, 0, 1));
    assert_eq!(new.keyset.prev, Some(sha256(&old.released.bundle)));

    // The old fleet serves no guess any more; the pinned app is told to update.
    assert_eq!(phone.recover(&a, b"right").await.unwrap_err().code(), "rotation.fleet.retired");
    assert_eq!(pinned.recover(&a, b"right").await.unwrap_err().code(), "pinned.fleet.retired");

    // The phone moves to the new bundle over the air: it chains from the one it holds.
    let (phone2, held2) =
        FleetClient::connect(&new.nodes[2].url, &new.trust, &held, KsfParams::TEST, now()).await.unwrap();
    assert_eq!(held2.bundle.highest.unwrap().0, 2);
    // 7 wrong guesses on the old fleet: exactly 3 are left here.
    assert_eq!(wrong(phone2.recover(&a, b"w7").await.unwrap()), 2);
    let Recovery::Recovered { backup_key, remaining } = phone2.recover(&a, b"right").await.unwrap() else {
        panic!("the right code recovers on the new fleet")
    };
    assert_eq!((backup_key.as_bytes(), remaining), (key.as_bytes(), 10));
    assert_eq!(phone2.recover(&b, b"other").await.unwrap_err().code(), "vault.record.locked");

    // Decommission: keys destroyed, retirement logged, the directory no longer starts.
    let old_dir = old.dir.clone();
    let log = new.log.clone().unwrap();
    old.decommission(&new.released.bundle, &orgs).await.unwrap();
    assert!(!old_dir.join("node-1").join("hsm.sealed").exists());
    let size = bkv_protocol::audit_log::Checkpoint::parse_body(
        &bkv_protocol::audit_log::note::Note::parse(&log.client.checkpoint().await.unwrap()).unwrap().text,
    )
    .unwrap()
    .size;
    let entries = log.client.entries(0, size).await.unwrap();
    let last = LogEntry::from_cbor(entries.last().unwrap()).unwrap();
    assert_eq!(
        (last.kind, last.epoch, last.digest),
        (EntryType::Retirement, 1, sha256(&new.released.bundle))
    );
    let err = LocalFleet::open(&old_dir, Timing::fast(), |_| {}).await.err().unwrap();
    assert_eq!(err.code(), "rotation.fleet.retired");
    new.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_old_fleet_refuses_a_successor_that_does_not_verify() {
    let dir = scratch("refuses");
    let orgs = OperatorKeys::generate();
    let old = fleet(&dir, &orgs).await;
    let phone =
        FleetClient::connect(&old.nodes[0].url, &old.trust, &Persisted::default(), KsfParams::TEST, now())
            .await
            .unwrap()
            .0;
    phone.register(&[3u8; 32], b"code", &BackupKey::generate(&mut OsRng)).await.unwrap();

    let evidence = std::fs::read(old.dir.join("evidence.cbor")).unwrap();
    // This test plays both organisations to forge successors: the third party's key is in
    // its own directory (a local fleet's own processes never read it together with the
    // operator's).
    let seed = std::fs::read_to_string(old.dir.join("third-party/third-party.seed")).unwrap();
    let third_party = bkv_protocol::crypto::Ed25519Signer::from_seed(
        &hex::decode(seed.trim()).unwrap().try_into().unwrap(),
    );
    // A candidate successor: the old keyset advanced one epoch and chained.
    let mut ks = old.keyset.clone();
    ks.epoch = 2;
    ks.prev = Some(sha256(&old.released.bundle));
    let claims = Claims { iss: bkv_fleet::fleet::THIRD_PARTY.into(), sub: FLEET.into(), iat: now() };
    // This test writes to the log as the third party would: through its admin listener.
    let log = old.log.clone().unwrap();
    let token = std::fs::read_to_string(old.dir.join("audit-log/admin.token")).unwrap();
    let writer = log.client.clone().with_admin(&log.admin, token.trim());
    let logged = |bundle: Vec<u8>, epoch: u64| {
        let (writer, anchors) = (writer.clone(), log.anchors.clone());
        async move { bkv_third_party::signer::release(&writer, &anchors, bundle, FLEET, epoch).await.unwrap() }
    };

    // Signed by the operator alone: bundle.signer.unknown.
    let rogue = countersign(&sign(&ks.to_bytes(), &claims, &orgs.operator), &orgs.operator).unwrap();
    let rogue = logged(rogue, 2).await;
    assert_eq!(
        old.verify_successor(&rogue, &evidence, now()).await.unwrap_err().code(),
        "bundle.signer.unknown"
    );
    // Properly signed but not in the log: the proof is another bundle's.
    let good = countersign(&sign(&ks.to_bytes(), &claims, &third_party), &orgs.operator).unwrap();
    let mut unlogged = rogue.clone();
    unlogged.bundle = good.clone();
    assert_eq!(
        old.verify_successor(&unlogged, &evidence, now()).await.unwrap_err().code(),
        "log.inclusion.invalid"
    );
    // Not chained to this fleet's bundle.
    let mut unchained = ks.clone();
    unchained.prev = Some([0; 32]);
    let b = countersign(&sign(&unchained.to_bytes(), &claims, &third_party), &orgs.operator).unwrap();
    assert_eq!(
        old.verify_successor(&logged(b, 2).await, &evidence, now()).await.unwrap_err().code(),
        "bundle.chain.broken"
    );
    // Another guess limit.
    let mut policy = ks.clone();
    policy.guess_limit = 3;
    let b = countersign(&sign(&policy.to_bytes(), &claims, &third_party), &orgs.operator).unwrap();
    assert_eq!(
        old.verify_successor(&logged(b, 2).await, &evidence, now()).await.unwrap_err().code(),
        "rotation.policy.mismatch"
    );
    // spec/rotation.md §4.1: the old HSM checks the successor's bundle itself before it
    // seals the OPAQUE setup to anyone: not to a bundle the third party did not sign, not
    // to one outside the log, not to one that is not chained.
    let kek = bkv_node::hsm::Kek::from_file(&old.dir.join("kek.hex")).unwrap();
    let hsm = bkv_node::hsm::SoftHsm::unseal_file(&old.dir.join("node-1/hsm.sealed"), &kek).unwrap();
    let seal = |lb: &bkv_protocol::audit_log::LoggedBundle| {
        let (ks, b, t) = (&old.keyset, &old.released.bundle, &old.trust);
        hsm.seal_setup_for_successor(&mut OsRng, ks, b, lb, &t.anchors, &t.log, now()).unwrap_err().code()
    };
    assert_eq!(seal(&rogue), "bundle.signer.unknown");
    assert_eq!(seal(&unlogged), "log.inclusion.invalid");
    let b = countersign(&sign(&unchained.to_bytes(), &claims, &third_party), &orgs.operator).unwrap();
    assert_eq!(seal(&logged(b, 2).await), "bundle.chain.broken");
    drop(hsm);
    // Correctly signed, chained and logged, but its deployment evidence is epoch 1's:
    // the Audit procedure refuses it (spec/audit.md AU4).
    let err = old.verify_successor(&logged(good, 2).await, &evidence, now()).await.unwrap_err();
    assert_eq!(err.code(), "audit.keyset.mismatch");
    // None of the above changed the old fleet.
    assert_eq!(wrong(phone.recover(&[3u8; 32], b"wrong").await.unwrap()), 9);
    old.shutdown().await;
}
