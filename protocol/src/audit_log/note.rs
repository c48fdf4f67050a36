//! spec/audit-log.md §4: C2SP `signed-note` (Ed25519, signature type 0x01), verifier
//! keys (vkeys), and C2SP `tlog-cosignature` Ed25519 cosignatures (type 0x04).

use crate::crypto::{Algorithm, Signer, ct_eq, sha256};
use crate::error::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// C2SP signed-note signature type: Ed25519 over the note text.
pub const SIG_TYPE_ED25519: u8 = 0x01;
/// C2SP tlog-cosignature signature type: timestamped Ed25519 cosignature.
pub const SIG_TYPE_COSIGNATURE: u8 = 0x04;
/// spec/audit-log.md §4.1: the most signature lines a bkv verifier accepts in one note.
pub const MAX_SIGNATURES: usize = 64;

const EM_DASH: &str = "\u{2014} ";

/// One signature line of a note: `— <name> base64(key id || signature)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The 4-byte key id (big-endian uint32 on the wire).
    pub key_id: [u8; 4],
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line, including its final newline.
    pub fn to_line(&self) -> String {
        let mut raw = self.key_id.to_vec();
        raw.extend_from_slice(&self.signature);
        format!("{EM_DASH}{} {}\n", self.name, B64.encode(raw))
    }
}

/// A parsed signed note (spec/audit-log.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The note text, including its final newline.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

/// C2SP signed-note: key names are non-empty and contain no Unicode space and no `+`.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

impl Note {
    /// spec/audit-log.md §4.1: parse a signed note. Fails with `log.note.malformed`.
    pub fn parse(note: &str) -> Result<Note> {
        let bad = Error::LogNoteMalformed;
        if note.chars().any(|c| c < ' ' && c != '\n') || !note.ends_with('\n') {
            return Err(bad);
        }
        // The text ends at the last blank line; text includes its final newline.
        let split = note.rfind("\n\n").ok_or(bad)?;
        let text = &note[..split + 1];
        let sigs = &note[split + 2..];
        if sigs.is_empty() {
            return Err(bad);
        }
        let mut signatures = Vec::new();
        for line in sigs.strip_suffix('\n').ok_or(bad)?.split('\n') {
            let rest = line.strip_prefix(EM_DASH).ok_or(bad)?;
            let (name, b64) = rest.split_once(' ').ok_or(bad)?;
            if !valid_key_name(name) || b64.contains(' ') {
                return Err(bad);
            }
            let raw = B64.decode(b64).map_err(|_| bad)?;
            if raw.len() < 5 {
                return Err(bad);
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: raw[..4].try_into().map_err(|_| bad)?,
                signature: raw[4..].to_vec(),
            });
            if signatures.len() > MAX_SIGNATURES {
                return Err(bad);
            }
        }
        Ok(Note { text: text.to_owned(), signatures })
    }

    /// The note as text: the text, a blank line, the signature lines.
    pub fn encode(&self) -> String {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.to_line());
        }
        s
    }
}

/// C2SP signed-note key id: `SHA-256(name || 0x0A || type || public key)[:4]`.
pub fn key_id(name: &str, sig_type: u8, public_key: &[u8]) -> [u8; 4] {
    let mut input = Vec::with_capacity(name.len() + 2 + public_key.len());
    input.extend_from_slice(name.as_bytes());
    input.push(0x0A);
    input.push(sig_type);
    input.extend_from_slice(public_key);
    let d = sha256(&input);
    [d[0], d[1], d[2], d[3]]
}

/// An Ed25519 verifier key of a log (type 0x01) or a witness (type 0x04),
/// spec/audit-log.md §4.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// Key name (for a log, its origin).
    pub name: String,
    /// Signature type: [`SIG_TYPE_ED25519`] or [`SIG_TYPE_COSIGNATURE`].
    pub sig_type: u8,
    /// The 32-byte Ed25519 public key.
    pub key: [u8; 32],
}

impl VerifierKey {
    /// A verifier key; fails with `log.vkey.malformed` for a bad name, type or key.
    pub fn new(name: &str, sig_type: u8, key: [u8; 32]) -> Result<Self> {
        if !valid_key_name(name)
            || !matches!(sig_type, SIG_TYPE_ED25519 | SIG_TYPE_COSIGNATURE)
            || ed25519_dalek::VerifyingKey::from_bytes(&key).is_err()
        {
            return Err(Error::LogVkeyMalformed);
        }
        Ok(VerifierKey { name: name.to_owned(), sig_type, key })
    }

    /// The key id of this key.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, self.sig_type, &self.key)
    }

    /// spec/audit-log.md §4.2: parse `name+hex(key id)+base64(type || key)`;
    /// the key id must match the key. Fails with `log.vkey.malformed`.
    pub fn parse(vkey: &str) -> Result<Self> {
        let bad = Error::LogVkeyMalformed;
        // The base64 part may itself contain '+'; names and hex ids cannot.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad);
        };
        if id.len() != 8 || id.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad);
        }
        let id: [u8; 4] = hex::decode(id).map_err(|_| bad)?.try_into().map_err(|_| bad)?;
        let raw = B64.decode(b64).map_err(|_| bad)?;
        let (&sig_type, key) = raw.split_first().ok_or(bad)?;
        let key: [u8; 32] = key.try_into().map_err(|_| bad)?;
        let vk = VerifierKey::new(name, sig_type, key)?;
        if vk.key_id() != id {
            return Err(bad);
        }
        Ok(vk)
    }

    /// The vkey string.
    pub fn encode(&self) -> String {
        let mut raw = vec![self.sig_type];
        raw.extend_from_slice(&self.key);
        format!("{}+{}+{}", self.name, hex::encode(self.key_id()), B64.encode(raw))
    }

    /// Whether a signature line names this key (name and key id both match).
    pub fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && ct_eq(&sig.key_id, &self.key_id())
    }

    fn verify_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        crate::crypto::PublicKey { alg: Algorithm::Ed25519, key: self.key.to_vec() }
            .verify(message, signature)
    }

    /// spec/audit-log.md §4.1: verify a type-0x01 signature line over `text`.
    pub fn verify_note_signature(&self, text: &str, sig: &NoteSignature) -> bool {
        self.sig_type == SIG_TYPE_ED25519
            && self.matches(sig)
            && self.verify_raw(text.as_bytes(), &sig.signature)
    }

    /// spec/audit-log.md §4.3: verify a type-0x04 cosignature line over the
    /// checkpoint `text`; returns the cosignature timestamp.
    pub fn verify_cosignature(&self, text: &str, sig: &NoteSignature) -> Option<u64> {
        if self.sig_type != SIG_TYPE_COSIGNATURE || !self.matches(sig) || sig.signature.len() != 72 {
            return None;
        }
        let timestamp = u64::from_be_bytes(sig.signature[..8].try_into().ok()?);
        if timestamp > i64::MAX as u64 {
            return None;
        }
        self.verify_raw(&cosignature_message(text, timestamp), &sig.signature[8..]).then_some(timestamp)
    }
}

/// C2SP tlog-cosignature: `cosignature/v1\ntime <t>\n` followed by the checkpoint text.
pub fn cosignature_message(text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// The Ed25519 public key of `signer` as 32 bytes, if it is an Ed25519 signer.
fn ed25519_key(signer: &dyn Signer) -> Result<[u8; 32]> {
    let pk = signer.public_key();
    if pk.alg != Algorithm::Ed25519 {
        return Err(Error::LogVkeyMalformed);
    }
    pk.key.as_slice().try_into().map_err(|_| Error::LogVkeyMalformed)
}

/// spec/audit-log.md §4.1: sign `text` as `name` with an Ed25519 signer (type 0x01).
pub fn sign_note(text: &str, name: &str, signer: &dyn Signer) -> Result<NoteSignature> {
    let vk = VerifierKey::new(name, SIG_TYPE_ED25519, ed25519_key(signer)?)?;
    Ok(NoteSignature { name: name.to_owned(), key_id: vk.key_id(), signature: signer.sign(text.as_bytes()) })
}

/// spec/audit-log.md §4.3: cosign the checkpoint `text` as witness `name` at `timestamp`.
pub fn cosign(text: &str, name: &str, signer: &dyn Signer, timestamp: u64) -> Result<NoteSignature> {
    let vk = VerifierKey::new(name, SIG_TYPE_COSIGNATURE, ed25519_key(signer)?)?;
    let mut signature = timestamp.to_be_bytes().to_vec();
    signature.extend(signer.sign(&cosignature_message(text, timestamp)));
    Ok(NoteSignature { name: name.to_owned(), key_id: vk.key_id(), signature })
}

/// The verifier key of an Ed25519 `signer` under `name` and `sig_type`.
pub fn verifier_key(name: &str, sig_type: u8, signer: &dyn Signer) -> Result<VerifierKey> {
    VerifierKey::new(name, sig_type, ed25519_key(signer)?)
}
