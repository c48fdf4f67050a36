//! Vectors for spec/backup-envelope.md §5 (reading a backup file), operation
//! `envelope_open`. Files are sealed with a seeded RNG (fixed file ids); each invalid case
//! changes a valid file in one way, and its code is the step of §5 that the change breaks.

use crate::format::{FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::backup_envelope::{CHUNK_SIZE, seal};
use bkv_protocol::crypto::sha256;
use bkv_protocol::vault::BackupKey;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NOTES: &[(&str, &str)] = &[
    ("Valid", "a file the reader accepts"),
    ("Io", "the input returns an I/O error after `read_error_at` bytes"),
    ("ChunkBoundary", "the plaintext length is at or next to a multiple of the 64 KiB chunk size"),
    ("Header", "the header is changed or names something else"),
    ("Truncated", "the file ends early"),
    ("Chunks", "chunks are reordered, spliced from another file, corrupted or followed by data"),
];

const FLEET: &str = "vectors.bkv.example/vault";
const TAG: usize = 16;
const HEAD: usize = 25;

fn key(b: u8) -> BackupKey {
    BackupKey::from_bytes([b; 32])
}

fn plaintext(n: usize) -> Vec<u8> {
    let mut p = vec![0u8; n];
    ChaCha20Rng::seed_from_u64(n as u64).fill_bytes(&mut p);
    p
}

fn file(k: &BackupKey, record: &[u8], plain: &[u8], seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    seal(k, FLEET, record, &mut ChaCha20Rng::seed_from_u64(seed), plain, &mut out, |_| {}).expect("seals");
    out
}

/// Offset of chunk `i`: after magic, length, header and MAC, and `i` full chunks.
fn chunk_offset(file: &[u8], i: usize) -> usize {
    let header_len = u32::from_be_bytes(file[8..12].try_into().expect("4 bytes")) as usize;
    12 + header_len + 32 + i * (HEAD + CHUNK_SIZE + TAG)
}

fn input(k: &BackupKey, record: &[u8], f: &[u8]) -> BTreeMap<String, Value> {
    map([
        ("backup_key", json!(hex::encode(k.as_bytes()))),
        ("fleet_id", json!(FLEET)),
        ("record_id", json!(hex::encode(record))),
        ("file", json!(hex::encode(f))),
    ])
}

/// The backup envelope vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("backup_envelope", "spec/backup-envelope.md", NOTES);
    let k = key(0x42);
    let record = vec![0x52u8; 32];
    f.group("envelope_open", "§5");
    for (n, flags, comment) in [
        (0usize, &["Valid"][..], "empty plaintext: one final chunk holding only its tag"),
        (1000, &["Valid"][..], "1000 bytes in one final chunk"),
        (CHUNK_SIZE, &["Valid", "ChunkBoundary"][..], "exactly one chunk: a full final chunk"),
        (CHUNK_SIZE + 1, &["Valid", "ChunkBoundary"][..], "one full chunk and a final chunk of 1 byte"),
    ] {
        let p = plaintext(n);
        let out = map([("length", json!(n)), ("plaintext_sha256", json!(hex::encode(sha256(&p))))]);
        f.case(comment, flags, input(&k, &record, &file(&k, &record, &p, n as u64)), None, Some(out));
    }
    let two = file(&k, &record, &plaintext(CHUNK_SIZE + 1), 7);
    let second = chunk_offset(&two, 1);

    // Header steps.
    let mut bad = two.clone();
    bad[0] ^= 0x01;
    f.case(
        "first magic byte changed",
        &["Header"],
        input(&k, &record, &bad),
        Some(Error::EnvelopeMagic),
        None,
    );
    let mut bad = two.clone();
    let at = bad.windows(FLEET.len()).position(|w| w == FLEET.as_bytes()).expect("fleet id in header");
    bad[at] = b'w';
    f.case(
        "the fleet id in the header changed (still valid CBOR; the MAC no longer matches)",
        &["Header"],
        input(&k, &record, &bad),
        Some(Error::EnvelopeHeaderAuthFailed),
        None,
    );
    f.case(
        "opened with another backup key",
        &["Header"],
        input(&key(0x43), &record, &two),
        Some(Error::EnvelopeHeaderAuthFailed),
        None,
    );
    let other_record = vec![0x53u8; 32];
    f.case(
        "the header names another record than the one restored",
        &["Header"],
        input(&k, &other_record, &two),
        Some(Error::EnvelopeHeaderMismatch),
        None,
    );
    let mut bad = two.clone();
    bad[8..12].copy_from_slice(&5000u32.to_be_bytes());
    f.case(
        "header length above 4096",
        &["Header"],
        input(&k, &record, &bad),
        Some(Error::EnvelopeHeaderUnsupported),
        None,
    );
    // Truncation.
    f.case(
        "cut inside the header",
        &["Truncated"],
        input(&k, &record, &two[..20]),
        Some(Error::EnvelopeTruncated),
        None,
    );
    f.case(
        "cut after the first (non-final) chunk",
        &["Truncated"],
        input(&k, &record, &two[..second]),
        Some(Error::EnvelopeTruncated),
        None,
    );
    f.case(
        "last byte missing",
        &["Truncated"],
        input(&k, &record, &two[..two.len() - 1]),
        Some(Error::EnvelopeTruncated),
        None,
    );
    // Chunks.
    let three = file(&k, &record, &plaintext(2 * CHUNK_SIZE + 5), 9);
    let (c1, c2, end) = (chunk_offset(&three, 1), chunk_offset(&three, 2), three.len());
    let mut swapped = three[..chunk_offset(&three, 0)].to_vec();
    swapped.extend_from_slice(&three[c1..c2]);
    swapped.extend_from_slice(&three[chunk_offset(&three, 0)..c1]);
    swapped.extend_from_slice(&three[c2..end]);
    f.case(
        "first two chunks swapped",
        &["Chunks"],
        input(&k, &record, &swapped),
        Some(Error::EnvelopeChunkReordered),
        None,
    );
    let other = file(&k, &record, &plaintext(2 * CHUNK_SIZE + 5), 10);
    let mut spliced = three[..c1].to_vec();
    spliced.extend_from_slice(&other[chunk_offset(&other, 1)..]);
    f.case(
        "chunks 1.. taken from another file under the same key",
        &["Chunks"],
        input(&k, &record, &spliced),
        Some(Error::EnvelopeChunkSpliced),
        None,
    );
    let mut flipped = three.clone();
    flipped[c1 + HEAD + 100] ^= 0x01;
    f.case(
        "a ciphertext bit flipped in chunk 1",
        &["Chunks"],
        input(&k, &record, &flipped),
        Some(Error::EnvelopeChunkCorrupt),
        None,
    );
    let mut early_last = three.clone();
    early_last[chunk_offset(&three, 0) + 20] = 0x01;
    f.case(
        "chunk 0 marked final",
        &["Chunks"],
        input(&k, &record, &early_last),
        Some(Error::EnvelopeChunkCorrupt),
        None,
    );
    let mut trailing = two.clone();
    trailing.push(0);
    f.case(
        "one byte after the final chunk",
        &["Chunks"],
        input(&k, &record, &trailing),
        Some(Error::EnvelopeTrailingData),
        None,
    );
    // The input fails (an I/O error, not the end of the input) after `read_error_at` bytes.
    let io = |at: usize| {
        let mut i = input(&k, &record, &two);
        i.insert("read_error_at".into(), json!(at));
        i
    };
    f.case(
        "the input fails inside the header: an I/O error is not a short file",
        &["Io"],
        io(20),
        Some(Error::EnvelopeIo),
        None,
    );
    f.case(
        "the input fails where the final chunk starts (a file cut there is envelope.truncated)",
        &["Io"],
        io(second),
        Some(Error::EnvelopeIo),
        None,
    );
    f.finish()
}
