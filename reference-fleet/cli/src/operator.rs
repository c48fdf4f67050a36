//! The operator's side of spec/signer-api.md §4: it holds only the operator's
//! countersigning key, asks the third party's signer (over HTTP) to sign a FleetKeySet with
//! its evidence, checks what it signed, countersigns, and checks the released bundle as a
//! client would before it publishes it.

use crate::error::{Error, Result};
use bkv_client::Trust;
use bkv_protocol::audit_log::{LogState, LoggedBundle, verify_logged_bundle};
use bkv_protocol::crypto::Signer;
use bkv_protocol::signer_api::{
    CountersignRequest, SignRequest, SignResponse, check_intermediate, seal_sign_request,
};
use bkv_protocol::validation_bundle::{ClientState, FleetKeySet, countersignature, verify_bundle};
use rand_core::RngCore;
use serde_bytes::ByteBuf;

/// POST `body` to the signer's `path`; its answer, or its failure code as an error.
async fn call(signer: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>> {
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
/// countersign with `operator` after O1–O2, and return the released bundle once it
/// verifies against `trust` (spec/validation-bundle.md §5.1, spec/audit-log.md §7.2) at
/// `now`.
pub async fn countersign_release(
    signer: &str,
    operator: &dyn Signer,
    trust: &Trust,
    keyset: &[u8],
    evidence: &[u8],
    now: u64,
) -> Result<LoggedBundle> {
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
    let response =
        SignResponse::from_cbor(&call(signer, "/v1/sign", seal_sign_request(&request, operator)).await?)?;
    // O1–O2
    check_intermediate(&request, &response, &trust.anchors, now)?;
    // O3
    let cs = countersignature(&response.intermediate, operator)?;
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
