//! RFC 9807's own test vectors for the suite closest to bkv's (spec/vault.md §2 with the
//! Identity KSF), imported from `vectors/data/rfc9807-appendix-c.json` with their source
//! named: operations `opaque_rfc9807_real` and `opaque_rfc9807_fake` of
//! spec/conformance.md §3.2. An implementation checks its OPAQUE against the RFC first,
//! then against bkv's `vault` vectors.

use crate::format::{FileBuilder, VectorFile};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const DATA: &str = include_str!("../data/rfc9807-appendix-c.json");

#[derive(Deserialize)]
struct Data {
    source: String,
    licence: String,
    vectors: Vec<RfcVector>,
}

#[derive(Deserialize)]
struct RfcVector {
    name: String,
    config: BTreeMap<String, String>,
    inputs: BTreeMap<String, String>,
    outputs: BTreeMap<String, String>,
}

/// The inputs of an operation: the RFC's inputs by their RFC names, the context, and the
/// identities (null when the vector has none, RFC 9807 §4.1.2 then uses the public keys).
fn input(v: &RfcVector) -> BTreeMap<String, Value> {
    let mut input: BTreeMap<String, Value> = v.inputs.iter().map(|(k, x)| (k.clone(), json!(x))).collect();
    input.insert("context".into(), json!(v.config["Context"]));
    for id in ["client_identity", "server_identity"] {
        input.entry(id.into()).or_insert(Value::Null);
    }
    input
}

/// The imported file.
pub fn generate() -> VectorFile {
    let data: Data = serde_json::from_str(DATA).expect("vectors/data/rfc9807-appendix-c.json");
    let source = format!("{} {}", data.source, data.licence);
    let mut f = FileBuilder::new(
        "opaque_rfc9807",
        "spec/vault.md",
        &[
            ("RFC9807", source.as_str()),
            ("Fake", "RFC 9807 §6.3.2.2: the response for an unregistered client"),
        ],
    );
    for (operation, fake) in [("opaque_rfc9807_real", false), ("opaque_rfc9807_fake", true)] {
        f.group(operation, "§2");
        for v in data.vectors.iter().filter(|v| (v.config["Fake"] == "True") == fake) {
            for (k, want) in [("OPRF", "ristretto255-SHA512"), ("Group", "ristretto255"), ("KSF", "Identity")]
            {
                assert_eq!(v.config[k], want, "{}: {k}", v.name);
            }
            let output = v.outputs.iter().map(|(k, x)| (k.clone(), json!(x))).collect();
            let flags: &[&str] = if fake { &["RFC9807", "Fake"] } else { &["RFC9807"] };
            f.case(&format!("RFC 9807 Appendix {}", v.name), flags, input(v), None, Some(output));
        }
    }
    f.finish()
}
