//! Profiles: the operations one kind of implementation must pass completely.
//! spec/conformance.md §3.3.

use crate::report::{Report, Status};
use serde::{Deserialize, Serialize};

/// One profile of spec/conformance.md §3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Its name, e.g. `client`.
    pub name: &'static str,
    /// Who claims it.
    pub who: &'static str,
    /// Its operations.
    pub operations: &'static [&'static str],
}

/// Every profile, in the spec's order.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "client",
        who: "a phone or any app that backs up and restores",
        operations: &[
            "cbor_check",
            "verify_bundle",
            "verify_pinned",
            "merkle_inclusion",
            "merkle_consistency",
            "parse_vkey",
            "verify_logged_bundle",
            "session_open_response",
            "hpke_kat",
            "envelope_open",
            "code_normalise",
            "vault_client_register",
            "vault_client_recover",
            "opaque_rfc9807_real",
            "produce_sealed_request",
            "produce_backup_envelope",
        ],
    },
    Profile {
        name: "node",
        who: "a fleet node and its HSM",
        operations: &[
            "cbor_check",
            "hpke_kat",
            "session_open_request",
            "session_seal_response",
            "vault_apply",
            "vault_setup_decode",
            "vault_node_login",
            "opaque_rfc9807_real",
            "opaque_rfc9807_fake",
            "fleet_rpc_open",
            "rotation_check_successor",
            "rotation_open_export",
            "rotation_open_setup",
        ],
    },
    Profile {
        name: "auditor",
        who: "`bkv audit` and anyone checking published evidence",
        operations: &[
            "cbor_check",
            "verify_bundle",
            "merkle_inclusion",
            "merkle_consistency",
            "parse_vkey",
            "verify_logged_bundle",
            "audit",
        ],
    },
    Profile {
        name: "log",
        who: "the third party's signer and audit log",
        operations: &[
            "cbor_check",
            "verify_bundle",
            "merkle_inclusion",
            "merkle_consistency",
            "parse_vkey",
            "signer_open_request",
            "signer_attach_countersignature",
            "audit",
            "produce_checkpoint",
        ],
    },
    Profile {
        name: "witness",
        who: "a witness of the audit log",
        operations: &["merkle_consistency", "parse_vkey", "witness_check", "produce_cosignature"],
    },
    Profile {
        name: "operator",
        who: "the operator's signing and rotation tools",
        operations: &[
            "cbor_check",
            "verify_bundle",
            "verify_logged_bundle",
            "operator_check_intermediate",
            "rotation_check_successor",
            "produce_countersignature",
            "produce_evidence_envelope",
        ],
    },
];

/// The profile called `name`.
pub fn profile(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

/// A profile's verdict (spec/conformance.md §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every case of every operation ran and passed.
    Pass,
    /// A case failed (or deviated).
    Fail,
    /// No case failed, but some were skipped, or an operation had no case in the run.
    Incomplete,
    /// The run held none of its cases.
    NotRun,
}

impl Verdict {
    /// The verdict as spec/conformance.md §3.3 writes it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Incomplete => "incomplete",
            Verdict::NotRun => "not run",
        }
    }
}

/// One profile's result in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileResult {
    /// The profile.
    pub profile: String,
    /// Cases of its operations in the run.
    pub cases: usize,
    /// Passed.
    pub passed: usize,
    /// Failed or deviating.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// The verdict.
    pub verdict: Verdict,
}

/// Every profile's result over the cases of `report`.
pub fn results(report: &Report) -> Vec<ProfileResult> {
    PROFILES
        .iter()
        .map(|p| {
            let mine: Vec<_> =
                report.cases.iter().filter(|c| p.operations.contains(&c.operation.as_str())).collect();
            let count = |s: &[Status]| mine.iter().filter(|c| s.contains(&c.status)).count();
            let (passed, failed, skipped) = (
                count(&[Status::Pass]),
                count(&[Status::Fail, Status::Deviation]),
                count(&[Status::Skipped]),
            );
            // An operation with no case in the run (filtered out) leaves the profile unjudged.
            let all_ran = p.operations.iter().all(|o| mine.iter().any(|c| c.operation == *o));
            let verdict = match (mine.len(), failed, skipped == 0 && all_ran) {
                (0, _, _) => Verdict::NotRun,
                (_, 0, true) => Verdict::Pass,
                (_, 0, false) => Verdict::Incomplete,
                _ => Verdict::Fail,
            };
            ProfileResult { profile: p.name.into(), cases: mine.len(), passed, failed, skipped, verdict }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The table of spec/conformance.md §3.3 is this module's `PROFILES`.
    #[test]
    fn the_profiles_are_the_spec_table() {
        let spec =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/conformance.md")).unwrap();
        let section = spec.split("### 3.3 Profiles").nth(1).unwrap().split("\n## ").next().unwrap();
        let rows: Vec<(String, Vec<String>)> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let ops = cells[3].split(", ").map(|o| o.trim_matches('`').to_owned()).collect();
                (cells[1].trim_matches('`').to_owned(), ops)
            })
            .collect();
        let ours: Vec<(String, Vec<String>)> = PROFILES
            .iter()
            .map(|p| (p.name.to_owned(), p.operations.iter().map(|o| (*o).to_owned()).collect()))
            .collect();
        pretty_assertions::assert_eq!(rows, ours);
    }

    /// Every operation of the committed vectors is in at least one profile.
    #[test]
    fn every_vector_operation_is_in_a_profile() {
        let profiled: BTreeSet<&str> = PROFILES.iter().flat_map(|p| p.operations.iter().copied()).collect();
        let dir = bkv_vectors::root().join("v1");
        let mut seen = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let f: bkv_vectors::VectorFile =
                serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
            for g in f.test_groups {
                seen.insert(g.operation);
            }
        }
        let missing: Vec<_> = seen.iter().filter(|o| !profiled.contains(o.as_str())).collect();
        assert!(missing.is_empty(), "operations in no profile: {missing:?}");
        let stale: Vec<_> = profiled.iter().filter(|o| !seen.contains(**o)).collect();
        assert!(stale.is_empty(), "profile operations no vector has: {stale:?}");
    }
}
