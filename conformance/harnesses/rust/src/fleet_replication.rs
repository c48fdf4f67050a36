//! spec/fleet-replication.md §4 rule 2 over `bkv_protocol::fleet_replication::rpc`
//! (spec/conformance.md §3): `fleet_rpc_open`, a node verifying a node-to-node `SignedRpc`
//! (steps 1–6) and, when the case gives the request it sent, the reply (step 7).

use super::{BadInput, CaseOutcome, hex_field, str_field, u64_field};
use bkv_protocol::crypto::{Algorithm, PublicKey};
use bkv_protocol::fleet_replication::rpc::{KeyDirectory, NodeId, RpcKind, RpcMessage, check_reply, open};
use serde_json::{Map, Value, json};

/// The receiver's FleetKeySet: node `i` signs with `keys[i]` (§2 rule 1).
struct Directory<'a> {
    fleet: &'a str,
    epoch: u64,
    keys: Vec<PublicKey>,
}

impl KeyDirectory for Directory<'_> {
    fn fleet_id(&self) -> &str {
        self.fleet
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn node_key(&self, node: NodeId) -> Option<&PublicKey> {
        self.keys.get(usize::try_from(node).ok()?)
    }
}

/// `fleet_rpc_open`: open `rpc` as node `node_id` at `now_ms`, then check it against
/// `request` when that is not null.
pub(super) fn open_rpc(input: &Map<String, Value>) -> Result<CaseOutcome, BadInput> {
    let keys = input
        .get("node_keys")
        .and_then(Value::as_array)
        .ok_or_else(|| BadInput("missing node_keys".into()))?
        .iter()
        .map(|k| {
            let key =
                k.as_str().and_then(|h| hex::decode(h).ok()).ok_or_else(|| BadInput("node key".into()))?;
            PublicKey::new(Algorithm::Ed25519, key).map_err(|e| BadInput(format!("node key: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dir = Directory { fleet: str_field(input, "fleet_id")?, epoch: u64_field(input, "epoch")?, keys };
    let request = match input.get("request") {
        None | Some(Value::Null) => None,
        Some(Value::Object(r)) => Some(RpcMessage {
            v: 1,
            purpose: bkv_protocol::fleet_replication::rpc::PURPOSE.into(),
            fleet: dir.fleet.into(),
            epoch: dir.epoch,
            from: u64_field(input, "node_id")?,
            to: u64_field(r, "to")?,
            kind: RpcKind::parse(str_field(r, "kind")?)
                .ok_or_else(|| BadInput("request kind: not an RpcKind".into()))?,
            nonce: hex_field(r, "nonce")?,
            time_ms: 0,
            body: Vec::new(),
        }),
        Some(_) => return Err(BadInput("request".into())),
    };
    let rpc = hex_field(input, "rpc")?;
    let (me, now, window) =
        (u64_field(input, "node_id")?, u64_field(input, "now_ms")?, u64_field(input, "window_ms")?);
    Ok((|| {
        let msg = open(&rpc, &dir, me, now, window)?;
        if let Some(request) = &request {
            check_reply(request, &msg)?;
        }
        Ok(Some(super::obj(json!({
            "from": msg.from,
            "kind": msg.kind,
            "nonce": hex::encode(&msg.nonce),
            "time_ms": msg.time_ms,
            "body": hex::encode(&msg.body),
        }))))
    })())
}
