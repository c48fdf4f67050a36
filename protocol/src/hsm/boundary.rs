//! spec/hsm.md §4–§8: the HSM's side of every state-changing answer.

use super::HsmStateStore;
use super::chain::{
    ACK_PURPOSE, Ack, AppliedOutput, HsmSnapshot, HsmState, LogEntry, Mark, SNAPSHOT_PURPOSE, Signed,
    chain_next, genesis,
};
use crate::cbor;
use crate::crypto::{Algorithm, Ed25519Signer, PublicKey, Signer, ct_eq, sha256};
use crate::error::{Error, Result};
use crate::fleet_replication::rpc::{PURPOSE as RPC_PURPOSE, RpcMessage};
use crate::node_api::{Begun, CommitEvidence, NodeStep, PendingCommit};
use crate::session::SessionServer;
use crate::state_machine::StateMachine;
use crate::validation_bundle::{FleetKeySet, KeyRole};
use crate::vault::server::PENDING_LOGIN_MAX;
use crate::vault::{VaultCommand, VaultOutput, VaultServer, VaultStateMachine};
use rand_core::{CryptoRng, RngCore};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// spec/hsm.md §4.2 item 1: how many `(position, chain hash)` pairs an HSM remembers.
pub const RECENT: usize = 65_536;

/// What an HSM knows about its fleet (from the verified FleetKeySet).
#[derive(Debug, Clone)]
pub struct BoundaryConfig {
    /// Fleet id.
    pub fleet: String,
    /// Epoch.
    pub epoch: u64,
    /// This node's position in the FleetKeySet.
    pub node: u64,
    /// Acknowledgements (this HSM's included) needed for an answer (spec/hsm.md §5 E5).
    pub quorum: usize,
    /// Every node's `signing` key, by position.
    pub signing_keys: Vec<PublicKey>,
    /// The fleet's guess limit.
    pub guess_limit: u32,
    /// A successor fleet starts awaiting its predecessor's records (spec/rotation.md §5).
    pub awaiting_import: bool,
}

impl BoundaryConfig {
    /// The configuration of node `node` of a verified `keyset`.
    pub fn from_keyset(keyset: &FleetKeySet, node: u64) -> Result<Self> {
        let signing_keys = keyset
            .nodes
            .iter()
            .map(|n| {
                let k = n.key(KeyRole::Signing).ok_or(Error::CborSchema)?;
                PublicKey::new(Algorithm::from_cose_id(k.suite)?, k.key.clone())
            })
            .collect::<Result<Vec<_>>>()?;
        if node as usize >= signing_keys.len() {
            return Err(Error::HsmStateInvalid);
        }
        Ok(Self {
            fleet: keyset.fleet_id.clone(),
            epoch: keyset.epoch,
            node,
            quorum: keyset.quorum as usize,
            signing_keys,
            guess_limit: keyset.guess_limit,
            awaiting_import: keyset.prev.is_some(),
        })
    }
}

/// spec/hsm.md §4.1: where an HSM stands against its mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Re-applying entries up to its mark at `mark`.
    Behind {
        /// The mark's position.
        mark: u64,
    },
    /// At or beyond its mark, on the chain it acknowledged.
    Current,
    /// The entries fed to it differ from those it acknowledged at `position`.
    Diverged {
        /// The mark's position.
        position: u64,
        /// The mark's chain hash.
        expected: [u8; 32],
        /// The chain hash the fed entries gave there.
        found: [u8; 32],
    },
    /// A snapshot at `from`, above the mark, awaits a quorum of acknowledgements.
    Unverified {
        /// The snapshot's position.
        from: u64,
    },
}

impl Status {
    /// The spec/hsm.md §11 code of a status that refuses to answer.
    pub fn refusal(&self) -> Option<Error> {
        match self {
            Status::Current => None,
            Status::Behind { .. } => Some(Error::HsmStateBehind),
            Status::Diverged { .. } => Some(Error::HsmStateDiverged),
            Status::Unverified { .. } => Some(Error::HsmStateUnverified),
        }
    }

    /// `current`, `behind`, `diverged` or `unverified`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Current => "current",
            Status::Behind { .. } => "behind",
            Status::Diverged { .. } => "diverged",
            Status::Unverified { .. } => "unverified",
        }
    }
}

/// What an HSM reports about itself (spec/fleet-replication.md §9, spec/hsm.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmStatus {
    /// Entries applied.
    pub position: u64,
    /// The chain hash there.
    pub chain: [u8; 32],
    /// The mark in the HSM state.
    pub mark: Mark,
    /// Where it stands.
    pub status: Status,
    /// Whether it recorded its fleet's retirement.
    pub retired: bool,
    /// HSM-state writes since it started.
    pub writes: u64,
    /// The last failed HSM-state write, if any.
    pub store_error: Option<String>,
}

/// The outcome of [`Boundary::resume`]: the sealed answer, and why the HSM refused, if it did.
#[derive(Debug)]
pub struct Resumed {
    /// The sealed `SessionResponse` to send.
    pub sealed: Vec<u8>,
    /// The spec/hsm.md §11 code when the answer is a refusal (`fleet.unavailable` to the client).
    pub refused: Option<Error>,
}

struct Answerable {
    command: Vec<u8>,
    output: Vec<u8>,
}

struct Inner {
    vault: VaultStateMachine,
    position: u64,
    chain: [u8; 32],
    recent: VecDeque<(u64, [u8; 32])>,
    answerable: BTreeMap<u64, Answerable>,
    /// Entries at or below this position (the mark this HSM started with) are never answered.
    start_mark: u64,
    durable: HsmState,
    status: Status,
    store_error: Option<String>,
}

impl Inner {
    fn hash_at(&self, position: u64) -> Option<[u8; 32]> {
        let first = self.recent.front()?.0;
        let i = usize::try_from(position.checked_sub(first)?).ok()?;
        self.recent.get(i).map(|(_, h)| *h)
    }

    fn remember(&mut self, position: u64, chain: [u8; 32]) {
        if self.recent.back().is_some_and(|(p, _)| *p + 1 != position) {
            self.recent.clear();
        }
        self.recent.push_back((position, chain));
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// spec/hsm.md §4.1: the status from the position, the remembered hashes and the mark.
    fn reconcile(&mut self) {
        let m = self.durable.mark;
        self.status = if self.position < m.position {
            Status::Behind { mark: m.position }
        } else {
            match self.hash_at(m.position) {
                Some(h) if ct_eq(&h, &m.chain) => Status::Current,
                Some(found) => Status::Diverged { position: m.position, expected: m.chain, found },
                None => Status::Unverified { from: self.recent.front().map_or(self.position, |r| r.0) },
            }
        };
    }

    fn serving(&self) -> Result<()> {
        if self.durable.retired.is_some() {
            return Err(Error::HsmRetired);
        }
        match self.status.refusal() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// One node's HSM (spec/hsm.md). `Send + Sync`: the host shares it behind an `Arc`.
pub struct Boundary {
    cfg: BoundaryConfig,
    step: NodeStep,
    signer: Ed25519Signer,
    inner: Mutex<Inner>,
    persist: Mutex<()>,
    store: Box<dyn HsmStateStore>,
    writes: AtomicU64,
}

impl core::fmt::Debug for Boundary {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Boundary").field("fleet", &self.cfg.fleet).field("node", &self.cfg.node).finish()
    }
}

impl Boundary {
    /// The HSM of node `cfg.node` with its engines, its `signing` key and the HSM `state`
    /// it kept (spec/hsm.md §2), writing later states to `store`. `hsm.state.invalid` when
    /// `state` is another fleet's, epoch's or node's, or `signing` is not the node's key.
    pub fn new(
        cfg: BoundaryConfig,
        session: SessionServer,
        vault: VaultServer,
        signing: Ed25519Signer,
        state: HsmState,
        store: Box<dyn HsmStateStore>,
    ) -> Result<Self> {
        if state.v != 1
            || state.fleet != cfg.fleet
            || state.epoch != cfg.epoch
            || state.node != cfg.node
            || cfg.signing_keys.get(cfg.node as usize) != Some(signing.public_key())
            || (state.mark.position == 0 && state.mark.chain != genesis(&cfg.fleet, cfg.epoch))
        {
            return Err(Error::HsmStateInvalid);
        }
        let vault_sm = if cfg.awaiting_import {
            VaultStateMachine::awaiting_import(cfg.guess_limit)
        } else {
            VaultStateMachine::new(cfg.guess_limit)
        };
        let genesis = genesis(&cfg.fleet, cfg.epoch);
        let mut inner = Inner {
            vault: vault_sm,
            position: 0,
            chain: genesis,
            recent: VecDeque::from([(0, genesis)]),
            answerable: BTreeMap::new(),
            start_mark: state.mark.position,
            durable: state,
            status: Status::Current,
            store_error: None,
        };
        inner.reconcile();
        Ok(Self {
            cfg,
            step: NodeStep::new(session, vault),
            signer: signing,
            inner: Mutex::new(inner),
            persist: Mutex::new(()),
            store,
            writes: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("HSM state lock")
    }

    fn key_of(&self, node: u64) -> Option<PublicKey> {
        self.cfg.signing_keys.get(usize::try_from(node).ok()?).cloned()
    }

    /// This node's position in the FleetKeySet.
    pub fn node(&self) -> u64 {
        self.cfg.node
    }

    /// The node's `signing` public key.
    pub fn signing_key(&self) -> &PublicKey {
        self.signer.public_key()
    }

    /// The fleet's OPAQUE server public key.
    pub fn opaque_public_key(&self) -> [u8; 32] {
        self.step.vault().public_key()
    }

    /// Logins waiting for their KE3 (spec/vault.md §7.3).
    pub fn pending_logins(&self) -> usize {
        self.step.vault().pending_logins()
    }

    /// Where the HSM stands (spec/hsm.md §4.1).
    pub fn status(&self) -> HsmStatus {
        let i = self.lock();
        HsmStatus {
            position: i.position,
            chain: i.chain,
            mark: i.durable.mark,
            status: i.status,
            retired: i.durable.retired.is_some(),
            writes: self.writes.load(Ordering::Relaxed),
            store_error: i.store_error.clone(),
        }
    }

    /// Entries applied so far.
    pub fn position(&self) -> u64 {
        self.lock().position
    }

    /// spec/vault.md §7.1 N1, N2 (spec/node-api.md §5.1 begin).
    pub fn begin<R: RngCore + CryptoRng>(&self, rng: &mut R, request: &[u8], now: u64) -> Begun {
        self.step.begin(rng, request, now)
    }

    /// spec/hsm.md §3.1: the `LogEntry` the host proposes for `pending` (bound to this node).
    pub fn entry(&self, pending: &PendingCommit) -> Vec<u8> {
        LogEntry::encode(self.cfg.node, pending.command())
    }

    /// spec/hsm.md §4.2: apply the committed entry `entry` at the next position; the
    /// `AppliedOutput` bytes.
    pub fn apply(&self, entry: &[u8]) -> Vec<u8> {
        let mut i = self.lock();
        let k = i.position + 1;
        let chain = chain_next(&i.chain, k, entry);
        let decoded = LogEntry::decode(entry);
        let (mut output, node, command) = match decoded {
            Ok(e) => (i.vault.apply(&e.command), Some(e.node), e.command),
            Err(err) => (cbor::to_vec(&VaultOutput::Error { code: err.code().into() }), None, Vec::new()),
        };
        i.position = k;
        i.chain = chain;
        i.remember(k, chain);
        if matches!(i.status, Status::Behind { .. }) {
            i.reconcile();
            if let Status::Diverged { .. } = i.status {
                // spec/hsm.md §4.1: the host fed other entries than the acknowledged ones.
                i.answerable.clear();
            }
        }
        // spec/hsm.md §8: retirement and destruction go into the HSM state first.
        if let Ok(out) = cbor::from_slice::<VaultOutput>(&output) {
            let mut changed = false;
            match out {
                VaultOutput::Retired { .. } => {
                    if let Ok(VaultCommand::Retire { successor, .. }) = cbor::from_slice(&command)
                        && let Ok(digest) = <[u8; 32]>::try_from(successor.as_slice())
                        && i.durable.retired != Some(digest)
                    {
                        i.durable.retired = Some(digest);
                        changed = true;
                    }
                    // §8.2: an export only from an HSM at or beyond its mark.
                    if let Some(e) = i.status.refusal() {
                        output = cbor::to_vec(&VaultOutput::Error { code: e.code().into() });
                    }
                }
                VaultOutput::Destroyed if !i.durable.destroyed => {
                    i.durable.destroyed = true;
                    changed = true;
                }
                _ => {}
            }
            if changed {
                let state = i.durable.clone();
                self.write_state(&mut i, &state);
            }
        }
        if node == Some(self.cfg.node) && k > i.start_mark {
            i.answerable.insert(k, Answerable { command, output: output.clone() });
            while i.answerable.len() > PENDING_LOGIN_MAX {
                i.answerable.pop_first();
            }
        }
        cbor::to_vec(&AppliedOutput { position: k, output })
    }

    fn write_state(&self, i: &mut Inner, state: &HsmState) -> bool {
        match self.store.write(state) {
            Ok(()) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                i.store_error = None;
                true
            }
            Err(e) => {
                i.store_error = Some(e);
                false
            }
        }
    }

    /// spec/vault.md §8.3: a read-only query of the vault.
    pub fn query(&self, query: &[u8]) -> Vec<u8> {
        self.lock().vault.query(query)
    }

    /// SHA-256 of the vault's snapshot bytes (convergence checks; no secrets).
    pub fn state_digest(&self) -> [u8; 32] {
        sha256(&self.lock().vault.snapshot())
    }

    /// spec/hsm.md §6 rule 1: a `SignedSnapshot` of the current state and position. A
    /// current HSM first advances its mark to that position, so that its own snapshot is
    /// never above its mark when it restarts from it.
    pub fn snapshot(&self) -> Vec<u8> {
        let position = self.position();
        if self.lock().status == Status::Current {
            // A failed write leaves the mark where it was; the snapshot is still valid.
            let _ = self.persist_to(position);
        }
        let snap = {
            let i = self.lock();
            HsmSnapshot {
                v: 1,
                purpose: SNAPSHOT_PURPOSE.into(),
                fleet: self.cfg.fleet.clone(),
                epoch: self.cfg.epoch,
                node: self.cfg.node,
                position: i.position,
                chain: i.chain,
                state: i.vault.snapshot(),
            }
        };
        Signed::sign_bytes(snap.to_bytes(), &self.signer)
    }

    /// spec/hsm.md §6 rules 2–4: install a `SignedSnapshot`; nothing changes on error.
    pub fn install(&self, bytes: &[u8]) -> Result<()> {
        let snap = HsmSnapshot::open(bytes, &self.cfg.fleet, self.cfg.epoch, |n| self.key_of(n))?;
        let vault = VaultStateMachine::restore(&snap.state).map_err(|_| Error::HsmSnapshotInvalid)?;
        if vault.guess_limit() != self.cfg.guess_limit {
            return Err(Error::HsmSnapshotInvalid);
        }
        let mut i = self.lock();
        i.vault = vault;
        i.position = snap.position;
        i.chain = snap.chain;
        i.recent = VecDeque::from([(snap.position, snap.chain)]);
        i.answerable.clear();
        i.reconcile();
        Ok(())
    }

    /// spec/hsm.md §6 rule 4: leave the unverified status with acknowledgements from
    /// `quorum` other nodes of positions at or after the snapshot on this HSM's chain.
    /// `Ok` when the HSM is current afterwards.
    pub fn verify(&self, acks: &[Vec<u8>]) -> Result<()> {
        let target = {
            let i = self.lock();
            let Status::Unverified { from } = i.status else {
                return i.status.refusal().map_or(Ok(()), Err);
            };
            let mut nodes = BTreeSet::new();
            let mut lowest: Option<u64> = None;
            for a in acks {
                let Some(ack) = Ack::open(a, &self.cfg.fleet, self.cfg.epoch, |n| self.key_of(n)) else {
                    continue;
                };
                if ack.node == self.cfg.node || ack.position < from {
                    continue;
                }
                if i.hash_at(ack.position).is_some_and(|h| ct_eq(&h, &ack.chain)) && nodes.insert(ack.node) {
                    lowest = Some(lowest.map_or(ack.position, |l| l.min(ack.position)));
                }
            }
            match lowest {
                Some(j) if nodes.len() >= self.cfg.quorum => {
                    Mark { position: j, chain: i.hash_at(j).expect("checked above") }
                }
                _ => return Err(Error::HsmStateUnverified),
            }
        };
        let _g = self.persist.lock().expect("persist lock");
        let mut i = self.lock();
        if !matches!(i.status, Status::Unverified { .. }) || i.hash_at(target.position) != Some(target.chain)
        {
            return i.status.refusal().map_or(Ok(()), Err);
        }
        let mut state = i.durable.clone();
        state.mark = target;
        if !self.write_state(&mut i, &state) {
            return Err(Error::HsmStateUnverified);
        }
        i.durable = state;
        i.status = Status::Current;
        Ok(())
    }

    /// spec/hsm.md §4.3, §4.4: make the durable mark cover `position`.
    fn persist_to(&self, position: u64) -> Result<()> {
        let _g = self.persist.lock().expect("persist lock");
        let mut i = self.lock();
        if i.durable.mark.position >= position {
            return Ok(());
        }
        i.serving()?;
        if position > i.position {
            return Err(Error::HsmCommitUnknown);
        }
        let mut state = i.durable.clone();
        state.mark = Mark { position: i.position, chain: i.chain };
        // The write happens under the lock: a real HSM's NVRAM update is one internal
        // operation; concurrent requests wait and find their position covered (§4.4).
        if !self.write_state(&mut i, &state) {
            return Err(Error::FleetUnavailable);
        }
        i.durable = state;
        Ok(())
    }

    /// spec/hsm.md §4.3: a `SignedAck` of `position` on this HSM's chain.
    pub fn ack(&self, position: u64) -> Result<Vec<u8>> {
        let chain = {
            let i = self.lock();
            i.serving()?;
            if position > i.position {
                return Err(Error::HsmStateBehind);
            }
            i.hash_at(position).ok_or(Error::HsmCommitUnknown)?
        };
        self.persist_to(position)?;
        let i = self.lock();
        i.serving()?;
        if i.hash_at(position) != Some(chain) || i.durable.mark.position < position {
            return Err(Error::HsmCommitUnknown);
        }
        drop(i);
        let ack = Ack {
            v: 1,
            purpose: ACK_PURPOSE.into(),
            fleet: self.cfg.fleet.clone(),
            epoch: self.cfg.epoch,
            node: self.cfg.node,
            position,
            chain,
        };
        Ok(Signed::sign(&ack, &self.signer))
    }

    /// spec/hsm.md §5: the sealed answer to `pending`, committed (the host says) at
    /// `position`, with the acknowledgements `acks`. Every failure of E1–E5 seals
    /// `fleet.unavailable` and names the reason in [`Resumed::refused`].
    pub fn resume<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        pending: PendingCommit,
        position: u64,
        acks: &[Vec<u8>],
        now: u64,
    ) -> Resumed {
        match self.prove(&pending, position, acks) {
            Ok(output) => Resumed {
                sealed: pending.resume(&self.step, rng, CommitEvidence::host_reported(output), now),
                refused: None,
            },
            // A retired HSM tells the client so itself (spec/rotation.md §3 RT3).
            Err(Error::HsmRetired) => Resumed {
                sealed: pending.refuse(rng, Error::RotationFleetRetired),
                refused: Some(Error::HsmRetired),
            },
            Err(e) => Resumed { sealed: pending.unavailable(rng), refused: Some(e) },
        }
    }

    /// spec/hsm.md §5 E1–E5; the output to answer with, marked used.
    fn prove(&self, pending: &PendingCommit, position: u64, acks: &[Vec<u8>]) -> Result<Vec<u8>> {
        // E1, E2, E3.
        let own = {
            let i = self.lock();
            i.serving()?;
            let a = i.answerable.get(&position).ok_or(Error::HsmCommitUnknown)?;
            if a.command != pending.command() {
                return Err(Error::HsmCommitUnknown);
            }
            i.hash_at(position).ok_or(Error::HsmCommitUnknown)?
        };
        // E4.
        self.persist_to(position)?;
        // E5.
        let mut nodes = BTreeSet::from([self.cfg.node]);
        for a in acks {
            if nodes.len() >= self.cfg.quorum {
                break;
            }
            if let Some(ack) = Ack::open(a, &self.cfg.fleet, self.cfg.epoch, |n| self.key_of(n))
                && ack.position == position
                && ct_eq(&ack.chain, &own)
            {
                nodes.insert(ack.node);
            }
        }
        if nodes.len() < self.cfg.quorum {
            return Err(Error::HsmCommitUnproven);
        }
        let mut i = self.lock();
        i.serving()?;
        if i.hash_at(position) != Some(own) {
            return Err(Error::HsmCommitUnknown);
        }
        let a = i.answerable.remove(&position).ok_or(Error::HsmCommitUnknown)?;
        Ok(a.output)
    }

    /// spec/hsm.md §7: sign bytes for the host only if they are an `RpcMessage`.
    pub fn sign_rpc(&self, message: &[u8]) -> Option<Vec<u8>> {
        let msg: RpcMessage = cbor::from_slice(message).ok()?;
        (msg.v == 1 && msg.purpose == RPC_PURPOSE).then(|| self.signer.sign(message))
    }
}

/// The node key as the host's RPC transport sees it (spec/hsm.md §7): signs `RpcMessage`s
/// only; any other bytes get an empty signature, which no receiver accepts.
#[derive(Debug, Clone)]
pub struct RpcSigner(pub std::sync::Arc<Boundary>);

impl Signer for RpcSigner {
    fn public_key(&self) -> &PublicKey {
        self.0.signing_key()
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign_rpc(message).unwrap_or_default()
    }
}

/// The vault state machine as the host's replicated log drives it: every call goes into
/// the HSM (spec/hsm.md §4.2, §6).
#[derive(Debug, Clone)]
pub struct HsmMachine(pub std::sync::Arc<Boundary>);

impl StateMachine for HsmMachine {
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        self.0.apply(command)
    }
    fn query(&self, query: &[u8]) -> Vec<u8> {
        self.0.query(query)
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.snapshot()
    }
    /// An HSM is installed into, never built from bytes.
    fn restore(_snapshot: &[u8]) -> Result<Self> {
        Err(Error::HsmSnapshotInvalid)
    }
    fn install(&mut self, snapshot: &[u8]) -> Result<()> {
        self.0.install(snapshot)
    }
    fn digest(&self) -> Vec<u8> {
        self.0.state_digest().to_vec()
    }
}
