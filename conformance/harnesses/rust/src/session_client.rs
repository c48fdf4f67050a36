//! The response half of spec/session.md over `bkv_protocol::session` (spec/conformance.md
//! §3): `session_seal_response` (the node, §4.2, with the vector's nonce),
//! `session_open_response` (the client recreates its request from `ikm_e`, §3.3, then
//! opens the response, §4.3) and `hpke_kat` (RFC 9180 A.2.1 through the suite's `hpke`
//! types that `bkv_protocol::session` uses).

use super::{BadInput, CaseOutcome, array, hex_field, obj, str_field, u64_field};
use bkv_protocol::Error;
use bkv_protocol::session::{
    Kem, OpenedRequest, SessionSecretKey, SessionServer, SessionTarget, seal_request_with_id,
};
use bkv_vectors::fixed_rng::FixedRng;
use hpke::kem::Kem as _;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use serde_json::{Map, Value, json};

type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// `session_open_request` (§5): the case's node (`node_key`, `fleet_id`, `epoch`, `node_id`)
/// opens `request` at `now`.
pub(super) fn open_request(input: &Map<String, Value>) -> Result<Result<OpenedRequest, Error>, BadInput> {
    let key: [u8; 32] = array(input, "node_key")?;
    let request = hex_field(input, "request")?;
    let (fleet, epoch, node_id, now) = (
        str_field(input, "fleet_id")?,
        u64_field(input, "epoch")?,
        str_field(input, "node_id")?,
        u64_field(input, "now")?,
    );
    Ok(SessionSecretKey::from_bytes(&key)
        .and_then(|k| SessionServer::new(fleet, epoch, node_id, k).open(&request, now)))
}

/// `session_seal_response`: open the request (§5), then seal `result` with `nonce` (§4.2).
pub(super) fn seal_response(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let nonce: [u8; 12] = array(input, "nonce")?;
    let result = input.get("result").and_then(Value::as_object).ok_or_else(|| BadInput("result".into()))?;
    let result = match (result.get("ok"), result.get("error").and_then(Value::as_str)) {
        (Some(_), None) => Ok(hex_field(result, "ok")?),
        (None, Some(code)) => Err(Error::from_code(code).ok_or_else(|| BadInput(format!("code {code}")))?),
        _ => return Err(BadInput("result: one of ok and error".into())),
    };
    let opened = open_request(input)?;
    Ok((|| {
        let opened = opened?;
        let response = opened.responder.seal(&mut FixedRng(nonce.to_vec()), result);
        Ok(Some(obj(json!({ "response": hex::encode(response) }))))
    })())
}

/// `session_open_response`: §3.3 with the ephemeral input `ikm_e`, then §4.3.
pub(super) fn open_response(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let target = SessionTarget {
        fleet_id: str_field(input, "fleet_id")?.to_owned(),
        epoch: u64_field(input, "epoch")?,
        node_id: str_field(input, "node_id")?.to_owned(),
        session_key: array(input, "session_key")?,
    };
    let ikm_e: [u8; 32] = array(input, "ikm_e")?;
    let id = array(input, "request_id")?;
    let (time, body, response) =
        (u64_field(input, "time")?, hex_field(input, "body")?, hex_field(input, "response")?);
    Ok((|| {
        let (request, awaiting) =
            seal_request_with_id(&mut FixedRng(ikm_e.to_vec()), &target, time, id, &body)?;
        let answer = awaiting.open(&response)?;
        Ok(Some(obj(json!({ "request": hex::encode(request), "body": hex::encode(answer) }))))
    })())
}

fn hx(v: &Value, key: &str) -> Result<Vec<u8>, BadInput> {
    v.get(key).and_then(Value::as_str).and_then(|s| hex::decode(s).ok()).ok_or_else(|| BadInput(key.into()))
}

/// `hpke_kat`: the suite of spec/session.md §2 against an RFC 9180 test vector. Any
/// mismatch is `session.open.failed`.
pub(super) fn hpke_kat(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let v = Value::Object(input.clone());
    let (info, ikm_e, sk_r, pk_r, enc_want) =
        (hx(&v, "info")?, hx(&v, "ikmE")?, hx(&v, "skRm")?, hx(&v, "pkRm")?, hx(&v, "enc")?);
    let list = |k: &str| v.get(k).and_then(Value::as_array).cloned().ok_or_else(|| BadInput(k.into()));
    let encryptions = list("encryptions")?
        .iter()
        .map(|e| Ok((hx(e, "pt")?, hx(e, "aad")?, hx(e, "ct")?)))
        .collect::<Result<Vec<_>, BadInput>>()?;
    let exports = list("exports")?
        .iter()
        .map(|x| {
            let len = x.get("L").and_then(Value::as_u64).ok_or_else(|| BadInput("L".into()))?;
            Ok((hx(x, "exporter_context")?, len as usize, hx(x, "exported_value")?))
        })
        .collect::<Result<Vec<_>, BadInput>>()?;
    let failed = Error::SessionOpenFailed;
    Ok((|| {
        let pk = <Kem as hpke::kem::Kem>::PublicKey::from_bytes(&pk_r).map_err(|_| failed)?;
        let sk = <Kem as hpke::kem::Kem>::PrivateKey::from_bytes(&sk_r).map_err(|_| failed)?;
        if Kem::sk_to_pk(&sk).to_bytes().as_slice() != pk_r.as_slice() {
            return Err(failed);
        }
        let (enc, mut sender) =
            hpke::setup_sender::<Aead, Kdf, Kem, _>(&OpModeS::Base, &pk, &info, &mut FixedRng(ikm_e))
                .map_err(|_| failed)?;
        if enc.to_bytes().as_slice() != enc_want.as_slice() {
            return Err(failed);
        }
        let mut receiver =
            hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &sk, &enc, &info).map_err(|_| failed)?;
        for (pt, aad, ct) in &encryptions {
            if sender.seal(pt, aad).map_err(|_| failed)? != *ct
                || receiver.open(ct, aad).map_err(|_| failed)? != *pt
            {
                return Err(failed);
            }
        }
        for (context, len, want) in &exports {
            let (mut a, mut b) = (vec![0u8; *len], vec![0u8; *len]);
            sender.export(context, &mut a).map_err(|_| failed)?;
            receiver.export(context, &mut b).map_err(|_| failed)?;
            if a != *want || b != *want {
                return Err(failed);
            }
        }
        Ok(None)
    })())
}
