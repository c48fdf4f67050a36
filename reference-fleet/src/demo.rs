//! `bkv demo`: the whole story on one machine, step by step, with timings.
//!
//! Today the story covers spec/validation-bundle.md: a fleet's keys are generated, the
//! third party signs the FleetKeySet, the operator countersigns it, and a client
//! verifies it, then refuses a bundle only one organisation signed.

use crate::cli::bundle::describe;
use crate::cli::output::{now, rfc3339};
use crate::error::{Result, write_file};
use bkv_protocol::crypto::{Ed25519Signer, Esp256Signer, Signer, sha256};
use bkv_protocol::validation_bundle::{
    Anchor, Claims, ClientState, FleetKeySet, KeyRole, Node, NodeKey, Parsed, TrustAnchors, countersign,
    keyset, sign, verify_bundle,
};
use clap::Args;
use rand_core::OsRng;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `bkv demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's files (default: a new directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Number of HSM nodes in the fleet.
    #[arg(long, default_value_t = 5)]
    pub nodes: u8,
}

/// The demo fleet's identifier.
pub const DEMO_FLEET: &str = "demo.bkv.example/vault";
const DATACENTERS: [&str; 3] = ["dc-east", "dc-west", "dc-north"];

struct Step {
    n: usize,
    started: Instant,
}

impl Step {
    fn new() -> Self {
        Step { n: 0, started: Instant::now() }
    }
    fn begin(&mut self, what: &str) -> Instant {
        self.n += 1;
        println!("\n[{}] {what}", self.n);
        Instant::now()
    }
    fn done(&self, t: Instant, what: &str) {
        println!("    ✓ {what} ({:.1} ms)", t.elapsed().as_secs_f64() * 1e3);
    }
}

/// Public node keys for a demo fleet, generated from the OS RNG. The software HSM of
/// the reference fleet keeps the private halves; here only the public keys matter.
fn demo_nodes(n: u8) -> Vec<Node> {
    use hpke::{Kem, Serializable, kem::X25519HkdfSha256};
    let mut rng = OsRng;
    let opaque = opaque_ke::ServerSetup::<DemoSuite>::new(&mut rng);
    let opaque_pk = opaque.keypair().public().serialize().to_vec();
    (1..=n)
        .map(|i| {
            let (_, session_pk) = X25519HkdfSha256::gen_keypair(&mut rng);
            let signing = Ed25519Signer::generate(&mut rng);
            Node {
                id: format!("node-{i}"),
                datacenter: DATACENTERS[usize::from(i - 1) % DATACENTERS.len()].into(),
                keys: vec![
                    NodeKey {
                        role: KeyRole::Session,
                        suite: keyset::SESSION_SUITE_X25519,
                        key: session_pk.to_bytes().to_vec(),
                    },
                    NodeKey { role: KeyRole::Opaque, suite: keyset::OPAQUE_SUITE_1, key: opaque_pk.clone() },
                    NodeKey { role: KeyRole::Signing, suite: -19, key: signing.public_key().key.clone() },
                ],
            }
        })
        .collect()
}

/// bkv OPAQUE suite 1 (spec/vault.md): ristretto255, TripleDH with SHA-512, Argon2id.
struct DemoSuite;
impl opaque_ke::CipherSuite for DemoSuite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
    type Ksf = argon2::Argon2<'static>;
}

/// Run the demo.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    if args.nodes == 0 {
        return Err(crate::error::Error::Usage("--nodes must be at least 1".into()));
    }
    let dir =
        args.dir.unwrap_or_else(|| std::env::temp_dir().join(format!("bkv-demo-{}", std::process::id())));
    std::fs::create_dir_all(&dir)
        .map_err(|source| crate::error::Error::Write { path: dir.clone(), source })?;
    let t0 = now();
    let mut step = Step::new();
    println!("bkv demo — files in {}", dir.display());

    let t = step.begin("Two independent organisations create their signing keys");
    let third_party = Ed25519Signer::generate(&mut OsRng);
    let operator = Esp256Signer::generate(&mut OsRng);
    println!("    third-party signer  Ed25519  kid {}", hex::encode(&third_party.public_key().kid()[..8]));
    println!("    operator            ESP256   kid {}", hex::encode(&operator.public_key().kid()[..8]));
    step.done(t, "keys created");

    let t = step.begin(&format!(
        "The operator deploys a fleet of {} HSM nodes and builds its FleetKeySet",
        args.nodes
    ));
    let ks = FleetKeySet {
        v: 1,
        fleet_id: DEMO_FLEET.into(),
        epoch: 1,
        not_before: t0 - 60,
        not_after: t0 + 365 * 86_400,
        guess_limit: keyset::DEFAULT_GUESS_LIMIT,
        quorum: u32::from(args.nodes) / 2 + 1,
        nodes: demo_nodes(args.nodes),
        prev: None,
        evidence: None,
    };
    ks.validate()?;
    let ks_bytes = ks.to_bytes();
    println!("    {} bytes of deterministic CBOR, sha256 {}", ks_bytes.len(), hex::encode(sha256(&ks_bytes)));
    step.done(t, "FleetKeySet built and checked");

    let t = step.begin("The third-party signer signs the FleetKeySet (COSE_Sign1)");
    let claims = Claims { iss: "third-party.example".into(), sub: DEMO_FLEET.into(), iat: t0 };
    let signed = sign(&ks_bytes, &claims, &third_party);
    step.done(t, &format!("signed: {} bytes, handed to the operator only", signed.len()));

    let t = step.begin("The operator checks the payload and countersigns the signature (RFC 9338 V2)");
    let parsed = Parsed::parse(&signed)?;
    assert_eq!(parsed.payload, ks_bytes, "the third party signed what the operator submitted");
    let bundle = countersign(&signed, &operator)?;
    let bundle_path = dir.join("bundle.cbor");
    write_file(&bundle_path, &bundle)?;
    step.done(t, &format!("bundle: {} bytes, written to {}", bundle.len(), bundle_path.display()));
    let parsed = Parsed::parse(&bundle)?;
    for line in describe(&bundle, &parsed, &ks).lines() {
        println!("    {line}");
    }

    let t = step.begin("The app ships trust anchors for both organisations");
    let window = |name: &str, key: &bkv_protocol::crypto::PublicKey| Anchor {
        name: name.into(),
        key: key.clone(),
        not_before: t0 - 86_400,
        not_after: t0 + 2 * 365 * 86_400,
    };
    let anchors = TrustAnchors {
        v: 1,
        fleet_id: DEMO_FLEET.into(),
        third_party: vec![window("third-party.example", third_party.public_key())],
        operator: vec![window("operator.example", operator.public_key())],
        pinned: vec![],
    };
    let anchors_path = dir.join("anchors.cbor");
    write_file(&anchors_path, &anchors.to_bytes())?;
    step.done(t, &format!("anchors written to {}", anchors_path.display()));

    let t = step.begin("A new phone verifies the bundle over the air (spec/validation-bundle.md §5)");
    let verified = verify_bundle(&bundle, &anchors, &ClientState::default(), now())?;
    println!(
        "    fleet {} epoch {} accepted at {}; state to persist: epoch {} bundle {}",
        verified.keyset().fleet_id,
        verified.keyset().epoch,
        rfc3339(now()),
        verified.keyset().epoch,
        hex::encode(&verified.bundle_digest().unwrap_or_default()[..8])
    );
    step.done(t, "verified: signature and countersignature by pinned anchors, keys valid, no rollback");

    let t = step.begin("A rogue fleet signed by the operator alone is refused");
    let rogue = countersign(&sign(&ks_bytes, &claims, &operator), &operator)?;
    match verify_bundle(&rogue, &anchors, &ClientState::default(), now()) {
        Err(e) => println!("    refused [{}] {}", e.code(), e.description()),
        Ok(_) => unreachable!("a bundle without the third party's signature must never verify"),
    }
    let unsigned = signed;
    match verify_bundle(&unsigned, &anchors, &ClientState::default(), now()) {
        Err(e) => println!("    refused [{}] {}", e.code(), e.description()),
        Ok(_) => unreachable!("a bundle without the operator's countersignature must never verify"),
    }
    step.done(t, "neither organisation alone can introduce a fleet");

    println!("\nDemo finished in {:.1} ms.", step.started.elapsed().as_secs_f64() * 1e3);
    println!("Try: bkv bundle inspect {}", bundle_path.display());
    println!("     bkv bundle verify {} --anchors {}", bundle_path.display(), anchors_path.display());
    Ok(ExitCode::SUCCESS)
}
