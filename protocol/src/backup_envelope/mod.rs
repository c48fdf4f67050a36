//! The backup envelope: a streaming, chunked AEAD file format under the backup key.
//!
//! spec/backup-envelope.md. [`seal`] and [`open`] work over `std::io::Read`/`Write`
//! with constant memory (one 64 KiB chunk at a time).

use crate::cbor;
use crate::crypto::{ct_eq, sha256};
use crate::error::{Error, Result};
use crate::vault::BackupKey;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// spec/backup-envelope.md §2: the 8-byte magic.
pub const MAGIC: [u8; 8] = [0x89, b'B', b'K', b'V', 0x0d, 0x0a, 0x1a, 0x0a];
/// spec/backup-envelope.md §2: plaintext bytes per chunk but the last.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// spec/backup-envelope.md §2: the largest header.
pub const MAX_HEADER_LEN: usize = 4096;
/// spec/backup-envelope.md §2: suite 1 (HKDF-SHA256, HMAC-SHA256, ChaCha20Poly1305).
pub const SUITE: u32 = 1;
const TAG_LEN: usize = 16;
const CHUNK_HEAD_LEN: usize = 16 + 4 + 1 + 4;
const LAST: u8 = 0x01;

/// The header of a backup file. spec/backup-envelope.md §2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    /// Format version, 1.
    pub v: u32,
    /// The fleet whose vault holds the backup key.
    pub fleet_id: String,
    /// The vault record.
    #[serde(with = "serde_bytes")]
    pub record_id: Vec<u8>,
    /// Suite, 1.
    pub suite: u32,
    /// Random per file.
    #[serde(with = "serde_bytes")]
    pub file_id: Vec<u8>,
    /// Plaintext bytes per chunk, 65536.
    pub chunk_size: u32,
}

/// spec/backup-envelope.md §3: the file's keys.
struct Keys {
    mac: Zeroizing<[u8; 32]>,
    enc: Zeroizing<[u8; 32]>,
    prefix: [u8; 7],
}

impl Keys {
    fn derive(key: &BackupKey, file_id: &[u8]) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(file_id), key.as_bytes());
        let mut mac = Zeroizing::new([0u8; 32]);
        let mut enc = Zeroizing::new([0u8; 32]);
        let mut prefix = [0u8; 7];
        hk.expand(b"bkv backup v1 header mac", mac.as_mut()).expect("32 <= 255*32");
        hk.expand(b"bkv backup v1 payload key", enc.as_mut()).expect("32 <= 255*32");
        hk.expand(b"bkv backup v1 nonce prefix", &mut prefix).expect("7 <= 255*32");
        Keys { mac, enc, prefix }
    }

    fn header_mac(&self, header_bytes: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.mac.as_ref()).expect("any key length");
        m.update(header_bytes);
        m.finalize().into_bytes().into()
    }

    fn nonce(&self, counter: u32, last: bool) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&self.prefix);
        n[7..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        n
    }
}

/// The 25-byte clear head of a chunk, which is also its associated data (after the
/// header digest). spec/backup-envelope.md §2, §4.
fn chunk_head(file_id: &[u8], counter: u32, flags: u8, ct_len: u32) -> [u8; CHUNK_HEAD_LEN] {
    let mut h = [0u8; CHUNK_HEAD_LEN];
    h[..16].copy_from_slice(file_id);
    h[16..20].copy_from_slice(&counter.to_be_bytes());
    h[20] = flags;
    h[21..].copy_from_slice(&ct_len.to_be_bytes());
    h
}

fn io_write(_: std::io::Error) -> Error {
    Error::EnvelopeIo
}

/// Read exactly `buf.len()` bytes; `Ok(false)` if the input ended first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Error::EnvelopeIo),
        }
    }
    Ok(true)
}

/// Fill `buf` as far as the input allows; returns the number of bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Error::EnvelopeIo),
        }
    }
    Ok(got)
}

/// spec/backup-envelope.md §2-§4: encrypt `input` into `output` under `key`. `progress`
/// is called with the number of plaintext bytes sealed so far. Returns the plaintext
/// length.
pub fn seal(
    key: &BackupKey,
    fleet_id: &str,
    record_id: &[u8],
    rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    mut input: impl Read,
    mut output: impl Write,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let mut file_id = [0u8; 16];
    rng.fill_bytes(&mut file_id);
    let header = BackupHeader {
        v: 1,
        fleet_id: fleet_id.into(),
        record_id: record_id.to_vec(),
        suite: SUITE,
        file_id: file_id.to_vec(),
        chunk_size: CHUNK_SIZE as u32,
    };
    let header_cbor = cbor::to_vec(&header);
    if header_cbor.len() > MAX_HEADER_LEN {
        return Err(Error::EnvelopeHeaderUnsupported);
    }
    let mut prologue = MAGIC.to_vec();
    prologue.extend((header_cbor.len() as u32).to_be_bytes());
    prologue.extend(&header_cbor);
    let keys = Keys::derive(key, &file_id);
    let header_digest = sha256(&prologue);
    output.write_all(&prologue).map_err(io_write)?;
    output.write_all(&keys.header_mac(&prologue)).map_err(io_write)?;

    let aead = ChaCha20Poly1305::new(Key::from_slice(keys.enc.as_ref()));
    // Read one chunk ahead so the last chunk is known to be last when it is sealed.
    let mut cur = Zeroizing::new(vec![0u8; CHUNK_SIZE]);
    let mut next = Zeroizing::new(vec![0u8; CHUNK_SIZE]);
    let mut cur_len = read_up_to(&mut input, &mut cur)?;
    let mut counter: u32 = 0;
    let mut total: u64 = 0;
    loop {
        let next_len = if cur_len == CHUNK_SIZE { read_up_to(&mut input, &mut next)? } else { 0 };
        let last = cur_len < CHUNK_SIZE || next_len == 0;
        let flags = if last { LAST } else { 0 };
        let ct_len = (cur_len + TAG_LEN) as u32;
        let head = chunk_head(&file_id, counter, flags, ct_len);
        let mut ad = header_digest.to_vec();
        ad.extend_from_slice(&head);
        let ct = aead
            .encrypt(
                Nonce::from_slice(&keys.nonce(counter, last)),
                Payload { msg: &cur[..cur_len], aad: &ad },
            )
            .map_err(|_| Error::EnvelopeIo)?;
        output.write_all(&head).map_err(io_write)?;
        output.write_all(&ct).map_err(io_write)?;
        total += cur_len as u64;
        progress(total);
        if last {
            break;
        }
        counter = counter.checked_add(1).ok_or(Error::EnvelopeIo)?;
        std::mem::swap(&mut cur, &mut next);
        cur_len = next_len;
    }
    output.flush().map_err(io_write)?;
    Ok(total)
}

/// spec/backup-envelope.md §5 steps 1-2: read and decode the header without
/// authenticating it (for inspection). Returns the header and the prologue bytes.
pub fn read_header(input: &mut impl Read) -> Result<(BackupHeader, Vec<u8>)> {
    let mut magic = [0u8; 8];
    if !read_full(input, &mut magic)? || magic != MAGIC {
        return Err(Error::EnvelopeMagic);
    }
    let mut len = [0u8; 4];
    if !read_full(input, &mut len)? {
        return Err(Error::EnvelopeTruncated);
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_HEADER_LEN {
        return Err(Error::EnvelopeHeaderUnsupported);
    }
    let mut header_cbor = vec![0u8; n];
    if !read_full(input, &mut header_cbor)? {
        return Err(Error::EnvelopeTruncated);
    }
    let header: BackupHeader = cbor::from_slice(&header_cbor)?;
    if header.v != 1
        || header.suite != SUITE
        || header.chunk_size as usize != CHUNK_SIZE
        || header.file_id.len() != 16
    {
        return Err(Error::EnvelopeHeaderUnsupported);
    }
    let mut prologue = magic.to_vec();
    prologue.extend(len);
    prologue.extend(header_cbor);
    Ok((header, prologue))
}

/// spec/backup-envelope.md §5: decrypt `input` into `output`. If `expect` is given, the
/// header must name that `(fleet_id, record_id)`. On error, whatever was written to
/// `output` MUST be discarded. `progress` is called with plaintext bytes written so far.
pub fn open(
    key: &BackupKey,
    expect: Option<(&str, &[u8])>,
    mut input: impl Read,
    mut output: impl Write,
    mut progress: impl FnMut(u64),
) -> Result<BackupHeader> {
    let (header, prologue) = read_header(&mut input)?;
    let keys = Keys::derive(key, &header.file_id);
    let mut mac = [0u8; 32];
    if !read_full(&mut input, &mut mac)? {
        return Err(Error::EnvelopeTruncated);
    }
    if !ct_eq(&mac, &keys.header_mac(&prologue)) {
        return Err(Error::EnvelopeHeaderAuthFailed);
    }
    if let Some((fleet, record)) = expect
        && (header.fleet_id != fleet || header.record_id != record)
    {
        return Err(Error::EnvelopeHeaderMismatch);
    }
    let header_digest = sha256(&prologue);
    let aead = ChaCha20Poly1305::new(Key::from_slice(keys.enc.as_ref()));
    let mut ct = vec![0u8; CHUNK_SIZE + TAG_LEN];
    let mut total: u64 = 0;
    let mut i: u32 = 0;
    loop {
        let mut head = [0u8; CHUNK_HEAD_LEN];
        if !read_full(&mut input, &mut head)? {
            return Err(Error::EnvelopeTruncated);
        }
        if !ct_eq(&head[..16], &header.file_id) {
            return Err(Error::EnvelopeChunkSpliced);
        }
        if u32::from_be_bytes(head[16..20].try_into().expect("4 bytes")) != i {
            return Err(Error::EnvelopeChunkReordered);
        }
        let flags = head[20];
        let ct_len = u32::from_be_bytes(head[21..25].try_into().expect("4 bytes")) as usize;
        let last = flags == LAST;
        let len_ok = if last {
            (TAG_LEN..=CHUNK_SIZE + TAG_LEN).contains(&ct_len)
        } else {
            ct_len == CHUNK_SIZE + TAG_LEN
        };
        if flags > LAST || !len_ok {
            return Err(Error::EnvelopeChunkCorrupt);
        }
        if !read_full(&mut input, &mut ct[..ct_len])? {
            return Err(Error::EnvelopeTruncated);
        }
        let mut ad = header_digest.to_vec();
        ad.extend_from_slice(&head);
        let pt = Zeroizing::new(
            aead.decrypt(Nonce::from_slice(&keys.nonce(i, last)), Payload { msg: &ct[..ct_len], aad: &ad })
                .map_err(|_| Error::EnvelopeChunkCorrupt)?,
        );
        output.write_all(&pt).map_err(io_write)?;
        total += pt.len() as u64;
        progress(total);
        if last {
            break;
        }
        i = i.checked_add(1).ok_or(Error::EnvelopeChunkCorrupt)?;
    }
    let mut extra = [0u8; 1];
    if read_up_to(&mut input, &mut extra)? != 0 {
        return Err(Error::EnvelopeTrailingData);
    }
    output.flush().map_err(io_write)?;
    Ok(header)
}

#[cfg(test)]
mod tests;
