//! Vectors for spec/audit-log.md: RFC 9162 proofs (§3.3, §3.4), verifier keys (§4.2),
//! the client rule (§7.2, §7.3) and the witness rule (§8.3).
//!
//! Keys come from fixed seeds and cosignatures carry fixed timestamps (Ed25519 is
//! deterministic), so regeneration is byte-stable. Each invalid case breaks one step.

use crate::cases;
use crate::format::{Case, FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::audit_log::merkle::{Hash, Tree};
use bkv_protocol::audit_log::note::{self, Note, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519};
use bkv_protocol::audit_log::{
    Checkpoint, InclusionProof, LogAnchors, LogEntry, LogProof, LoggedBundle, TreeHead,
};
use bkv_protocol::crypto::Ed25519Signer;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

const ORIGIN: &str = "log.auditco.example/bkv";
const FLEET: &str = "chat.example/backup-vault";
const TIME: u64 = 1_800_000_000;

const NOTES: &[(&str, &str)] = &[
    ("Valid", "input every implementation must accept"),
    ("Proof", "RFC 9162 proof verification (§3.3, §3.4)"),
    ("Vkey", "C2SP verifier keys (§4.2)"),
    ("Note", "signed note and checkpoint parsing (§4.1, §4.4)"),
    ("Signature", "log signature and witness cosignatures (§7.2 steps 2-5)"),
    ("Inclusion", "the bundle's entry is in the checkpoint's tree (§7.2 steps 6, 7)"),
    ("State", "largest checkpoint, consistency and forks (§7.3)"),
    ("DevelopmentOnly", "K = 0: accepted, but the result says development only (§7.1)"),
    ("Witness", "the witness rule (§8.3)"),
    crate::produce::NOTE,
];

struct World {
    log: Ed25519Signer,
    witnesses: Vec<(String, Ed25519Signer)>,
    tree: Tree,
    bundles: Vec<Vec<u8>>,
}

fn hx(b: &[u8]) -> Json {
    json!(hex::encode(b))
}

fn hashes(v: &[Hash]) -> Json {
    Json::Array(v.iter().map(|h| hx(h)).collect())
}

impl World {
    fn new() -> Self {
        let witnesses = (0..3u8)
            .map(|i| (format!("witness{i}.example/w"), Ed25519Signer::from_seed(&[0x40 + i; 32])))
            .collect();
        let mut w = World {
            log: Ed25519Signer::from_seed(&[0x30; 32]),
            witnesses,
            tree: Tree::new(),
            bundles: Vec::new(),
        };
        for epoch in 1..=6u64 {
            let bundle = format!("final bundle bytes, epoch {epoch}").into_bytes();
            w.tree.push(&LogEntry::bundle(FLEET, epoch, &bundle).to_cbor());
            w.bundles.push(bundle);
        }
        w
    }

    fn anchors(&self, k: u64) -> LogAnchors {
        LogAnchors {
            origin: ORIGIN.into(),
            log_key: note::verifier_key(ORIGIN, SIG_TYPE_ED25519, &self.log).unwrap(),
            witnesses: self
                .witnesses
                .iter()
                .map(|(n, s)| note::verifier_key(n, SIG_TYPE_COSIGNATURE, s).unwrap())
                .collect(),
            threshold: k,
        }
    }

    fn sign(&self, text: &str, w: usize) -> String {
        let mut sigs = vec![note::sign_note(text, ORIGIN, &self.log).unwrap()];
        for (name, s) in &self.witnesses[..w] {
            sigs.push(note::cosign(text, name, s, TIME).unwrap());
        }
        Note { text: text.into(), signatures: sigs }.encode()
    }

    fn checkpoint(&self, size: u64, w: usize) -> String {
        self.sign(
            &Checkpoint { origin: ORIGIN.into(), size, root: self.tree.root_at(size).unwrap() }.body(),
            w,
        )
    }

    fn proof(&self, index: u64, size: u64, w: usize) -> LogProof {
        LogProof {
            inclusion: InclusionProof {
                tree_size: size,
                leaf_index: index,
                path: self.tree.inclusion_proof(index, size).unwrap(),
            },
            checkpoint: self.checkpoint(size, w),
        }
    }

    fn head(&self, size: u64) -> TreeHead {
        TreeHead { size, root: self.tree.root_at(size).unwrap() }
    }
}

fn state(h: Option<TreeHead>) -> Json {
    h.map_or(Json::Null, |h| json!({ "size": h.size, "root": hex::encode(h.root) }))
}

/// The tree of every case: six bundle entries.
const N: u64 = 6;

impl World {
    /// A `merkle_inclusion` case: leaf `i` (of the tree; the last leaf when `i` is out of
    /// range) with `path` under `root` for a tree of `size`.
    fn inclusion(
        &self,
        flags: &'static [&'static str],
        i: u64,
        size: u64,
        path: &[Hash],
        root: &Hash,
        e: Option<Error>,
    ) -> Case {
        let input = map([
            ("leaf_hash", hx(&self.tree.leaf(i.min(N - 1)).unwrap())),
            ("leaf_index", json!(i)),
            ("tree_size", json!(size)),
            ("path", hashes(path)),
            ("root", hx(root)),
        ]);
        Case { flags, input, error: e, output: None }
    }

    /// The valid inclusion case of leaf `i`.
    fn leaf(&self, i: u64) -> Case {
        self.inclusion(&["Valid"], i, N, &self.tree.inclusion_proof(i, N).unwrap(), &self.tree.root(), None)
    }

    /// Leaf 3's proof.
    fn p3(&self) -> Vec<Hash> {
        self.tree.inclusion_proof(3, N).unwrap()
    }

    /// A `merkle_consistency` case from size `m` to `k`.
    #[allow(clippy::too_many_arguments)]
    fn consistency(
        &self,
        flags: &'static [&'static str],
        m: u64,
        k: u64,
        path: &[Hash],
        r1: &Hash,
        r2: &Hash,
        e: Option<Error>,
    ) -> Case {
        let input = map([
            ("size1", json!(m)),
            ("size2", json!(k)),
            ("path", hashes(path)),
            ("root1", hx(r1)),
            ("root2", hx(r2)),
        ]);
        Case { flags, input, error: e, output: None }
    }

    /// The valid consistency case from `m` to the whole tree.
    fn consistent(&self, m: u64) -> Case {
        let p = self.tree.consistency_proof(m, N).unwrap();
        self.consistency(&["Valid"], m, N, &p, &self.tree.root_at(m).unwrap(), &self.tree.root(), None)
    }

    /// An invalid consistency case from 3 to the whole tree.
    fn inconsistent(&self, path: &[Hash], r1: &Hash) -> Case {
        self.consistency(&["Proof"], 3, N, path, r1, &self.tree.root(), Some(Error::LogConsistencyInvalid))
    }

    /// A `verify_logged_bundle` case: entry `idx` (epoch `idx + 1`) as `bundle` with
    /// `proof`, against `anchors`, for a client holding `held`, with `consistency`.
    #[allow(clippy::too_many_arguments)]
    fn logged(
        &self,
        flags: &'static [&'static str],
        idx: usize,
        bundle: &[u8],
        proof: &LogProof,
        anchors: &LogAnchors,
        held: Option<TreeHead>,
        consistency: Option<Vec<Hash>>,
        e: Option<Error>,
    ) -> Case {
        let logged = LoggedBundle { v: 1, bundle: bundle.to_vec(), proof: proof.clone() };
        let input = map([
            ("logged_bundle", hx(&logged.to_cbor())),
            ("fleet_id", json!(FLEET)),
            ("epoch", json!(idx as u64 + 1)),
            ("anchors", hx(&bkv_protocol::cbor::to_vec(anchors))),
            ("state", state(held)),
            ("consistency", consistency.as_deref().map_or(Json::Null, hashes)),
        ]);
        let output = e.is_none().then(|| {
            let v = bkv_protocol::audit_log::verify_logged_bundle(
                bundle,
                FLEET,
                idx as u64 + 1,
                proof,
                anchors,
                &bkv_protocol::audit_log::LogState { largest: held },
                consistency.as_deref(),
            )
            .expect("valid case verifies");
            let s = v.state.largest.unwrap();
            map([
                ("leaf_index", json!(v.leaf_index)),
                ("development_only", json!(v.development_only)),
                ("state", json!({ "size": s.size, "root": hex::encode(s.root) })),
            ])
        });
        Case { flags, input, error: e, output }
    }

    /// Entry 3 with `proof`, K = 2, a fresh client: a case that fails with `e`.
    fn entry_3(&self, flags: &'static [&'static str], proof: &LogProof, e: Error) -> Case {
        self.logged(flags, 3, &self.bundles[3], proof, &self.anchors(2), None, None, Some(e))
    }

    /// Entry 3's proof with its checkpoint replaced by `checkpoint`.
    fn with_checkpoint(&self, checkpoint: String) -> LogProof {
        LogProof { checkpoint, ..self.proof(3, 6, 2) }
    }

    /// The consistency proof from 4 to 6.
    fn c46(&self) -> Vec<Hash> {
        self.tree.consistency_proof(4, 6).unwrap()
    }

    /// A tree head of size 6 with the root of size 5: a fork of the held view.
    fn forked(&self) -> TreeHead {
        TreeHead { size: 6, root: self.tree.root_at(5).unwrap() }
    }

    /// A `witness_check` case: the witness holds `held` and is given the checkpoint of
    /// `size` with `proof`.
    fn witness(
        &self,
        flags: &'static [&'static str],
        held: Option<TreeHead>,
        size: u64,
        proof: &[Hash],
        e: Option<Error>,
    ) -> Case {
        let log_vkey = note::verifier_key(ORIGIN, SIG_TYPE_ED25519, &self.log).unwrap().encode();
        let input = map([
            ("log_vkey", json!(log_vkey)),
            ("held", state(held)),
            ("checkpoint", json!(self.checkpoint(size, 0))),
            ("consistency", hashes(proof)),
        ]);
        let output = e
            .is_none()
            .then(|| map([("size", json!(size)), ("root", hx(&self.tree.root_at(size).unwrap()))]));
        Case { flags, input, error: e, output }
    }
}

/// The C2SP signed-note example verifier key.
const C2SP: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";

fn vkey(
    flags: &'static [&'static str],
    text: &str,
    e: Option<Error>,
    output: Option<BTreeMap<String, Json>>,
) -> Case {
    Case { flags, input: map([("vkey", json!(text))]), error: e, output }
}

cases! { World, MERKLE_INCLUSION;
    /// leaf 0 of 6
    fn leaf_0(w) { w.leaf(0) }
    /// leaf 1 of 6
    fn leaf_1(w) { w.leaf(1) }
    /// leaf 2 of 6
    fn leaf_2(w) { w.leaf(2) }
    /// leaf 3 of 6
    fn leaf_3(w) { w.leaf(3) }
    /// leaf 4 of 6
    fn leaf_4(w) { w.leaf(4) }
    /// leaf 5 of 6
    fn leaf_5(w) { w.leaf(5) }
    /// wrong index
    fn wrong_index(w) {
        w.inclusion(&["Proof"], 2, N, &w.p3(), &w.tree.root(), Some(Error::LogInclusionInvalid))
    }
    /// truncated path
    fn truncated_path(w) {
        let p3 = w.p3();
        w.inclusion(&["Proof"], 3, N, &p3[..p3.len() - 1], &w.tree.root(), Some(Error::LogInclusionInvalid))
    }
    /// padded path
    fn padded_path(w) {
        let mut padded = w.p3();
        padded.push([0; 32]);
        w.inclusion(&["Proof"], 3, N, &padded, &w.tree.root(), Some(Error::LogInclusionInvalid))
    }
    /// wrong root
    fn wrong_root(w) {
        w.inclusion(&["Proof"], 3, N, &w.p3(), &w.tree.root_at(5).unwrap(), Some(Error::LogInclusionInvalid))
    }
    /// index equal to the size
    fn index_equal_to_size(w) {
        w.inclusion(&["Proof"], N, N, &w.p3(), &w.tree.root(), Some(Error::LogInclusionInvalid))
    }
}

cases! { World, MERKLE_CONSISTENCY;
    /// 1 to 6
    fn from_1(w) { w.consistent(1) }
    /// 2 to 6
    fn from_2(w) { w.consistent(2) }
    /// 3 to 6
    fn from_3(w) { w.consistent(3) }
    /// 4 to 6
    fn from_4(w) { w.consistent(4) }
    /// 5 to 6
    fn from_5(w) { w.consistent(5) }
    /// 6 to 6
    fn from_6(w) { w.consistent(6) }
    /// empty proof
    fn empty_proof(w) {
        w.inconsistent(&[], &w.tree.root_at(3).unwrap())
    }
    /// wrong old root
    fn wrong_old_root(w) {
        w.inconsistent(&w.tree.consistency_proof(3, N).unwrap(), &w.tree.root_at(2).unwrap())
    }
    /// truncated proof
    fn truncated_proof(w) {
        let p = w.tree.consistency_proof(3, N).unwrap();
        w.inconsistent(&p[..p.len() - 1], &w.tree.root_at(3).unwrap())
    }
    /// from the empty tree
    fn from_empty_tree(w) {
        let (r0, root) = (w.tree.root_at(0).unwrap(), w.tree.root());
        w.consistency(&["Proof"], 0, N, &[], &r0, &root, Some(Error::LogConsistencyInvalid))
    }
    /// size1 above size2
    fn size1_above_size2(w) {
        let (root, r3) = (w.tree.root(), w.tree.root_at(3).unwrap());
        w.consistency(&["Proof"], N, 3, &[], &root, &r3, Some(Error::LogConsistencyInvalid))
    }
    /// equal sizes, different roots
    fn equal_sizes_different_roots(w) {
        let (r3, root) = (w.tree.root_at(3).unwrap(), w.tree.root());
        w.consistency(&["Proof"], 3, 3, &[], &r3, &root, Some(Error::LogConsistencyInvalid))
    }
}

cases! { World, PARSE_VKEY;
    /// the C2SP signed-note example verifier key
    fn c2sp_example(_w) {
        let out = map([("name", json!("example.com/foo")), ("key_id", json!("530d903a")), ("type", json!(1))]);
        vkey(&["Valid"], C2SP, None, Some(out))
    }
    /// key id does not match
    fn key_id_mismatch(_w) {
        vkey(&["Vkey"], &C2SP.replace("530d903a", "530d903b"), Some(Error::LogVkeyMalformed), None)
    }
    /// two parts
    fn two_parts(_w) {
        vkey(&["Vkey"], "example.com/foo+530d903a", Some(Error::LogVkeyMalformed), None)
    }
    /// unknown signature type 0x03
    fn unknown_type(_w) {
        vkey(&["Vkey"], &C2SP.replace("+Aeky", "+A2ky"), Some(Error::LogVkeyMalformed), None)
    }
    /// a valid key whose base64 part contains '+': split at the first two '+' only
    fn base64_containing_plus(_w) {
        let (vk, text) = (0u8..=255)
            .map(|seed| {
                let vk = note::verifier_key(ORIGIN, SIG_TYPE_ED25519, &Ed25519Signer::from_seed(&[seed; 32]))
                    .expect("a valid key");
                let text = vk.encode();
                (vk, text)
            })
            .find(|(_, text)| text.matches('+').count() > 2)
            .expect("one of 256 keys has a '+' in its base64");
        let out = map([
            ("name", json!(ORIGIN)),
            ("key_id", json!(hex::encode(vk.key_id()))),
            ("type", json!(SIG_TYPE_ED25519)),
        ]);
        vkey(&["Valid"], &text, None, Some(out))
    }
    /// the key id in uppercase hex
    fn uppercase_key_id(_w) {
        vkey(&["Vkey"], &C2SP.replace("530d903a", "530D903A"), Some(Error::LogVkeyMalformed), None)
    }
}

cases! { World, VERIFY_LOGGED_BUNDLE;
    /// logged, 2 of 3 witnesses, fresh client
    fn two_of_three_witnesses(w) {
        w.logged(&["Valid"], 3, &w.bundles[3], &w.proof(3, 6, 2), &w.anchors(2), None, None, None)
    }
    /// logged, 3 of 3 witnesses
    fn three_of_three_witnesses(w) {
        w.logged(&["Valid"], 0, &w.bundles[0], &w.proof(0, 6, 3), &w.anchors(2), None, None, None)
    }
    /// K = 0, no cosignature
    fn k_zero(w) {
        w.logged(&["Valid", "DevelopmentOnly"], 1, &w.bundles[1], &w.proof(1, 6, 0), &w.anchors(0), None, None, None)
    }
    /// same checkpoint as held
    fn same_as_held(w) {
        w.logged(&["Valid", "State"], 2, &w.bundles[2], &w.proof(2, 6, 2), &w.anchors(2), Some(w.head(6)), None, None)
    }
    /// larger checkpoint with a consistency proof
    fn larger_with_proof(w) {
        let (proof, held) = (w.proof(5, 6, 2), Some(w.head(4)));
        w.logged(&["Valid", "State"], 5, &w.bundles[5], &proof, &w.anchors(2), held, Some(w.c46()), None)
    }
    /// older checkpoint with a proof to the held one
    fn older_with_proof(w) {
        let (proof, held) = (w.proof(1, 4, 2), Some(w.head(6)));
        w.logged(&["Valid", "State"], 1, &w.bundles[1], &proof, &w.anchors(2), held, Some(w.c46()), None)
    }
    /// larger checkpoint without a consistency proof
    fn larger_without_proof(w) {
        let (proof, held) = (w.proof(5, 6, 2), Some(w.head(4)));
        w.logged(&["State"], 5, &w.bundles[5], &proof, &w.anchors(2), held, None, Some(Error::LogConsistencyMissing))
    }
    /// larger checkpoint with an empty consistency proof (`[]`, not null): a proof is given,
    /// and for different sizes it never verifies
    fn larger_with_an_empty_proof(w) {
        let (proof, held) = (w.proof(5, 6, 2), Some(w.head(4)));
        w.logged(&["State"], 5, &w.bundles[5], &proof, &w.anchors(2), held, Some(vec![]), Some(Error::LogConsistencyInvalid))
    }
    /// consistency proof does not verify
    fn bad_consistency_proof(w) {
        let mut bad = w.c46();
        bad[0][0] ^= 1;
        let (proof, held) = (w.proof(5, 6, 2), Some(w.head(4)));
        w.logged(&["State"], 5, &w.bundles[5], &proof, &w.anchors(2), held, Some(bad), Some(Error::LogConsistencyInvalid))
    }
    /// same size as held, different root: fork
    fn fork(w) {
        let (proof, held) = (w.proof(5, 6, 2), Some(w.forked()));
        w.logged(&["State"], 5, &w.bundles[5], &proof, &w.anchors(2), held, None, Some(Error::LogFork))
    }
    /// bundle bytes not in the log
    fn bundle_not_logged(w) {
        let proof = w.proof(3, 6, 2);
        let bundle = b"another bundle, never logged";
        w.logged(&["Inclusion"], 3, bundle, &proof, &w.anchors(2), None, None, Some(Error::LogInclusionInvalid))
    }
    /// entry under another epoch
    fn another_epoch(w) {
        let proof = w.proof(3, 6, 2);
        w.logged(&["Inclusion"], 2, &w.bundles[3], &proof, &w.anchors(2), None, None, Some(Error::LogInclusionInvalid))
    }
    /// truncated inclusion path
    fn truncated_inclusion_path(w) {
        let mut p = w.proof(3, 6, 2);
        p.inclusion.path.pop();
        w.entry_3(&["Inclusion"], &p, Error::LogInclusionInvalid)
    }
    /// proof tree size differs from the checkpoint
    fn proof_size_differs(w) {
        let mut p = w.proof(3, 6, 2);
        p.inclusion.tree_size = 5;
        w.entry_3(&["Inclusion"], &p, Error::LogInclusionInvalid)
    }
    /// checkpoint from another origin
    fn another_origin(w) {
        let body = Checkpoint { origin: "other.example/log".into(), size: 6, root: w.tree.root() }.body();
        let p = w.with_checkpoint(w.sign(&body, 2));
        w.entry_3(&["Signature"], &p, Error::LogCheckpointOrigin)
    }
    /// log signature does not verify
    fn log_signature_invalid(w) {
        let mut n = Note::parse(&w.checkpoint(6, 2)).unwrap();
        n.signatures[0].signature[5] ^= 1;
        w.entry_3(&["Signature"], &w.with_checkpoint(n.encode()), Error::LogCheckpointSignatureInvalid)
    }
    /// no log signature
    fn no_log_signature(w) {
        let mut n = Note::parse(&w.checkpoint(6, 2)).unwrap();
        n.signatures.remove(0);
        w.entry_3(&["Signature"], &w.with_checkpoint(n.encode()), Error::LogCheckpointUnsigned)
    }
    /// a pinned witness's cosignature does not verify
    fn cosignature_invalid(w) {
        let mut n = Note::parse(&w.checkpoint(6, 3)).unwrap();
        n.signatures[2].signature[20] ^= 1;
        w.entry_3(&["Signature"], &w.with_checkpoint(n.encode()), Error::LogCosignatureInvalid)
    }
    /// one witness, K = 2
    fn too_few_witnesses(w) {
        w.entry_3(&["Signature"], &w.proof(3, 6, 1), Error::LogWitnessInsufficient)
    }
    /// K above the number of pinned witnesses
    fn k_above_witnesses(w) {
        let mut a4 = w.anchors(2);
        a4.threshold = 4;
        let proof = w.proof(3, 6, 3);
        w.logged(&["Signature"], 3, &w.bundles[3], &proof, &a4, None, None, Some(Error::LogAnchorsInvalid))
    }
    /// anchors whose log_key string is not a valid vkey (its key id changed): the anchors
    /// do not decode, `cbor.schema` (not `log.vkey.malformed`, not `log.anchors.invalid`)
    fn anchors_with_a_malformed_vkey(w) {
        let a = w.anchors(2);
        let proof = w.proof(3, 6, 2);
        let mut case = w.logged(&["Vkey"], 3, &w.bundles[3], &proof, &a, None, None, Some(Error::CborSchema));
        let id = hex::encode(a.log_key.key_id());
        let text = a.log_key.encode();
        let broken = text.replacen(&format!("+{id}+"), "+00000000+", 1);
        assert_ne!(text, broken);
        let mut bytes = bkv_protocol::cbor::to_vec(&a);
        let at = bytes.windows(text.len()).position(|x| x == text.as_bytes()).expect("the log_key text");
        bytes[at..at + text.len()].copy_from_slice(broken.as_bytes());
        case.input.insert("anchors".into(), hx(&bytes));
        case
    }
    /// checkpoint is not a signed note
    fn not_a_note(w) {
        w.entry_3(&["Note"], &w.with_checkpoint("not a signed note".into()), Error::LogNoteMalformed)
    }
    /// tree size with a leading zero
    fn size_leading_zero(w) {
        let body = Checkpoint { origin: ORIGIN.into(), size: 6, root: w.tree.root() }.body();
        let p = w.with_checkpoint(w.sign(&body.replace("\n6\n", "\n06\n"), 2));
        w.entry_3(&["Note"], &p, Error::LogCheckpointMalformed)
    }
}

cases! { World, WITNESS_CHECK;
    /// first checkpoint
    fn first_checkpoint(w) {
        w.witness(&["Valid"], None, 4, &[], None)
    }
    /// consistent larger checkpoint
    fn consistent_larger(w) {
        w.witness(&["Valid"], Some(w.head(4)), 6, &w.c46(), None)
    }
    /// inconsistent larger checkpoint
    fn inconsistent_larger(w) {
        w.witness(&["Witness"], Some(w.head(3)), 6, &w.c46(), Some(Error::LogConsistencyInvalid))
    }
    /// smaller than held
    fn smaller_than_held(w) {
        w.witness(&["Witness"], Some(w.head(6)), 4, &[], Some(Error::LogWitnessConflict))
    }
    /// same size, different root
    fn same_size_different_root(w) {
        w.witness(&["Witness"], Some(w.forked()), 6, &[], Some(Error::LogFork))
    }
    /// holding nothing, with a proof that verifies nothing: the proof is ignored
    fn first_checkpoint_ignores_the_proof(w) {
        let junk = w.c46().into_iter().map(|mut h| {
            h[0] ^= 1;
            h
        });
        w.witness(&["Witness"], None, 4, &junk.collect::<Vec<_>>(), None)
    }
    /// a checkpoint of another origin, signed by a key of that name: the origin is
    /// compared with the pinned log key's name before any signature
    fn checkpoint_of_another_origin(w) {
        let mut case = w.witness(&["Witness"], None, 4, &[], Some(Error::LogCheckpointOrigin));
        let other = note::verifier_key("log.other.example/bkv", SIG_TYPE_ED25519, &w.log).unwrap().encode();
        case.input.insert("log_vkey".into(), json!(other));
        case
    }
}

/// The vector file `audit_log.json`.
pub fn generate() -> VectorFile {
    let mut w = World::new();
    assert_eq!(w.tree.size(), N);
    let mut f = FileBuilder::new("audit_log", "spec/audit-log.md", NOTES);
    f.group("merkle_inclusion", "§3.3");
    f.cases(&mut w, MERKLE_INCLUSION);
    f.group("merkle_consistency", "§3.4");
    f.cases(&mut w, MERKLE_CONSISTENCY);
    f.group("parse_vkey", "§4.2");
    f.cases(&mut w, PARSE_VKEY);
    f.group("verify_logged_bundle", "§7.2");
    f.cases(&mut w, VERIFY_LOGGED_BUNDLE);
    f.group("witness_check", "§8.3");
    f.cases(&mut w, WITNESS_CHECK);
    crate::produce::add_audit_log(&mut f);
    f.finish()
}
