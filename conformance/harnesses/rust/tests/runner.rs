//! The runner end to end: the reference harness passes every vector (count pinned to
//! the committed files), a broken harness that accepts everything is caught with named
//! failures, and a silent harness is stopped by the runner's time limit.

use bkv_conformance::profiles::{PROFILES, Verdict};
use bkv_conformance::report::{Deviation, Status};
use bkv_conformance::runner::{RunOptions, run};
use std::time::Duration;

/// Every committed vector file: each `vectors/v1/<area>.json`, read from the directory so
/// that a new area is covered without touching this list.
fn files() -> Vec<bkv_vectors::VectorFile> {
    let dir = bkv_vectors::root().join("v1");
    let mut areas: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    areas.sort();
    let files: Vec<_> = areas.iter().map(|a| bkv_vectors::load(a)).collect();
    // Each file names its own area (the runner reports cases as `<area>::<tcId>`).
    for (a, f) in areas.iter().zip(&files) {
        assert_eq!(&f.area, a);
    }
    files
}

#[test]
fn files_are_every_committed_vector_file() {
    let areas: Vec<String> = files().into_iter().map(|f| f.area).collect();
    // The areas of the vector generator (bkv_vectors::all), audit_log included.
    for area in
        ["audit", "audit_log", "backup_envelope", "cbor", "rotation", "session", "validation_bundle", "vault"]
    {
        assert!(areas.iter().any(|a| a == area), "{area} missing from {areas:?}");
    }
}

fn data(name: &str) -> String {
    format!("python3 {}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn opts(harness: String, secs: u64) -> RunOptions {
    RunOptions { harness, timeout: Duration::from_secs(secs) }
}

#[test]
fn reference_harness_passes_every_vector() {
    let files = files();
    let total: usize = files.iter().map(|f| f.number_of_tests).sum();
    let mut report = run(&files, &opts(env!("CARGO_BIN_EXE_bkv-reference-harness").into(), 30)).unwrap();
    let all = report.counts()["all"];
    assert_eq!((all.passed, all.failed, all.skipped), (total, 0, 0), "{}", report.table());
    // It claims every profile of spec/conformance.md §3.3, and passes each.
    let verdicts: Vec<_> = report.judge_profiles().iter().map(|p| (p.profile.clone(), p.verdict)).collect();
    let want: Vec<_> = PROFILES.iter().map(|p| (p.name.to_owned(), Verdict::Pass)).collect();
    assert_eq!(verdicts, want);
    assert_eq!(report.claimed_profiles.len(), PROFILES.len());
    assert!(report.claimed_profile_failures().is_empty());
}

/// spec/conformance.md §3.3: a profile whose operation has no case in the run is not
/// judged as passing, and a claimed profile that does not pass is reported.
#[test]
fn a_profile_without_all_its_operations_is_incomplete() {
    let files: Vec<_> = files().into_iter().filter(|f| f.area != "vault").collect();
    let mut report = run(&files, &opts(env!("CARGO_BIN_EXE_bkv-reference-harness").into(), 30)).unwrap();
    let verdict = |r: &bkv_conformance::report::Report, name: &str| {
        r.profiles.iter().find(|p| p.profile == name).unwrap().verdict
    };
    report.judge_profiles();
    assert_eq!(verdict(&report, "client"), Verdict::Incomplete, "{}", report.table());
    assert_eq!(verdict(&report, "witness"), Verdict::Pass);
    let failures = report.claimed_profile_failures();
    assert!(failures.contains(&("client".to_owned(), Verdict::Incomplete)), "{failures:?}");
    assert!(!failures.iter().any(|(p, _)| p == "witness"));
}

#[test]
fn accept_all_harness_is_caught_with_named_failures() {
    let files = files();
    let invalid: Vec<String> = files
        .iter()
        .flat_map(|f| {
            f.test_groups.iter().flat_map(move |g| {
                g.tests
                    .iter()
                    .filter(|t| t.result == bkv_vectors::Expected::Invalid)
                    .map(move |t| format!("{}::{}", f.area, t.tc_id))
            })
        })
        .collect();
    let mut report = run(&files, &opts(data("accept_all_harness.py"), 30)).unwrap();
    report.judge_profiles();
    assert_eq!(report.claimed_profile_failures(), vec![("client".to_owned(), Verdict::Fail)]);
    let failed: Vec<String> = report.failures().map(|c| c.id.clone()).collect();
    // Exactly the invalid cases fail (valid ones with expected outputs fail too, as the
    // broken harness returns none), and they are named in the table.
    for id in &invalid {
        assert!(failed.contains(id), "{id} not caught");
    }
    let table = report.table();
    assert!(table.contains("FAIL validation_bundle::"), "{table}");
    assert!(table.contains("bundle.signer.unknown"), "{table}");
    assert!(table.contains("fail (claimed)"), "{table}");
    assert!(report.html().contains("accept-all (broken)"));
}

/// spec/conformance.md §3.4: every `produce_*` family refuses an output with one bit
/// flipped, as the accept-all harness shows for reading.
#[test]
fn corrupted_outputs_are_refused_by_every_produce_family() {
    let mut files = files();
    for f in &mut files {
        f.test_groups.retain(|g| g.operation.starts_with("produce_"));
    }
    files.retain(|f| !f.test_groups.is_empty());
    let operations: std::collections::BTreeSet<_> =
        files.iter().flat_map(|f| f.test_groups.iter().map(|g| g.operation.clone())).collect();
    assert_eq!(operations.len(), 6, "{operations:?}");
    let harness =
        format!("{} {}", data("corrupting_harness.py"), env!("CARGO_BIN_EXE_bkv-reference-harness"));
    let report = run(&files, &opts(harness, 30)).unwrap();
    assert!(!report.cases.is_empty());
    for c in &report.cases {
        assert_eq!(c.status, Status::Fail, "{} passed with a corrupted output: {}", c.id, c.context);
        assert!(
            c.context.contains("refuse") || c.context.contains("verif") || c.context.contains("another"),
            "{}: {}",
            c.id,
            c.context
        );
    }
}

#[test]
fn silent_harness_times_out() {
    let files = vec![bkv_vectors::load("cbor")];
    let report = run(&files, &opts(data("silent_harness.py"), 1)).unwrap();
    let first = &report.cases[0];
    assert_eq!(first.status, Status::Fail);
    assert_eq!(first.context, "timeout");
    assert!(report.cases[1..].iter().all(|c| c.status == Status::Fail));
}

#[test]
fn deviations_and_regressions() {
    let files = vec![bkv_vectors::load("cbor")];
    let good = run(&files, &opts(env!("CARGO_BIN_EXE_bkv-reference-harness").into(), 30)).unwrap();
    let mut bad = run(&files, &opts(data("accept_all_harness.py"), 30)).unwrap();
    let first_fail = bad.failures().next().unwrap().id.clone();
    let regressions = bad.regressions(&good);
    assert!(regressions.contains(&first_fail));
    // A reviewed deviation turns a failure into a deviation; an entry for a passing case is stale.
    let stale = bad.apply_deviations(&[
        Deviation { id: first_fail.clone(), reason: "test".into() },
        Deviation { id: "cbor::1".into(), reason: "cbor::1 is valid and passes".into() },
    ]);
    assert_eq!(stale, vec!["cbor::1".to_string()]);
    assert_eq!(bad.cases.iter().find(|c| c.id == first_fail).unwrap().status, Status::Deviation);
}

#[test]
fn live_mode_runs_backup_and_restore_against_a_reference_fleet() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("bkv-conformance-live-test-{}", std::process::id()));
    let (fleet, cases) = rt.block_on(bkv_conformance::live::start(&dir)).unwrap();
    let report = run(&[cases], &opts(env!("CARGO_BIN_EXE_bkv-reference-harness").into(), 60)).unwrap();
    rt.block_on(fleet.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    let all = report.counts()["all"];
    assert_eq!((all.passed, all.failed, all.skipped), (3, 0, 0), "{}", report.table());
}
