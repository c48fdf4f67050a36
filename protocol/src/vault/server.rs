//! The node side of the vault: the OPAQUE server steps around the replicated log.
//!
//! spec/vault.md §7. The steps that need server randomness or hold per-login state (KE2
//! generation, the `ServerLogin` between KE1 and KE3) cannot be part of the deterministic
//! [`super::VaultStateMachine`]. A node therefore runs, for each opened request:
//!
//! 1. [`VaultServer::handle`]: validate the body; either answer at once
//!    ([`Step::Reply`]) or return a [`Proposal`] holding the command to commit;
//! 2. `CommandLog::propose(proposal.command())`: commit durably, get the output;
//! 3. [`Proposal::committed`]: only now compute KE2 / release the key, and return the
//!    response body to seal.
//!
//! The node's pipeline around these steps is [`crate::node_api::step`], the only caller of
//! [`VaultServer::handle`] and [`Proposal::committed`].

use super::state::VaultOutput;
use super::{
    FinishAction, OPRF_SALT_LEN, OpaqueSuite, STORED_REGISTRATION_LEN, VaultRequest, VaultResponse,
    WRAPPED_KEY_LEN, check_record_id, check_salt, credential_identifier, opaque_context, opaque_decode,
};
use crate::cbor;
use crate::error::{Error, Result};
use crate::session::{REQUEST_WINDOW_SECS, RequestId};
use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload, ServerLogin,
    ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand_core::{CryptoRng, RngCore};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use zeroize::Zeroizing;

use super::state::VaultCommand;

/// A pending login is kept at most this long after its KE2 (spec/vault.md §7.3).
pub const PENDING_LOGIN_TTL_SECS: u64 = REQUEST_WINDOW_SECS;
/// At most this many pending logins per node; the oldest is dropped first (spec/vault.md §7.3).
pub const PENDING_LOGIN_MAX: usize = 65_536;

/// The fleet-wide OPAQUE server setup: OPRF seed, server key pair and the fake-record key
/// (spec/vault.md §2.3). Every node of a fleet MUST hold the same one.
#[derive(Clone)]
pub struct VaultServerSetup(ServerSetup<OpaqueSuite>);

impl core::fmt::Debug for VaultServerSetup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VaultServerSetup").field("public_key", &hex::encode(self.public_key())).finish()
    }
}

impl VaultServerSetup {
    /// Generate a fleet's setup (once per fleet, then copied to every node's HSM).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(ServerSetup::new(rng))
    }

    /// The serialized setup (opaque-ke's `ServerSetup::serialize`). Secret: zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.serialize().to_vec())
    }

    /// Load a serialized setup; `vault.setup.invalid` when it does not decode.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let setup = ServerSetup::<OpaqueSuite>::deserialize(bytes).map_err(|_| Error::VaultSetupInvalid)?;
        if setup.serialize().as_slice() != bytes {
            return Err(Error::VaultSetupInvalid);
        }
        Ok(Self(setup))
    }

    /// The OPAQUE server public key: the `opaque` key of every node in the FleetKeySet.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.0.keypair().public().serialize());
        out
    }
}

struct PendingLogin {
    record: Vec<u8>,
    generation: u64,
    login: ServerLogin<OpaqueSuite>,
    wrapped_key: Zeroizing<Vec<u8>>,
}

/// A node's vault front end (spec/vault.md §7). `Send + Sync`: share it behind an `Arc`.
pub struct VaultServer {
    setup: VaultServerSetup,
    fleet_id: String,
    context: Vec<u8>,
    pending: Mutex<PendingLogins>,
}

/// The pending logins by id, with the same ids ordered by creation time, so that expiry and
/// the eviction of the oldest (spec/vault.md §7.3) cost only what they remove: a KE1 never
/// walks every pending login (which, near the cap, cost more than the KE1's cryptography).
struct PendingLogins<T = PendingLogin> {
    by_id: BTreeMap<RequestId, (u64, T)>,
    by_time: BTreeSet<(u64, RequestId)>,
}

impl<T> Default for PendingLogins<T> {
    fn default() -> Self {
        Self { by_id: BTreeMap::new(), by_time: BTreeSet::new() }
    }
}

impl<T> PendingLogins<T> {
    /// Drop the logins older than [`PENDING_LOGIN_TTL_SECS`] at `now`.
    fn expire(&mut self, now: u64) {
        while let Some(&(created, id)) = self.by_time.first() {
            if now.saturating_sub(created) <= PENDING_LOGIN_TTL_SECS {
                break;
            }
            self.by_time.pop_first();
            self.by_id.remove(&id);
        }
    }

    /// Keep `login`, created at `now`, under `id`: expired logins are dropped first, then
    /// the oldest beyond [`PENDING_LOGIN_MAX`].
    fn insert(&mut self, id: RequestId, login: T, now: u64) {
        self.expire(now);
        while self.by_id.len() >= PENDING_LOGIN_MAX {
            let Some((_, oldest)) = self.by_time.pop_first() else { break };
            self.by_id.remove(&oldest);
        }
        self.by_time.insert((now, id));
        if let Some((old, _)) = self.by_id.insert(id, (now, login)) {
            self.by_time.remove(&(old, id));
        }
    }

    /// Take the login `id` out, if it is pending and not expired at `now`.
    fn take(&mut self, id: &RequestId, now: u64) -> Option<T> {
        self.expire(now);
        let (created, login) = self.by_id.remove(id)?;
        self.by_time.remove(&(created, *id));
        Some(login)
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }
}

impl core::fmt::Debug for VaultServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VaultServer").field("fleet_id", &self.fleet_id).finish_non_exhaustive()
    }
}

/// What to do with a request after [`VaultServer::handle`].
#[derive(Debug)]
pub(crate) enum Step {
    /// Answer now with this `VaultResponse` body (no state changes).
    Reply(Vec<u8>),
    /// Commit [`Proposal::command`] through the command log, then call [`Proposal::committed`].
    Propose(Proposal),
}

/// A command to commit and what to do once it is committed.
pub(crate) struct Proposal {
    command: Vec<u8>,
    then: Then,
}

impl core::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Proposal").field("command_len", &self.command.len()).finish_non_exhaustive()
    }
}

enum Then {
    Registered,
    AttemptStarted { request_id: RequestId, record: Vec<u8>, ke1: Box<CredentialRequest<OpaqueSuite>> },
    Released { wrapped_key: Zeroizing<Vec<u8>> },
    Rekeyed,
    Deleted,
}

impl VaultServer {
    /// The vault front end of a node of fleet `fleet_id` holding the fleet's `setup`.
    pub fn new(setup: VaultServerSetup, fleet_id: &str) -> Self {
        Self {
            context: opaque_context(fleet_id),
            fleet_id: fleet_id.to_owned(),
            setup,
            pending: Mutex::new(PendingLogins::default()),
        }
    }

    /// The OPAQUE server public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.setup.public_key()
    }

    /// Number of logins waiting for their KE3.
    pub fn pending_logins(&self) -> usize {
        self.pending.lock().expect("pending-login lock").len()
    }

    fn params(&self) -> ServerLoginParameters<'_, '_> {
        ServerLoginParameters { context: Some(&self.context), identifiers: Default::default() }
    }

    /// spec/vault.md §7.1 step N2: handle the body of an opened session request.
    ///
    /// `request_id` and `time` come from the session (spec/session.md §5); `now` is the
    /// node's clock. Errors are sealed to the client with the request's responder.
    /// `rng` draws the OPRF salt of a `register_start`.
    pub(crate) fn handle<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        request_id: RequestId,
        time: u64,
        body: &[u8],
        now: u64,
    ) -> Result<Step> {
        let request: VaultRequest = cbor::from_slice(body)?;
        let rid = request_id.to_vec();
        match request {
            VaultRequest::RegisterStart { record, request } => {
                check_record_id(&record)?;
                let request = opaque_decode!(RegistrationRequest<OpaqueSuite>, &request)?;
                // A fresh salt, so this OPRF evaluation is under a key no stored record
                // uses (spec/vault.md §2.2, §10).
                let mut salt = vec![0u8; OPRF_SALT_LEN];
                rng.fill_bytes(&mut salt);
                let id = credential_identifier(&record, &salt);
                let result = ServerRegistration::<OpaqueSuite>::start(&self.setup.0, request, &id)
                    .map_err(|_| Error::VaultMessageInvalid)?;
                let response = result.message.serialize().to_vec();
                Ok(Step::Reply(cbor::to_vec(&VaultResponse::RegisterStart { response, salt })))
            }
            VaultRequest::RegisterFinish { record, salt, upload, wrapped_key } => {
                check_record_id(&record)?;
                let registration = self.registration_from_upload(&salt, &upload)?;
                check_wrapped(&wrapped_key)?;
                let command =
                    VaultCommand::Register { request_id: rid, time, record, registration, wrapped_key };
                Ok(Step::Propose(Proposal { command: cbor::to_vec(&command), then: Then::Registered }))
            }
            VaultRequest::RecoverStart { record, ke1 } => {
                check_record_id(&record)?;
                let ke1 = opaque_decode!(CredentialRequest<OpaqueSuite>, &ke1)?;
                let command = VaultCommand::AttemptStart { request_id: rid, time, record: record.clone() };
                Ok(Step::Propose(Proposal {
                    command: cbor::to_vec(&command),
                    then: Then::AttemptStarted { request_id, record, ke1: Box::new(ke1) },
                }))
            }
            VaultRequest::RecoverFinish { login, ke3, action } => {
                let login: RequestId = login.as_slice().try_into().map_err(|_| Error::CborSchema)?;
                let ke3 = opaque_decode!(CredentialFinalization<OpaqueSuite>, &ke3)?;
                // Validate the action before consuming the pending login.
                let new_registration = match &action {
                    FinishAction::ChangeCode { salt, upload, wrapped_key } => {
                        check_wrapped(wrapped_key)?;
                        Some((self.registration_from_upload(salt, upload)?, wrapped_key.clone()))
                    }
                    _ => None,
                };
                let pending = self
                    .pending
                    .lock()
                    .expect("pending-login lock")
                    .take(&login, now)
                    .ok_or(Error::VaultLoginUnknown)?;
                // The pending login is consumed whether or not the KE3 verifies.
                pending.login.finish(ke3, self.params()).map_err(|_| Error::VaultLoginFailed)?;
                let PendingLogin { record, generation, wrapped_key, .. } = pending;
                let (command, then) = match (action, new_registration) {
                    (FinishAction::Recover, _) => (
                        VaultCommand::AttemptSuccess { request_id: rid, time, record, generation },
                        Then::Released { wrapped_key },
                    ),
                    (FinishAction::ChangeCode { .. }, Some((registration, new_wrapped))) => (
                        VaultCommand::Rekey {
                            request_id: rid,
                            time,
                            record,
                            generation,
                            registration,
                            wrapped_key: new_wrapped,
                        },
                        Then::Rekeyed,
                    ),
                    (FinishAction::Delete, _) => {
                        (VaultCommand::Delete { request_id: rid, time, record, generation }, Then::Deleted)
                    }
                    (FinishAction::ChangeCode { .. }, None) => unreachable!("validated above"),
                };
                Ok(Step::Propose(Proposal { command: cbor::to_vec(&command), then }))
            }
        }
    }

    /// A well-formed stored registration that matches no client: zero salt, the server
    /// public key as the client key, zero masking key and envelope (spec/vault.md §5.3).
    fn decoy_registration(&self) -> Vec<u8> {
        let mut decoy = vec![0u8; OPRF_SALT_LEN];
        decoy.extend_from_slice(&self.setup.public_key());
        decoy.resize(STORED_REGISTRATION_LEN, 0);
        decoy
    }

    /// spec/vault.md §5.1: the stored registration, `oprf_salt ‖ ServerRegistration`.
    fn registration_from_upload(&self, salt: &[u8], upload: &[u8]) -> Result<Vec<u8>> {
        check_salt(salt)?;
        let upload = opaque_decode!(RegistrationUpload<OpaqueSuite>, upload)?;
        let mut stored = salt.to_vec();
        stored.extend_from_slice(&ServerRegistration::<OpaqueSuite>::finish(upload).serialize());
        Ok(stored)
    }
}

fn check_wrapped(wrapped: &[u8]) -> Result<()> {
    if wrapped.len() == WRAPPED_KEY_LEN { Ok(()) } else { Err(Error::VaultWrappedKeyInvalid) }
}

impl Proposal {
    /// The deterministic-CBOR [`VaultCommand`] to commit.
    pub(crate) fn command(&self) -> &[u8] {
        &self.command
    }

    /// The record of an attempt (`AttemptStart`), for the node's rate limit
    /// (spec/node-api.md §6); `None` for every other command.
    pub(crate) fn attempt_record(&self) -> Option<&[u8]> {
        match &self.then {
            Then::AttemptStarted { record, .. } => Some(record),
            _ => None,
        }
    }

    /// spec/vault.md §7.1 step N4: after the command is committed with `output`, finish the
    /// request and return the `VaultResponse` body to seal. `now` is the node's clock.
    pub(crate) fn committed<R: RngCore + CryptoRng>(
        self,
        server: &VaultServer,
        rng: &mut R,
        output: &[u8],
        now: u64,
    ) -> Result<Vec<u8>> {
        let output = VaultOutput::decode(output)?;
        let response = match (self.then, output) {
            (Then::Registered, VaultOutput::Registered { remaining }) => {
                VaultResponse::Registered { remaining }
            }
            (
                Then::AttemptStarted { request_id, record, ke1 },
                VaultOutput::Attempt { registration, wrapped_key, remaining, generation },
            ) => {
                let registration = registration.map(Zeroizing::new);
                let wrapped_key = wrapped_key.map(Zeroizing::new);
                // Both paths do the same work: a fake key is always drawn, and opaque-ke
                // always builds its fake record before choosing (spec/vault.md §5.3).
                let mut fake = Zeroizing::new(vec![0u8; WRAPPED_KEY_LEN]);
                rng.fill_bytes(&mut fake);
                // Always split and deserialize a stored registration: the real one or a
                // decoy of the same length, so the unknown-record path does the same work.
                let decoy = server.decoy_registration();
                let stored = registration.as_deref().map(|r| r.as_slice()).unwrap_or(&decoy);
                if stored.len() != STORED_REGISTRATION_LEN {
                    return Err(Error::VaultMessageInvalid);
                }
                let (salt, record_bytes) = stored.split_at(OPRF_SALT_LEN);
                let parsed = ServerRegistration::<OpaqueSuite>::deserialize(record_bytes)
                    .map_err(|_| Error::VaultMessageInvalid)?;
                let password_file = registration.is_some().then_some(parsed);
                let id = credential_identifier(&record, salt);
                let start =
                    ServerLogin::start(rng, &server.setup.0, password_file, *ke1, &id, server.params())
                        .map_err(|_| Error::VaultMessageInvalid)?;
                let pending = PendingLogin {
                    record,
                    generation,
                    login: start.state,
                    wrapped_key: wrapped_key.unwrap_or(fake),
                };
                server.pending.lock().expect("pending-login lock").insert(request_id, pending, now);
                VaultResponse::RecoverStart {
                    login: request_id.to_vec(),
                    ke2: start.message.serialize().to_vec(),
                    remaining,
                }
            }
            (Then::Released { wrapped_key }, VaultOutput::Released { remaining }) => {
                VaultResponse::Recovered { wrapped_key: wrapped_key.to_vec(), remaining }
            }
            (Then::Rekeyed, VaultOutput::Rekeyed { remaining }) => VaultResponse::CodeChanged { remaining },
            (Then::Deleted, VaultOutput::Deleted) => VaultResponse::Deleted,
            _ => return Err(Error::CborSchema),
        };
        Ok(cbor::to_vec(&response))
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;

    fn id(n: u32) -> RequestId {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id
    }

    /// spec/vault.md §7.3: a pending login lives [`PENDING_LOGIN_TTL_SECS`], is taken once,
    /// and at the cap the oldest goes first (of equally old ones, the smallest id).
    #[test]
    fn pending_logins_expire_are_taken_once_and_the_oldest_goes_at_the_cap() {
        let mut p = PendingLogins::<u32>::default();
        p.insert(id(1), 1, 100);
        p.insert(id(2), 2, 100 + PENDING_LOGIN_TTL_SECS);
        assert_eq!(p.take(&id(1), 100 + PENDING_LOGIN_TTL_SECS), Some(1));
        assert_eq!(p.take(&id(1), 100 + PENDING_LOGIN_TTL_SECS), None, "taken once");
        p.insert(id(3), 3, 100);
        assert_eq!(p.take(&id(3), 101 + PENDING_LOGIN_TTL_SECS), None, "expired");
        assert_eq!((p.len(), p.by_time.len()), (1, 1));
        let mut p = PendingLogins::<u32>::default();
        let cap = PENDING_LOGIN_MAX as u32;
        for n in 0..cap {
            p.insert(id(n), n, 1_000 + u64::from(n % 7));
        }
        p.insert(id(cap), cap, 1_000 + 6);
        assert_eq!((p.len(), p.by_time.len()), (PENDING_LOGIN_MAX, PENDING_LOGIN_MAX));
        assert_eq!(p.take(&id(0), 1_006), None, "the oldest, smallest id, was dropped");
        assert_eq!(p.take(&id(7), 1_006), Some(7), "an equally old one with a larger id stays");
        assert_eq!(p.take(&id(cap), 1_006), Some(cap));
    }
}
