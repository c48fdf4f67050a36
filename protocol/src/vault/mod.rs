//! The vault: OPAQUE registration and recovery of a wrapped backup key with a guess limit.
//!
//! spec/vault.md. Three parts:
//! * [`client`]: [`RegistrationClient`] and [`RecoveryClient`] (each state a struct consumed
//!   by the step that leaves it), producing the [`BackupKey`].
//! * [`state`]: [`VaultStateMachine`], the deterministic replicated state (records,
//!   counters, applied request ids) driven by [`VaultCommand`]s.
//! * [`server`]: [`VaultServer`], the non-deterministic OPAQUE server steps a node runs
//!   around `CommandLog::propose` (spec/vault.md §7).

pub mod client;
pub mod code;
pub mod export;
pub mod server;
pub mod state;

#[cfg(test)]
mod tests;

pub use client::{
    AwaitOutcome, AwaitRegistered, ClientAction, NewRegistration, Outcome, RecoveryClient, RecoveryKe2,
    RegistrationClient, VaultContext,
};
pub use code::{CODE_MAX_DIGITS, CODE_MIN_DIGITS, normalise_code};
pub use server::{VaultServer, VaultServerSetup};
pub use state::{RecordState, RecordStatus, VaultCommand, VaultOutput, VaultQuery, VaultStateMachine};

use crate::cbor;
use crate::error::{Error, Result};
use chacha20poly1305::aead::{Aead as _, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// spec/vault.md §2: the OPAQUE ciphersuite, "bkv OPAQUE suite 1": OPRF ristretto255-SHA512,
/// key exchange TripleDH over ristretto255 with SHA-512, KSF Argon2id.
#[derive(Debug, Clone, Copy)]
pub struct OpaqueSuite;

impl opaque_ke::CipherSuite for OpaqueSuite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
    type Ksf = argon2::Argon2<'static>;
}

/// The `suite` number of the FleetKeySet `opaque` key role (spec/validation-bundle.md §3).
pub const OPAQUE_SUITE_ID: i64 = 1;
/// Record ids are 16 to 64 bytes (spec/vault.md §4).
pub const RECORD_ID_MIN: usize = 16;
/// Record ids are 16 to 64 bytes (spec/vault.md §4).
pub const RECORD_ID_MAX: usize = 64;
/// Length of a backup key (spec/vault.md §3).
pub const BACKUP_KEY_LEN: usize = 32;
/// Length of a wrapped backup key: ChaCha20Poly1305 ciphertext of 32 bytes + 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = BACKUP_KEY_LEN + 16;
/// Length of a stored registration (spec/vault.md §5.1): the OPRF salt (32) and the
/// serialized ServerRegistration of this suite: client public key (32), masking key (64),
/// envelope nonce (32) and tag (64).
pub const STORED_REGISTRATION_LEN: usize = OPRF_SALT_LEN + 192;
/// HKDF salt of the key-wrapping key (spec/vault.md §3.2).
pub const WRAP_SALT: &[u8] = b"bkv vault v1 wrap";
/// First element of the OPAQUE context array (spec/vault.md §2.2).
pub const CONTEXT_LABEL: &str = "bkv vault v1";
/// Length of the per-registration OPRF salt (spec/vault.md §2.2).
pub const OPRF_SALT_LEN: usize = 32;

/// spec/vault.md §2.2: the OPAQUE `credential_identifier` of a registration,
/// `CBOR [record_id, oprf_salt]`. The salt is drawn by the node at every `register_start`,
/// so no OPRF evaluation made outside a counted login is ever under a stored record's key.
pub fn credential_identifier(record: &[u8], salt: &[u8]) -> Vec<u8> {
    cbor::to_vec(&(serde_bytes::Bytes::new(record), serde_bytes::Bytes::new(salt)))
}

pub(crate) fn check_salt(salt: &[u8]) -> Result<()> {
    if salt.len() == OPRF_SALT_LEN { Ok(()) } else { Err(Error::CborSchema) }
}

/// Argon2id parameters of the OPAQUE key stretching function (spec/vault.md §2.1).
///
/// They are client-side only (the fleet never runs the KSF), but registration and every
/// recovery of a record MUST use the same parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KsfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KsfParams {
    /// spec/vault.md §2.1, the production profile: Argon2id, m = 64 MiB, t = 3, p = 4
    /// (RFC 9106 §4, second recommended option).
    pub const PRODUCTION: KsfParams = KsfParams { m_cost_kib: 65536, t_cost: 3, p_cost: 4 };
    /// spec/vault.md §2.1, the test profile: Argon2id, m = 64 KiB, t = 1, p = 1. Offers no
    /// protection of its own against offline guessing; MUST NOT be used in a deployment.
    pub const TEST: KsfParams = KsfParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

    pub(crate) fn argon2(&self) -> Result<argon2::Argon2<'static>> {
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|_| Error::VaultMessageInvalid)?;
        Ok(argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params))
    }
}

/// The 32-byte key that encrypts a backup (spec/backup-envelope.md), zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupKey(Zeroizing<[u8; BACKUP_KEY_LEN]>);

impl core::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BackupKey(..)")
    }
}

impl BackupKey {
    /// A fresh random backup key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut k = Zeroizing::new([0u8; BACKUP_KEY_LEN]);
        rng.fill_bytes(&mut k[..]);
        Self(k)
    }

    /// A backup key from its bytes.
    pub fn from_bytes(bytes: [u8; BACKUP_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; BACKUP_KEY_LEN] {
        &self.0
    }
}

/// spec/vault.md §4: a record id is 16 to 64 bytes.
pub fn check_record_id(record: &[u8]) -> Result<()> {
    if (RECORD_ID_MIN..=RECORD_ID_MAX).contains(&record.len()) {
        Ok(())
    } else {
        Err(Error::VaultRecordIdInvalid)
    }
}

/// spec/vault.md §2.2: OPAQUE `context = CBOR ["bkv vault v1", fleet_id]`.
pub fn opaque_context(fleet_id: &str) -> Vec<u8> {
    cbor::to_vec(&(CONTEXT_LABEL, fleet_id))
}

/// spec/vault.md §3.2: the key-wrapping key,
/// `HKDF-SHA-512(salt = "bkv vault v1 wrap", IKM = export_key, info = CBOR [fleet_id, record_id], L = 32)`.
fn wrapping_key(export_key: &[u8], fleet_id: &str, record: &[u8]) -> Zeroizing<[u8; 32]> {
    let info = cbor::to_vec(&(fleet_id, serde_bytes::Bytes::new(record)));
    let hk = hkdf::Hkdf::<sha2::Sha512>::new(Some(WRAP_SALT), export_key);
    let mut k = Zeroizing::new([0u8; 32]);
    hk.expand(&info, &mut k[..]).expect("32 bytes is a valid HKDF-SHA-512 length");
    k
}

/// spec/vault.md §3.2: wrap the backup key (ChaCha20Poly1305, zero nonce, empty AAD; the
/// key is unique per registration because `export_key` is).
pub(crate) fn wrap_backup_key(export_key: &[u8], fleet_id: &str, record: &[u8], key: &BackupKey) -> Vec<u8> {
    let k = wrapping_key(export_key, fleet_id, record);
    ChaCha20Poly1305::new(Key::from_slice(&k[..]))
        .encrypt(Nonce::from_slice(&[0u8; 12]), Payload { msg: &key.0[..], aad: b"" })
        .expect("encrypting 32 bytes cannot fail")
}

/// spec/vault.md §3.2: unwrap; `vault.wrapped_key.invalid` on any failure.
pub(crate) fn unwrap_backup_key(
    export_key: &[u8],
    fleet_id: &str,
    record: &[u8],
    wrapped: &[u8],
) -> Result<BackupKey> {
    if wrapped.len() != WRAPPED_KEY_LEN {
        return Err(Error::VaultWrappedKeyInvalid);
    }
    let k = wrapping_key(export_key, fleet_id, record);
    let pt = Zeroizing::new(
        ChaCha20Poly1305::new(Key::from_slice(&k[..]))
            .decrypt(Nonce::from_slice(&[0u8; 12]), Payload { msg: wrapped, aad: b"" })
            .map_err(|_| Error::VaultWrappedKeyInvalid)?,
    );
    let mut out = [0u8; BACKUP_KEY_LEN];
    out.copy_from_slice(&pt);
    let key = BackupKey::from_bytes(out);
    zeroize::Zeroize::zeroize(&mut out);
    Ok(key)
}

/// spec/vault.md §6.1, `VaultRequest`: the application body of a session request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VaultRequest {
    /// Registration, first message: the OPAQUE RegistrationRequest.
    RegisterStart {
        /// Record id.
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
        /// OPAQUE RegistrationRequest (32 bytes).
        #[serde(with = "serde_bytes")]
        request: Vec<u8>,
    },
    /// Registration, second message: the OPAQUE RegistrationUpload and the wrapped key.
    RegisterFinish {
        /// Record id.
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
        /// The OPRF salt from the RegisterStart answer.
        #[serde(with = "serde_bytes")]
        salt: Vec<u8>,
        /// OPAQUE RegistrationUpload.
        #[serde(with = "serde_bytes")]
        upload: Vec<u8>,
        /// The backup key wrapped under the export key (48 bytes).
        #[serde(with = "serde_bytes")]
        wrapped_key: Vec<u8>,
    },
    /// Recovery, first message: OPAQUE KE1.
    RecoverStart {
        /// Record id.
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
        /// OPAQUE KE1 (CredentialRequest).
        #[serde(with = "serde_bytes")]
        ke1: Vec<u8>,
    },
    /// Recovery, second message: OPAQUE KE3 and what to do once it verifies.
    RecoverFinish {
        /// The `login` handle from the RecoverStart response.
        #[serde(with = "serde_bytes")]
        login: Vec<u8>,
        /// OPAQUE KE3 (CredentialFinalization).
        #[serde(with = "serde_bytes")]
        ke3: Vec<u8>,
        /// What to do after the KE3 verifies.
        action: FinishAction,
    },
}

/// spec/vault.md §6.1, `FinishAction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FinishAction {
    /// Release the wrapped key and reset the counter.
    Recover,
    /// Replace the registration (new code) and reset the counter.
    ChangeCode {
        /// The OPRF salt from the RegisterStart answer for the new code.
        #[serde(with = "serde_bytes")]
        salt: Vec<u8>,
        /// OPAQUE RegistrationUpload under the new code.
        #[serde(with = "serde_bytes")]
        upload: Vec<u8>,
        /// The backup key wrapped under the new export key.
        #[serde(with = "serde_bytes")]
        wrapped_key: Vec<u8>,
    },
    /// Destroy the record.
    Delete,
}

/// spec/vault.md §6.2, `VaultResponse`: the application body of a sealed `ok` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VaultResponse {
    /// Answer to RegisterStart.
    RegisterStart {
        /// OPAQUE RegistrationResponse.
        #[serde(with = "serde_bytes")]
        response: Vec<u8>,
        /// The fresh OPRF salt of this registration (32 bytes), echoed in RegisterFinish.
        #[serde(with = "serde_bytes")]
        salt: Vec<u8>,
    },
    /// Answer to RegisterFinish.
    Registered {
        /// Guesses the record allows (the fleet's guess limit).
        remaining: u32,
    },
    /// Answer to RecoverStart.
    RecoverStart {
        /// Handle naming this login in the RecoverFinish (the RecoverStart request id).
        #[serde(with = "serde_bytes")]
        login: Vec<u8>,
        /// OPAQUE KE2 (CredentialResponse).
        #[serde(with = "serde_bytes")]
        ke2: Vec<u8>,
        /// Guesses left after this one if it is wrong.
        remaining: u32,
    },
    /// Answer to RecoverFinish / recover.
    Recovered {
        /// The wrapped backup key.
        #[serde(with = "serde_bytes")]
        wrapped_key: Vec<u8>,
        /// Guesses the record now allows; 0 when this was the last guess and the record is gone.
        remaining: u32,
    },
    /// Answer to RecoverFinish / change_code.
    CodeChanged {
        /// Guesses the record now allows.
        remaining: u32,
    },
    /// Answer to RecoverFinish / delete.
    Deleted,
}

/// Map an opaque-ke failure on a peer message to its code.
pub(crate) fn opaque_err(e: opaque_ke::errors::ProtocolError) -> Error {
    match e {
        opaque_ke::errors::ProtocolError::InvalidLoginError => Error::VaultCodeInvalid,
        _ => Error::VaultMessageInvalid,
    }
}

/// Deserialize an OPAQUE message strictly: the bytes must be exactly its serialization.
macro_rules! opaque_decode {
    ($ty:ty, $bytes:expr) => {{
        let bytes: &[u8] = $bytes;
        match <$ty>::deserialize(bytes) {
            Ok(m) if m.serialize().as_slice() == bytes => Ok(m),
            _ => Err($crate::error::Error::VaultMessageInvalid),
        }
    }};
}
pub(crate) use opaque_decode;
