//! `bkv demo`: the whole story on one machine, step by step, with timings.
//!
//! Two organisations create their keys; a replicated fleet of software-HSM nodes is
//! deployed and its bundle signed, countersigned, logged and witnessed
//! (spec/validation-bundle.md, spec/audit-log.md, spec/fleet-replication.md); a phone
//! verifies the bundle, registers a recovery code and backs up a chat history
//! (spec/vault.md, spec/backup-envelope.md); a new phone makes two wrong guesses, then
//! restores with the right code; bundles that one organisation alone, or nobody's log,
//! vouches for are refused; finally the fleet is rotated to epoch 2 (spec/rotation.md) with
//! every counter, the phone follows the chain, a pinned app is told to update, and an
//! auditor checks the new fleet's deployment evidence (spec/audit.md).

use crate::cli::bundle::describe;
use crate::cli::output::{rfc3339, short_hex};
use crate::error::{Error, Result, write_file};
use crate::fleet::{FleetConfig, LocalFleet, OperatorKeys};
use bkv_client::clock::system_now as now;
use bkv_client::{FleetClient, Persisted, Recovery};
use bkv_protocol::backup_envelope;
use bkv_protocol::crypto::{Signer, sha256};
use bkv_protocol::validation_bundle::{Claims, ClientState, Parsed, countersign, sign, verify_bundle};
use bkv_protocol::vault::{BackupKey, KsfParams};
use clap::Args;
use rand_core::{OsRng, RngCore};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// With `--json` the story goes to standard error and standard output carries only the
/// final envelope (the output contract, `bkv schema output`).
static STORY_ON_STDERR: AtomicBool = AtomicBool::new(false);

/// One line of the demo's story: standard output, or standard error with `--json`.
macro_rules! say {
    ($($t:tt)*) => {
        if STORY_ON_STDERR.load(Ordering::Relaxed) { eprintln!($($t)*) } else { println!($($t)*) }
    };
}

/// Arguments of `bkv demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's files (default: a new directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Number of HSM nodes in the fleet.
    #[arg(long, default_value_t = 5)]
    pub nodes: u8,
    /// Use the test KSF profile (spec/vault.md §2.1) instead of production Argon2id; for
    /// tests of the demo only.
    #[arg(long, hide = true)]
    pub insecure_test_ksf: bool,
    /// `--json` (global): the story on standard error, the files on standard output.
    #[arg(skip)]
    pub json: bool,
}

/// The demo fleet's identifier.
pub const DEMO_FLEET: &str = "demo.bkv.example/vault";
/// The demo user's recovery code.
pub const DEMO_CODE: &str = "482 916";

/// A typed code's normal form, as a phone computes it before OPAQUE (spec/vault.md §2.4).
fn code(text: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    Ok(bkv_protocol::vault::normalise_code(text)?)
}

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
        say!("\n[{}] {what}", self.n);
        Instant::now()
    }
    fn done(&self, t: Instant, what: &str) {
        say!("    ✓ {what} ({})", ms(t));
    }
}

fn ms(t: Instant) -> String {
    format!("{:.1} ms", t.elapsed().as_secs_f64() * 1e3)
}

/// A synthetic chat history: `n` lines of messages between two people.
fn chat_history(n: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "see", "you", "at", "the", "station", "tomorrow", "did", "get", "photos", "lunch", "great", "ok",
        "running", "late", "call", "me",
    ];
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
    let mut out = String::new();
    for i in 0..n {
        let who = if i % 2 == 0 { "alice" } else { "bob" };
        let len = 3 + (rng.next_u32() % 9) as usize;
        let words: Vec<&str> = (0..len).map(|_| WORDS[(rng.next_u32() % 16) as usize]).collect();
        out.push_str(&format!(
            "2026-11-{:02}T{:02}:{:02} {who}: {}\n",
            1 + i % 28,
            i % 24,
            i % 60,
            words.join(" ")
        ));
    }
    out.into_bytes()
}

use rand_core::SeedableRng;

/// Run the demo.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    if args.nodes == 0 {
        return Err(Error::Usage("--nodes must be at least 1".into()));
    }
    let dir =
        args.dir.unwrap_or_else(|| std::env::temp_dir().join(format!("bkv-demo-{}", std::process::id())));
    if dir.join("fleet.json").exists() {
        return Err(Error::Usage(format!("{} already holds a demo; pass a new --dir", dir.display())));
    }
    std::fs::create_dir_all(&dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
    let ksf = if args.insecure_test_ksf { KsfParams::TEST } else { KsfParams::PRODUCTION };
    STORY_ON_STDERR.store(args.json, Ordering::Relaxed);
    let mut step = Step::new();
    say!("bkv demo — files in {}", dir.display());

    let t = step.begin("Two independent organisations create their signing keys");
    // The third party's key is made by its own process (`bkv keys file`) in its own
    // directory; this process, the operator's, never reads it.
    let third_party =
        crate::third_party::ThirdParty::open_or_create(&dir.join("fleet").join("third-party")).await?;
    let orgs = OperatorKeys::generate();
    say!(
        "    third-party signer  Ed25519  kid {}   (its own process and key file)",
        short_hex(&third_party.public.kid(), 8)
    );
    say!(
        "    operator            ESP256   kid {}   (this process)",
        short_hex(&orgs.operator.public_key().kid(), 8)
    );
    step.done(t, "keys created, each in its own organisation's key store");

    let t = step.begin(&format!(
        "The operator deploys a fleet of {} HSM nodes; the third party signs, logs and releases its bundle",
        args.nodes
    ));
    let mut config = FleetConfig::new(DEMO_FLEET, usize::from(args.nodes));
    config.timing = bkv_node::replication::raft::Timing::fast();
    let mut lap = Instant::now();
    let mut fleet = LocalFleet::create_with(&dir.join("fleet"), &config, &orgs, |line| {
        say!("    · {line} ({})", ms(lap));
        lap = Instant::now();
    })
    .await?;
    let bundle = fleet.released.bundle.clone();
    let parsed = Parsed::parse(&bundle)?;
    for line in describe(&bundle, &parsed, &fleet.keyset).lines() {
        say!("    {line}");
    }
    say!("    checkpoint (C2SP signed note) the proof is checked against:");
    for line in fleet.released.proof.checkpoint.lines() {
        say!("      {line}");
    }
    for n in &fleet.nodes {
        say!("    {:<7} {:<9} {}", n.id, n.datacenter, n.url);
    }
    write_file(&dir.join("bundle.cbor"), &bundle)?;
    write_file(&dir.join("released-bundle.cbor"), &fleet.released.to_cbor())?;
    write_file(&dir.join("anchors.cbor"), &fleet.trust.anchors.to_bytes())?;
    write_file(&dir.join("trust.cbor"), &bkv_protocol::cbor::to_vec(&fleet.trust))?;
    step.done(t, "fleet up: a majority of nodes elected a leader; every guess needs that majority");

    let t = step.begin("A phone verifies the bundle over the air before it sends anything");
    let (phone, persisted) =
        FleetClient::connect(&fleet.nodes[0].url, &fleet.trust, &Persisted::default(), ksf, now()).await?;
    say!(
        "    fleet {} epoch {} accepted at {}: third party + operator signatures by pinned anchors, validity window, \
         log inclusion under a checkpoint cosigned by {} of {} witnesses",
        phone.keyset().fleet_id,
        phone.keyset().epoch,
        rfc3339(now()),
        fleet.trust.log.threshold,
        fleet.trust.log.witnesses.len()
    );
    say!(
        "    state the phone persists: epoch {}, bundle {}, log size {}",
        phone.keyset().epoch,
        short_hex(&persisted.bundle.highest.map(|h| h.1).unwrap_or_default(), 8),
        persisted.log.largest.as_ref().map(|h| h.size).unwrap_or(0)
    );
    step.done(t, "verified");

    let t = step
        .begin(&format!("The user picks the recovery code \"{DEMO_CODE}\"; the phone registers it (OPAQUE)"));
    let mut record = vec![0u8; 32];
    OsRng.fill_bytes(&mut record);
    let backup_key = BackupKey::generate(&mut OsRng);
    let remaining = phone.register(&record, &code(DEMO_CODE)?, &backup_key).await?;
    say!(
        "    record {} on node {}: {remaining} guesses allowed; the fleet holds the OPAQUE record and the backup \
         key wrapped under the OPAQUE export key, never the code or the key",
        short_hex(&record, 8),
        phone.node_id()
    );
    step.done(
        t,
        &format!(
            "registered (Argon2id {} profile on the phone)",
            if args.insecure_test_ksf { "test" } else { "production" }
        ),
    );

    let t = step.begin("The phone backs up its chat history (streaming AEAD, 64 KiB chunks)");
    let history = chat_history(50_000);
    let history_path = dir.join("chat-history.txt");
    write_file(&history_path, &history)?;
    let backup_path = dir.join("chat.bkv");
    let mut sealed = Vec::new();
    backup_envelope::seal(&backup_key, DEMO_FLEET, &record, &mut OsRng, &history[..], &mut sealed, |_| {})?;
    write_file(&backup_path, &sealed)?;
    drop(backup_key);
    step.done(
        t,
        &format!("{} bytes of history → {} bytes in {}", history.len(), sealed.len(), backup_path.display()),
    );

    let t = step.begin("The phone is lost. A new phone, talking to another node, tries two wrong codes");
    let new_phone = FleetClient::connect(
        &fleet.nodes[fleet.nodes.len() - 1].url,
        &fleet.trust,
        &Persisted::default(),
        ksf,
        now(),
    )
    .await?
    .0;
    for wrong in ["482 619", "482 917"] {
        let t1 = Instant::now();
        match new_phone.recover(&record, &code(wrong)?).await? {
            Recovery::WrongCode { remaining } => say!(
                "    \"{wrong}\" on node {}: wrong code [vault.code.invalid], {remaining} guesses left ({})",
                new_phone.node_id(),
                ms(t1)
            ),
            Recovery::Recovered { .. } => unreachable!("a wrong code never recovers the key"),
        }
    }
    step.done(t, "each guess was committed by a majority before the fleet answered");

    let t = step.begin("The right code restores the backup");
    let Recovery::Recovered { backup_key, remaining } = new_phone.recover(&record, &code(DEMO_CODE)?).await?
    else {
        return Err(Error::Usage("the right code was refused".into()));
    };
    let mut restored = Vec::new();
    backup_envelope::open(&backup_key, Some((DEMO_FLEET, &record)), &sealed[..], &mut restored, |_| {})?;
    let restored_path = dir.join("chat-history.restored.txt");
    write_file(&restored_path, &restored)?;
    let same = restored == history;
    say!(
        "    counter reset to {remaining}; sha256 original {} restored {}",
        short_hex(&sha256(&history), 8),
        short_hex(&sha256(&restored), 8)
    );
    if !same {
        return Err(Error::Usage("the restored history differs from the original".into()));
    }
    step.done(t, &format!("the files match: {}", restored_path.display()));

    let t = step.begin("The third party signs no second FleetKeySet for this epoch");
    let ks_bytes = parsed.payload.clone();
    let mut other = fleet.keyset.clone();
    other.guess_limit += 1;
    let signer = fleet.start_signer().await?;
    let evidence = crate::error::read_file(&fleet.dir.join("evidence.cbor"))?;
    match bkv_operator::countersign_release(
        &signer.url,
        &orgs.countersigning_key()?,
        &fleet.trust,
        &other.to_bytes(),
        &evidence,
        now(),
    )
    .await
    {
        Err(e) => say!(
            "    the signer (pid {}) refused the same fleet and epoch with guess limit {}: [{}]",
            signer.pid,
            other.guess_limit,
            e.code()
        ),
        Ok(_) => unreachable!("the signer must sign one FleetKeySet per fleet and epoch"),
    }
    drop(signer);
    step.done(t, "one keyset per fleet and epoch, and only after its evidence is logged and checked");

    let t = step.begin("A rogue fleet signed by the operator alone is refused");
    let claims = Claims { iss: crate::fleet::THIRD_PARTY.into(), sub: DEMO_FLEET.into(), iat: now() + 1 };
    let rogue = countersign(&sign(&ks_bytes, &claims, &orgs.operator), &orgs.operator)?;
    match verify_bundle(&rogue, &fleet.trust.anchors, &ClientState::default(), now()) {
        Err(e) => say!("    refused [{}] {}", e.code(), e.description()),
        Ok(_) => unreachable!("a bundle without the third party's signature must never verify"),
    }
    // What the third party alone produced: its signature, without the countersignature.
    let unsigned = bkv_protocol::validation_bundle::encode_sign1(
        &parsed.protected,
        vec![],
        &parsed.payload,
        &parsed.signature,
    );
    match verify_bundle(&unsigned, &fleet.trust.anchors, &ClientState::default(), now()) {
        Err(e) => {
            say!("    the third party's signature alone: refused [{}] {}", e.code(), e.description())
        }
        Ok(_) => unreachable!("a bundle without the operator's countersignature must never verify"),
    }
    step.done(t, "neither organisation alone can introduce a fleet");

    let t = step.begin("An attacker who learned the record id guesses three codes");
    for wrong in ["314 159", "271 828", "161 803"] {
        if let Recovery::WrongCode { remaining } = new_phone.recover(&record, &code(wrong)?).await? {
            say!("    \"{wrong}\": wrong code, {remaining} guesses left");
        }
    }
    step.done(t, "the counter stands at 7");

    let t =
        step.begin("The operator replaces the fleet: epoch 2, new HSMs, the same records (spec/rotation.md)");
    let mut pinned_trust = fleet.trust.clone();
    pinned_trust.anchors.pinned = vec![serde_bytes::ByteBuf::from(sha256(&parsed.payload).to_vec())];
    let pinned_app = FleetClient::connect_pinned(&fleet.nodes[0].url, &pinned_trust, ksf, now()).await?;
    let mut lap = Instant::now();
    let (epoch2, report) = fleet
        .rotate(&dir.join("fleet-epoch-2"), &orgs, |line| {
            say!("    · {line} ({})", ms(lap));
            lap = Instant::now();
        })
        .await?;
    step.done(
        t,
        &format!(
            "epoch {} → {}: successor sha256 {}…",
            report.from_epoch,
            report.to_epoch,
            &report.successor[..16]
        ),
    );

    let t =
        step.begin("The phone's next request reaches the retired fleet; it follows the chain over the air");
    match new_phone.recover(&record, &code(DEMO_CODE)?).await {
        Err(e) => say!("    epoch 1 answers [{}]", e.code()),
        Ok(_) => unreachable!("a retired fleet serves no guess"),
    }
    let (phone2, state2) = FleetClient::connect(
        &epoch2.nodes[1 % epoch2.nodes.len()].url,
        &epoch2.trust,
        &persisted,
        ksf,
        now(),
    )
    .await?;
    say!(
        "    epoch {} verified against the persisted state: prev = sha256 of the epoch 1 bundle, both signatures, logged",
        state2.bundle.highest.map(|h| h.0).unwrap_or(0)
    );
    if let Recovery::WrongCode { remaining } = phone2.recover(&record, b"333 333").await? {
        say!("    one more wrong guess on epoch 2: {remaining} left (the counter moved with the record)");
    }
    let Recovery::Recovered { backup_key, remaining } = phone2.recover(&record, &code(DEMO_CODE)?).await?
    else {
        return Err(Error::Usage("the right code was refused on the new fleet".into()));
    };
    let mut again = Vec::new();
    backup_envelope::open(&backup_key, Some((DEMO_FLEET, &record)), &sealed[..], &mut again, |_| {})?;
    if again != history {
        return Err(Error::Usage("the history restored on epoch 2 differs".into()));
    }
    step.done(t, &format!("restored again on epoch 2, counter reset to {remaining}"));

    let t = step.begin("An app that pinned epoch 1 is told to update; epoch 1 is decommissioned");
    match pinned_app.recover(&record, &code(DEMO_CODE)?).await {
        Err(e) => {
            say!("    pinned app: [{}] {}", e.code(), bkv_protocol::Error::PinnedFleetRetired.description())
        }
        Ok(_) => unreachable!("a retired fleet serves no guess"),
    }
    fleet.decommission(&epoch2.released.bundle, &orgs).await?;
    say!("    epoch 1 HSM keys destroyed; a retirement entry naming the epoch 2 bundle is in the audit log");
    step.done(t, "rotation complete");

    let t = step.begin("An auditor checks the epoch 2 deployment with the Audit procedure (spec/audit.md)");
    let report = epoch2.audit().await?;
    for c in &report.passed {
        say!("    {:<4} {}", c.step, c.title);
    }
    if let Some((s, code)) = &report.failure {
        return Err(Error::Usage(format!("the epoch 2 deployment does not audit: {s} [{code}]")));
    }
    let d = epoch2.dir.display();
    say!(
        "    the same from a shell: bkv audit --evidence {d}/evidence.cbor --bundle {d}/released-bundle.cbor \\"
    );
    say!(
        "      --trust {d}/trust.cbor --vendor-roots {d}/vendor-roots.cbor --log URL --measure YOUR_REBUILT_BKV_NODE"
    );
    step.done(t, "evidence signed and logged before the bundle, attestations chain to the vendor root, keys, measurements, policy and ceremony check out");

    epoch2.shutdown().await;
    say!("\nDemo finished in {:.1} s.", step.started.elapsed().as_secs_f64());
    say!("Try: bkv bundle inspect {}", dir.join("bundle.cbor").display());
    say!(
        "     bkv bundle verify {} --trust {}",
        dir.join("released-bundle.cbor").display(),
        dir.join("trust.cbor").display()
    );
    say!(
        "     bkv fleet up --dir {}   (restarts the epoch 2 fleet with its records)",
        dir.join("fleet-epoch-2").display()
    );
    if args.json {
        crate::cli::contract::Envelope::success(serde_json::json!({
            "dir": dir,
            "seconds": step.started.elapsed().as_secs_f64(),
            "bundle": dir.join("bundle.cbor"),
            "released_bundle": dir.join("released-bundle.cbor"),
            "trust": dir.join("trust.cbor"),
            "epoch_2": dir.join("fleet-epoch-2"),
        }))
        .print();
    }
    Ok(ExitCode::SUCCESS)
}
