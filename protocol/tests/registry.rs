//! spec/conventions.md §7: the error-code registry and `bkv_protocol::Error` agree
//! code for code. The registry is parsed out of the spec text, so neither can drift.

use bkv_protocol::Error;
use std::collections::BTreeSet;

fn registry_codes() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/conventions.md");
    let text = std::fs::read_to_string(path).expect("spec/conventions.md");
    let registry = text.split("## 7. Error-code registry").nth(1).expect("registry section");
    // The registry ends at the next top-level section (§8 lists operational codes of the
    // reference tools, which are not protocol errors).
    let registry = registry.split("\n## ").next().expect("section text");
    registry
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn spec_registry_equals_error_enum() {
    let listed = registry_codes();
    let spec: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(spec.len(), listed.len(), "a code is listed twice in the spec registry");
    let code: BTreeSet<String> = Error::ALL.iter().map(|e| e.code().to_owned()).collect();
    let only_spec: Vec<_> = spec.difference(&code).collect();
    let only_code: Vec<_> = code.difference(&spec).collect();
    assert!(
        only_spec.is_empty() && only_code.is_empty(),
        "only in spec: {only_spec:?}; only in code: {only_code:?}"
    );
}
