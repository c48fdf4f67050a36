//! The client side of the vault (spec/vault.md §6).
//!
//! Each state is a struct consumed by the step that leaves it, as in opaque-ke:
//!
//! ```text
//! RegistrationClient::start -> RegisterStart ─► RegistrationClient::finish -> NewRegistration
//!   NewRegistration::into_request -> RegisterFinish ─► AwaitRegistered::finish -> remaining
//! RecoveryClient::start -> RecoverStart ─► RecoveryClient::receive -> RecoveryKe2
//!   RecoveryKe2::finish(action) -> RecoverFinish ─► AwaitOutcome::finish -> Outcome
//! ```
//!
//! Every body goes through the session envelope (`crate::session`).

use super::{
    BackupKey, FinishAction, KsfParams, OpaqueSuite, VaultRequest, VaultResponse, check_record_id,
    check_salt, opaque_context, opaque_decode, opaque_err, unwrap_backup_key, wrap_backup_key,
};
use crate::cbor;
use crate::crypto::ct_eq;
use crate::error::{Error, Result};
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration, ClientRegistrationFinishParameters,
    CredentialResponse, Identifiers, RegistrationResponse,
};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// What a client knows about the fleet's vault, from the verified FleetKeySet
/// (spec/validation-bundle.md §3) and its own configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultContext {
    /// `fleet_id` of the verified FleetKeySet.
    pub fleet_id: String,
    /// The fleet's `opaque` key (32-byte ristretto255 element).
    pub opaque_server_key: [u8; 32],
    /// Argon2id parameters; the same for registration and recovery.
    pub ksf: KsfParams,
}

fn decode_response(body: &[u8]) -> Result<VaultResponse> {
    cbor::from_slice(body)
}

/// Registration in progress: the OPRF blind is held until the fleet's answer.
pub struct RegistrationClient {
    state: ClientRegistration<OpaqueSuite>,
    record: Vec<u8>,
    code: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for RegistrationClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RegistrationClient")
            .field("record", &hex::encode(&self.record))
            .finish_non_exhaustive()
    }
}

impl RegistrationClient {
    /// spec/vault.md §6.3 step R1: blind the recovery `code` for `record`.
    /// Returns the `RegisterStart` body to seal.
    pub fn start<R: RngCore + CryptoRng>(rng: &mut R, record: &[u8], code: &[u8]) -> Result<(Vec<u8>, Self)> {
        check_record_id(record)?;
        let start = ClientRegistration::<OpaqueSuite>::start(rng, code).map_err(opaque_err)?;
        let body = cbor::to_vec(&VaultRequest::RegisterStart {
            record: record.to_vec(),
            request: start.message.serialize().to_vec(),
        });
        Ok((body, Self { state: start.state, record: record.to_vec(), code: Zeroizing::new(code.to_vec()) }))
    }

    /// spec/vault.md §6.3 steps R2–R4: finish the OPAQUE registration with the fleet's
    /// answer, check the fleet's OPAQUE key, and wrap `backup_key` under the export key.
    pub fn finish<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        ctx: &VaultContext,
        backup_key: &BackupKey,
        response: &[u8],
    ) -> Result<NewRegistration> {
        let VaultResponse::RegisterStart { response, salt } = decode_response(response)? else {
            return Err(Error::CborSchema);
        };
        check_salt(&salt)?;
        let response = opaque_decode!(RegistrationResponse<OpaqueSuite>, &response)?;
        let ksf = ctx.ksf.argon2()?;
        let finish = self
            .state
            .finish(
                rng,
                &self.code,
                response,
                ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&ksf)),
            )
            .map_err(opaque_err)?;
        if !ct_eq(&finish.server_s_pk.serialize(), &ctx.opaque_server_key) {
            return Err(Error::VaultServerKeyMismatch);
        }
        let wrapped_key = wrap_backup_key(&finish.export_key, &ctx.fleet_id, &self.record, backup_key);
        Ok(NewRegistration {
            record: self.record,
            salt,
            upload: finish.message.serialize().to_vec(),
            wrapped_key,
            #[cfg(any(test, feature = "fixtures"))]
            export_key: Zeroizing::new(finish.export_key.to_vec()),
        })
    }
}

/// A finished client-side registration: send it as a `RegisterFinish`
/// ([`NewRegistration::into_request`]) or as the new code of a `RecoverFinish`
/// ([`ClientAction::ChangeCode`]).
#[derive(Clone)]
pub struct NewRegistration {
    record: Vec<u8>,
    salt: Vec<u8>,
    upload: Vec<u8>,
    wrapped_key: Vec<u8>,
    #[cfg(any(test, feature = "fixtures"))]
    export_key: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for NewRegistration {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NewRegistration").field("record", &hex::encode(&self.record)).finish_non_exhaustive()
    }
}

impl NewRegistration {
    /// RFC 9807's `export_key` of this registration, for the conformance vectors only
    /// (spec/conformance.md §3.1 output `export_key`); never in a deployment.
    #[cfg(any(test, feature = "fixtures"))]
    pub fn export_key(&self) -> &[u8] {
        &self.export_key
    }

    /// The record id.
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// The `RegisterFinish` body to seal, and the state that reads the answer.
    pub fn into_request(self) -> (Vec<u8>, AwaitRegistered) {
        let body = cbor::to_vec(&VaultRequest::RegisterFinish {
            record: self.record,
            salt: self.salt,
            upload: self.upload,
            wrapped_key: self.wrapped_key,
        });
        (body, AwaitRegistered(()))
    }
}

/// Waiting for the answer to a `RegisterFinish`.
#[derive(Debug)]
pub struct AwaitRegistered(());

impl AwaitRegistered {
    /// The registration is stored; returns the guesses it allows.
    pub fn finish(self, response: &[u8]) -> Result<u32> {
        match decode_response(response)? {
            VaultResponse::Registered { remaining } => Ok(remaining),
            _ => Err(Error::CborSchema),
        }
    }
}

/// Recovery in progress: KE1 sent.
pub struct RecoveryClient {
    login: ClientLogin<OpaqueSuite>,
    record: Vec<u8>,
    code: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for RecoveryClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecoveryClient").field("record", &hex::encode(&self.record)).finish_non_exhaustive()
    }
}

impl RecoveryClient {
    /// spec/vault.md §6.4 step L1: start an OPAQUE login for `record` with `code`.
    /// Returns the `RecoverStart` body to seal.
    pub fn start<R: RngCore + CryptoRng>(rng: &mut R, record: &[u8], code: &[u8]) -> Result<(Vec<u8>, Self)> {
        check_record_id(record)?;
        let start = ClientLogin::<OpaqueSuite>::start(rng, code).map_err(opaque_err)?;
        let body = cbor::to_vec(&VaultRequest::RecoverStart {
            record: record.to_vec(),
            ke1: start.message.serialize().to_vec(),
        });
        Ok((body, Self { login: start.state, record: record.to_vec(), code: Zeroizing::new(code.to_vec()) }))
    }

    /// spec/vault.md §6.4 step L2: read the fleet's KE2. The guess is already counted.
    pub fn receive(self, response: &[u8]) -> Result<RecoveryKe2> {
        let VaultResponse::RecoverStart { login, ke2, remaining } = decode_response(response)? else {
            return Err(Error::CborSchema);
        };
        let ke2 = opaque_decode!(CredentialResponse<OpaqueSuite>, &ke2)?;
        Ok(RecoveryKe2 { inner: self, login, ke2, remaining })
    }
}

/// The fleet answered KE1: the guess is counted; [`RecoveryKe2::remaining`] says how many
/// are left if this one is wrong.
pub struct RecoveryKe2 {
    inner: RecoveryClient,
    login: Vec<u8>,
    ke2: CredentialResponse<OpaqueSuite>,
    remaining: u32,
}

impl core::fmt::Debug for RecoveryKe2 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecoveryKe2").field("remaining", &self.remaining).finish_non_exhaustive()
    }
}

/// What the client asks for once its code is proven (spec/vault.md §6.1 `FinishAction`).
#[derive(Debug)]
pub enum ClientAction {
    /// Get the backup key and reset the counter.
    Recover,
    /// Replace the code (the new registration must be for the same record).
    ChangeCode(NewRegistration),
    /// Delete the record.
    Delete,
}

impl RecoveryKe2 {
    /// Guesses left for the record if this guess is wrong.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// spec/vault.md §6.4 steps L3–L5: finish OPAQUE with the code. A wrong code (or an
    /// unknown record) fails here with `vault.code.invalid`; nothing is sent.
    /// Returns the `RecoverFinish` body to seal.
    pub fn finish<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        ctx: &VaultContext,
        action: ClientAction,
    ) -> Result<(Vec<u8>, AwaitOutcome)> {
        let RecoveryKe2 { inner, login, ke2, .. } = self;
        let context = opaque_context(&ctx.fleet_id);
        let ksf = ctx.ksf.argon2()?;
        let finish = inner
            .login
            .finish(
                rng,
                &inner.code,
                ke2,
                ClientLoginFinishParameters::new(Some(&context), Identifiers::default(), Some(&ksf)),
            )
            .map_err(opaque_err)?;
        if !ct_eq(&finish.server_s_pk.serialize(), &ctx.opaque_server_key) {
            return Err(Error::VaultServerKeyMismatch);
        }
        let (action, expect) = match action {
            ClientAction::Recover => (FinishAction::Recover, Expect::Recovered),
            ClientAction::ChangeCode(new) => {
                if new.record != inner.record {
                    return Err(Error::VaultRecordIdInvalid);
                }
                (
                    FinishAction::ChangeCode {
                        salt: new.salt,
                        upload: new.upload,
                        wrapped_key: new.wrapped_key,
                    },
                    Expect::CodeChanged,
                )
            }
            ClientAction::Delete => (FinishAction::Delete, Expect::Deleted),
        };
        let body = cbor::to_vec(&VaultRequest::RecoverFinish {
            login,
            ke3: finish.message.serialize().to_vec(),
            action,
        });
        Ok((
            body,
            AwaitOutcome {
                export_key: Zeroizing::new(finish.export_key.to_vec()),
                #[cfg(any(test, feature = "fixtures"))]
                session_key: Zeroizing::new(finish.session_key.to_vec()),
                fleet_id: ctx.fleet_id.clone(),
                record: inner.record.clone(),
                expect,
            },
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Recovered,
    CodeChanged,
    Deleted,
}

/// Waiting for the answer to a `RecoverFinish`.
pub struct AwaitOutcome {
    export_key: Zeroizing<Vec<u8>>,
    #[cfg(any(test, feature = "fixtures"))]
    session_key: Zeroizing<Vec<u8>>,
    fleet_id: String,
    record: Vec<u8>,
    expect: Expect,
}

impl core::fmt::Debug for AwaitOutcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AwaitOutcome").field("expect", &self.expect).finish_non_exhaustive()
    }
}

/// The end of a recovery.
#[derive(Debug)]
pub enum Outcome {
    /// The backup key. `remaining` is the reset counter, or 0 when this was the record's
    /// last guess and the record is gone (register again to keep a backup).
    Recovered {
        /// The unwrapped backup key.
        backup_key: BackupKey,
        /// Guesses the record now allows.
        remaining: u32,
    },
    /// The code was changed; the record allows `remaining` guesses.
    CodeChanged {
        /// Guesses the record now allows.
        remaining: u32,
    },
    /// The record was deleted.
    Deleted,
}

impl AwaitOutcome {
    /// RFC 9807's `export_key` and `session_key` of this login, for the conformance vectors
    /// only (spec/conformance.md §3.1 outputs); never in a deployment.
    #[cfg(any(test, feature = "fixtures"))]
    pub fn opaque_keys(&self) -> (&[u8], &[u8]) {
        (&self.export_key, &self.session_key)
    }

    /// spec/vault.md §6.4 step L6 for a `Recover` action: the backup key and the reset
    /// counter. Any other answer, an answer to another action included, is `cbor.schema`.
    pub fn finish_recovered(self, response: &[u8]) -> Result<(BackupKey, u32)> {
        match (self.expect, decode_response(response)?) {
            (Expect::Recovered, VaultResponse::Recovered { wrapped_key, remaining }) => {
                let backup_key =
                    unwrap_backup_key(&self.export_key, &self.fleet_id, &self.record, &wrapped_key)?;
                Ok((backup_key, remaining))
            }
            _ => Err(Error::CborSchema),
        }
    }

    /// spec/vault.md §6.4 step L6: read the answer; unwrap the backup key.
    pub fn finish(self, response: &[u8]) -> Result<Outcome> {
        match (self.expect, decode_response(response)?) {
            (Expect::Recovered, VaultResponse::Recovered { wrapped_key, remaining }) => {
                let backup_key =
                    unwrap_backup_key(&self.export_key, &self.fleet_id, &self.record, &wrapped_key)?;
                Ok(Outcome::Recovered { backup_key, remaining })
            }
            (Expect::CodeChanged, VaultResponse::CodeChanged { remaining }) => {
                Ok(Outcome::CodeChanged { remaining })
            }
            (Expect::Deleted, VaultResponse::Deleted) => Ok(Outcome::Deleted),
            _ => Err(Error::CborSchema),
        }
    }
}
