//! `bkv-pkcs11`: an organisation's signing key in a PKCS#11 token, behind the
//! [`bkv_protocol::crypto::Signer`] trait (spec/conventions.md §4.1, §4.4).
//!
//! - **Ed25519** keys are generated with `CKM_EC_EDWARDS_KEY_PAIR_GEN` and sign with
//!   `CKM_EDDSA` (pure Ed25519, RFC 8032), giving the 64-byte signature bkv verifies.
//! - **ESP256** keys are generated with `CKM_EC_KEY_PAIR_GEN` on P-256 and sign as **hash,
//!   then `CKM_ECDSA`**: the SHA-256 of the message is computed here and the token signs the
//!   digest with raw `CKM_ECDSA`, returning the 64-byte `r‖s` that ESP256 uses (SoftHSM2
//!   2.6 refuses `CKM_ECDSA_SHA256` for EC keys, and every token implements raw `CKM_ECDSA`).
//!
//! Keys are generated in the token with `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true and
//! `CKA_EXTRACTABLE` false: the private key never leaves it. The PIN comes from a file or
//! the environment, never from the command line. `C_Initialize` runs once per process, so
//! a process uses one module (and, for SoftHSM2, one `SOFTHSM2_CONF`).
#![forbid(unsafe_code)]

use bkv_protocol::crypto::{Algorithm, PublicKey, Signer};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// DER of the OID of P-256 (`1.2.840.10045.3.1.7`), the `CKA_EC_PARAMS` of an ESP256 key.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the OID of Ed25519 (`1.3.101.112`), the `CKA_EC_PARAMS` of an Ed25519 key.
const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// What went wrong with the token (spec/conventions.md §8, `hsm.pkcs11`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The module could not be loaded or initialised, or a call failed.
    #[error("hsm.pkcs11: {0}")]
    Token(String),
    /// No token with this label, no key with this label, or a key that is not usable.
    #[error("hsm.pkcs11: {0}")]
    NotFound(String),
    /// The PIN could not be read.
    #[error("hsm.pkcs11: {0}")]
    Pin(String),
}

impl Error {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        "hsm.pkcs11"
    }
}

fn token(what: &str) -> impl Fn(cryptoki::error::Error) -> Error + '_ {
    move |e| Error::Token(format!("{what}: {e}"))
}

/// Where a key lives: the module, the token, the key's label, the PIN.
#[derive(Debug, Clone)]
pub struct KeyRef {
    /// The PKCS#11 module (for SoftHSM2: `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The key's label (`CKA_LABEL` of both halves).
    pub key_label: String,
    /// The user PIN.
    pub pin: zeroize::Zeroizing<String>,
}

/// The PIN in `file`, else in the environment variable `env`; never on the command line.
pub fn read_pin(file: Option<&Path>, env: &str) -> Result<zeroize::Zeroizing<String>, Error> {
    let pin = match file {
        Some(f) => std::fs::read_to_string(f).map_err(|e| Error::Pin(format!("{}: {e}", f.display())))?,
        None => {
            std::env::var(env).map_err(|_| Error::Pin(format!("no PIN: give a PIN file or set {env}")))?
        }
    };
    Ok(zeroize::Zeroizing::new(pin.trim_end_matches(['\r', '\n']).to_owned()))
}

/// What the token says about a key's private half.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyAttributes {
    /// `CKA_EXTRACTABLE`.
    pub extractable: bool,
    /// `CKA_SENSITIVE`.
    pub sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`.
    pub never_extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`.
    pub always_sensitive: bool,
}

/// A logged-in session on the token of a [`KeyRef`].
struct Token {
    _ctx: Pkcs11,
    session: Session,
}

impl Token {
    fn open(key: &KeyRef, rw: bool) -> Result<Self, Error> {
        let ctx =
            Pkcs11::new(&key.module).map_err(|e| Error::Token(format!("{}: {e}", key.module.display())))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(token("C_Initialize"))?;
        let slot = ctx
            .get_slots_with_token()
            .map_err(token("C_GetSlotList"))?
            .into_iter()
            .find(|s| ctx.get_token_info(*s).is_ok_and(|i| i.label() == key.token_label))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no token labelled {:?} in {}",
                    key.token_label,
                    key.module.display()
                ))
            })?;
        let session = if rw { ctx.open_rw_session(slot) } else { ctx.open_ro_session(slot) }
            .map_err(token("C_OpenSession"))?;
        session
            .login(UserType::User, Some(&AuthPin::from(key.pin.as_str().to_owned())))
            .map_err(token("C_Login"))?;
        Ok(Token { _ctx: ctx, session })
    }

    fn find(&self, class: ObjectClass, label: &str) -> Result<ObjectHandle, Error> {
        let found = self
            .session
            .find_objects(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())])
            .map_err(token("C_FindObjects"))?;
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!("no {class} labelled {label:?}"))),
            _ => Err(Error::NotFound(format!("{} objects of class {class} labelled {label:?}", found.len()))),
        }
    }

    /// The bkv public key of the key pair labelled `label`.
    fn public_key(&self, label: &str) -> Result<PublicKey, Error> {
        let handle = self.find(ObjectClass::PUBLIC_KEY, label)?;
        let attrs = self
            .session
            .get_attributes(handle, &[AttributeType::KeyType, AttributeType::EcPoint])
            .map_err(token("C_GetAttributeValue"))?;
        let (mut kind, mut point) = (None, None);
        for a in attrs {
            match a {
                Attribute::KeyType(k) => kind = Some(k),
                Attribute::EcPoint(p) => point = Some(p),
                _ => {}
            }
        }
        let point = point.ok_or_else(|| Error::NotFound(format!("{label:?} has no CKA_EC_POINT")))?;
        let (alg, len) = match kind {
            Some(k) if k == KeyType::EC_EDWARDS => (Algorithm::Ed25519, 32),
            Some(k) if k == KeyType::EC => (Algorithm::Esp256, 65),
            other => {
                return Err(Error::NotFound(format!("{label:?} is a {other:?} key, not Ed25519 or P-256")));
            }
        };
        let raw = unwrap_octet_string(&point, len)
            .ok_or_else(|| Error::NotFound(format!("{label:?}: CKA_EC_POINT of {} bytes", point.len())))?;
        let key = PublicKey { alg, key: raw };
        key.validate().map_err(|e| Error::NotFound(format!("{label:?}: {e}")))?;
        Ok(key)
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the point (some tokens give the raw point).
fn unwrap_octet_string(point: &[u8], len: usize) -> Option<Vec<u8>> {
    match point {
        [0x04, l, rest @ ..] if usize::from(*l) == len && rest.len() == len => Some(rest.to_vec()),
        raw if raw.len() == len => Some(raw.to_vec()),
        _ => None,
    }
}

/// Generate a key pair of `alg` labelled `key.key_label` in the token, non-extractable and
/// sensitive; returns its public key and the private half's attributes as the token
/// reports them. Refuses a label that is already taken.
pub fn generate(key: &KeyRef, alg: Algorithm) -> Result<(PublicKey, KeyAttributes), Error> {
    let t = Token::open(key, true)?;
    if t.find(ObjectClass::PRIVATE_KEY, &key.key_label).is_ok()
        || t.find(ObjectClass::PUBLIC_KEY, &key.key_label).is_ok()
    {
        return Err(Error::Token(format!(
            "a key labelled {:?} exists in token {:?}",
            key.key_label, key.token_label
        )));
    }
    let (mechanism, params) = match alg {
        Algorithm::Ed25519 => (Mechanism::EccEdwardsKeyPairGen, ED25519_PARAMS),
        Algorithm::Esp256 => (Mechanism::EccKeyPairGen, P256_PARAMS),
    };
    let label = key.key_label.as_bytes().to_vec();
    let public = [
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::EcParams(params.to_vec()),
        Attribute::Label(label.clone()),
        Attribute::Id(label.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.clone()),
        Attribute::Id(label),
    ];
    t.session.generate_key_pair(&mechanism, &public, &private).map_err(token("C_GenerateKeyPair"))?;
    let pk = t.public_key(&key.key_label)?;
    let attrs = attributes(&t, &key.key_label)?;
    tracing::info!(token = %key.token_label, key = %key.key_label, kid = %hex::encode(pk.kid()), "key generated in the token");
    Ok((pk, attrs))
}

fn attributes(t: &Token, label: &str) -> Result<KeyAttributes, Error> {
    let handle = t.find(ObjectClass::PRIVATE_KEY, label)?;
    let list = [
        AttributeType::Extractable,
        AttributeType::Sensitive,
        AttributeType::NeverExtractable,
        AttributeType::AlwaysSensitive,
    ];
    let mut out = KeyAttributes {
        extractable: true,
        sensitive: false,
        never_extractable: false,
        always_sensitive: false,
    };
    for a in t.session.get_attributes(handle, &list).map_err(token("C_GetAttributeValue"))? {
        match a {
            Attribute::Extractable(b) => out.extractable = b,
            Attribute::Sensitive(b) => out.sensitive = b,
            Attribute::NeverExtractable(b) => out.never_extractable = b,
            Attribute::AlwaysSensitive(b) => out.always_sensitive = b,
            _ => {}
        }
    }
    Ok(out)
}

/// The public key and the private half's attributes of an existing key.
pub fn inspect(key: &KeyRef) -> Result<(PublicKey, KeyAttributes), Error> {
    let t = Token::open(key, false)?;
    Ok((t.public_key(&key.key_label)?, attributes(&t, &key.key_label)?))
}

/// A signing key in a token.
pub struct TokenSigner {
    token: Mutex<Token>,
    private: ObjectHandle,
    public: PublicKey,
}

impl TokenSigner {
    /// Open the key of `key`. It refuses a key whose private half is extractable or not
    /// sensitive, and checks with one signature that the token signs as the public key says.
    pub fn open(key: &KeyRef) -> Result<Self, Error> {
        let t = Token::open(key, false)?;
        let public = t.public_key(&key.key_label)?;
        let attrs = attributes(&t, &key.key_label)?;
        if attrs.extractable || !attrs.sensitive {
            return Err(Error::NotFound(format!(
                "{:?} is extractable or not sensitive ({attrs:?}): bkv signs only with keys that never leave the token",
                key.key_label
            )));
        }
        let private = t.find(ObjectClass::PRIVATE_KEY, &key.key_label)?;
        let signer = TokenSigner { token: Mutex::new(t), private, public };
        let probe = b"bkv-pkcs11 self-test";
        let sig = signer.try_sign(probe)?;
        if !signer.public.verify(probe, &sig) {
            return Err(Error::Token(format!(
                "{:?}: the token's signature does not verify with its public key",
                key.key_label
            )));
        }
        Ok(signer)
    }

    /// Sign `message`: `CKM_EDDSA` over it (Ed25519), or SHA-256 then `CKM_ECDSA` (ESP256).
    pub fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let t = self.token.lock().unwrap_or_else(|p| p.into_inner());
        match self.public.alg {
            Algorithm::Ed25519 => t
                .session
                .sign(&Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), self.private, message)
                .map_err(token("C_Sign (CKM_EDDSA)")),
            _ => {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(message);
                t.session.sign(&Mechanism::Ecdsa, self.private, &digest).map_err(token("C_Sign (CKM_ECDSA)"))
            }
        }
    }
}

impl Signer for TokenSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// A token that fails to sign (removed, logged out) gives an empty signature, which
    /// verifies nowhere: every caller of the signer and the operator verifies what it
    /// produced before it hands it on (spec/signer-api.md §3 C3, §4 O2–O3), so the failure
    /// surfaces as a refused signature, and it is logged here with its cause.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self.try_sign(message) {
            Ok(sig) => sig,
            Err(e) => {
                tracing::error!(code = e.code(), "the token did not sign: {e}");
                Vec::new()
            }
        }
    }
}
