//! `bkv-vectors`: the deterministic generator of bkv's test vectors.
//!
//! spec/conformance.md §1. `cargo run -p bkv-vectors` writes `vectors/v1/<area>.json`
//! and the JSON Schema `vectors/schema/vector-file.schema.json`. Every input comes from
//! fixed seeds, so regeneration is byte-stable; a test fails if the committed files
//! differ from a fresh generation.
#![forbid(unsafe_code)]

pub mod audit;
pub mod audit_log;
pub mod backup_envelope;
pub mod cbor;
pub mod fixed_rng;
pub mod fleet_replication;
pub mod format;
pub mod opaque_rfc9807;
pub mod produce;
pub mod rotation;
pub mod session;
mod session_client;
pub mod signer_api;
pub mod validation_bundle;
pub mod vault;
mod vault_exchange;

pub use format::{Expected, TestCase, TestGroup, VectorFile};
use std::path::{Path, PathBuf};

/// Every vector file, in a fixed order.
pub fn all() -> Vec<VectorFile> {
    vec![
        cbor::generate(),
        validation_bundle::generate(),
        audit_log::generate(),
        session::generate(),
        backup_envelope::generate(),
        vault::generate(),
        opaque_rfc9807::generate(),
        fleet_replication::generate(),
        rotation::generate(),
        audit::generate(),
        signer_api::generate(),
    ]
}

/// Every committed vector file, built into the binary (area, JSON text), so a runner
/// installed with `cargo install` or shipped as a binary needs no checkout. A test keeps
/// this list equal to the files of `vectors/v1/`.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("audit", include_str!("../v1/audit.json")),
    ("audit_log", include_str!("../v1/audit_log.json")),
    ("backup_envelope", include_str!("../v1/backup_envelope.json")),
    ("cbor", include_str!("../v1/cbor.json")),
    ("fleet_replication", include_str!("../v1/fleet_replication.json")),
    ("opaque_rfc9807", include_str!("../v1/opaque_rfc9807.json")),
    ("rotation", include_str!("../v1/rotation.json")),
    ("session", include_str!("../v1/session.json")),
    ("signer_api", include_str!("../v1/signer_api.json")),
    ("validation_bundle", include_str!("../v1/validation_bundle.json")),
    ("vault", include_str!("../v1/vault.json")),
];

/// The directory holding `v1/` and `schema/` (this crate's directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of an area's vector file under `root`.
pub fn file_path(root: &Path, area: &str) -> PathBuf {
    root.join("v1").join(format!("{area}.json"))
}

/// The path of the vector-file JSON Schema under `root`.
pub fn schema_path(root: &Path) -> PathBuf {
    root.join("schema").join("vector-file.schema.json")
}

/// Pretty JSON with a final newline, as committed.
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("vectors serialize");
    s.push('\n');
    s
}

/// The JSON Schema of a vector file.
pub fn schema() -> String {
    to_json(&schemars::schema_for!(VectorFile))
}

/// Every file the generator writes: (path, contents).
pub fn outputs(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out: Vec<_> = all().iter().map(|f| (file_path(root, &f.area), to_json(f))).collect();
    out.push((schema_path(root), schema()));
    out
}

/// Load the committed vector file of `area`.
pub fn load(area: &str) -> VectorFile {
    let path = file_path(&root(), area);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
