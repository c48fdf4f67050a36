"""spec/session.md §5: a node opening a SealedRequest. Written from the spec only; HPKE
(RFC 9180) is pyhpke's."""

from pyhpke import AEADId, CipherSuite, KDFId, KEMId

import dcbor
from dcbor import BkvError

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)
WINDOW = 300


def _fields(obj, spec):
    """spec: name -> type. Exactly these text keys with these types, else cbor.schema."""
    if not isinstance(obj, dict) or set(obj.keys()) != set(spec) or not all(isinstance(k, str) for k in obj):
        raise BkvError("cbor.schema", "not the CDDL structure")
    for k, t in spec.items():
        v = obj[k]
        if t is int and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise BkvError("cbor.schema", f"{k} is not an unsigned integer")
        if t is not int and not isinstance(v, t):
            raise BkvError("cbor.schema", f"{k} has the wrong type")
    return obj


def open_request(node_key, fleet_id, epoch, node_id, now, request):
    # S1
    req = _fields(dcbor.decode(request), {"v": int, "kem": int, "kdf": int, "aead": int, "fleet_id": str,
                                          "epoch": int, "node_id": str, "enc": bytes, "ct": bytes})
    if req["v"] != 1:
        raise BkvError("cbor.schema", "version")
    # S2
    if (req["kem"], req["kdf"], req["aead"]) != (0x0020, 0x0001, 0x0003):
        raise BkvError("session.suite.unsupported")
    # S3
    if req["fleet_id"] != fleet_id:
        raise BkvError("session.fleet.mismatch")
    if req["epoch"] != epoch:
        raise BkvError("session.epoch.mismatch")
    if req["node_id"] != node_id:
        raise BkvError("session.node.mismatch")
    # S4: one code for every failure
    info = dcbor.encode(["bkv session", 1, fleet_id, epoch, node_id])
    try:
        skr = SUITE.kem.deserialize_private_key(node_key)
        ctx = SUITE.create_recipient_context(req["enc"], skr, info=info)
        pt = ctx.open(req["ct"], aad=b"")
    except Exception as e:  # noqa: BLE001 - every failure of this step is the same code
        raise BkvError("session.open.failed", type(e).__name__) from None
    # S5
    inner = _fields(dcbor.decode(pt), {"v": int, "id": bytes, "time": int, "body": bytes})
    if inner["v"] != 1 or len(inner["id"]) != 16:
        raise BkvError("cbor.schema", "request plaintext")
    # S6
    if abs(inner["time"] - now) > WINDOW:
        raise BkvError("session.request.stale")
    return {"request_id": inner["id"], "time": inner["time"], "body": inner["body"]}
