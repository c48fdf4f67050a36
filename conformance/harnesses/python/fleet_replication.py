"""spec/fleet-replication.md §4 rule 2: a node verifying a node-to-node SignedRpc (steps 1-6) and,
for a reply, checking it against the request the node sent (step 7). Written from the spec
only; Ed25519 (strict, conventions §4.2) is crypto.py's."""

import crypto
import dcbor
from dcbor import BkvError

PURPOSE = "bkv fleet rpc"
REQUEST_KINDS = ("append", "vote", "snapshot", "propose", "read", "status")
RPC_KINDS = frozenset(REQUEST_KINDS + tuple(k + ".reply" for k in REQUEST_KINDS))


def _schema(why):
    return BkvError("cbor.schema", why)


def _fields(obj, spec):
    """spec: name -> type. Exactly these text keys with these types (int: uint), else cbor.schema."""
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj) or set(obj) != set(spec):
        raise _schema("not the CDDL structure")
    for k, t in spec.items():
        v = obj[k]
        if t is int:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise _schema(f"{k} is not an unsigned integer")
        elif not isinstance(v, t):
            raise _schema(f"{k} has the wrong type")
    return obj


def open_rpc(fleet_id, epoch, node_keys, node_id, now_ms, window_ms, rpc, request=None):
    """§4 rule 2 steps 1-6, then step 7 when `request` (kind, to, nonce) is given. Returns the
    `fleet_rpc_open` output."""
    # Step 1: SignedRpc completely, then msg.
    signed = _fields(dcbor.decode(rpc), {"v": int, "msg": bytes, "sig": bytes})
    if signed["v"] != 1:
        raise _schema("SignedRpc version")
    if len(signed["sig"]) != 64:
        raise _schema("sig is not 64 bytes")
    msg = _fields(dcbor.decode(signed["msg"]),
                  {"v": int, "purpose": str, "fleet": str, "epoch": int, "from": int, "to": int,
                   "kind": str, "nonce": bytes, "time_ms": int, "body": bytes})
    if msg["v"] != 1:
        raise _schema("RpcMessage version")
    if msg["purpose"] != PURPOSE:
        raise _schema("purpose")
    if msg["kind"] not in RPC_KINDS:
        raise _schema(f"kind {msg['kind']!r} is not an RpcKind")
    if len(msg["nonce"]) != 16:
        raise _schema("nonce is not 16 bytes")
    # Step 2
    if msg["fleet"] != fleet_id or msg["epoch"] != epoch:
        raise BkvError("fleet.rpc.fleet_mismatch")
    # Step 3: node i is the i-th node of the FleetKeySet (§2 rule 1).
    if msg["from"] >= len(node_keys):
        raise BkvError("fleet.rpc.sender_unknown", f"node {msg['from']}")
    # Step 4
    if msg["to"] != node_id:
        raise BkvError("fleet.rpc.recipient_mismatch", f"to node {msg['to']}")
    # Step 5: over the msg bytes as received.
    if not crypto.verify(crypto.ED25519, node_keys[msg["from"]], signed["msg"], signed["sig"]):
        raise BkvError("fleet.rpc.signature_invalid")
    # Step 6: W inclusive.
    if abs(msg["time_ms"] - now_ms) > window_ms:
        raise BkvError("fleet.rpc.stale")
    # Step 7
    if request is not None:
        kind, to, nonce = request
        if msg["kind"] != kind + ".reply" or msg["from"] != to or msg["nonce"] != nonce:
            raise BkvError("fleet.rpc.reply_mismatch")
    return {"from": msg["from"], "kind": msg["kind"], "nonce": msg["nonce"], "time_ms": msg["time_ms"],
            "body": msg["body"]}
