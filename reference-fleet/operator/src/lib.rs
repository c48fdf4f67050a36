//! `bkv-operator`: the operator's side of spec/signer-api.md §4. It holds only the
//! operator's countersigning key ([`OperatorKey`]), asks the third party's signer (over
//! HTTP) to sign a FleetKeySet with its evidence, checks what it signed, countersigns, and
//! checks the released bundle as a client would before it hands it on.
//!
//! The third party's key type (`bkv_third_party::signer_service::ThirdPartyKey`) is in
//! another crate that this one does not depend on, and that crate does not depend on this
//! one: neither side can name the other's key.
#![forbid(unsafe_code)]

use bkv_client::Trust;
use bkv_protocol::audit_log::{LogState, LoggedBundle, verify_logged_bundle};
use bkv_protocol::crypto::{PublicKey, Signer};
use bkv_protocol::signer_api::{
    CountersignRequest, RetireRequest, RetireResponse, SignRequest, SignResponse, check_intermediate,
    seal_retire_request, seal_sign_request,
};
use bkv_protocol::validation_bundle::{ClientState, FleetKeySet, countersignature, verify_bundle};
use rand_core::RngCore;
use serde_bytes::ByteBuf;

/// The operator's countersigning key (a software key or a key in a token).
pub struct OperatorKey(Box<dyn Signer + Send + Sync>);

impl OperatorKey {
    /// The operator's key `key`.
    pub fn new(key: Box<dyn Signer + Send + Sync>) -> Self {
        OperatorKey(key)
    }

    /// Its public key.
    pub fn public_key(&self) -> &PublicKey {
        self.0.public_key()
    }

    /// The key as a [`Signer`] (evidence and ceremony steps are the operator's to sign too).
    pub fn signer(&self) -> &dyn Signer {
        self.0.as_ref()
    }
}

/// What went wrong on the operator's side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A verification failure, or the signer's refusal, with its spec code.
    #[error(transparent)]
    Protocol(#[from] bkv_protocol::Error),
    /// The signer could not be reached.
    #[error("{0}")]
    Transport(String),
    /// The signer answered with an HTTP failure that carries no spec code.
    #[error("{0}")]
    Http(String),
}

impl Error {
    /// The stable code: the spec code, or `client.transport` / `io.http`
    /// (spec/conventions.md §8).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Protocol(e) => e.code(),
            Error::Transport(_) => "client.transport",
            Error::Http(_) => "io.http",
        }
    }
}

/// POST `body` to the signer's `path`; its answer, or its failure code as an error.
async fn call(signer: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, Error> {
    let url = format!("{}{path}", signer.trim_end_matches('/'));
    let http = bkv_client::http::client();
    let media = Some((body, bkv_protocol::node_api::CBOR));
    let (status, answer) = bkv_client::http::request(&http, reqwest::Method::POST, &url, media)
        .await
        .map_err(|e| Error::Transport(e.0))?;
    if status == 200 {
        return Ok(answer);
    }
    let text = String::from_utf8_lossy(&answer).trim().to_owned();
    match bkv_protocol::Error::from_code(&text) {
        Some(e) => Err(Error::Protocol(e)),
        None => Err(Error::Http(format!("POST {url}: {status} {text}"))),
    }
}

/// spec/signer-api.md §4: have the signer at `signer` sign `keyset` with its `evidence`,
/// countersign with `key` after O1–O2, and return the released bundle once it verifies
/// against `trust` (spec/validation-bundle.md §5.1, spec/audit-log.md §7.2) at `now`.
pub async fn countersign_release(
    signer: &str,
    key: &OperatorKey,
    trust: &Trust,
    keyset: &[u8],
    evidence: &[u8],
    now: u64,
) -> Result<LoggedBundle, Error> {
    let ks = FleetKeySet::from_bytes(keyset)?;
    let mut request_id = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut request_id);
    let request = SignRequest {
        v: 1,
        request_id,
        iat: now,
        keyset: ByteBuf::from(keyset.to_vec()),
        evidence: ByteBuf::from(evidence.to_vec()),
    };
    let sealed = seal_sign_request(&request, key.signer());
    let response = SignResponse::from_cbor(&call(signer, "/v1/sign", sealed).await?)?;
    // O1–O2
    check_intermediate(&request, &response, &trust.anchors, now)?;
    // O3
    let cs = countersignature(&response.intermediate, key.signer())?;
    let answer = CountersignRequest { v: 1, request_id, countersignature: ByteBuf::from(cs) };
    let released = LoggedBundle::from_cbor(&call(signer, "/v1/countersign", answer.to_cbor()).await?)?;
    let verified = verify_bundle(&released.bundle, &trust.anchors, &ClientState::default(), now)?;
    if verified.keyset() != &ks {
        return Err(Error::Protocol(bkv_protocol::Error::SignerIntermediateMismatch));
    }
    verify_logged_bundle(
        &released.bundle,
        &ks.fleet_id,
        ks.epoch,
        &released.proof,
        &trust.log,
        &LogState::default(),
        None,
    )?;
    Ok(released)
}

/// spec/signer-api.md §3.1, spec/rotation.md §6: have the signer at `signer` log the
/// retirement of `epoch` of `fleet_id` for the successor bundle `successor` (its exact final
/// bytes); returns the retirement entry's index.
pub async fn retire(
    signer: &str,
    key: &OperatorKey,
    fleet_id: &str,
    epoch: u64,
    successor: &[u8],
    now: u64,
) -> Result<u64, Error> {
    let request = RetireRequest {
        v: 1,
        fleet_id: fleet_id.to_owned(),
        epoch,
        successor: bkv_protocol::crypto::sha256(successor),
        iat: now,
    };
    let answer = call(signer, "/v1/retire", seal_retire_request(&request, key.signer())).await?;
    Ok(RetireResponse::from_cbor(&answer)?.index)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    /// The workspace crates `krate` depends on, directly or not (normal dependencies).
    fn workspace_deps(root: &Path, krate: &str) -> BTreeSet<String> {
        let workspace: toml::Table =
            std::fs::read_to_string(root.join("Cargo.toml")).unwrap().parse().unwrap();
        let paths = workspace["workspace"]["dependencies"].as_table().unwrap();
        let path_of =
            |name: &str| -> Option<PathBuf> { paths.get(name)?.get("path")?.as_str().map(|p| root.join(p)) };
        let mut seen = BTreeSet::new();
        let mut todo = vec![krate.to_owned()];
        while let Some(name) = todo.pop() {
            let dir = path_of(&name).unwrap_or_else(|| panic!("{name} is no workspace crate"));
            let manifest: toml::Table =
                std::fs::read_to_string(dir.join("Cargo.toml")).unwrap().parse().unwrap();
            for dep in
                manifest.get("dependencies").and_then(|d| d.as_table()).into_iter().flat_map(|t| t.keys())
            {
                if path_of(dep).is_some() && seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    }

    /// spec/signer-api.md §7: the operator's crate and the third party's crate cannot name
    /// each other's key type: neither depends on the other, directly or through another.
    #[test]
    fn the_operator_and_the_third_party_do_not_depend_on_each_other() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let operator = workspace_deps(&root, "bkv-operator");
        let third_party = workspace_deps(&root, "bkv-third-party");
        assert!(
            !operator.contains("bkv-third-party"),
            "bkv-operator depends on bkv-third-party: {operator:?}"
        );
        assert!(
            !third_party.contains("bkv-operator"),
            "bkv-third-party depends on bkv-operator: {third_party:?}"
        );
        assert!(operator.contains("bkv-protocol") && third_party.contains("bkv-protocol"));
    }
}
