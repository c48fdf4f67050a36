//! spec/conformance.md §1: the committed vectors are exactly what the generator
//! produces, and every error code of the areas covered has at least one vector.

use bkv_protocol::Error;
use std::collections::BTreeSet;

#[test]
fn committed_vectors_equal_a_fresh_generation() {
    let root = bkv_vectors::root();
    for (path, fresh) in bkv_vectors::outputs(&root) {
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `cargo run -p bkv-vectors`)", path.display()));
        assert!(
            committed == fresh,
            "{} differs from the generator's output: run `cargo run -p bkv-vectors` and commit",
            path.display()
        );
    }
}

/// The vectors built into the runner are the committed files, every one of them.
#[test]
fn embedded_vectors_are_the_committed_files() {
    let dir = bkv_vectors::root().join("v1");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    on_disk.sort();
    let embedded: Vec<String> = bkv_vectors::EMBEDDED.iter().map(|(a, _)| (*a).to_owned()).collect();
    assert_eq!(embedded, on_disk);
    for (area, text) in bkv_vectors::EMBEDDED {
        assert_eq!(*text, std::fs::read_to_string(dir.join(format!("{area}.json"))).unwrap(), "{area}");
    }
    let generated: BTreeSet<String> = bkv_vectors::all().into_iter().map(|f| f.area).collect();
    assert_eq!(generated, on_disk.into_iter().collect());
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(bkv_vectors::to_json(&bkv_vectors::all()), bkv_vectors::to_json(&bkv_vectors::all()));
}

#[test]
fn ids_are_sequential_and_invalid_cases_name_a_registry_code() {
    for f in bkv_vectors::all() {
        let cases: Vec<_> = f.test_groups.iter().flat_map(|g| &g.tests).collect();
        assert_eq!(cases.len(), f.number_of_tests);
        for (i, c) in cases.iter().enumerate() {
            assert_eq!(c.tc_id, i + 1, "{}", f.area);
            match (&c.result, &c.error_code) {
                (bkv_vectors::Expected::Valid, None) => {}
                (bkv_vectors::Expected::Invalid, Some(code)) => {
                    assert!(
                        Error::from_code(code).is_some(),
                        "{}::{} names unknown code {code}",
                        f.area,
                        c.tc_id
                    )
                }
                _ => panic!("{}::{}: result and errorCode disagree", f.area, c.tc_id),
            }
        }
    }
}

/// Codes that no vector can produce, each with the tests that trigger it instead. A vector
/// is a property of bytes; these codes are outcomes of a running fleet.
const NOT_IN_VECTORS: &[(&str, &str)] = &[
    (
        "log.monitor.findings",
        "a monitor's walk of a running log, not bytes (spec/audit-log.md §9); \
     reference-fleet/cli/tests/cli/log_cli.rs (keygen_serve_and_monitor)",
    ),
    (
        "fleet.unavailable",
        "liveness, not bytes: no majority reachable within the time bound (spec/fleet-replication.md \
     §7); tests/tests/replication_basic.rs (two_of_five_down_serves_three_down_is_fleet_unavailable), \
     tests/tests/vault_fault.rs (3 of 5 down), tests/tests/replication_fault.rs",
    ),
    (
        "signer.epoch.taken",
        "the signer's state, not bytes: a second keyset or evidence for a fleet and epoch it already \
     signed (spec/signer-api.md §3 S6); reference-fleet/cli/tests/cli/signer.rs \
     (a_second_keyset_for_the_same_epoch_is_refused)",
    ),
    (
        "signer.request.unknown",
        "the signer's state, not bytes: a countersignature for no pending signing (spec/signer-api.md §3 C1); \
     reference-fleet/cli/tests/cli/signer.rs (a_countersignature_for_no_pending_request_is_unknown)",
    ),
    (
        "signer.retirement.invalid",
        "the signer's state, not bytes: a retirement of an epoch or for a successor it did not release \
     (spec/signer-api.md §3.1 R2); reference-fleet/cli/tests/cli/signer.rs \
     (a_retirement_the_signer_did_not_release_is_refused)",
    ),
    (
        "vault.attempt.rate_limited",
        "a node's policy over time, not bytes (spec/node-api.md §6); \
     reference-fleet/node/src/service.rs (attempts_over_the_record_rate_are_refused_uncounted)",
    ),
];

#[test]
fn every_code_of_the_covered_areas_has_a_vector() {
    let covered: BTreeSet<&str> = [
        "cbor", "cose", "bundle", "pinned", "log", "session", "envelope", "vault", "rotation", "audit",
        "evidence", "fleet", "signer",
    ]
    .into();
    let exempt: BTreeSet<&str> = NOT_IN_VECTORS.iter().map(|(c, _)| *c).collect();
    let in_vectors: BTreeSet<String> = bkv_vectors::all()
        .iter()
        .flat_map(|f| f.test_groups.iter().flat_map(|g| g.tests.iter().filter_map(|t| t.error_code.clone())))
        .collect();
    let missing: Vec<_> = Error::ALL
        .iter()
        .filter(|e| {
            covered.contains(e.spec_area()) && !in_vectors.contains(e.code()) && !exempt.contains(e.code())
        })
        .map(|e| e.code())
        .collect();
    assert!(missing.is_empty(), "codes without a vector: {missing:?}");
    for code in exempt {
        assert!(!in_vectors.contains(code), "{code} has a vector now: remove it from NOT_IN_VECTORS");
    }
}

/// spec/conformance.md §3 `hpke_kat`: `seq` is the HPKE sequence number and the entries are
/// consecutive from 0, so a harness may seal and open them in order with one context.
#[test]
fn hpke_kat_encryptions_are_consecutive_from_zero() {
    let files = bkv_vectors::all();
    let cases: Vec<_> = files
        .iter()
        .flat_map(|f| &f.test_groups)
        .filter(|g| g.operation == "hpke_kat")
        .flat_map(|g| &g.tests)
        .collect();
    assert!(!cases.is_empty());
    for c in cases {
        let seqs: Vec<u64> =
            c.input["encryptions"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    }
}
