//! Vectors for spec/backup-envelope.md §5 (reading a backup file), operation
//! `envelope_open`. Files are sealed with a seeded RNG (fixed file ids); each invalid case
//! changes a valid file in one way, and its code is the step of §5 that the change breaks.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
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
    crate::produce::NOTE,
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

/// What every case of this file is built from: the backup key, the record, a file of two
/// chunks (`two`, the second one final) and a file of three (`three`).
struct World {
    k: BackupKey,
    record: Vec<u8>,
    two: Vec<u8>,
    three: Vec<u8>,
}

impl World {
    fn new() -> Self {
        let (k, record) = (key(0x42), vec![0x52u8; 32]);
        let two = file(&k, &record, &plaintext(CHUNK_SIZE + 1), 7);
        let three = file(&k, &record, &plaintext(2 * CHUNK_SIZE + 5), 9);
        World { k, record, two, three }
    }

    /// A file of `n` bytes of plaintext that opens.
    fn valid(&self, flags: &'static [&'static str], n: usize) -> Case {
        let p = plaintext(n);
        let out = map([("length", json!(n)), ("plaintext_sha256", json!(hex::encode(sha256(&p))))]);
        Case::valid(
            flags,
            input(&self.k, &self.record, &file(&self.k, &self.record, &p, n as u64)),
            Some(out),
        )
    }

    /// `file` opened with the world's key and record fails with `e`.
    fn refused(&self, flags: &'static [&'static str], file: &[u8], e: Error) -> Case {
        Case::invalid(flags, input(&self.k, &self.record, file), e)
    }

    /// `two` with one change, refused with `e`.
    fn two_with(&self, flags: &'static [&'static str], change: impl FnOnce(&mut Vec<u8>), e: Error) -> Case {
        let mut bad = self.two.clone();
        change(&mut bad);
        self.refused(flags, &bad, e)
    }

    /// Where the second (final) chunk of `two` starts.
    fn second(&self) -> usize {
        chunk_offset(&self.two, 1)
    }

    /// `two` read through an input that fails after `at` bytes.
    fn io(&self, at: usize) -> Case {
        let mut i = input(&self.k, &self.record, &self.two);
        i.insert("read_error_at".into(), json!(at));
        Case::invalid(&["Io"], i, Error::EnvelopeIo)
    }
}

cases! { World, ENVELOPE_OPEN;
    /// empty plaintext: one final chunk holding only its tag
    fn empty(w) {
        w.valid(&["Valid"], 0)
    }
    /// 1000 bytes in one final chunk
    fn one_final_chunk(w) {
        w.valid(&["Valid"], 1000)
    }
    /// exactly one chunk: a full final chunk
    fn one_full_chunk(w) {
        w.valid(&["Valid", "ChunkBoundary"], CHUNK_SIZE)
    }
    /// one full chunk and a final chunk of 1 byte
    fn one_chunk_and_one_byte(w) {
        w.valid(&["Valid", "ChunkBoundary"], CHUNK_SIZE + 1)
    }
    /// first magic byte changed
    fn magic_changed(w) {
        w.two_with(&["Header"], |b| b[0] ^= 0x01, Error::EnvelopeMagic)
    }
    /// the fleet id in the header changed (still valid CBOR; the MAC no longer matches)
    fn header_fleet_changed(w) {
        w.two_with(
            &["Header"],
            |b| {
                let at = b.windows(FLEET.len()).position(|x| x == FLEET.as_bytes()).expect("fleet id in header");
                b[at] = b'w';
            },
            Error::EnvelopeHeaderAuthFailed,
        )
    }
    /// opened with another backup key
    fn another_key(w) {
        Case::invalid(&["Header"], input(&key(0x43), &w.record, &w.two), Error::EnvelopeHeaderAuthFailed)
    }
    /// the header names another record than the one restored
    fn another_record(w) {
        Case::invalid(&["Header"], input(&w.k, &[0x53u8; 32], &w.two), Error::EnvelopeHeaderMismatch)
    }
    /// header length above 4096
    fn header_too_long(w) {
        w.two_with(&["Header"], |b| b[8..12].copy_from_slice(&5000u32.to_be_bytes()), Error::EnvelopeHeaderUnsupported)
    }
    /// cut inside the header
    fn cut_in_header(w) {
        w.refused(&["Truncated"], &w.two[..20], Error::EnvelopeTruncated)
    }
    /// cut after the first (non-final) chunk
    fn cut_after_first_chunk(w) {
        w.refused(&["Truncated"], &w.two[..w.second()], Error::EnvelopeTruncated)
    }
    /// last byte missing
    fn last_byte_missing(w) {
        w.refused(&["Truncated"], &w.two[..w.two.len() - 1], Error::EnvelopeTruncated)
    }
    /// first two chunks swapped
    fn chunks_swapped(w) {
        let three = &w.three;
        let (c0, c1, c2) = (chunk_offset(three, 0), chunk_offset(three, 1), chunk_offset(three, 2));
        let mut swapped = three[..c0].to_vec();
        swapped.extend_from_slice(&three[c1..c2]);
        swapped.extend_from_slice(&three[c0..c1]);
        swapped.extend_from_slice(&three[c2..]);
        w.refused(&["Chunks"], &swapped, Error::EnvelopeChunkReordered)
    }
    /// chunks 1.. taken from another file under the same key
    fn chunks_spliced(w) {
        let other = file(&w.k, &w.record, &plaintext(2 * CHUNK_SIZE + 5), 10);
        let mut spliced = w.three[..chunk_offset(&w.three, 1)].to_vec();
        spliced.extend_from_slice(&other[chunk_offset(&other, 1)..]);
        w.refused(&["Chunks"], &spliced, Error::EnvelopeChunkSpliced)
    }
    /// a ciphertext bit flipped in chunk 1
    fn chunk_bit_flipped(w) {
        let mut flipped = w.three.clone();
        flipped[chunk_offset(&w.three, 1) + HEAD + 100] ^= 0x01;
        w.refused(&["Chunks"], &flipped, Error::EnvelopeChunkCorrupt)
    }
    /// chunk 0 marked final
    fn first_chunk_final(w) {
        let mut early_last = w.three.clone();
        early_last[chunk_offset(&w.three, 0) + 20] = 0x01;
        w.refused(&["Chunks"], &early_last, Error::EnvelopeChunkCorrupt)
    }
    /// one byte after the final chunk
    fn trailing_byte(w) {
        w.two_with(&["Chunks"], |b| b.push(0), Error::EnvelopeTrailingData)
    }
    /// the input fails inside the header: an I/O error is not a short file
    fn io_error_in_header(w) {
        w.io(20)
    }
    /// the input fails where the final chunk starts (a file cut there is envelope.truncated)
    fn io_error_at_final_chunk(w) {
        w.io(w.second())
    }
}

/// The backup envelope vector file.
pub fn generate() -> VectorFile {
    let mut f = FileBuilder::new("backup_envelope", "spec/backup-envelope.md", NOTES);
    f.group("envelope_open", "§5");
    f.cases(&mut World::new(), ENVELOPE_OPEN);
    crate::produce::add_backup_envelope(&mut f);
    f.finish()
}
