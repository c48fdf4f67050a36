//! spec/node-api.md §5: the node step, spec/vault.md §7.1 N1–N5 as one sans-I/O type.
//!
//! A node runs, for each `POST /v1/session`:
//!
//! 1. [`NodeStep::begin`] (N1 open the session, N2 validate the vault request): either
//!    [`Begun::Reply`], a sealed answer to send now, or [`Begun::Commit`], a
//!    [`PendingCommit`] naming the command to commit;
//! 2. the host commits [`PendingCommit::command`] through its replicated log (N3);
//! 3. [`PendingCommit::resume`] with the [`CommitEvidence`] of that commit (N4, N5)
//!    returns the sealed answer; [`PendingCommit::unavailable`] when the log could not
//!    commit (`fleet.unavailable`, and in particular no KE2).
//!
//! ```
//! use bkv_protocol::node_api::{Begun, CommitEvidence, NodeStep};
//! use bkv_protocol::state_machine::StateMachine;
//! use bkv_protocol::vault::VaultStateMachine;
//!
//! fn serve(
//!     node: &NodeStep,
//!     log: &mut VaultStateMachine, // a node commits through its replicated log here
//!     rng: &mut rand_core::OsRng,
//!     request: &[u8],
//!     now: u64,
//! ) -> Vec<u8> {
//!     match node.begin(rng, request, now) {
//!         Begun::Reply(sealed) => sealed,
//!         Begun::Commit(pending) => {
//!             let output = log.apply(pending.command()); // committed and applied
//!             pending.resume(node, rng, CommitEvidence::host_reported(output), now)
//!         }
//!     }
//! }
//! ```
//!
//! A fleet node never hands the step a host-reported output: its HSM
//! ([`crate::hsm::Boundary`], spec/hsm.md §5) owns the step, applies the committed entry
//! itself, verifies a quorum of the fleet's HSMs' signed acknowledgements, and only then
//! resumes the step with the output it computed. [`CommitEvidence::host_reported`] is for
//! callers without a fleet: the conformance vectors and benchmarks of the step alone.

use crate::error::{Error, Result};
use crate::session::{self, RequestId, Responder, SessionServer};
use crate::vault::VaultServer;
use crate::vault::server::{Proposal, Step};
use rand_core::{CryptoRng, RngCore};

/// A node's request pipeline: its HSM's session engine and the [`VaultStep`].
#[derive(Debug)]
pub struct NodeStep {
    session: SessionServer,
    vault: VaultStep,
}

/// N2 and N4 for vault bodies without their session (spec/vault.md §7.1); the conformance
/// vectors of spec/vault.md drive it directly, a node drives it through [`NodeStep`].
#[derive(Debug)]
pub struct VaultStep {
    vault: VaultServer,
}

/// What [`NodeStep::begin`] decided.
#[derive(Debug)]
pub enum Begun {
    /// Send these bytes now (an unsealed session error, a sealed error, or a sealed
    /// answer that needs no commit).
    Reply(Vec<u8>),
    /// Commit [`PendingCommit::command`], then resume.
    Commit(PendingCommit),
}

/// A request waiting for its command to be committed (spec/vault.md §7.1 N3).
#[derive(Debug)]
pub struct PendingCommit {
    vault: VaultPending,
    responder: Responder,
}

/// What [`VaultStep::begin`] decided for a vault body without its session.
#[derive(Debug)]
pub enum VaultBegun {
    /// Answer with this `VaultResponse` body (no state changes).
    Reply(Vec<u8>),
    /// Commit [`VaultPending::command`], then resume.
    Commit(VaultPending),
}

/// A vault body waiting for its command to be committed.
#[derive(Debug)]
pub struct VaultPending(Proposal);

/// spec/node-api.md §5.2: why the host may resume a [`PendingCommit`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitEvidence {
    /// The output of applying the committed command, as the host's log reports it. The
    /// step trusts the host for it (spec/node-api.md §5.2).
    HostReported {
        /// The `VaultOutput` bytes (spec/vault.md §8).
        output: Vec<u8>,
    },
}

impl CommitEvidence {
    /// Evidence that is the host log's report of the command's output.
    pub fn host_reported(output: Vec<u8>) -> Self {
        CommitEvidence::HostReported { output }
    }
}

impl NodeStep {
    /// The pipeline of a node whose HSM holds `session` and `vault`.
    pub fn new(session: SessionServer, vault: VaultServer) -> Self {
        Self { session, vault: VaultStep::new(vault) }
    }

    /// The node's session engine (for its public key).
    pub fn session(&self) -> &SessionServer {
        &self.session
    }

    /// The node's vault front end (for its public key and pending-login count).
    pub fn vault(&self) -> &VaultServer {
        &self.vault.vault
    }

    /// N1 and N2 for the sealed `request` at node time `now`.
    pub fn begin<R: RngCore + CryptoRng>(&self, rng: &mut R, request: &[u8], now: u64) -> Begun {
        let opened = match self.session.open(request, now) {
            Ok(o) => o,
            Err(e) => return Begun::Reply(session::reject(e)),
        };
        match self.vault.begin(rng, opened.request_id, opened.time, &opened.body, now) {
            Err(e) => Begun::Reply(opened.responder.seal(rng, Err(e))),
            Ok(VaultBegun::Reply(body)) => Begun::Reply(opened.responder.seal(rng, Ok(body))),
            Ok(VaultBegun::Commit(vault)) => {
                Begun::Commit(PendingCommit { vault, responder: opened.responder })
            }
        }
    }
}

impl VaultStep {
    /// The vault step of a node holding `vault`.
    pub fn new(vault: VaultServer) -> Self {
        Self { vault }
    }

    /// The vault front end (for its public key and pending-login count).
    pub fn vault(&self) -> &VaultServer {
        &self.vault
    }

    /// N2 for the body of an opened request (`request_id` and `time` from the session,
    /// spec/session.md §5) at node time `now`.
    pub fn begin<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        request_id: RequestId,
        time: u64,
        body: &[u8],
        now: u64,
    ) -> Result<VaultBegun> {
        Ok(match self.vault.handle(rng, request_id, time, body, now)? {
            Step::Reply(body) => VaultBegun::Reply(body),
            Step::Propose(p) => VaultBegun::Commit(VaultPending(p)),
        })
    }
}

impl VaultPending {
    /// The deterministic-CBOR `VaultCommand` to commit.
    pub fn command(&self) -> &[u8] {
        self.0.command()
    }

    /// N4: the `VaultResponse` body once the command is committed with `evidence`.
    pub fn resume<R: RngCore + CryptoRng>(
        self,
        step: &VaultStep,
        rng: &mut R,
        evidence: CommitEvidence,
        now: u64,
    ) -> Result<Vec<u8>> {
        match evidence {
            CommitEvidence::HostReported { output } => self.0.committed(&step.vault, rng, &output, now),
        }
    }
}

impl PendingCommit {
    /// The deterministic-CBOR `VaultCommand` to commit (N3).
    pub fn command(&self) -> &[u8] {
        self.vault.command()
    }

    /// N4 and N5: the sealed answer once the command is committed with `evidence`.
    pub fn resume<R: RngCore + CryptoRng>(
        self,
        node: &NodeStep,
        rng: &mut R,
        evidence: CommitEvidence,
        now: u64,
    ) -> Vec<u8> {
        let result = self.vault.resume(&node.vault, rng, evidence, now);
        self.responder.seal(rng, result)
    }

    /// N3 failed: the sealed `fleet.unavailable`; nothing else happens, no KE2.
    pub fn unavailable<R: RngCore + CryptoRng>(self, rng: &mut R) -> Vec<u8> {
        self.responder.seal(rng, Err(Error::FleetUnavailable))
    }

    /// spec/hsm.md §5: the HSM refuses with `error` (sealed); nothing else happens.
    pub(crate) fn refuse<R: RngCore + CryptoRng>(self, rng: &mut R, error: Error) -> Vec<u8> {
        self.responder.seal(rng, Err(error))
    }

    /// The record id of a recovery attempt (`recover_start`), which the node's rate limit
    /// counts before anything is committed (spec/node-api.md §6); `None` for other requests.
    pub fn attempt_record(&self) -> Option<&[u8]> {
        self.vault.0.attempt_record()
    }

    /// spec/node-api.md §6: the node's rate limit refuses this attempt before N3; the
    /// sealed `vault.attempt.rate_limited`. Nothing was committed, nothing was counted.
    pub fn rate_limited<R: RngCore + CryptoRng>(self, rng: &mut R) -> Vec<u8> {
        self.responder.seal(rng, Err(Error::VaultAttemptRateLimited))
    }
}

#[cfg(test)]
mod tests {
    /// spec/node-api.md §5.1: the vault's front end and its commit step are called from
    /// this module only, so the node pipeline exists once.
    #[test]
    fn only_the_node_step_drives_the_vault_server() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut offenders = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("readable source tree") {
                let path = entry.expect("dir entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if path.is_dir() {
                    if !matches!(name, "target" | ".git" | "corpus" | "node_modules") {
                        stack.push(path);
                    }
                    continue;
                }
                if !name.ends_with(".rs") || path.ends_with("protocol/src/node_api/step.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    let definition = code.contains("fn handle") || code.contains("fn committed");
                    if !definition && (code.contains(".committed(") || code.contains("vault.handle(")) {
                        offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "the node pipeline is driven outside node_api::step:\n{}",
            offenders.join("\n")
        );
    }
}
