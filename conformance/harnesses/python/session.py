"""spec/session.md: a node opening a SealedRequest (§5) and sealing its response (§4.2), a
client recreating its request from a fixed ephemeral input (§3.3) and opening the response
(§4.3), and the suite's RFC 9180 known answer (§2). Written from the spec only; HPKE
(RFC 9180) is pyhpke's, the response's ChaCha20Poly1305 is `cryptography`'s."""

import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

import dcbor
from dcbor import BkvError

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)
WINDOW = 300
EXPORT_LABEL = b"bkv session v1 response"


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


def _info(fleet_id, epoch, node_id):
    """§3.2: deterministic CBOR of SessionInfo."""
    return dcbor.encode(["bkv session", 1, fleet_id, epoch, node_id])


def open_request(node_key, fleet_id, epoch, node_id, now, request):
    """§5 S1-S6: the `session_open_request` output."""
    return _open(node_key, fleet_id, epoch, node_id, now, request)[0]


def _open(node_key, fleet_id, epoch, node_id, now, request):
    """§5 S1-S7: (opened request, response key rk)."""
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
    info = _info(fleet_id, epoch, node_id)
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
    # S7
    rk = ctx.export(EXPORT_LABEL, 32)
    return {"request_id": inner["id"], "time": inner["time"], "body": inner["body"]}, rk


# --- §3.3, §4: the response half --------------------------------------------------------

_CONVENTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "spec",
                            "conventions.md")


def _registry():
    """The codes of spec/conventions.md §7: the first column of its tables."""
    with open(_CONVENTIONS, encoding="utf-8") as f:
        return frozenset(re.findall(r"^\| `([a-z0-9_.]+)` \|", f.read(), re.M))


REGISTRY = _registry()


def seal_request(session_key, fleet_id, epoch, node_id, ikm_e, request_id, time, body):
    """§3.3 with the ephemeral key pair DeriveKeyPair(ikm_e): (SealedRequest bytes, rk)."""
    eks = SUITE.kem.derive_key_pair(ikm_e)
    pkr = SUITE.kem.deserialize_public_key(session_key)
    enc, ctx = SUITE.create_sender_context(pkr, info=_info(fleet_id, epoch, node_id), eks=eks)
    ct = ctx.seal(dcbor.encode({"v": 1, "id": request_id, "time": time, "body": body}), aad=b"")
    request = dcbor.encode({"v": 1, "kem": 0x0020, "kdf": 0x0001, "aead": 0x0003, "fleet_id": fleet_id,
                            "epoch": epoch, "node_id": node_id, "enc": enc, "ct": ct})
    return request, ctx.export(EXPORT_LABEL, 32)


def _invalid(why):
    return BkvError("session.response.invalid", why)


def open_response(response, rk, request_id):
    """§4.3: the application body, or BkvError with the node's code or ours."""
    # Step 1: a SessionResponse, strictly.
    try:
        m = dcbor.decode(response)
    except BkvError as e:
        raise _invalid(f"not deterministic CBOR ({e.code})") from None
    if not isinstance(m, dict) or m.get("v") != 1 or isinstance(m.get("v"), bool):
        raise _invalid("not a SessionResponse")
    if set(m) == {"v", "error"} and isinstance(m["error"], str):
        # Step 2: unauthenticated; only session.* and cbor.* codes of the registry.
        code = m["error"]
        if code in REGISTRY and code.split(".")[0] in ("session", "cbor"):
            raise BkvError(code, "unsealed")
        raise _invalid(f"unsealed code {code!r}")
    if set(m) != {"v", "nonce", "sealed"} or not isinstance(m["nonce"], bytes) \
            or len(m["nonce"]) != 12 or not isinstance(m["sealed"], bytes):
        raise _invalid("not a SessionResponse")
    # Step 3
    try:
        pt = ChaCha20Poly1305(rk).decrypt(m["nonce"], m["sealed"], b"")
    except InvalidTag:
        raise _invalid("does not open under the response key") from None
    # Step 4
    try:
        p = dcbor.decode(pt)
    except BkvError as e:
        raise _invalid(f"ResponsePlaintext: {e.code}") from None
    if not isinstance(p, dict) or p.get("v") != 1 or isinstance(p.get("v"), bool) \
            or not isinstance(p.get("id"), bytes) or not hmac.compare_digest(p["id"], request_id):
        raise _invalid("not the answer to this request")
    rest = set(p) - {"v", "id"}
    if rest == {"ok"} and isinstance(p["ok"], bytes):
        return p["ok"]
    if rest == {"error"} and isinstance(p["error"], str):
        if p["error"] in REGISTRY:
            raise BkvError(p["error"], "sealed")
        raise _invalid(f"sealed code {p['error']!r} not in the registry")
    raise _invalid("not exactly one of ok and error")


def seal_response(node_key, fleet_id, epoch, node_id, now, request, nonce, result):
    """§5 then §4.2 with the given nonce; `result` is {"ok": bytes} or {"error": code}."""
    opened, rk = _open(node_key, fleet_id, epoch, node_id, now, request)
    pt = {"v": 1, "id": opened["request_id"]}
    pt.update(result)
    sealed = ChaCha20Poly1305(rk).encrypt(nonce, dcbor.encode(pt), b"")
    return {"response": dcbor.encode({"v": 1, "nonce": nonce, "sealed": sealed})}


def hpke_kat(v):
    """§2 against an RFC 9180 test vector; any mismatch is session.open.failed."""
    h = bytes.fromhex
    try:
        skr = SUITE.kem.deserialize_private_key(h(v["skRm"]))
        pkr = SUITE.kem.deserialize_public_key(h(v["pkRm"]))
        if X25519PrivateKey.from_private_bytes(h(v["skRm"])).public_key().public_bytes_raw() \
                != h(v["pkRm"]):
            raise ValueError("skRm does not give pkRm")
        eks = SUITE.kem.derive_key_pair(h(v["ikmE"]))
        enc, sender = SUITE.create_sender_context(pkr, info=h(v["info"]), eks=eks)
        if enc != h(v["enc"]) or enc != h(v["pkEm"]):
            raise ValueError("enc differs")
        receiver = SUITE.create_recipient_context(enc, skr, info=h(v["info"]))
        for e in v["encryptions"]:
            pt, aad, ct = h(e["pt"]), h(e["aad"]), h(e["ct"])
            if sender.seal(pt, aad=aad) != ct or receiver.open(ct, aad=aad) != pt:
                raise ValueError(f"encryption {e.get('seq')} differs")
        for x in v["exports"]:
            want = h(x["exported_value"])
            ctx = h(x["exporter_context"])
            if sender.export(ctx, x["L"]) != want or receiver.export(ctx, x["L"]) != want:
                raise ValueError("export differs")
    except Exception as e:  # noqa: BLE001 - a mismatch of any kind is the one code
        raise BkvError("session.open.failed", f"{type(e).__name__}: {e}") from None
