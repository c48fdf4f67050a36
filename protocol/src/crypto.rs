//! COSE algorithms, public keys, key identifiers and the signing trait.
//!
//! spec/conventions.md §4. bkv signs with two fully-specified COSE algorithms only:
//! Ed25519 (-19) and ESP256 (-9, ECDSA P-256 with SHA-256). The deprecated polymorphic
//! identifiers EdDSA (-8) and ES256 (-7) are refused with `cose.algorithm.deprecated`,
//! never mapped silently onto the new ones.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// spec/conventions.md §4.1: the signature algorithms of bkv, by COSE identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum Algorithm {
    /// Ed25519 (RFC 9864), COSE -19. Public keys are 32 bytes, signatures 64.
    Ed25519,
    /// ECDSA with P-256 and SHA-256 (RFC 9864), COSE -9. Public keys are 65-byte
    /// uncompressed SEC1 points, signatures are 64-byte `r || s`.
    Esp256,
}

impl Algorithm {
    /// The COSE algorithm identifier.
    pub const fn cose_id(self) -> i64 {
        match self {
            Algorithm::Ed25519 => -19,
            Algorithm::Esp256 => -9,
        }
    }

    /// The algorithm's name in the COSE registry.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::Esp256 => "ESP256",
        }
    }

    /// spec/conventions.md §4.1: map a COSE identifier, refusing deprecated ones.
    pub fn from_cose_id(id: i64) -> Result<Self> {
        match id {
            -19 => Ok(Algorithm::Ed25519),
            -9 => Ok(Algorithm::Esp256),
            -8 | -7 => Err(Error::CoseAlgorithmDeprecated),
            _ => Err(Error::CoseAlgorithmUnsupported),
        }
    }
}

impl TryFrom<i64> for Algorithm {
    type Error = Error;
    fn try_from(id: i64) -> Result<Self> {
        Algorithm::from_cose_id(id)
    }
}

impl From<Algorithm> for i64 {
    fn from(a: Algorithm) -> i64 {
        a.cose_id()
    }
}

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest32 {
    Sha256::digest(data).into()
}

/// Compare two byte strings in constant time (for digests, MACs and tags).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A verification key with its algorithm. spec/conventions.md §4.2.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKey {
    /// COSE algorithm identifier.
    pub alg: Algorithm,
    /// The raw public key: 32 bytes (Ed25519) or 65-byte uncompressed SEC1 (ESP256).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

/// The CBOR array a key identifier is computed over: `[alg, key]`.
#[derive(Serialize)]
struct KidInput<'a>(i64, #[serde(with = "serde_bytes")] &'a [u8]);

impl PublicKey {
    /// Build and validate a public key.
    pub fn new(alg: Algorithm, key: Vec<u8>) -> Result<Self> {
        let pk = PublicKey { alg, key };
        pk.validate()?;
        Ok(pk)
    }

    /// spec/conventions.md §4.2: the key must decode as a point of its algorithm.
    pub fn validate(&self) -> Result<()> {
        match self.alg {
            Algorithm::Ed25519 => {
                let bytes: [u8; 32] = self.key.as_slice().try_into().map_err(|_| Error::CoseKeyInvalid)?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| Error::CoseKeyInvalid)?;
            }
            Algorithm::Esp256 => {
                if self.key.len() != 65 || self.key[0] != 0x04 {
                    return Err(Error::CoseKeyInvalid);
                }
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.key).map_err(|_| Error::CoseKeyInvalid)?;
            }
        }
        Ok(())
    }

    /// spec/conventions.md §4.3: `kid = SHA-256(deterministic CBOR of [alg, key])`.
    pub fn kid(&self) -> Digest32 {
        sha256(&crate::cbor::to_vec(&KidInput(self.alg.cose_id(), &self.key)))
    }

    /// spec/conventions.md §4.4: verify `signature` over `message`. Ed25519 uses the
    /// strict verification of RFC 8032 §5.1.7 (canonical S, no small-order keys or R);
    /// ESP256 takes `r || s` (64 bytes). Returns `false` on any failure.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self.alg {
            Algorithm::Ed25519 => {
                let (Ok(key), Ok(sig)) =
                    (<[u8; 32]>::try_from(self.key.as_slice()), <[u8; 64]>::try_from(signature))
                else {
                    return false;
                };
                let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
                    return false;
                };
                vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
            }
            Algorithm::Esp256 => {
                use p256::ecdsa::signature::Verifier;
                let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.key) else {
                    return false;
                };
                let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                vk.verify(message, &sig).is_ok()
            }
        }
    }
}

/// spec/conventions.md §4.4: something that signs with a private key it may never
/// reveal (a software key, an HSM, a KMS). bkv code only ever sees this trait.
pub trait Signer {
    /// The public half of the signing key.
    fn public_key(&self) -> &PublicKey;
    /// Sign `message`, returning the raw COSE signature bytes.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

/// A software Ed25519 key (zeroized on drop by `ed25519-dalek`).
pub struct Ed25519Signer {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl Ed25519Signer {
    /// A key from a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = PublicKey { alg: Algorithm::Ed25519, key: key.verifying_key().to_bytes().to_vec() };
        Ed25519Signer { key, public }
    }

    /// A fresh key from `rng`.
    pub fn generate(rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore)) -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The secret seed, for sealing at rest by a software HSM.
    pub fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.key.to_bytes())
    }
}

impl Signer for Ed25519Signer {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer as _;
        self.key.sign(message).to_bytes().to_vec()
    }
}

/// A software ESP256 key (zeroized on drop by `p256`). Signatures are deterministic
/// (RFC 6979), so vectors made with it are stable.
pub struct Esp256Signer {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl Esp256Signer {
    /// A key from a 32-byte big-endian scalar.
    pub fn from_scalar(scalar: &[u8; 32]) -> Result<Self> {
        let key = p256::ecdsa::SigningKey::from_slice(scalar).map_err(|_| Error::CoseKeyInvalid)?;
        let point = key.verifying_key().to_encoded_point(false);
        let public = PublicKey { alg: Algorithm::Esp256, key: point.as_bytes().to_vec() };
        Ok(Esp256Signer { key, public })
    }

    /// The 32-byte big-endian scalar (to store the key; zeroized on drop).
    pub fn scalar(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.key.to_bytes().into())
    }

    /// A fresh key from `rng`.
    pub fn generate(rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore)) -> Self {
        let key = p256::ecdsa::SigningKey::random(rng);
        let point = key.verifying_key().to_encoded_point(false);
        let public = PublicKey { alg: Algorithm::Esp256, key: point.as_bytes().to_vec() };
        Esp256Signer { key, public }
    }
}

impl Signer for Esp256Signer {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        let sig: p256::ecdsa::Signature = self.key.sign(message);
        sig.to_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_ids() {
        assert_eq!(Algorithm::from_cose_id(-19), Ok(Algorithm::Ed25519));
        assert_eq!(Algorithm::from_cose_id(-9), Ok(Algorithm::Esp256));
        assert_eq!(Algorithm::from_cose_id(-8), Err(Error::CoseAlgorithmDeprecated));
        assert_eq!(Algorithm::from_cose_id(-7), Err(Error::CoseAlgorithmDeprecated));
        assert_eq!(Algorithm::from_cose_id(-35), Err(Error::CoseAlgorithmUnsupported));
    }

    #[test]
    fn rfc8032_test_1_verifies_and_tampering_fails() {
        // RFC 8032 §7.1 TEST 1 (empty message).
        let s = Ed25519Signer::from_seed(
            &hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        assert_eq!(
            hex::encode(&s.public_key().key),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = s.sign(b"");
        assert_eq!(
            hex::encode(&sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(s.public_key().verify(b"", &sig));
        assert!(!s.public_key().verify(b"x", &sig));
    }

    #[test]
    fn esp256_sign_verify_and_key_checks() {
        let s = Esp256Signer::from_scalar(&[7u8; 32]).unwrap();
        let sig = s.sign(b"msg");
        assert_eq!(sig.len(), 64);
        assert!(s.public_key().verify(b"msg", &sig));
        assert!(!s.public_key().verify(b"msh", &sig));
        assert_eq!(PublicKey::new(Algorithm::Esp256, vec![4; 65]), Err(Error::CoseKeyInvalid));
        assert_eq!(PublicKey::new(Algorithm::Ed25519, vec![1; 31]), Err(Error::CoseKeyInvalid));
        assert!(PublicKey::new(Algorithm::Esp256, s.public_key().key.clone()).is_ok());
    }

    #[test]
    fn kid_binds_algorithm_and_key() {
        let a = PublicKey { alg: Algorithm::Ed25519, key: vec![1; 32] };
        let b = PublicKey { alg: Algorithm::Esp256, key: vec![1; 32] };
        assert_ne!(a.kid(), b.kid());
        // kid input is the CBOR array [-19, h'01..01'] = 82 32 5820 01..01
        let mut input = hex::decode("82325820").unwrap();
        input.extend([1u8; 32]);
        assert_eq!(a.kid(), <[u8; 32]>::from(Sha256::digest(&input)));
    }
}
