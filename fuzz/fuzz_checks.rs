//! The properties every fuzz target checks, written once: each target in
//! `fuzz_targets/` is one call into this file, and `protocol/tests/api/fuzz_corpus.rs`
//! replays every committed corpus (`corpus/<target>/`) through the same functions under
//! plain `cargo test`. Both include it with `#[path]`, so it uses only crates both have:
//! `bkv-protocol`, `arbitrary`, `hex`, `serde_json`, `rand_core` and `rand_chacha`.
//!
//! Every check takes the raw fuzzer input. Targets written before the shared module
//! (`bundle_verify`, `vault_apply`) decode it with `arbitrary` exactly as
//! `libfuzzer-sys`'s typed `fuzz_target!` does ([`from_fuzzer`]). The later structured
//! targets read [`Fields`], a length-prefixed framing, so that their corpora can be
//! seeded from the test vectors byte for byte ([`frame`]).
#![allow(dead_code)] // each fuzz target uses one check

use arbitrary::{Arbitrary, Unstructured};
use bkv_protocol::audit::{AuditInputs, VendorRoot, audit};
use bkv_protocol::audit_log::merkle::{self, Tree};
use bkv_protocol::audit_log::note::{MAX_SIGNATURES, Note, VerifierKey};
use bkv_protocol::audit_log::{
    Checkpoint, LogAnchors, LogState, LoggedBundle, TreeHead, verify_checkpoint, verify_logged_bundle,
    witness_check,
};
use bkv_protocol::cbor;
use bkv_protocol::evidence::{CT_EVIDENCE, Evidence, Sign1};
use bkv_protocol::rotation::{Importer, open_export};
use bkv_protocol::session::{
    AwaitResponse, SessionSecretKey, SessionServer, SessionTarget, seal_request_with_id,
};
use bkv_protocol::state_machine::StateMachine;
use bkv_protocol::validation_bundle::{ClientState, FleetKeySet, Parsed, TrustAnchors, verify_bundle};
use bkv_protocol::vault::{
    AwaitOutcome, AwaitRegistered, BackupKey, ClientAction, KsfParams, Outcome, RecoveryClient,
    RegistrationClient, VaultContext, VaultOutput, VaultResponse, VaultStateMachine,
};
use bkv_protocol::{Error, Result};
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// A target's check of one input.
pub(crate) type Check = fn(&[u8]);

/// Every target, by name (the `[[bin]]`s of `fuzz/Cargo.toml` and the directories of
/// `fuzz/corpus/`), with its check.
pub(crate) const TARGETS: &[(&str, Check)] = &[
    ("cbor_check", cbor_check),
    ("bundle_verify", bundle_verify),
    ("keyset_decode", keyset_decode),
    ("anchors_decode", anchors_decode),
    ("session_open", session_open),
    ("envelope_open", envelope_open),
    ("vault_apply", vault_apply),
    ("evidence_parse", evidence_parse),
    ("log_note", log_note),
    ("merkle_verify", merkle_verify),
    ("log_verify", log_verify),
    ("audit_run", audit_run),
    ("client_response", client_response),
    ("node_api_decode", node_api_decode),
    ("tile_parse", tile_parse),
];

/// Targets whose property lives in another crate than `bkv-protocol`, with that crate's
/// test that replays their corpus: `node_config` (`bkv_node::config::fuzz_check`).
pub(crate) const OTHER_CRATE_TARGETS: &[&str] = &["node_config"];

/// Decode `data` as `libfuzzer-sys`'s `fuzz_target!(|input: T| ..)` does: too short for
/// the type's minimum size or not decodable is no input.
pub(crate) fn from_fuzzer<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

// ---- framing of the structured targets ------------------------------------------------

/// A structured input: fields, each a 4-byte little-endian length and that many bytes
/// (fewer if the input ends first); fields past the end are empty.
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl<'a> Fields<'a> {
    /// The next field.
    pub(crate) fn bytes(&mut self) -> &'a [u8] {
        let Some((len, rest)) = self.0.split_first_chunk::<4>() else {
            self.0 = &[];
            return &[];
        };
        let (field, rest) = rest.split_at((u32::from_le_bytes(*len) as usize).min(rest.len()));
        self.0 = rest;
        field
    }

    /// The next field as text; `None` if it is not UTF-8.
    pub(crate) fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()).ok()
    }

    /// The next field as a little-endian integer (its first 8 bytes, zero-padded).
    pub(crate) fn u64(&mut self) -> u64 {
        u64_le(self.bytes())
    }

    /// The next field as 32 bytes (zero-padded); `None` if it is empty.
    pub(crate) fn hash(&mut self) -> Option<[u8; 32]> {
        let f = self.bytes();
        (!f.is_empty()).then(|| pad(f))
    }

    /// The next field as a tree head: 8 bytes of size then the root; `None` if empty.
    pub(crate) fn head(&mut self) -> Option<TreeHead> {
        let f = self.bytes();
        (!f.is_empty()).then(|| TreeHead { size: u64_le(f), root: pad(f.get(8..).unwrap_or_default()) })
    }

    /// The next field as a list of 32-byte hashes (a shorter remainder is dropped).
    pub(crate) fn hashes(&mut self) -> Vec<[u8; 32]> {
        self.bytes().chunks_exact(32).map(pad).collect()
    }

    /// [`Fields::hashes`] after a presence byte; `None` if the field is empty.
    pub(crate) fn opt_hashes(&mut self) -> Option<Vec<[u8; 32]>> {
        let f = self.bytes();
        let (_, rest) = f.split_first()?;
        Some(rest.chunks_exact(32).map(pad).collect())
    }

    /// The next field as a list of fields.
    pub(crate) fn list(&mut self) -> Vec<&'a [u8]> {
        let mut inner = Fields(self.bytes());
        let mut out = Vec::new();
        while !inner.0.is_empty() {
            out.push(inner.bytes());
        }
        out
    }
}

fn u64_le(f: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = f.len().min(8);
    b[..n].copy_from_slice(&f[..n]);
    u64::from_le_bytes(b)
}

fn pad(f: &[u8]) -> [u8; 32] {
    let mut b = [0u8; 32];
    let n = f.len().min(32);
    b[..n].copy_from_slice(&f[..n]);
    b
}

/// The inverse of [`Fields`]: frame `fields` (the seeder's encoder).
pub(crate) fn frame<B: AsRef<[u8]>>(fields: &[B]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let f = f.as_ref();
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// A field for [`Fields::head`].
pub(crate) fn head_field(h: Option<TreeHead>) -> Vec<u8> {
    h.map(|h| [&h.size.to_le_bytes()[..], &h.root].concat()).unwrap_or_default()
}

/// A field for [`Fields::opt_hashes`].
pub(crate) fn opt_hashes_field(h: Option<&[[u8; 32]]>) -> Vec<u8> {
    h.map(|h| [&[1u8][..], &h.concat()].concat()).unwrap_or_default()
}

/// `bytes` with bit `bit` of byte `at` flipped (one byte longer if `at` is past the end).
fn flipped(bytes: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match b.get_mut(at) {
        Some(x) => *x ^= 1 << (bit % 8),
        None => b.push(1),
    }
    b
}

/// Up to `n` positions spread over `0..len`, always including the first and the last.
fn spread(len: usize, n: usize) -> impl Iterator<Item = usize> {
    let step = len.div_ceil(n.max(1)).max(1);
    (0..len).step_by(step).chain(len.checked_sub(1))
}

// ---- the first targets ------------------------------------------------------------------

/// `cbor_check`, spec/conventions.md §3.3: the strict check never panics, and whatever it
/// accepts ciborium decodes and the deterministic encoder reproduces byte for byte.
pub(crate) fn cbor_check(data: &[u8]) {
    if cbor::check(data, &[18]).is_ok() {
        let v = cbor::value_from_slice(data, &[18]).expect("checked input decodes");
        assert_eq!(cbor::value_to_vec(&v), data, "accepted input is canonical");
        let _ = Parsed::parse(data);
    }
}

/// The input of `bundle_verify`.
#[derive(Debug, Arbitrary)]
pub(crate) struct BundleInput<'a> {
    bundle: &'a [u8],
    anchors: &'a [u8],
    state: Option<(u64, [u8; 32])>,
    now: u64,
}

/// `bundle_verify`, spec/validation-bundle.md §5: parsing and verification never panic on
/// any bytes, anchors, rollback state and time; an accepted bundle with its last byte
/// (inside the signature) changed is refused.
pub(crate) fn bundle_verify(data: &[u8]) {
    let Some(input) = from_fuzzer::<BundleInput<'_>>(data) else { return };
    let _ = Parsed::parse(input.bundle);
    if let Ok(anchors) = TrustAnchors::from_bytes(input.anchors) {
        let state = ClientState { highest: input.state };
        if verify_bundle(input.bundle, &anchors, &state, input.now).is_ok() {
            let changed = flipped(input.bundle, input.bundle.len() - 1, 0);
            assert!(
                verify_bundle(&changed, &anchors, &state, input.now).is_err(),
                "a changed bundle verified"
            );
        }
    }
}

/// `keyset_decode`, spec/validation-bundle.md §3: FleetKeySet decoding never panics and
/// whatever it accepts re-encodes to the same bytes.
pub(crate) fn keyset_decode(data: &[u8]) {
    if let Ok(ks) = FleetKeySet::from_bytes(data) {
        assert_eq!(ks.to_bytes(), data);
    }
}

/// `anchors_decode`, spec/validation-bundle.md §4.4: TrustAnchors decoding never panics
/// and whatever it accepts re-encodes to the same bytes.
pub(crate) fn anchors_decode(data: &[u8]) {
    if let Ok(a) = TrustAnchors::from_bytes(data) {
        assert_eq!(a.to_bytes(), data);
    }
}

/// `node_api_decode`, spec/node-api.md §1, §2: the HTTP bodies a client reads from a node
/// (`NodeInfo`, the relayed consistency proof) never panic; what decodes re-encodes to the
/// same bytes, and a decoded proof has only 32-byte hashes.
pub(crate) fn node_api_decode(data: &[u8]) {
    use bkv_protocol::node_api::{ConsistencyPath, NodeInfo};
    if let Ok(info) = cbor::from_slice::<NodeInfo>(data) {
        assert_eq!(cbor::to_vec(&info), data);
    }
    if let Ok(path) = ConsistencyPath::decode(data) {
        assert_eq!(ConsistencyPath::encode(&path), data);
    }
}

/// `tile_parse`, spec/audit-log.md §8.1: the C2SP tile paths and bodies a client reads
/// never panic; an accepted path, entry bundle or hash tile re-encodes to the same bytes.
pub(crate) fn tile_parse(data: &[u8]) {
    use bkv_protocol::audit_log::tiles;
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(t) = tiles::parse(text)
    {
        assert_eq!(t.to_path(), text);
    }
    if let Some(entries) = tiles::parse_entry_bundle(data) {
        assert_eq!(tiles::entry_bundle(&entries).as_deref(), Some(data));
    }
    let width = (data.len() / 32) as u64;
    if let Some(hashes) = tiles::parse_hash_tile(data, width) {
        assert_eq!(hashes.concat(), data);
    }
}

/// `session_open`, spec/session.md §5: a node opening any bytes as a SealedRequest never
/// panics, and nothing a fuzzer finds opens (it cannot seal to the node's key).
pub(crate) fn session_open(data: &[u8]) {
    let node = SessionServer::new("fuzz.example/vault", 1, "node-1", SessionSecretKey::derive(b"fuzz"));
    assert!(node.open(data, 1_800_000_000).is_err(), "a fuzzed request opened");
}

/// `envelope_open`, spec/backup-envelope.md §5: reading any bytes as a backup file never
/// panics, in bounded memory, and never succeeds without the key.
pub(crate) fn envelope_open(data: &[u8]) {
    let mut out = Vec::new();
    let key = BackupKey::from_bytes([7; 32]);
    assert!(bkv_protocol::backup_envelope::open(&key, None, data, &mut out, |_| {}).is_err());
}

/// `vault_apply`, spec/vault.md §8: any command sequence never panics, a failed command
/// changes nothing, and the state always survives a snapshot round trip.
pub(crate) fn vault_apply(data: &[u8]) {
    let Some(commands) = from_fuzzer::<Vec<Vec<u8>>>(data) else { return };
    let mut sm = VaultStateMachine::new(3);
    for c in commands.iter().take(16) {
        let before = sm.snapshot();
        let out = sm.apply(c);
        if VaultOutput::decode(&out).is_err() {
            assert_eq!(sm.snapshot(), before, "a failed command changed the state");
        }
        let snap = sm.snapshot();
        assert_eq!(VaultStateMachine::restore(&snap).expect("own snapshot restores").snapshot(), snap);
    }
}

/// `evidence_parse`, spec/evidence.md §1 and spec/rotation.md §4: the signed-object parser
/// and the export opener never panic, and no fuzzed export opens.
pub(crate) fn evidence_parse(data: &[u8]) {
    if let Ok(s) = Sign1::parse(data, CT_EVIDENCE) {
        let _ = s.decode::<Evidence>();
    }
    let me = Importer { fleet_id: "f", epoch: 2, node_id: "n", bundle_digest: [0; 32], guess_limit: 10 };
    assert!(open_export(data, &SessionSecretKey::derive(b"fuzz"), &me).is_err(), "a fuzzed export opened");
}

// ---- audit log ----------------------------------------------------------------------------

/// `log_note`, spec/audit-log.md §4.1, §4.2, §4.4: the signed-note, checkpoint-body and
/// verifier-key parsers never panic, and whatever they accept re-encodes to the same text.
pub(crate) fn log_note(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(note) = Note::parse(s) {
        assert_eq!(note.encode(), s, "accepted note is canonical");
        assert!(!note.signatures.is_empty() && note.signatures.len() <= MAX_SIGNATURES);
        if let Ok(cp) = Checkpoint::parse_body(&note.text) {
            assert_eq!(cp.body(), note.text);
        }
    }
    if let Ok(cp) = Checkpoint::parse_body(s) {
        assert_eq!(cp.body(), s, "accepted checkpoint body is canonical");
    }
    if let Ok(k) = VerifierKey::parse(s) {
        assert_eq!(k.encode(), s, "accepted vkey is canonical");
    }
}

/// `merkle_verify`, spec/audit-log.md §3.3, §3.4. The first byte picks a mode; the rest is
/// [`Fields`].
///
/// * 0, inclusion: `leaf, index, size, path, root` (path cut in 32-byte pieces, a shorter
///   last piece kept). 1, consistency: `size1, size2, path, root1, root2`. Never panics;
///   when a proof verifies, every hash in it was 32 bytes (for equal sizes: the proof is
///   empty and the roots equal, §3.4 step 2) and changing one bit of the leaf, a root or
///   any path hash makes it fail.
/// * 2, honest proofs: `leaves, n, index, size, size1, at` builds a tree of `n % 48 + 1`
///   leaves, takes the tree's own inclusion and consistency proofs, which must verify,
///   and changes the bit `at` picks, after which they must not.
pub(crate) fn merkle_verify(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut f = Fields(rest);
    match mode % 3 {
        0 => {
            let (leaf, index, size) = (f.bytes(), f.u64(), f.u64());
            let path: Vec<&[u8]> = f.bytes().chunks(32).collect();
            let root = f.bytes();
            if merkle::verify_inclusion(leaf, index, size, &path, root).is_ok() {
                assert!(leaf.len() == 32 && root.len() == 32 && path.iter().all(|p| p.len() == 32));
                inclusion_rejects_changes(leaf, index, size, &path, root);
            }
        }
        1 => {
            let (size1, size2) = (f.u64(), f.u64());
            let path: Vec<&[u8]> = f.bytes().chunks(32).collect();
            let (root1, root2) = (f.bytes(), f.bytes());
            if merkle::verify_consistency(size1, size2, &path, root1, root2).is_ok() {
                // §3.4 step 2: equal sizes need only an empty proof and equal roots (of any
                // length: the 32-byte check of step 3 is for differing sizes).
                if size1 == size2 {
                    assert!(path.is_empty() && root1 == root2);
                } else {
                    assert!(root1.len() == 32 && root2.len() == 32 && path.iter().all(|p| p.len() == 32));
                }
                consistency_rejects_changes(size1, size2, &path, root1, root2);
            }
        }
        _ => {
            let seed = f.bytes();
            let n = f.u64() % 48 + 1;
            let mut tree = Tree::new();
            for i in 0..n {
                tree.push(&[seed, &i.to_le_bytes()].concat());
            }
            let size = f.u64() % n + 1;
            let index = f.u64() % size;
            let size1 = f.u64() % size + 1;
            let at = f.u64() as usize;
            let (leaf, root) = (tree.leaf(index).unwrap(), tree.root_at(size).unwrap());
            let path = tree.inclusion_proof(index, size).unwrap();
            assert_eq!(
                merkle::verify_inclusion(&leaf, index, size, &path, &root),
                Ok(()),
                "honest inclusion"
            );
            let root1 = tree.root_at(size1).unwrap();
            let proof = tree.consistency_proof(size1, size).unwrap();
            assert_eq!(
                merkle::verify_consistency(size1, size, &proof, &root1, &root),
                Ok(()),
                "honest consistency"
            );
            // One changed bit anywhere in leaf, path and root.
            let mut all: Vec<[u8; 32]> = vec![leaf, root];
            all.extend(&path);
            let (k, bit) = ((at / 256) % all.len(), at % 256);
            all[k][bit / 8] ^= 1 << (bit % 8);
            assert!(merkle::verify_inclusion(&all[0], index, size, &all[2..], &all[1]).is_err());
            let mut all: Vec<[u8; 32]> = vec![root1, root];
            all.extend(&proof);
            let (k, bit) = ((at / 256) % all.len(), at % 256);
            all[k][bit / 8] ^= 1 << (bit % 8);
            assert!(merkle::verify_consistency(size1, size, &all[2..], &all[0], &all[1]).is_err());
        }
    }
}

fn inclusion_rejects_changes(leaf: &[u8], index: u64, size: u64, path: &[&[u8]], root: &[u8]) {
    for bit in [0, 255] {
        let (at, b) = (bit / 8, bit as u8);
        assert!(merkle::verify_inclusion(&flipped(leaf, at, b), index, size, path, root).is_err());
        assert!(merkle::verify_inclusion(leaf, index, size, path, &flipped(root, at, b)).is_err());
        for k in 0..path.len() {
            let changed = flipped(path[k], at, b);
            let mut p = path.to_vec();
            p[k] = &changed;
            assert!(merkle::verify_inclusion(leaf, index, size, &p, root).is_err(), "changed path hash {k}");
        }
    }
}

fn consistency_rejects_changes(size1: u64, size2: u64, path: &[&[u8]], root1: &[u8], root2: &[u8]) {
    for bit in [0, 255] {
        let (at, b) = (bit / 8, bit as u8);
        assert!(merkle::verify_consistency(size1, size2, path, &flipped(root1, at, b), root2).is_err());
        assert!(merkle::verify_consistency(size1, size2, path, root1, &flipped(root2, at, b)).is_err());
        for k in 0..path.len() {
            let changed = flipped(path[k], at, b);
            let mut p = path.to_vec();
            p[k] = &changed;
            assert!(
                merkle::verify_consistency(size1, size2, &p, root1, root2).is_err(),
                "changed path hash {k}"
            );
        }
    }
}

/// Positions of ASCII bytes in the first `len` bytes of `note` (changing one bit of them
/// keeps the note UTF-8).
fn ascii_positions(note: &str, len: usize) -> Vec<usize> {
    spread(len, 12).filter(|&i| note.as_bytes()[i].is_ascii()).collect()
}

/// `note` with one bit of byte `at` changed.
fn changed_note(note: &str, at: usize) -> String {
    String::from_utf8(flipped(note.as_bytes(), at, 0)).expect("an ASCII byte stays ASCII")
}

/// `log_verify`, spec/audit-log.md §6.1, §7.1–§7.3, §8.3. [`Fields`]: `logged_bundle,
/// log_anchors, fleet_id, epoch, state, consistency` for the client rule and
/// `checkpoint, log_vkey, held, witness_consistency` for the witness rule.
///
/// Never panics. `LoggedBundle` and `LogAnchors` decoding accept only what re-encodes
/// to the same bytes. A checkpoint that verifies (steps 1–5, log signature and witness
/// cosignatures) has at least K pinned cosigners, and fails once any byte of its text is
/// changed; a bundle that verifies fails under another epoch or with its last byte
/// changed; a checkpoint the witness accepts is no smaller than the held one and fails
/// once its text is changed.
pub(crate) fn log_verify(data: &[u8]) {
    let mut f = Fields(data);
    let (logged, anchors) = (f.bytes(), f.bytes());
    let fleet = f.text().unwrap_or_default();
    let epoch = f.u64();
    let state = LogState { largest: f.head() };
    let consistency = f.opt_hashes();
    let (note, vkey) = (f.text(), f.text());
    let held = f.head();
    let wcons = f.hashes();

    let logged = LoggedBundle::from_cbor(logged).inspect(|w| assert_eq!(w.to_cbor(), logged)).ok();
    let anchors =
        cbor::from_slice::<LogAnchors>(anchors).inspect(|a| assert_eq!(cbor::to_vec(a), anchors)).ok();
    if let (Some(w), Some(a)) = (&logged, &anchors) {
        let cp = &w.proof.checkpoint;
        if let Ok(v) = verify_checkpoint(cp, a) {
            assert!(v.cosigners.len() as u64 >= a.threshold && v.cosigners.len() <= a.witnesses.len());
            assert_eq!(v.development_only, a.threshold == 0);
            let text_len = Note::parse(cp).unwrap().text.len();
            for at in ascii_positions(cp, text_len) {
                assert!(
                    verify_checkpoint(&changed_note(cp, at), a).is_err(),
                    "changed checkpoint text at {at}"
                );
            }
        }
        let verify = |bundle: &[u8], epoch: u64| {
            verify_logged_bundle(bundle, fleet, epoch, &w.proof, a, &state, consistency.as_deref())
        };
        if let Ok(v) = verify(&w.bundle, epoch) {
            assert!(verify_checkpoint(cp, a).is_ok());
            assert_eq!(v.leaf_index, w.proof.inclusion.leaf_index);
            assert!(v.state.largest.is_some_and(|h| h.size >= w.proof.inclusion.tree_size));
            assert!(verify(&w.bundle, epoch ^ 1).is_err(), "verified under another epoch");
            if let Some(last) = w.bundle.len().checked_sub(1) {
                assert!(verify(&flipped(&w.bundle, last, 0), epoch).is_err(), "a changed bundle verified");
            }
        }
    }
    if let (Some(note), Some(Ok(key))) = (note, vkey.map(VerifierKey::parse))
        && let Ok((parsed, head)) = witness_check(&key, held, note, &wcons)
    {
        assert!(held.is_none_or(|h| head.size >= h.size));
        let cp = Checkpoint::parse_body(&parsed.text).unwrap();
        assert_eq!((cp.size, cp.root), (head.size, head.root));
        for at in ascii_positions(note, parsed.text.len()) {
            assert!(witness_check(&key, held, &changed_note(note, at), &wcons).is_err());
        }
    }
}

// ---- audit ------------------------------------------------------------------------------

/// `audit_run`, spec/audit.md. [`Fields`]: `evidence, released, anchors, log_anchors,
/// checkpoint, entries (a list), vendor_roots, software, firmware, now`.
///
/// Never panics; the report is consistent (steps pass in order AU1…, the failure is the
/// next step and names a registered code); a passing audit has all twelve steps and fails
/// once a byte of the evidence or of the bundle changes or the last entry is dropped.
pub(crate) fn audit_run(data: &[u8]) {
    let mut f = Fields(data);
    let (evidence, released, anchors, log_anchors) = (f.bytes(), f.bytes(), f.bytes(), f.bytes());
    let checkpoint = f.text().unwrap_or_default();
    let entries: Vec<Vec<u8>> = f.list().into_iter().map(<[u8]>::to_vec).collect();
    let roots = f.bytes();
    let software = f.hash().unwrap_or_default();
    let firmware = f.hash();
    let now = f.u64();
    let (Ok(released), Ok(anchors), Ok(log_anchors), Ok(roots)) = (
        LoggedBundle::from_cbor(released),
        TrustAnchors::from_bytes(anchors),
        cbor::from_slice::<LogAnchors>(log_anchors),
        cbor::from_slice::<Vec<VendorRoot>>(roots),
    ) else {
        return;
    };
    let inputs = AuditInputs {
        evidence,
        released: &released,
        anchors: &anchors,
        log_anchors: &log_anchors,
        checkpoint,
        entries: &entries,
        vendor_roots: &roots,
        software,
        firmware,
        now,
    };
    let report = audit(&inputs);
    for (n, c) in report.passed.iter().enumerate() {
        assert_eq!(c.step, format!("AU{}", n + 1));
    }
    assert_eq!(report.ok(), report.failure.is_none());
    if let Some((step, code)) = &report.failure {
        assert_eq!(step, &format!("AU{}", report.passed.len() + 1));
        assert!(Error::from_code(code).is_some(), "unregistered code {code}");
        return;
    }
    assert_eq!(report.passed.len(), 12);
    assert!(report.fleet.is_some());
    let changed_evidence = flipped(evidence, evidence.len() - 1, 0);
    assert!(!audit(&AuditInputs { evidence: &changed_evidence, ..inputs.clone() }).ok());
    let mut changed = released.clone();
    let last = changed.bundle.len() - 1;
    changed.bundle[last] ^= 1;
    assert!(!audit(&AuditInputs { released: &changed, ..inputs.clone() }).ok());
    assert!(!audit(&AuditInputs { entries: &entries[..entries.len() - 1], ..inputs }).ok());
}

// ---- client-side response parsers ------------------------------------------------------------

use bkv_protocol::fixtures::{FixedRng, opaque_draws};

/// The input of a vector case of `area`, by `operation` and `tcId`.
fn vector_input(area: &'static str, operation: &str, tc_id: u64) -> &'static Map<String, Value> {
    static VAULT: OnceLock<Value> = OnceLock::new();
    static SESSION: OnceLock<Value> = OnceLock::new();
    let file = match area {
        "vault" => {
            VAULT.get_or_init(|| serde_json::from_str(include_str!("../vectors/v1/vault.json")).unwrap())
        }
        _ => {
            SESSION.get_or_init(|| serde_json::from_str(include_str!("../vectors/v1/session.json")).unwrap())
        }
    };
    file["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["operation"] == operation)
        .flat_map(|g| g["tests"].as_array().unwrap())
        .find(|t| t["tcId"] == tc_id)
        .and_then(|t| t["input"].as_object())
        .expect("the vector case the client state is built from")
}

fn hx(input: &Map<String, Value>, key: &str) -> Vec<u8> {
    hex::decode(input[key].as_str().unwrap()).unwrap()
}

fn arr<const N: usize>(input: &Map<String, Value>, key: &str) -> [u8; N] {
    hx(input, key).try_into().unwrap()
}

/// The client of `session_open_response` (session vectors, tcId 23): the request is
/// sealed again from the vector's `ikm_e`, so the vectors' responses answer it.
fn session_client() -> AwaitResponse {
    let i = vector_input("session", "session_open_response", 23);
    let target = SessionTarget {
        fleet_id: i["fleet_id"].as_str().unwrap().into(),
        epoch: i["epoch"].as_u64().unwrap(),
        node_id: i["node_id"].as_str().unwrap().into(),
        session_key: arr(i, "session_key"),
    };
    let mut rng = FixedRng(hx(i, "ikm_e"));
    let time = i["time"].as_u64().unwrap();
    seal_request_with_id(&mut rng, &target, time, arr(i, "request_id"), &hx(i, "body")).unwrap().1
}

/// The vault context of a vault vector case.
fn vault_case(operation: &str, tc_id: u64) -> (&'static Map<String, Value>, VaultContext) {
    let i = vector_input("vault", operation, tc_id);
    let ksf = &i["ksf"];
    let p = |k: &str| ksf[k].as_u64().unwrap() as u32;
    let ctx = VaultContext {
        fleet_id: i["fleet_id"].as_str().unwrap().into(),
        opaque_server_key: arr(i, "opaque_server_key"),
        ksf: KsfParams { m_cost_kib: p("m_cost_kib"), t_cost: p("t_cost"), p_cost: p("p_cost") },
    };
    (i, ctx)
}

/// A recovery after L1 (vault vectors, `vault_client_recover` tcId 37).
fn recovery_client() -> (RecoveryClient, VaultContext, FixedRng) {
    let (i, ctx) = vault_case("vault_client_recover", 37);
    let mut rng = opaque_draws::client_login(
        &arr(i, "blind"),
        &arr(i, "client_keyshare_seed"),
        &arr(i, "client_nonce"),
    );
    let (_, client) = RecoveryClient::start(&mut rng, &hx(i, "record"), &hx(i, "code")).unwrap();
    (client, ctx, rng)
}

/// A recovery after L5 with the right code, waiting for the outcome of `action`.
fn await_outcome(delete: bool) -> AwaitOutcome {
    let (client, ctx, mut rng) = recovery_client();
    let i = vector_input("vault", "vault_client_recover", 37);
    let ke2 = client.receive(&hx(i, "recover_start_response")).unwrap();
    let action = if delete { ClientAction::Delete } else { ClientAction::Recover };
    ke2.finish(&mut rng, &ctx, action).unwrap().1
}

/// A registration after R1 (vault vectors, `vault_client_register` tcId 35).
fn registration_client() -> (RegistrationClient, VaultContext, FixedRng, BackupKey) {
    let (i, ctx) = vault_case("vault_client_register", 35);
    let mut rng = opaque_draws::client_registration(&arr(i, "blind"), &arr(i, "envelope_nonce"));
    let (_, client) = RegistrationClient::start(&mut rng, &hx(i, "record"), &hx(i, "code")).unwrap();
    (client, ctx, rng, BackupKey::from_bytes(arr(i, "backup_key")))
}

/// A registration after R4, waiting for `Registered`.
fn await_registered() -> AwaitRegistered {
    let (client, ctx, mut rng, key) = registration_client();
    let i = vector_input("vault", "vault_client_register", 35);
    client.finish(&mut rng, &ctx, &key, &hx(i, "register_start_response")).unwrap().into_request().1
}

/// `client_response`, spec/session.md §4.3 and spec/vault.md §6.3, §6.4: the client-side
/// response parsers on any bytes, each from a client state built from the vectors' fixed
/// inputs. The first byte picks the parser (mod 6): 0 `AwaitResponse::open`,
/// 1 `RecoveryClient::receive` (and L3 on what it accepts), 2 `AwaitOutcome::finish`
/// after `recover`, 3 the same after `delete`, 4 `AwaitRegistered::finish`,
/// 5 `RegistrationClient::finish`.
///
/// Never panics. A `VaultResponse` is accepted only in its canonical encoding. An opened
/// session response fails once any bit of it changes. A recovered key is the registered
/// one.
pub(crate) fn client_response(data: &[u8]) {
    let Some((&which, response)) = data.split_first() else { return };
    if let Ok(r) = cbor::from_slice::<VaultResponse>(response) {
        assert_eq!(cbor::to_vec(&r), response, "accepted VaultResponse is canonical");
    }
    match which % 6 {
        0 => {
            if session_client().open(response).is_ok() {
                for at in 0..response.len() {
                    for bit in [0, 7] {
                        let changed = flipped(response, at, bit);
                        assert!(
                            session_client().open(&changed).is_err(),
                            "changed response opened (byte {at})"
                        );
                    }
                }
            }
        }
        1 => {
            let (client, ctx, mut rng) = recovery_client();
            if let Ok(ke2) = client.receive(response) {
                let _ = ke2.finish(&mut rng, &ctx, ClientAction::Recover);
            }
        }
        2 => {
            if let Ok(outcome) = await_outcome(false).finish(response) {
                let Outcome::Recovered { backup_key, .. } = outcome else {
                    panic!("{outcome:?} for recover")
                };
                let i = vector_input("vault", "vault_client_register", 35);
                assert_eq!(backup_key.as_bytes()[..], hx(i, "backup_key"), "recovered another key");
            }
        }
        3 => {
            if let Ok(outcome) = await_outcome(true).finish(response) {
                assert!(matches!(outcome, Outcome::Deleted), "{outcome:?} for delete");
            }
        }
        4 => {
            let _: Result<u32> = await_registered().finish(response);
        }
        _ => {
            let (client, ctx, mut rng, key) = registration_client();
            let _ = client.finish(&mut rng, &ctx, &key, response);
        }
    }
}
