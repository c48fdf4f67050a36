//! spec/hsm.md: the HSM refuses every answer it cannot prove, whatever the host feeds it.

use super::*;
use crate::Error;
use crate::cbor;
use crate::crypto::{Ed25519Signer, Signer};
use crate::node_api::{Begun, PendingCommit};
use crate::session::{self, SessionSecretKey, SessionServer, SessionTarget};
use crate::vault::{
    BackupKey, ClientAction, KsfParams, RecoveryClient, RegistrationClient, VaultContext, VaultServer,
    VaultServerSetup,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::Arc;

const FLEET: &str = "hsm-test";
const NOW: u64 = 1_800_000_000;
const LIMIT: u32 = 3;

struct Node {
    hsm: Arc<Boundary>,
    store: Arc<MemoryStateStore>,
    target: SessionTarget,
    parts: Parts,
}

/// What a node's HSM is made of, to restart it (its RAM lost, its HSM state kept).
#[derive(Clone)]
struct Parts {
    cfg: BoundaryConfig,
    session: [u8; 32],
    signing: [u8; 32],
    setup: Vec<u8>,
}

impl Node {
    fn start(parts: Parts, store: Arc<MemoryStateStore>) -> Node {
        let state = store.state().unwrap_or_else(|| HsmState::fresh(FLEET, 1, parts.cfg.node));
        let session = SessionSecretKey::from_bytes(&parts.session).unwrap();
        let target = SessionTarget {
            fleet_id: FLEET.into(),
            epoch: 1,
            node_id: format!("n{}", parts.cfg.node),
            session_key: session.public_key(),
        };
        let hsm = Boundary::new(
            parts.cfg.clone(),
            SessionServer::new(FLEET, 1, &target.node_id, session),
            VaultServer::new(VaultServerSetup::from_bytes(&parts.setup).unwrap(), FLEET),
            Ed25519Signer::from_seed(&parts.signing),
            state,
            Box::new(store.clone()),
        )
        .unwrap();
        Node { hsm: Arc::new(hsm), store, target, parts }
    }

    /// A restart: the HSM's memory is gone, its HSM state stays.
    fn restart(&mut self) {
        *self = Node::start(self.parts.clone(), self.store.clone());
    }
}

/// Three HSMs and an honest log the test can bypass.
struct Fleet {
    nodes: Vec<Node>,
    log: Vec<Vec<u8>>,
    ctx: VaultContext,
    rng: ChaCha20Rng,
}

impl Fleet {
    fn new(seed: u64) -> Fleet {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let setup = VaultServerSetup::generate(&mut rng);
        let seeds: Vec<([u8; 32], [u8; 32])> = (0..3)
            .map(|_| {
                let mut a = [0u8; 32];
                let mut b = [0u8; 32];
                rand_core::RngCore::fill_bytes(&mut rng, &mut a);
                rand_core::RngCore::fill_bytes(&mut rng, &mut b);
                (*SessionSecretKey::generate(&mut ChaCha20Rng::from_seed(a)).to_bytes(), b)
            })
            .collect();
        let keys: Vec<_> =
            seeds.iter().map(|(_, s)| Ed25519Signer::from_seed(s).public_key().clone()).collect();
        let nodes = (0..3u64)
            .map(|i| {
                let cfg = BoundaryConfig {
                    fleet: FLEET.into(),
                    epoch: 1,
                    node: i,
                    quorum: 2,
                    signing_keys: keys.clone(),
                    guess_limit: LIMIT,
                    awaiting_import: false,
                };
                let (session, signing) = seeds[i as usize];
                let parts = Parts { cfg, session, signing, setup: setup.to_bytes().to_vec() };
                Node::start(parts, Arc::new(MemoryStateStore::default()))
            })
            .collect();
        let ctx = VaultContext {
            fleet_id: FLEET.into(),
            opaque_server_key: setup.public_key(),
            ksf: KsfParams::TEST,
        };
        Fleet { nodes, log: Vec::new(), ctx, rng }
    }

    /// Commit `entry` and apply it on `on` (the others lag); its position.
    fn commit(&mut self, entry: Vec<u8>, on: &[usize]) -> u64 {
        self.log.push(entry.clone());
        let mut position = 0;
        for &i in on {
            position = AppliedOutput::decode(&self.nodes[i].hsm.apply(&entry)).unwrap().position;
        }
        position
    }

    /// Apply the honest log's entries that node `i` lacks.
    fn catch_up(&mut self, i: usize) {
        let have = self.nodes[i].hsm.position() as usize;
        for e in &self.log[have..] {
            self.nodes[i].hsm.apply(e);
        }
    }

    fn acks(&self, position: u64, from: &[usize]) -> Vec<Vec<u8>> {
        from.iter().filter_map(|&i| self.nodes[i].hsm.ack(position).ok()).collect()
    }

    /// Begin a request at node `i`; the pending commit.
    fn begin(&mut self, i: usize, body: &[u8]) -> (PendingCommit, session::AwaitResponse) {
        let (sealed, wait) = session::seal_request(&mut self.rng, &self.nodes[i].target, NOW, body).unwrap();
        match self.nodes[i].hsm.begin(&mut self.rng, &sealed, NOW) {
            Begun::Commit(p) => (p, wait),
            Begun::Reply(_) => panic!("expected a commit"),
        }
    }

    /// The honest path at node `i`: commit everywhere, acknowledgements from everyone.
    fn serve(&mut self, i: usize, body: &[u8]) -> crate::Result<Vec<u8>> {
        let (sealed, wait) = session::seal_request(&mut self.rng, &self.nodes[i].target, NOW, body).unwrap();
        let answer = match self.nodes[i].hsm.begin(&mut self.rng, &sealed, NOW) {
            Begun::Reply(r) => r,
            Begun::Commit(p) => {
                let entry = self.nodes[i].hsm.entry(&p);
                let k = self.commit(entry, &[0, 1, 2]);
                let acks = self.acks(k, &[0, 1, 2]);
                let r = self.nodes[i].hsm.resume(&mut self.rng, p, k, &acks, NOW);
                assert_eq!(r.refused, None);
                r.sealed
            }
        };
        wait.open(&answer)
    }

    fn register(&mut self, record: &[u8], code: &[u8]) {
        let (body, reg) = RegistrationClient::start(&mut self.rng, record, code).unwrap();
        let resp = self.serve(0, &body).unwrap();
        let key = BackupKey::generate(&mut self.rng);
        let ctx = self.ctx.clone();
        let (body, wait) = reg.finish(&mut self.rng, &ctx, &key, &resp).unwrap().into_request();
        let resp = self.serve(0, &body).unwrap();
        assert_eq!(wait.finish(&resp).unwrap(), LIMIT);
    }

    /// Begin a recovery attempt at node `i`, commit it on every node; (pending, position, wait, client).
    fn attempt(
        &mut self,
        i: usize,
        record: &[u8],
    ) -> (PendingCommit, u64, session::AwaitResponse, RecoveryClient) {
        let (body, rc) = RecoveryClient::start(&mut self.rng, record, b"wrong").unwrap();
        let (p, wait) = self.begin(i, &body);
        let entry = self.nodes[i].hsm.entry(&p);
        let k = self.commit(entry, &[0, 1, 2]);
        (p, k, wait, rc)
    }
}

fn refused(r: &Resumed, wait: session::AwaitResponse) -> Option<Error> {
    assert_eq!(
        wait.open(&r.sealed).unwrap_err(),
        Error::FleetUnavailable,
        "the client sees fleet.unavailable"
    );
    r.refused
}

#[test]
fn a_quorum_of_acknowledgements_gives_a_ke2() {
    let mut f = Fleet::new(1);
    f.register(b"record-0000000001", b"code");
    let (p, k, wait, rc) = f.attempt(1, b"record-0000000001");
    let acks = f.acks(k, &[0]);
    let r = f.nodes[1].hsm.resume(&mut f.rng, p, k, &acks, NOW);
    assert_eq!(r.refused, None);
    let ke2 = rc.receive(&wait.open(&r.sealed).unwrap()).unwrap();
    assert_eq!(ke2.remaining(), LIMIT - 1);
}

#[test]
fn no_quorum_no_ke2() {
    let mut f = Fleet::new(2);
    f.register(b"record-0000000001", b"code");
    let (p, k, wait, _) = f.attempt(1, b"record-0000000001");
    // Only the HSM's own acknowledgement, or the same peer twice.
    let twice = [f.acks(k, &[1]), f.acks(k, &[1])].concat();
    let r = f.nodes[1].hsm.resume(&mut f.rng, p, k, &twice, NOW);
    assert_eq!(refused(&r, wait), Some(Error::HsmCommitUnproven));
}

#[test]
fn forged_acknowledgements_give_no_ke2() {
    let mut f = Fleet::new(3);
    f.register(b"record-0000000001", b"code");
    // An acknowledgement signed by a key that is not node 0's.
    let (p, k, wait, _) = f.attempt(1, b"record-0000000001");
    let genuine = f.acks(k, &[0]).remove(0);
    let signed: SignedAck = cbor::from_slice(&genuine).unwrap();
    let forger = Ed25519Signer::from_seed(&[9; 32]);
    let forged = cbor::to_vec(&SignedAck { sig: forger.sign(&signed.msg), msg: signed.msg.clone() });
    let r = f.nodes[1].hsm.resume(&mut f.rng, p, k, &[forged], NOW);
    assert_eq!(refused(&r, wait), Some(Error::HsmCommitUnproven));
    // A genuine acknowledgement of an earlier position.
    let (p, k, wait, _) = f.attempt(1, b"record-0000000001");
    let earlier = f.acks(k - 1, &[0]);
    let r = f.nodes[1].hsm.resume(&mut f.rng, p, k, &earlier, NOW);
    assert_eq!(refused(&r, wait), Some(Error::HsmCommitUnproven));
    // The host signs an Ack itself through the RPC signing interface: refused (§7).
    let mut ack: Ack = cbor::from_slice(&signed.msg).unwrap();
    ack.position = k;
    let msg = cbor::to_vec(&ack);
    assert_eq!(f.nodes[0].hsm.sign_rpc(&msg), None);
    assert!(RpcSigner(f.nodes[0].hsm.clone()).sign(&msg).is_empty());
}

#[test]
fn an_acknowledgement_of_another_chain_gives_no_ke2() {
    let mut f = Fleet::new(4);
    f.register(b"record-0000000001", b"code");
    // Node 2 is fed a different entry at the attempt's position by its host.
    let (body, _) = RecoveryClient::start(&mut f.rng, b"record-0000000001", b"x").unwrap();
    let (p, wait) = f.begin(1, &body);
    let entry = f.nodes[1].hsm.entry(&p);
    let k = f.commit(entry, &[0, 1]);
    f.nodes[2].hsm.apply(&LogEntry::encode(2, b"\xa0"));
    let acks = f.acks(k, &[2]);
    let r = f.nodes[1].hsm.resume(&mut f.rng, p, k, &acks, NOW);
    assert_eq!(refused(&r, wait), Some(Error::HsmCommitUnproven));
}

#[test]
fn a_replayed_commit_gives_no_second_ke2() {
    let mut f = Fleet::new(5);
    f.register(b"record-0000000001", b"code");
    let (body, _) = RecoveryClient::start(&mut f.rng, b"record-0000000001", b"x").unwrap();
    // The same sealed request twice: two pending commits with one command.
    let (sealed, wait1) = session::seal_request(&mut f.rng, &f.nodes[1].target, NOW, &body).unwrap();
    let pending = |f: &mut Fleet| match f.nodes[1].hsm.begin(&mut f.rng, &sealed, NOW) {
        Begun::Commit(p) => p,
        Begun::Reply(_) => panic!("a commit"),
    };
    let (p1, p2) = (pending(&mut f), pending(&mut f));
    let k = f.commit(f.nodes[1].hsm.entry(&p1), &[0, 1, 2]);
    let acks = f.acks(k, &[0, 2]);
    let r1 = f.nodes[1].hsm.resume(&mut f.rng, p1, k, &acks, NOW);
    assert_eq!(r1.refused, None);
    assert!(wait1.open(&r1.sealed).is_ok());
    let r2 = f.nodes[1].hsm.resume(&mut f.rng, p2, k, &acks, NOW);
    assert_eq!(r2.refused, Some(Error::HsmCommitUnknown));
}

#[test]
fn a_decrement_of_another_record_or_for_another_node_gives_no_ke2() {
    let mut f = Fleet::new(6);
    f.register(b"victim-0000000001", b"code");
    f.register(b"other-00000000001", b"code");
    // The host commits an attempt on "other" and presents it for a pending on "victim".
    let (_, k_other, _, _) = f.attempt(1, b"other-00000000001");
    let (body, _) = RecoveryClient::start(&mut f.rng, b"victim-0000000001", b"x").unwrap();
    let (p, wait) = f.begin(1, &body);
    let acks = f.acks(k_other, &[0, 2]);
    let r = f.nodes[1].hsm.resume(&mut f.rng, p, k_other, &acks, NOW);
    assert_eq!(refused(&r, wait), Some(Error::HsmCommitUnknown));
    // An entry naming node 1 presented to node 2 with the same command.
    let (p, k, wait, _) = f.attempt(1, b"victim-0000000001");
    let _ = p;
    let (body2, _) = RecoveryClient::start(&mut f.rng, b"victim-0000000001", b"y").unwrap();
    let (p2, _) = f.begin(2, &body2);
    let acks = f.acks(k, &[0, 1]);
    let r = f.nodes[2].hsm.resume(&mut f.rng, p2, k, &acks, NOW);
    assert_eq!(r.refused, Some(Error::HsmCommitUnknown));
    drop(wait);
}

#[test]
fn a_restarted_hsm_answers_nothing_it_may_have_answered_before() {
    let mut f = Fleet::new(7);
    f.register(b"record-0000000001", b"code");
    let (p, k, wait, _) = f.attempt(1, b"record-0000000001");
    let acks = f.acks(k, &[0]);
    // The HSM durably marks k (E4), then restarts before the host delivers the answer.
    f.nodes[1].hsm.ack(k).unwrap();
    drop((p, wait));
    f.nodes[1].restart();
    assert_eq!(f.nodes[1].hsm.status().status, Status::Behind { mark: k });
    assert_eq!(f.nodes[1].hsm.ack(1), Err(Error::HsmStateBehind));
    f.catch_up(1);
    assert_eq!(f.nodes[1].hsm.status().status, Status::Current);
    // The entry at k is the old one: not answerable after the restart.
    let (body, _) = RecoveryClient::start(&mut f.rng, b"record-0000000001", b"x").unwrap();
    let (p, wait) = f.begin(1, &body);
    let r = f.nodes[1].hsm.resume(&mut f.rng, p, k, &acks, NOW);
    assert_eq!(refused(&r, wait), Some(Error::HsmCommitUnknown));
}

#[test]
fn rolled_back_entries_leave_the_hsm_behind_then_diverged() {
    let mut f = Fleet::new(8);
    f.register(b"record-0000000001", b"code");
    f.register(b"record-0000000002", b"code");
    let mark = f.nodes[0].store.state().unwrap().mark;
    assert_eq!(mark.position, 2, "both registrations were acknowledged");
    f.nodes[0].restart();
    // The host's disk was rolled back: it holds only the first entry and then other ones.
    f.nodes[0].hsm.apply(&f.log[0]);
    assert_eq!(f.nodes[0].hsm.status().status, Status::Behind { mark: mark.position });
    assert_eq!(f.nodes[0].hsm.ack(1), Err(Error::HsmStateBehind));
    while f.nodes[0].hsm.position() < mark.position {
        f.nodes[0].hsm.apply(&LogEntry::encode(0, b"\xa0"));
    }
    let s = f.nodes[0].hsm.status();
    assert!(matches!(s.status, Status::Diverged { position, .. } if position == mark.position), "{s:?}");
    assert_eq!(f.nodes[0].hsm.ack(mark.position), Err(Error::HsmStateDiverged));
    // The mark never moved back.
    assert_eq!(f.nodes[0].store.state().unwrap().mark, mark);
}

#[test]
fn snapshots_are_signed_and_one_above_the_mark_waits_for_a_quorum() {
    let mut f = Fleet::new(9);
    f.register(b"record-0000000001", b"code");
    let (_, _, _, _) = f.attempt(1, b"record-0000000001");
    let snap = f.nodes[1].hsm.snapshot();
    // Written straight from its structures, it is their deterministic encoding
    // (spec/conventions.md §3.2).
    let signed: Signed = cbor::from_slice(&snap).unwrap();
    assert_eq!(cbor::to_vec(&signed), snap);
    let inner: HsmSnapshot = cbor::from_slice(&signed.msg).unwrap();
    assert_eq!((cbor::to_vec(&inner), inner.to_bytes()), (signed.msg.clone(), signed.msg.clone()));
    // A tampered snapshot is refused and changes nothing.
    let mut bad = snap.clone();
    let n = bad.len();
    bad[n - 70] ^= 1;
    let before = f.nodes[2].hsm.status();
    assert_eq!(f.nodes[2].hsm.install(&bad), Err(Error::HsmSnapshotInvalid));
    assert_eq!(f.nodes[2].hsm.status(), before);
    // A fresh HSM (mark 0 < snapshot position) installs and is unverified.
    let mut fresh = Node::start(f.nodes[2].parts.clone(), Arc::new(MemoryStateStore::default()));
    fresh.hsm.install(&snap).unwrap();
    let position = fresh.hsm.position();
    assert_eq!(fresh.hsm.status().status, Status::Unverified { from: position });
    assert_eq!(fresh.hsm.ack(position), Err(Error::HsmStateUnverified));
    assert_eq!(fresh.hsm.verify(&f.acks(position, &[0])), Err(Error::HsmStateUnverified));
    fresh.hsm.verify(&f.acks(position, &[0, 1])).unwrap();
    assert_eq!(fresh.hsm.status().status, Status::Current);
    assert!(fresh.hsm.ack(position).is_ok());
    fresh.restart();
}

#[test]
fn a_retired_hsm_stays_retired_whatever_the_disk_says() {
    use crate::vault::VaultCommand;
    let mut f = Fleet::new(10);
    f.register(b"record-0000000001", b"code");
    let retire =
        cbor::to_vec(&VaultCommand::Retire { request_id: vec![7; 16], time: NOW, successor: vec![1; 32] });
    f.commit(LogEntry::encode(0, &retire), &[0, 1, 2]);
    assert!(f.nodes[0].store.state().unwrap().retired.is_some());
    assert_eq!(f.nodes[0].hsm.ack(1), Err(Error::HsmRetired));
    // Every disk rolled back to before the retirement: the HSM still refuses.
    f.nodes[0].restart();
    for e in &f.log[..2] {
        f.nodes[0].hsm.apply(e);
    }
    assert!(f.nodes[0].hsm.status().retired);
    assert_eq!(f.nodes[0].hsm.ack(1), Err(Error::HsmRetired));
    let (body, _) = RecoveryClient::start(&mut f.rng, b"record-0000000001", b"x").unwrap();
    let (p, wait) = f.begin(0, &body);
    let r = f.nodes[0].hsm.resume(&mut f.rng, p, 1, &[], NOW);
    assert_eq!(r.refused, Some(Error::HsmRetired));
    assert_eq!(wait.open(&r.sealed).unwrap_err(), Error::RotationFleetRetired);
}

#[test]
fn acknowledgement_rounds_batch_hsm_state_writes() {
    let mut f = Fleet::new(11);
    f.register(b"record-0000000001", b"code");
    let before = f.nodes[0].store.writes();
    // Ten entries, then one acknowledgement of the last: one write covers all ten.
    for _ in 0..10 {
        f.commit(LogEntry::encode(1, b"\xa0"), &[0]);
    }
    let k = f.nodes[0].hsm.position();
    f.nodes[0].hsm.ack(k).unwrap();
    for j in (k - 9)..=k {
        f.nodes[0].hsm.ack(j).unwrap();
    }
    assert_eq!(f.nodes[0].store.writes(), before + 1);
}

#[test]
fn the_client_action_is_unaffected_by_the_boundary() {
    // Recovery with the right code through the boundary releases the key.
    let mut f = Fleet::new(12);
    f.register(b"record-0000000001", b"code");
    let (body, rc) = RecoveryClient::start(&mut f.rng, b"record-0000000001", b"code").unwrap();
    let resp = f.serve(2, &body).unwrap();
    let ke2 = rc.receive(&resp).unwrap();
    let ctx = f.ctx.clone();
    let (body, wait) = ke2.finish(&mut f.rng, &ctx, ClientAction::Recover).unwrap();
    let resp = f.serve(2, &body).unwrap();
    assert!(wait.finish_recovered(&resp).is_ok());
}

#[test]
fn a_state_of_another_node_fleet_or_version_is_refused() {
    let f = Fleet::new(13);
    let parts = f.nodes[0].parts.clone();
    let start = |state: HsmState| {
        let session = SessionSecretKey::from_bytes(&parts.session).unwrap();
        Boundary::new(
            parts.cfg.clone(),
            SessionServer::new(FLEET, 1, "n0", session),
            VaultServer::new(VaultServerSetup::from_bytes(&parts.setup).unwrap(), FLEET),
            Ed25519Signer::from_seed(&parts.signing),
            state,
            Box::new(MemoryStateStore::default()),
        )
        .map(|_| ())
    };
    assert_eq!(start(HsmState::fresh(FLEET, 1, 0)), Ok(()));
    assert_eq!(start(HsmState::fresh(FLEET, 1, 1)), Err(Error::HsmStateInvalid), "another node's");
    assert_eq!(start(HsmState::fresh("other", 1, 0)), Err(Error::HsmStateInvalid), "another fleet's");
    assert_eq!(start(HsmState::fresh(FLEET, 2, 0)), Err(Error::HsmStateInvalid), "another epoch's");
    assert_eq!(start(HsmState { v: 2, ..HsmState::fresh(FLEET, 1, 0) }), Err(Error::HsmStateInvalid));
    let mut forged = HsmState::fresh(FLEET, 1, 0);
    forged.mark.chain = [7; 32];
    assert_eq!(start(forged), Err(Error::HsmStateInvalid), "a mark 0 that is not the genesis");
    assert_eq!(HsmState::decode(b"\xa0"), Err(Error::HsmStateInvalid));
}

#[test]
fn a_restart_from_its_own_snapshot_leaves_an_hsm_current() {
    let mut f = Fleet::new(14);
    f.register(b"record-0000000001", b"code");
    // Entries applied without any acknowledgement, then a snapshot, then a restart.
    for _ in 0..3 {
        f.commit(LogEntry::encode(1, b"\xa0"), &[0]);
    }
    let snap = f.nodes[0].hsm.snapshot();
    assert_eq!(f.nodes[0].store.state().unwrap().mark.position, 4, "the snapshot advanced the mark");
    f.nodes[0].restart();
    f.nodes[0].hsm.install(&snap).unwrap();
    assert_eq!(f.nodes[0].hsm.status().status, Status::Current);
}
