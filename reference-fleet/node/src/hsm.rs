//! The software HSM of a reference fleet node.
//!
//! A node has three private keys, one per role of its FleetKeySet entry
//! (spec/validation-bundle.md §3.2): the HPKE `session` key (spec/session.md §2), the
//! fleet-wide OPAQUE ServerSetup (`opaque`, spec/vault.md §2.3) and the Ed25519 node
//! `signing` key (spec/fleet-replication.md §4). It also has a device identity key, the
//! key an HSM vendor certifies at manufacture (spec/evidence.md).
//!
//! # The HSM boundary
//!
//! Everything in [`SoftHsm`] is what a hardware HSM would hold. Nothing private crosses
//! the boundary as bytes: the rest of the node gets public keys and one handle,
//! [`SoftHsm::open_boundary`]'s [`Boundary`] (spec/hsm.md), which holds the session and
//! OPAQUE engines, the vault state machine and the node signing key, applies committed
//! entries, signs acknowledgements and snapshots, and answers clients only against a quorum
//! of acknowledgements it verifies itself; for the host's node-to-node transport it signs
//! `RpcMessage`s only ([`bkv_protocol::hsm::RpcSigner`]). Its HSM state (the mark,
//! spec/hsm.md §2) is a sealed file of its own, [`state_path`], next to the sealed keys and
//! never inside the node's database directory: it stands for the HSM's NVRAM, which no
//! restore of a host disk rolls back. In a hardware deployment these calls are the HSM's
//! API and the boundary runs in its firmware.
//! The exceptions are [`SoftHsm::transfer_opaque_setup`], the ceremony step that gives
//! every node of a fleet the same OPAQUE setup, and the rotation transfer
//! ([`SoftHsm::seal_setup_for_successor`], [`SoftHsm::receive_setup`], spec/rotation.md
//! §4.1), which seals it only to the nodes of a successor bundle the HSM verified itself;
//! hardware HSMs do that with a vendor key-transfer protocol between attested devices. An
//! HSM generated for a successor ([`SoftHsm::generate_awaiting`]) starts nothing until it
//! holds the setup (`hsm.setup.awaiting`).
//!
//! At rest the HSM is sealed under a key-encryption key ([`Kek`]: a file or the
//! `BKV_HSM_KEK` environment variable) with ChaCha20-Poly1305; a wrong KEK, a truncated
//! or edited file, or a file of another node fails with [`HsmError::Unseal`].

use bkv_protocol::cbor;
use bkv_protocol::crypto::{Ed25519Signer, PublicKey, Signer};
use bkv_protocol::hsm::{Boundary, BoundaryConfig, HsmState, HsmStateStore};
use bkv_protocol::session::{SessionSecretKey, SessionServer};
use bkv_protocol::validation_bundle::{KeyRole, Node, NodeKey, keyset};
use bkv_protocol::vault::{VaultServer, VaultServerSetup};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// spec/hsm.md §1: the HSM state file of the HSM sealed at `sealed` (its NVRAM): the same
/// folder, extension `state`; never inside the node's database directory.
pub fn state_path(sealed: &Path) -> std::path::PathBuf {
    sealed.with_extension("state")
}

const STATE_AAD: &[u8] = b"bkv soft-hsm state v1";

/// The software HSM's NVRAM: the HSM state sealed under the KEK, replaced atomically
/// (written to a temporary file, fsynced, renamed, directory fsynced).
struct FileStateStore {
    path: std::path::PathBuf,
    kek: Kek,
    writes: std::sync::atomic::AtomicU64,
}

impl FileStateStore {
    fn open(&self, bytes: &[u8]) -> Result<HsmState, HsmError> {
        let s: Sealed = cbor::from_slice(bytes).map_err(|_| HsmError::Unseal)?;
        if s.v != 1 || s.nonce.len() != 12 {
            return Err(HsmError::Sealed(format!("{}: not a version 1 HSM state", self.path.display())));
        }
        let plaintext = ChaCha20Poly1305::new(Key::from_slice(&self.kek.0[..]))
            .decrypt(Nonce::from_slice(&s.nonce), Payload { msg: &s.ct, aad: STATE_AAD })
            .map_err(|_| HsmError::Unseal)?;
        HsmState::decode(&plaintext).map_err(|e| HsmError::State(e, self.path.display().to_string()))
    }
}

impl HsmStateStore for FileStateStore {
    fn write(&self, state: &HsmState) -> Result<(), String> {
        let mut nonce = [0u8; 12];
        rand_core::OsRng.fill_bytes(&mut nonce);
        let ct = ChaCha20Poly1305::new(Key::from_slice(&self.kek.0[..]))
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &cbor::to_vec(state), aad: STATE_AAD })
            .expect("ChaCha20-Poly1305 encryption of a short message cannot fail");
        let bytes = cbor::to_vec(&Sealed { v: 1, nonce: nonce.to_vec(), ct });
        let tmp = self.path.with_extension("state.tmp");
        write_private(&tmp, &bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Environment variable holding a hex KEK.
pub const KEK_ENV: &str = "BKV_HSM_KEK";
const SEAL_AAD: &[u8] = b"bkv soft-hsm v1";

/// A failure of the software HSM.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The sealed file does not open under this KEK (wrong KEK, tampered or truncated).
    #[error("hsm.unseal.failed: the sealed HSM state does not open under this key-encryption key")]
    Unseal,
    /// The KEK is not 32 bytes (64 hex digits).
    #[error("hsm.kek.invalid: {0}")]
    Kek(String),
    /// Reading or writing the sealed file failed.
    #[error("hsm.io: {0}")]
    Io(String),
    /// The file is not a sealed HSM state of a version this software reads.
    #[error("hsm.sealed: {0}")]
    Sealed(String),
    /// The HSM state (spec/hsm.md §2) is missing, of another node, or refused.
    #[error("{code}: {detail}", code = .0.code(), detail = .1)]
    State(bkv_protocol::Error, String),
    /// A successor fleet's HSM has not received the OPAQUE setup (spec/rotation.md §4.1).
    #[error(
        "hsm.setup.awaiting: this HSM was generated for a successor fleet and has not received the OPAQUE setup from its predecessor (spec/rotation.md §4.1)"
    )]
    AwaitingSetup,
    /// The OPAQUE setup transfer failed a check of spec/rotation.md §4.1.
    #[error("{code}: the OPAQUE setup transfer failed (spec/rotation.md §4.1)", code = .0.code())]
    Transfer(bkv_protocol::Error),
}

impl HsmError {
    /// Stable code (local to the reference fleet, never on the wire).
    pub fn code(&self) -> &'static str {
        match self {
            HsmError::Unseal => "hsm.unseal.failed",
            HsmError::Kek(_) => "hsm.kek.invalid",
            HsmError::Io(_) => "hsm.io",
            HsmError::Sealed(_) => "hsm.sealed",
            HsmError::State(e, _) | HsmError::Transfer(e) => e.code(),
            HsmError::AwaitingSetup => "hsm.setup.awaiting",
        }
    }
}

/// A key-encryption key: 32 bytes, zeroized on drop.
#[derive(Clone)]
pub struct Kek(Zeroizing<[u8; 32]>);

impl core::fmt::Debug for Kek {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    /// A fresh random KEK.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut k[..]);
        Kek(k)
    }

    /// Parse 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, HsmError> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| HsmError::Kek("not hex".into()))?);
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| HsmError::Kek("not 32 bytes".into()))?;
        Ok(Kek(Zeroizing::new(arr)))
    }

    /// The KEK in `BKV_HSM_KEK`, if set.
    pub fn from_env() -> Option<Result<Self, HsmError>> {
        std::env::var(KEK_ENV).ok().map(|v| Self::from_hex(&v))
    }

    /// Read a KEK file (64 hex digits).
    pub fn from_file(path: &Path) -> Result<Self, HsmError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| HsmError::Io(format!("{}: {e}", path.display())))?,
        );
        Self::from_hex(&text)
    }

    /// The 32 bytes (for key files that share the KEK's format).
    pub fn expose(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    /// Write this KEK to `path` as hex, readable by the owner only.
    pub fn write_file(&self, path: &Path) -> Result<(), HsmError> {
        let text = Zeroizing::new(hex::encode(&self.0[..]));
        write_private(path, text.as_bytes())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HsmError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| HsmError::Io(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| HsmError::Io(format!("{}: {e}", path.display())))
}

/// The sealed-at-rest form (deterministic CBOR).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    v: u64,
    #[serde(with = "serde_bytes")]
    nonce: Vec<u8>,
    #[serde(with = "serde_bytes")]
    ct: Vec<u8>,
}

/// The secrets inside (deterministic CBOR, zeroized after use).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Secrets {
    #[serde(with = "serde_bytes")]
    device: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signing: Vec<u8>,
    #[serde(with = "serde_bytes")]
    session: Vec<u8>,
    /// The OPAQUE setup; empty while the HSM awaits it (spec/rotation.md §4.1).
    #[serde(with = "serde_bytes")]
    opaque: Vec<u8>,
    /// The OPAQUE public key an HSM generated for a successor fleet awaits; absent once it
    /// holds the setup (and in every file sealed before setup transfers existed).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    awaiting: Option<Vec<u8>>,
}

impl Drop for Secrets {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.device.zeroize();
        self.signing.zeroize();
        self.session.zeroize();
        self.opaque.zeroize();
    }
}

/// The HSM's OPAQUE setup, or the public key of the one it awaits (spec/rotation.md §4.1).
enum Opaque {
    Held(Box<VaultServerSetup>),
    Awaiting([u8; 32]),
}

impl Opaque {
    fn public_key(&self) -> [u8; 32] {
        match self {
            Opaque::Held(s) => s.public_key(),
            Opaque::Awaiting(k) => *k,
        }
    }
}

/// One node's software HSM. See the module documentation for the boundary.
pub struct SoftHsm {
    device: Ed25519Signer,
    signing: Arc<Ed25519Signer>,
    session: SessionSecretKey,
    opaque: Opaque,
}

impl core::fmt::Debug for SoftHsm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SoftHsm")
            .field("device", &hex::encode(&self.device.public_key().kid()[..8]))
            .finish_non_exhaustive()
    }
}

impl SoftHsm {
    /// Generate a node's device, signing and session keys inside the HSM; `opaque` is the
    /// fleet-wide OPAQUE setup (generated with [`VaultServerSetup::generate`] in the
    /// first HSM and handed to the others with [`SoftHsm::transfer_opaque_setup`]).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R, opaque: VaultServerSetup) -> Self {
        Self::generate_with(rng, Opaque::Held(Box::new(opaque)))
    }

    /// spec/rotation.md §4.1: generate an HSM of a successor fleet, which awaits the
    /// OPAQUE setup whose public key is `opaque` (the old fleet's `opaque` key). It puts
    /// that key in its node entry, and it starts no node until [`SoftHsm::receive_setup`].
    pub fn generate_awaiting<R: RngCore + CryptoRng>(rng: &mut R, opaque: [u8; 32]) -> Self {
        Self::generate_with(rng, Opaque::Awaiting(opaque))
    }

    fn generate_with<R: RngCore + CryptoRng>(rng: &mut R, opaque: Opaque) -> Self {
        Self {
            device: Ed25519Signer::generate(rng),
            signing: Arc::new(Ed25519Signer::generate(rng)),
            session: SessionSecretKey::generate(rng),
            opaque,
        }
    }

    /// Whether this HSM still awaits its OPAQUE setup (spec/rotation.md §4.1).
    pub fn awaiting_setup(&self) -> bool {
        matches!(self.opaque, Opaque::Awaiting(_))
    }

    fn setup(&self) -> Result<&VaultServerSetup, HsmError> {
        match &self.opaque {
            Opaque::Held(s) => Ok(s),
            Opaque::Awaiting(_) => Err(HsmError::AwaitingSetup),
        }
    }

    /// Key transfer of the fleet-wide OPAQUE setup to another HSM of the same key ceremony
    /// (the only private material that leaves an HSM; see the module documentation).
    pub fn transfer_opaque_setup(&self) -> Result<VaultServerSetup, HsmError> {
        Ok(VaultServerSetup::from_bytes(&self.setup()?.to_bytes()).expect("own setup re-decodes"))
    }

    /// spec/rotation.md §4.1, the sender: verify `successor` as this fleet's successor
    /// (spec/validation-bundle.md §5.1 steps 1 to 9 as a first contact holding this
    /// fleet's bundle, step 12 against `log`, then RS1–RS3) and seal this HSM's OPAQUE
    /// setup to every node of its FleetKeySet. `old` and `old_bundle` are this HSM's fleet;
    /// the output is `(node_id, SealedSetup)` per successor node. Nothing is sealed on any
    /// failure.
    #[allow(clippy::too_many_arguments)]
    pub fn seal_setup_for_successor<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        old: &bkv_protocol::validation_bundle::FleetKeySet,
        old_bundle: &[u8],
        successor: &bkv_protocol::audit_log::LoggedBundle,
        anchors: &bkv_protocol::validation_bundle::TrustAnchors,
        log: &bkv_protocol::audit_log::LogAnchors,
        now: u64,
    ) -> Result<Vec<(String, Vec<u8>)>, HsmError> {
        use bkv_protocol::rotation::{seal_setup, verify_successor};
        let setup = self.setup()?;
        let successor =
            verify_successor(old, old_bundle, successor, anchors, log, now).map_err(HsmError::Transfer)?;
        successor
            .keyset()
            .nodes
            .iter()
            .map(|n| {
                seal_setup(rng, setup, &successor, &n.id)
                    .map(|sealed| (n.id.clone(), sealed))
                    .map_err(HsmError::Transfer)
            })
            .collect()
    }

    /// spec/rotation.md §4.1, the receiver: open `sealed` as node `node_id` of fleet
    /// `fleet_id`, epoch `epoch`, whose bundle has SHA-256 `bundle_digest`; the setup must
    /// be the one this HSM awaits. On success the HSM holds it (seal it again to keep it).
    pub fn receive_setup(
        &mut self,
        sealed: &[u8],
        fleet_id: &str,
        epoch: u64,
        node_id: &str,
        bundle_digest: [u8; 32],
    ) -> Result<(), HsmError> {
        let Opaque::Awaiting(opaque) = self.opaque else {
            return Err(HsmError::Sealed("this HSM already holds an OPAQUE setup".into()));
        };
        let me = bkv_protocol::rotation::SetupReceiver { fleet_id, epoch, node_id, bundle_digest, opaque };
        let setup =
            bkv_protocol::rotation::open_setup(sealed, &self.session, &me).map_err(HsmError::Transfer)?;
        self.opaque = Opaque::Held(Box::new(setup));
        Ok(())
    }

    /// The device identity key a vendor certifies (spec/evidence.md).
    pub fn device_key(&self) -> &PublicKey {
        self.device.public_key()
    }

    /// Sign `message` with the device identity key (the attestation primitive).
    pub fn sign_as_device(&self, message: &[u8]) -> Vec<u8> {
        self.device.sign(message)
    }

    /// spec/evidence.md §3: sign an attestation statement with the device identity key.
    pub fn attest(&self, statement: &bkv_protocol::evidence::AttestationStatement) -> Vec<u8> {
        bkv_protocol::evidence::attest(&self.device, statement)
    }

    /// This node's entry of a FleetKeySet (spec/validation-bundle.md §3.2).
    pub fn node_entry(&self, node_id: &str, datacenter: &str) -> Node {
        Node {
            id: node_id.to_owned(),
            datacenter: datacenter.to_owned(),
            keys: vec![
                NodeKey {
                    role: KeyRole::Session,
                    suite: keyset::SESSION_SUITE_X25519,
                    key: self.session.public_key().to_vec(),
                },
                NodeKey {
                    role: KeyRole::Opaque,
                    suite: keyset::OPAQUE_SUITE_1,
                    key: self.opaque.public_key().to_vec(),
                },
                NodeKey {
                    role: KeyRole::Signing,
                    suite: self.signing.public_key().alg.cose_id(),
                    key: self.signing.public_key().key.clone(),
                },
            ],
        }
    }

    /// The session engine of node `node_id` of fleet `fleet_id`, epoch `epoch`.
    pub fn session_server(&self, fleet_id: &str, epoch: u64, node_id: &str) -> SessionServer {
        SessionServer::new(fleet_id, epoch, node_id, self.session.clone())
    }

    /// spec/hsm.md: start this HSM's boundary for node `node_id` of the verified
    /// FleetKeySet `cfg` describes, with the HSM state kept in `state` (sealed under `kek`,
    /// [`state_path`]). A missing state file is a fresh HSM (mark 0) unless `fresh` is
    /// false: then the node's database was written without one (an earlier release), which
    /// is `hsm.state.missing` (spec/hsm.md §2 rule 3).
    pub fn open_boundary(
        &self,
        cfg: BoundaryConfig,
        node_id: &str,
        state: &Path,
        kek: &Kek,
        fresh: bool,
    ) -> Result<Arc<Boundary>, HsmError> {
        // An HSM awaiting its setup starts nothing, not even its HSM state.
        self.setup()?;
        let store = FileStateStore { path: state.to_owned(), kek: kek.clone(), writes: Default::default() };
        let held = match std::fs::read(state) {
            Ok(bytes) => store.open(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !fresh {
                    return Err(HsmError::State(
                        bkv_protocol::Error::HsmStateMissing,
                        format!(
                            "{} does not exist but the node's database does: it was written by a release \
                             without HSM state; replace the fleet by rotation",
                            state.display()
                        ),
                    ));
                }
                let s = HsmState::fresh(&cfg.fleet, cfg.epoch, cfg.node);
                store.write(&s).map_err(HsmError::Io)?;
                s
            }
            Err(e) => return Err(HsmError::Io(format!("{}: {e}", state.display()))),
        };
        self.boundary(cfg, node_id, held, Box::new(store), &state.display().to_string())
    }

    /// The boundary with its HSM state in memory only: NOT durable (a restart forgets the
    /// mark, so spec/hsm.md §10 does not hold). Only for measuring what the HSM-state
    /// writes cost (`bkv bench recovery --volatile-hsm-state`).
    pub fn boundary_in_memory(&self, cfg: BoundaryConfig, node_id: &str) -> Result<Arc<Boundary>, HsmError> {
        let state = HsmState::fresh(&cfg.fleet, cfg.epoch, cfg.node);
        self.boundary(
            cfg,
            node_id,
            state,
            Box::new(bkv_protocol::hsm::MemoryStateStore::default()),
            "in memory",
        )
    }

    fn boundary(
        &self,
        cfg: BoundaryConfig,
        node_id: &str,
        state: HsmState,
        store: Box<dyn HsmStateStore>,
        place: &str,
    ) -> Result<Arc<Boundary>, HsmError> {
        let (fleet, epoch) = (cfg.fleet.clone(), cfg.epoch);
        let boundary = Boundary::new(
            cfg,
            self.session_server(&fleet, epoch, node_id),
            VaultServer::new(self.transfer_opaque_setup()?, &fleet),
            Ed25519Signer::from_seed(&self.signing.seed()),
            state,
            store,
        )
        .map_err(|e| HsmError::State(e, place.to_owned()))?;
        Ok(Arc::new(boundary))
    }

    /// spec/rotation.md §4: open a sealed record export addressed to this node (the HPKE
    /// open uses the session key inside the HSM).
    pub fn open_export(
        &self,
        sealed: &[u8],
        me: &bkv_protocol::rotation::Importer<'_>,
    ) -> bkv_protocol::Result<bkv_protocol::rotation::RecordExport> {
        bkv_protocol::rotation::open_export(sealed, &self.session, me)
    }

    /// Seal the HSM state under `kek`.
    pub fn seal<R: RngCore + CryptoRng>(&self, rng: &mut R, kek: &Kek) -> Vec<u8> {
        let secrets = Secrets {
            device: self.device.seed().to_vec(),
            signing: self.signing.seed().to_vec(),
            session: self.session.to_bytes().to_vec(),
            opaque: match &self.opaque {
                Opaque::Held(s) => s.to_bytes().to_vec(),
                Opaque::Awaiting(_) => Vec::new(),
            },
            awaiting: match &self.opaque {
                Opaque::Held(_) => None,
                Opaque::Awaiting(k) => Some(k.to_vec()),
            },
        };
        let plaintext = Zeroizing::new(cbor::to_vec(&secrets));
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let ct = ChaCha20Poly1305::new(Key::from_slice(&kek.0[..]))
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plaintext, aad: SEAL_AAD })
            .expect("ChaCha20-Poly1305 encryption of a short message cannot fail");
        cbor::to_vec(&Sealed { v: 1, nonce: nonce.to_vec(), ct })
    }

    /// Open a sealed HSM state.
    pub fn unseal(sealed: &[u8], kek: &Kek) -> Result<Self, HsmError> {
        let s: Sealed = cbor::from_slice(sealed).map_err(|_| HsmError::Unseal)?;
        if s.v != 1 {
            return Err(HsmError::Sealed(format!("version {} (this software reads version 1)", s.v)));
        }
        if s.nonce.len() != 12 {
            return Err(HsmError::Unseal);
        }
        let plaintext = Zeroizing::new(
            ChaCha20Poly1305::new(Key::from_slice(&kek.0[..]))
                .decrypt(Nonce::from_slice(&s.nonce), Payload { msg: &s.ct, aad: SEAL_AAD })
                .map_err(|_| HsmError::Unseal)?,
        );
        let secrets: Secrets = cbor::from_slice(&plaintext).map_err(|_| HsmError::Unseal)?;
        let seed = |b: &[u8]| -> Result<Zeroizing<[u8; 32]>, HsmError> {
            Ok(Zeroizing::new(b.try_into().map_err(|_| HsmError::Unseal)?))
        };
        Ok(Self {
            device: Ed25519Signer::from_seed(&*seed(&secrets.device)?),
            signing: Arc::new(Ed25519Signer::from_seed(&*seed(&secrets.signing)?)),
            session: SessionSecretKey::from_bytes(&*seed(&secrets.session)?).map_err(|_| HsmError::Unseal)?,
            opaque: match &secrets.awaiting {
                None => Opaque::Held(Box::new(
                    VaultServerSetup::from_bytes(&secrets.opaque).map_err(|_| HsmError::Unseal)?,
                )),
                Some(k) if secrets.opaque.is_empty() => {
                    Opaque::Awaiting(k.as_slice().try_into().map_err(|_| HsmError::Unseal)?)
                }
                Some(_) => return Err(HsmError::Unseal),
            },
        })
    }

    /// Seal to `path` (owner-only permissions, fsynced).
    pub fn seal_to_file<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        kek: &Kek,
        path: &Path,
    ) -> Result<(), HsmError> {
        write_private(path, &self.seal(rng, kek))
    }

    /// Open the sealed state in `path`.
    pub fn unseal_file(path: &Path, kek: &Kek) -> Result<Self, HsmError> {
        let bytes = std::fs::read(path).map_err(|e| HsmError::Io(format!("{}: {e}", path.display())))?;
        Self::unseal(&bytes, kek)
    }

    /// Destroy the HSM's keys (fleet retirement): consumes the HSM; every key is zeroized
    /// as it drops. The caller also deletes the sealed file.
    pub fn destroy(self) {
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn hsm(rng: &mut ChaCha20Rng) -> SoftHsm {
        let setup = VaultServerSetup::generate(rng);
        SoftHsm::generate(rng, setup)
    }

    #[test]
    fn seal_unseal_keeps_every_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let h = hsm(&mut rng);
        let kek = Kek::generate(&mut rng);
        let back = SoftHsm::unseal(&h.seal(&mut rng, &kek), &kek).unwrap();
        assert_eq!(back.node_entry("n", "dc"), h.node_entry("n", "dc"));
        assert_eq!(back.device_key(), h.device_key());
        let msg = b"attest";
        assert!(h.device_key().verify(msg, &back.sign_as_device(msg)));
    }

    #[test]
    fn wrong_kek_or_tampering_fails_with_unseal() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let h = hsm(&mut rng);
        let kek = Kek::generate(&mut rng);
        let sealed = h.seal(&mut rng, &kek);
        let other = Kek::generate(&mut rng);
        assert_eq!(SoftHsm::unseal(&sealed, &other).unwrap_err().code(), "hsm.unseal.failed");
        for i in [0, sealed.len() / 2, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(matches!(SoftHsm::unseal(&bad, &kek), Err(HsmError::Unseal)), "byte {i}");
        }
        assert!(matches!(SoftHsm::unseal(&sealed[..sealed.len() - 1], &kek), Err(HsmError::Unseal)));
    }

    #[test]
    fn another_version_is_hsm_sealed() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let h = hsm(&mut rng);
        let kek = Kek::generate(&mut rng);
        let mut sealed: Sealed = cbor::from_slice(&h.seal(&mut rng, &kek)).unwrap();
        sealed.v = 2;
        let err = SoftHsm::unseal(&cbor::to_vec(&sealed), &kek).unwrap_err();
        assert_eq!(err.code(), "hsm.sealed");
    }

    /// spec/rotation.md §4.1: an HSM generated for a successor carries the awaited OPAQUE
    /// key in its node entry and through sealing, and starts no boundary until it holds
    /// the setup (`hsm.setup.awaiting`), writing no HSM state either.
    #[test]
    fn an_hsm_awaiting_its_setup_starts_nothing() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let old = hsm(&mut rng);
        let awaited = old.node_entry("a", "x").key(KeyRole::Opaque).unwrap().key.clone();
        let h = SoftHsm::generate_awaiting(&mut rng, awaited.clone().try_into().unwrap());
        assert!(h.awaiting_setup() && !old.awaiting_setup());
        assert_eq!(h.node_entry("b", "y").key(KeyRole::Opaque).unwrap().key, awaited);
        let kek = Kek::generate(&mut rng);
        let back = SoftHsm::unseal(&h.seal(&mut rng, &kek), &kek).unwrap();
        assert!(back.awaiting_setup());
        assert_eq!(back.node_entry("b", "y"), h.node_entry("b", "y"));
        assert_eq!(back.transfer_opaque_setup().unwrap_err().code(), "hsm.setup.awaiting");

        let dir = std::env::temp_dir().join(format!("bkv-hsm-awaiting-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("hsm.state");
        let ks = bkv_protocol::validation_bundle::FleetKeySet {
            v: 1,
            fleet_id: "f.example/vault".into(),
            epoch: 2,
            not_before: 0,
            not_after: 1,
            guess_limit: 10,
            quorum: 1,
            nodes: vec![back.node_entry("b", "y")],
            prev: None,
            evidence: None,
        };
        let cfg = BoundaryConfig::from_keyset(&ks, 0).unwrap();
        let err = back.open_boundary(cfg, "b", &state, &kek, true).unwrap_err();
        assert_eq!(err.code(), "hsm.setup.awaiting");
        assert!(!state.exists(), "no HSM state is written for an HSM that starts nothing");
        // A sealed file that claims both a setup and an awaited key does not open.
        let both = Secrets {
            device: old.device.seed().to_vec(),
            signing: old.signing.seed().to_vec(),
            session: old.session.to_bytes().to_vec(),
            opaque: old.transfer_opaque_setup().unwrap().to_bytes().to_vec(),
            awaiting: Some(awaited.clone()),
        };
        let nonce = [9u8; 12];
        let ct = ChaCha20Poly1305::new(Key::from_slice(&kek.0[..]))
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &cbor::to_vec(&both), aad: SEAL_AAD })
            .unwrap();
        let sealed = cbor::to_vec(&Sealed { v: 1, nonce: nonce.to_vec(), ct });
        assert!(matches!(SoftHsm::unseal(&sealed, &kek), Err(HsmError::Unseal)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fleet_nodes_share_the_opaque_key_and_nothing_else() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let a = hsm(&mut rng);
        let b = SoftHsm::generate(&mut rng, a.transfer_opaque_setup().unwrap());
        let (ea, eb) = (a.node_entry("a", "x"), b.node_entry("b", "y"));
        assert_eq!(ea.key(KeyRole::Opaque), eb.key(KeyRole::Opaque));
        assert_ne!(ea.key(KeyRole::Session), eb.key(KeyRole::Session));
        assert_ne!(ea.key(KeyRole::Signing), eb.key(KeyRole::Signing));
        assert_ne!(a.device_key(), b.device_key());
    }

    /// spec/hsm.md §1, §2: the HSM state is a sealed file of its own; a fresh node gets
    /// mark 0, a node with a database but no state file is `hsm.state.missing`, a state
    /// sealed under another KEK or edited does not open, and the mark survives a reopen.
    #[test]
    fn the_hsm_state_file_is_sealed_and_required_once_a_database_exists() {
        use bkv_protocol::crypto::Signer as _;
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let h = hsm(&mut rng);
        let kek = Kek::generate(&mut rng);
        let dir = std::env::temp_dir().join(format!("bkv-hsm-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let state = state_path(&dir.join("hsm.sealed"));
        assert_eq!(state, dir.join("hsm.state"));
        let cfg = BoundaryConfig {
            fleet: "f".into(),
            epoch: 1,
            node: 0,
            quorum: 1,
            signing_keys: vec![h.signing.public_key().clone()],
            guess_limit: 10,
            awaiting_import: false,
        };
        let missing = h.open_boundary(cfg.clone(), "n", &state, &kek, false).unwrap_err();
        assert_eq!(missing.code(), "hsm.state.missing");
        assert!(!state.exists());
        let b = h.open_boundary(cfg.clone(), "n", &state, &kek, true).unwrap();
        assert!(state.exists());
        b.apply(&bkv_protocol::hsm::LogEntry::encode(0, b"\xa0"));
        b.ack(1).unwrap();
        drop(b);
        let b = h.open_boundary(cfg.clone(), "n", &state, &kek, false).unwrap();
        assert_eq!(b.status().mark.position, 1, "the mark survives a restart");
        let other = Kek::generate(&mut rng);
        assert_eq!(
            h.open_boundary(cfg.clone(), "n", &state, &other, false).unwrap_err().code(),
            "hsm.unseal.failed"
        );
        let mut bytes = std::fs::read(&state).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 1;
        std::fs::write(&state, &bytes).unwrap();
        assert_eq!(h.open_boundary(cfg, "n", &state, &kek, false).unwrap_err().code(), "hsm.unseal.failed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// spec/hsm.md §2 rule 3: the node directory of a fleet written by the release before
    /// spec/hsm.md (`tests/fixtures/fleet-ace1561`: a Raft database, no HSM state) is
    /// refused with `hsm.state.missing` when its HSM is opened as a node start does, and
    /// the database is left as it was.
    #[test]
    fn a_fleet_directory_of_the_previous_release_is_refused() {
        use bkv_protocol::audit_log::LoggedBundle;
        use bkv_protocol::validation_bundle::{FleetKeySet, Parsed};
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fleet-ace1561");
        let dir = std::env::temp_dir().join(format!("bkv-legacy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("node-1/raft")).unwrap();
        for f in ["kek.hex", "released-bundle.cbor", "node-1/hsm.sealed", "node-1/raft/raft.redb"] {
            std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
        }
        let kek = Kek::from_file(&dir.join("kek.hex")).unwrap();
        let sealed = dir.join("node-1/hsm.sealed");
        let hsm = SoftHsm::unseal_file(&sealed, &kek).expect("the previous release's sealed keys open");
        let released =
            LoggedBundle::from_cbor(&std::fs::read(dir.join("released-bundle.cbor")).unwrap()).unwrap();
        let keyset = FleetKeySet::from_bytes(&Parsed::parse(&released.bundle).unwrap().payload).unwrap();
        let cfg = BoundaryConfig::from_keyset(&keyset, 0).unwrap();
        let raft = dir.join("node-1/raft");
        let before = std::fs::read(raft.join("raft.redb")).unwrap();
        let err = hsm.open_boundary(cfg, "node-1", &state_path(&sealed), &kek, !raft.exists()).unwrap_err();
        assert_eq!(err.code(), "hsm.state.missing", "{err}");
        assert!(err.to_string().contains("rotation"), "the message says what to do: {err}");
        assert!(!state_path(&sealed).exists(), "no HSM state was made up for it");
        assert_eq!(std::fs::read(raft.join("raft.redb")).unwrap(), before, "the database is untouched");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn kek_parsing_rejects_bad_input() {
        assert_eq!(Kek::from_hex("zz").unwrap_err().code(), "hsm.kek.invalid");
        assert_eq!(Kek::from_hex(&"00".repeat(31)).unwrap_err().code(), "hsm.kek.invalid");
        assert!(Kek::from_hex(&format!(" {}\n", "ab".repeat(32))).is_ok());
    }
}
