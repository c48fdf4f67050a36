//! `bkv audit` end to end (spec/audit.md): a fresh ceremony audits green through the CLI,
//! reports are written, and a wrong measurement or tampered evidence exits non-zero with
//! the step and code in the JSON report.

use bkv_fleet::cli::audit::{AuditArgs, run};
use bkv_fleet::fleet::{FleetConfig, LocalFleet, Organisations, software_measurement};
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
    let fleet = LocalFleet::ceremony(&dir, &config, &Organisations::generate(), |_| {}).await.unwrap();
    let log = fleet.log.as_ref().unwrap().client.base.clone();
    let good = software_measurement().measurement;

    let out = root.join("ok");
    let code = run(args(&dir, &log, dir.join("evidence.cbor"), good, out.clone())).await.unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(failure(&out).is_null());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("AU12") && md.contains("every step passed"));

    let out = root.join("measurement");
    let code = run(args(&dir, &log, dir.join("evidence.cbor"), [0; 32], out.clone())).await.unwrap();
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(failure(&out), serde_json::json!(["AU9", "audit.measurement.mismatch"]));

    let mut evidence = std::fs::read(dir.join("evidence.cbor")).unwrap();
    let last = evidence.len() - 1;
    evidence[last] ^= 1;
    let tampered = root.join("tampered-evidence.cbor");
    std::fs::write(&tampered, &evidence).unwrap();
    let out = root.join("tampered");
    let code = run(args(&dir, &log, tampered, good, out.clone())).await.unwrap();
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(failure(&out), serde_json::json!(["AU3", "audit.evidence.signature"]));

    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}
