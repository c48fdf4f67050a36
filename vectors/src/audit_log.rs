//! Vectors for spec/audit-log.md: RFC 9162 proofs (§3.3, §3.4), verifier keys (§4.2),
//! the client rule (§7.2, §7.3) and the witness rule (§8.3).
//!
//! Keys come from fixed seeds and cosignatures carry fixed timestamps (Ed25519 is
//! deterministic), so regeneration is byte-stable. Each invalid case breaks one step.

use crate::format::{FileBuilder, VectorFile, map};
use bkv_protocol::Error;
use bkv_protocol::audit_log::merkle::{Hash, Tree};
use bkv_protocol::audit_log::note::{self, Note, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519};
use bkv_protocol::audit_log::{
    Checkpoint, InclusionProof, LogAnchors, LogEntry, LogProof, LoggedBundle, TreeHead,
};
use bkv_protocol::crypto::Ed25519Signer;
use serde_json::{Value as Json, json};

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

/// The vector file `audit_log.json`.
pub fn generate() -> VectorFile {
    let w = World::new();
    let mut f = FileBuilder::new("audit_log", "spec/audit-log.md", NOTES);

    // ---- §3.3 / §3.4 proofs ------------------------------------------------------
    f.group("merkle_inclusion", "§3.3");
    let n = w.tree.size();
    let root = w.tree.root();
    let inc = |f: &mut FileBuilder, c: &str, fl: &[&str], i: u64, size: u64, p: &[Hash], r: &Hash, e| {
        let input = map([
            ("leaf_hash", hx(&w.tree.leaf(i.min(n - 1)).unwrap())),
            ("leaf_index", json!(i)),
            ("tree_size", json!(size)),
            ("path", hashes(p)),
            ("root", hx(r)),
        ]);
        f.case(c, fl, input, e, None);
    };
    for i in 0..n {
        inc(
            &mut f,
            &format!("leaf {i} of {n}"),
            &["Valid"],
            i,
            n,
            &w.tree.inclusion_proof(i, n).unwrap(),
            &root,
            None,
        );
    }
    let p3 = w.tree.inclusion_proof(3, n).unwrap();
    let bad = Some(Error::LogInclusionInvalid);
    inc(&mut f, "wrong index", &["Proof"], 2, n, &p3, &root, bad);
    inc(&mut f, "truncated path", &["Proof"], 3, n, &p3[..p3.len() - 1], &root, bad);
    let mut padded = p3.clone();
    padded.push([0; 32]);
    inc(&mut f, "padded path", &["Proof"], 3, n, &padded, &root, bad);
    inc(&mut f, "wrong root", &["Proof"], 3, n, &p3, &w.tree.root_at(5).unwrap(), bad);
    inc(&mut f, "index equal to the size", &["Proof"], n, n, &p3, &root, bad);

    f.group("merkle_consistency", "§3.4");
    let cons =
        |f: &mut FileBuilder, c: &str, fl: &[&str], m: u64, k: u64, p: &[Hash], r1: &Hash, r2: &Hash, e| {
            let input = map([
                ("size1", json!(m)),
                ("size2", json!(k)),
                ("path", hashes(p)),
                ("root1", hx(r1)),
                ("root2", hx(r2)),
            ]);
            f.case(c, fl, input, e, None);
        };
    for m in 1..=n {
        let p = w.tree.consistency_proof(m, n).unwrap();
        cons(&mut f, &format!("{m} to {n}"), &["Valid"], m, n, &p, &w.tree.root_at(m).unwrap(), &root, None);
    }
    let bad = Some(Error::LogConsistencyInvalid);
    let p = w.tree.consistency_proof(3, n).unwrap();
    let r3 = w.tree.root_at(3).unwrap();
    cons(&mut f, "empty proof", &["Proof"], 3, n, &[], &r3, &root, bad);
    cons(&mut f, "wrong old root", &["Proof"], 3, n, &p, &w.tree.root_at(2).unwrap(), &root, bad);
    cons(&mut f, "truncated proof", &["Proof"], 3, n, &p[..p.len() - 1], &r3, &root, bad);
    cons(&mut f, "from the empty tree", &["Proof"], 0, n, &[], &w.tree.root_at(0).unwrap(), &root, bad);
    cons(&mut f, "size1 above size2", &["Proof"], n, 3, &[], &root, &r3, bad);
    cons(&mut f, "equal sizes, different roots", &["Proof"], 3, 3, &[], &r3, &root, bad);

    // ---- §4.2 verifier keys ---------------------------------------------------------
    f.group("parse_vkey", "§4.2");
    let vk = |f: &mut FileBuilder, c: &str, fl: &[&str], s: &str, e, out| {
        f.case(c, fl, map([("vkey", json!(s))]), e, out)
    };
    let c2sp = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    vk(
        &mut f,
        "the C2SP signed-note example verifier key",
        &["Valid"],
        c2sp,
        None,
        Some(map([("name", json!("example.com/foo")), ("key_id", json!("530d903a")), ("type", json!(1))])),
    );
    let bad = Some(Error::LogVkeyMalformed);
    vk(&mut f, "key id does not match", &["Vkey"], &c2sp.replace("530d903a", "530d903b"), bad, None);
    vk(&mut f, "two parts", &["Vkey"], "example.com/foo+530d903a", bad, None);
    vk(&mut f, "unknown signature type 0x03", &["Vkey"], &c2sp.replace("+Aeky", "+A2ky"), bad, None);

    // ---- §7.2 / §7.3 the client rule -----------------------------------------------
    f.group("verify_logged_bundle", "§7.2");
    let case = |f: &mut FileBuilder,
                c: &str,
                fl: &[&str],
                idx: usize,
                bundle: &[u8],
                proof: &LogProof,
                anchors: &LogAnchors,
                held: Option<TreeHead>,
                consistency: Option<Vec<Hash>>,
                e: Option<Error>| {
        let logged = LoggedBundle { v: 1, bundle: bundle.to_vec(), proof: proof.clone() };
        let input = map([
            ("logged_bundle", hx(&logged.to_cbor())),
            ("fleet_id", json!(FLEET)),
            ("epoch", json!(idx as u64 + 1)),
            ("anchors", hx(&bkv_protocol::cbor::to_vec(anchors))),
            ("state", state(held)),
            ("consistency", consistency.as_deref().map_or(Json::Null, hashes)),
        ]);
        let out = match e {
            Some(_) => None,
            None => {
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
                Some(map([
                    ("leaf_index", json!(v.leaf_index)),
                    ("development_only", json!(v.development_only)),
                    ("state", json!({ "size": s.size, "root": hex::encode(s.root) })),
                ]))
            }
        };
        f.case(c, fl, input, e, out);
    };
    let a2 = w.anchors(2);
    let b = |i: usize| w.bundles[i].clone();
    case(
        &mut f,
        "logged, 2 of 3 witnesses, fresh client",
        &["Valid"],
        3,
        &b(3),
        &w.proof(3, 6, 2),
        &a2,
        None,
        None,
        None,
    );
    case(&mut f, "logged, 3 of 3 witnesses", &["Valid"], 0, &b(0), &w.proof(0, 6, 3), &a2, None, None, None);
    case(
        &mut f,
        "K = 0, no cosignature",
        &["Valid", "DevelopmentOnly"],
        1,
        &b(1),
        &w.proof(1, 6, 0),
        &w.anchors(0),
        None,
        None,
        None,
    );
    case(
        &mut f,
        "same checkpoint as held",
        &["Valid", "State"],
        2,
        &b(2),
        &w.proof(2, 6, 2),
        &a2,
        Some(w.head(6)),
        None,
        None,
    );
    let c46 = w.tree.consistency_proof(4, 6).unwrap();
    case(
        &mut f,
        "larger checkpoint with a consistency proof",
        &["Valid", "State"],
        5,
        &b(5),
        &w.proof(5, 6, 2),
        &a2,
        Some(w.head(4)),
        Some(c46.clone()),
        None,
    );
    case(
        &mut f,
        "older checkpoint with a proof to the held one",
        &["Valid", "State"],
        1,
        &b(1),
        &w.proof(1, 4, 2),
        &a2,
        Some(w.head(6)),
        Some(c46.clone()),
        None,
    );
    case(
        &mut f,
        "larger checkpoint without a consistency proof",
        &["State"],
        5,
        &b(5),
        &w.proof(5, 6, 2),
        &a2,
        Some(w.head(4)),
        None,
        Some(Error::LogConsistencyMissing),
    );
    let mut bad_c = c46.clone();
    bad_c[0][0] ^= 1;
    case(
        &mut f,
        "consistency proof does not verify",
        &["State"],
        5,
        &b(5),
        &w.proof(5, 6, 2),
        &a2,
        Some(w.head(4)),
        Some(bad_c),
        Some(Error::LogConsistencyInvalid),
    );
    let forked = TreeHead { size: 6, root: w.tree.root_at(5).unwrap() };
    case(
        &mut f,
        "same size as held, different root: fork",
        &["State"],
        5,
        &b(5),
        &w.proof(5, 6, 2),
        &a2,
        Some(forked),
        None,
        Some(Error::LogFork),
    );
    case(
        &mut f,
        "bundle bytes not in the log",
        &["Inclusion"],
        3,
        b"another bundle, never logged",
        &w.proof(3, 6, 2),
        &a2,
        None,
        None,
        Some(Error::LogInclusionInvalid),
    );
    case(
        &mut f,
        "entry under another epoch",
        &["Inclusion"],
        2,
        &b(3),
        &w.proof(3, 6, 2),
        &a2,
        None,
        None,
        Some(Error::LogInclusionInvalid),
    );
    let mut p = w.proof(3, 6, 2);
    p.inclusion.path.pop();
    case(
        &mut f,
        "truncated inclusion path",
        &["Inclusion"],
        3,
        &b(3),
        &p,
        &a2,
        None,
        None,
        Some(Error::LogInclusionInvalid),
    );
    let mut p = w.proof(3, 6, 2);
    p.inclusion.tree_size = 5;
    case(
        &mut f,
        "proof tree size differs from the checkpoint",
        &["Inclusion"],
        3,
        &b(3),
        &p,
        &a2,
        None,
        None,
        Some(Error::LogInclusionInvalid),
    );
    let mut p = w.proof(3, 6, 2);
    p.checkpoint =
        w.sign(&Checkpoint { origin: "other.example/log".into(), size: 6, root: w.tree.root() }.body(), 2);
    case(
        &mut f,
        "checkpoint from another origin",
        &["Signature"],
        3,
        &b(3),
        &p,
        &a2,
        None,
        None,
        Some(Error::LogCheckpointOrigin),
    );
    let mut n = Note::parse(&w.checkpoint(6, 2)).unwrap();
    n.signatures[0].signature[5] ^= 1;
    let p = LogProof { checkpoint: n.encode(), ..w.proof(3, 6, 2) };
    case(
        &mut f,
        "log signature does not verify",
        &["Signature"],
        3,
        &b(3),
        &p,
        &a2,
        None,
        None,
        Some(Error::LogCheckpointSignatureInvalid),
    );
    let mut n = Note::parse(&w.checkpoint(6, 2)).unwrap();
    n.signatures.remove(0);
    let p = LogProof { checkpoint: n.encode(), ..w.proof(3, 6, 2) };
    case(
        &mut f,
        "no log signature",
        &["Signature"],
        3,
        &b(3),
        &p,
        &a2,
        None,
        None,
        Some(Error::LogCheckpointUnsigned),
    );
    let mut n = Note::parse(&w.checkpoint(6, 3)).unwrap();
    n.signatures[2].signature[20] ^= 1;
    let p = LogProof { checkpoint: n.encode(), ..w.proof(3, 6, 2) };
    case(
        &mut f,
        "a pinned witness's cosignature does not verify",
        &["Signature"],
        3,
        &b(3),
        &p,
        &a2,
        None,
        None,
        Some(Error::LogCosignatureInvalid),
    );
    case(
        &mut f,
        "one witness, K = 2",
        &["Signature"],
        3,
        &b(3),
        &w.proof(3, 6, 1),
        &a2,
        None,
        None,
        Some(Error::LogWitnessInsufficient),
    );
    let mut a4 = w.anchors(2);
    a4.threshold = 4;
    case(
        &mut f,
        "K above the number of pinned witnesses",
        &["Signature"],
        3,
        &b(3),
        &w.proof(3, 6, 3),
        &a4,
        None,
        None,
        Some(Error::LogAnchorsInvalid),
    );
    let p = LogProof { checkpoint: "not a signed note".into(), ..w.proof(3, 6, 2) };
    case(
        &mut f,
        "checkpoint is not a signed note",
        &["Note"],
        3,
        &b(3),
        &p,
        &a2,
        None,
        None,
        Some(Error::LogNoteMalformed),
    );
    let root64 = Checkpoint { origin: ORIGIN.into(), size: 6, root: w.tree.root() }.body();
    let p = LogProof { checkpoint: w.sign(&root64.replace("\n6\n", "\n06\n"), 2), ..w.proof(3, 6, 2) };
    case(
        &mut f,
        "tree size with a leading zero",
        &["Note"],
        3,
        &b(3),
        &p,
        &a2,
        None,
        None,
        Some(Error::LogCheckpointMalformed),
    );

    // ---- §8.3 the witness rule ---------------------------------------------------------
    f.group("witness_check", "§8.3");
    let log_vkey = note::verifier_key(ORIGIN, SIG_TYPE_ED25519, &w.log).unwrap().encode();
    let wc = |f: &mut FileBuilder,
              c: &str,
              fl: &[&str],
              held: Option<TreeHead>,
              size: u64,
              proof: &[Hash],
              e: Option<Error>| {
        let input = map([
            ("log_vkey", json!(log_vkey)),
            ("held", state(held)),
            ("checkpoint", json!(w.checkpoint(size, 0))),
            ("consistency", hashes(proof)),
        ]);
        let out =
            e.is_none().then(|| map([("size", json!(size)), ("root", hx(&w.tree.root_at(size).unwrap()))]));
        f.case(c, fl, input, e, out);
    };
    wc(&mut f, "first checkpoint", &["Valid"], None, 4, &[], None);
    wc(&mut f, "consistent larger checkpoint", &["Valid"], Some(w.head(4)), 6, &c46, None);
    wc(
        &mut f,
        "inconsistent larger checkpoint",
        &["Witness"],
        Some(w.head(3)),
        6,
        &c46,
        Some(Error::LogConsistencyInvalid),
    );
    wc(&mut f, "smaller than held", &["Witness"], Some(w.head(6)), 4, &[], Some(Error::LogWitnessConflict));
    wc(&mut f, "same size, different root", &["Witness"], Some(forked), 6, &[], Some(Error::LogFork));
    f.finish()
}
