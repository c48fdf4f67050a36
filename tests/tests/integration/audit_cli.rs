//! `bkv audit` end to end (spec/audit.md): a fresh ceremony audits green through the CLI,
//! reports are written, and a wrong measurement or tampered evidence exits non-zero with
//! the step and code in the JSON report.

use bkv_fleet::cli::audit::{AuditArgs, run};
use bkv_fleet::fleet::{FleetConfig, LocalFleet, OperatorKeys, software_measurement};
use rand_core::{OsRng, RngCore};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn args(dir: &Path, log: &str, evidence: PathBuf, measurement: [u8; 32], out: PathBuf) -> AuditArgs {
    AuditArgs {
        evidence,
        bundle: dir.join("released-bundle.cbor"),
        log: log.into(),
        trust: dir.join("trust.cbor"),
        vendor_roots: dir.join("vendor-roots.cbor"),
        measurement: Some(hex::encode(measurement)),
        measure: None,
        firmware: Some(hex::encode(bkv_fleet::fleet::SOFT_HSM_FIRMWARE)),
        out,
        json: true,
    }
}

/// Run `bkv audit` and give its exit status (a failure is an `Err` whose status the
/// output contract gives; its message is kept in `MESSAGE` for the AU9 check).
async fn audit(a: AuditArgs) -> ExitCode {
    match run(a).await {
        Ok(code) => code,
        Err(e) => {
            LAST.with(|m| *m.borrow_mut() = e.to_string());
            ExitCode::from(bkv_fleet::cli::contract::exit_status(&e))
        }
    }
}

thread_local! {
    static LAST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn failure(out: &Path) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    report["report"]["failure"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_command_passes_a_clean_ceremony_and_names_each_failure() {
    let root =
        std::env::temp_dir().join(format!("bkv-audit-cli-{}-{}", std::process::id(), OsRng.next_u64()));
    let dir = root.join("fleet");
    let config = FleetConfig::new("audit.bkv.example/vault", 3);
    let fleet = LocalFleet::ceremony(&dir, &config, &OperatorKeys::generate(), |_| {}).await.unwrap();
    let log = fleet.log.as_ref().unwrap().client.base.clone();
    let good = software_measurement().unwrap().measurement;

    let out = root.join("ok");
    let code = audit(args(&dir, &log, dir.join("evidence.cbor"), good, out.clone())).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(failure(&out).is_null());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("AU12") && md.contains("every step passed"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["result"], "passed", "F14: a top-level result");

    let out = root.join("measurement");
    let code = audit(args(&dir, &log, dir.join("evidence.cbor"), [0; 32], out.clone())).await;
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(failure(&out), serde_json::json!(["AU9", "audit.measurement.mismatch"]));
    // F5: the failure says what the evidence claims, what was measured, and the recipe.
    let message = LAST.with(|m| m.borrow().clone());
    assert!(
        message.contains(&hex::encode(good))
            && message.contains(&hex::encode([0u8; 32]))
            && message.contains("cargo build"),
        "F5: {message}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["result"], "failed", "F14: a top-level result");

    let mut evidence = std::fs::read(dir.join("evidence.cbor")).unwrap();
    let last = evidence.len() - 1;
    evidence[last] ^= 1;
    let tampered = root.join("tampered-evidence.cbor");
    std::fs::write(&tampered, &evidence).unwrap();
    let out = root.join("tampered");
    let code = audit(args(&dir, &log, tampered, good, out.clone())).await;
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(failure(&out), serde_json::json!(["AU3", "audit.evidence.signature"]));

    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// spec/audit.md AU6 and AU7 through the CLI, against the fleet's live log: a third party
/// that logs a second bundle for the same fleet and epoch is caught, and an auditor who
/// pins another vendor's root does not accept the soft HSMs' attestations.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_command_catches_a_second_bundle_and_an_unpinned_vendor() {
    use bkv_protocol::audit::VendorRoot;
    use bkv_protocol::audit_log::LogEntry;
    use bkv_protocol::crypto::{Ed25519Signer, Signer};

    let root =
        std::env::temp_dir().join(format!("bkv-audit-cli2-{}-{}", std::process::id(), OsRng.next_u64()));
    let dir = root.join("fleet");
    let fleet_id = "audit2.bkv.example/vault";
    let config = FleetConfig::new(fleet_id, 3);
    let fleet = LocalFleet::ceremony(&dir, &config, &OperatorKeys::generate(), |_| {}).await.unwrap();
    // This test writes to the log as the third party would: through its admin listener.
    let local = fleet.log.as_ref().unwrap();
    let token = std::fs::read_to_string(dir.join("audit-log/admin.token")).unwrap();
    let log = local.client.clone().with_admin(&local.admin, token.trim());
    let good = software_measurement().unwrap().measurement;

    // Another vendor's root under the same name: the chains do not end at a pinned root.
    let other = Ed25519Signer::generate(&mut OsRng);
    let roots = vec![VendorRoot { name: bkv_fleet::fleet::VENDOR.into(), key: other.public_key().clone() }];
    let roots_file = root.join("other-vendor-roots.cbor");
    std::fs::write(&roots_file, bkv_protocol::cbor::to_vec(&roots)).unwrap();
    let out = root.join("vendor");
    let mut a = args(&dir, &log.base, dir.join("evidence.cbor"), good, out.clone());
    a.vendor_roots = roots_file;
    assert_eq!(audit(a).await, ExitCode::from(1));
    assert_eq!(failure(&out), serde_json::json!(["AU7", "audit.attestation.untrusted"]));

    // The same deployment audits green until the log holds a second bundle for its epoch.
    let out = root.join("before");
    let code = audit(args(&dir, &log.base, dir.join("evidence.cbor"), good, out.clone())).await;
    assert_eq!(code, ExitCode::SUCCESS);
    log.append(&LogEntry::bundle(fleet_id, 1, b"a second bundle for epoch 1").to_cbor()).await.unwrap();
    log.publish_checkpoint().await.unwrap();
    let out = root.join("duplicate");
    let code = audit(args(&dir, &log.base, dir.join("evidence.cbor"), good, out.clone())).await;
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(failure(&out), serde_json::json!(["AU6", "audit.log.duplicate"]));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("AU6") && md.contains("audit.log.duplicate"), "{md}");

    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}
