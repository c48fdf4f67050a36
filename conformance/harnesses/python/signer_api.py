"""spec/signer-api.md: the signer's checks of a signing request (§3 S1-S5), the operator's
checks of the signer's answer (§4 O1-O2), and the signer's attaching of the operator's
countersignature (§3 C2-C3): the operations `signer_open_request`,
`operator_check_intermediate` and `signer_attach_countersignature` of spec/conformance.md
§3. Written from the spec, over bundle.py (the bundle envelope, anchors, keysets) and
audit.py (the COSE_Sign1 envelope of spec/evidence.md §1).
"""

import crypto
from audit import Signed
from bundle import parse_anchors, parse_envelope, parse_keyset, sha256, verify_bundle
from dcbor import BkvError, decode, encode

CT_SIGN_REQUEST = "application/bkv-sign-request+cbor"  # §2.1
MAX_SKEW = 300  # §3 S4


def _anchor(role, kid, alg, now):
    """The first anchor of the role with this key id and algorithm whose window holds now."""
    return next((a for a in role if a["kid"] == kid and a["alg"] == alg
                 and a["not_before"] <= now <= a["not_after"]), None)


def _message(data, fields, shape_code):
    """A version-1 message of §2, decoded strictly: cbor.* for non-deterministic CBOR,
    `shape_code` for any other shape (`fields`: name -> test)."""
    try:
        m = decode(data)
    except BkvError as e:
        if e.code == "cbor.schema":
            raise BkvError(shape_code, "not the CDDL shape") from None
        raise
    if not (isinstance(m, dict) and set(m) == set(fields) and all(ok(m[k]) for k, ok in fields.items())
            and m["v"] == 1):
        raise BkvError(shape_code, "not the CDDL shape, or v != 1")
    return m


def _uint(x):
    return type(x) is int and x >= 0


def _bstr(n=None):
    return lambda x: isinstance(x, bytes) and (n is None or len(x) == n)


SIGN_REQUEST = {"v": _uint, "request_id": _bstr(16), "iat": _uint, "keyset": _bstr(), "evidence": _bstr()}
SIGN_RESPONSE = {"v": _uint, "request_id": _bstr(16), "intermediate": _bstr()}


def open_request(request, anchors_bytes, now):
    """§3 S1-S5."""
    anchors = parse_anchors(anchors_bytes)
    try:  # S1
        signed = Signed(request, CT_SIGN_REQUEST)
    except BkvError as e:
        if e.code == "evidence.malformed":
            raise BkvError("signer.request.malformed", str(e)) from None
        raise
    operator = _anchor(anchors["operator"], signed.kid, signed.alg, now)  # S2
    if operator is None:
        raise BkvError("signer.request.unauthenticated")
    if not crypto.verify(operator["alg"], operator["key"], signed.tbs, signed.signature):  # S3
        raise BkvError("signer.request.signature_invalid")
    r = _message(signed.payload, SIGN_REQUEST, "signer.request.malformed")  # S4
    if abs(r["iat"] - now) > MAX_SKEW:
        raise BkvError("signer.request.stale")
    try:  # S5
        ks = parse_keyset(r["keyset"])
    except BkvError as e:
        raise BkvError("signer.keyset.invalid", str(e)) from None
    if ks["fleet_id"] != anchors["fleet_id"]:
        raise BkvError("signer.keyset.invalid", "another fleet")
    return {"request_id": r["request_id"], "fleet_id": ks["fleet_id"], "epoch": ks["epoch"],
            "keyset_sha256": sha256(r["keyset"]), "evidence_sha256": sha256(r["evidence"])}


def check_intermediate(request, response, anchors_bytes, now):
    """§4 O1-O2; `request` is the SignRequest payload the operator signed."""
    anchors = parse_anchors(anchors_bytes)
    req = _message(request, SIGN_REQUEST, "signer.request.malformed")
    resp = _message(response, SIGN_RESPONSE, "signer.intermediate.mismatch")  # O1
    if resp["request_id"] != req["request_id"]:
        raise BkvError("signer.intermediate.mismatch", "another request id")
    try:  # O2: the §4.1 shape
        protected, unprotected, payload, signature, alg, kid, _ = parse_envelope(resp["intermediate"])
    except BkvError as e:
        if e.code.startswith("cbor.") and e.code != "cbor.schema":
            raise
        raise BkvError("signer.intermediate.mismatch", str(e)) from None
    if unprotected or payload != req["keyset"]:
        raise BkvError("signer.intermediate.mismatch", "countersigned already, or another keyset")
    signer = _anchor(anchors["third_party"], kid, alg, now)
    if signer is None:
        raise BkvError("bundle.signer.unknown")
    if not crypto.verify(alg, signer["key"], _sig_structure(protected, payload), signature):
        raise BkvError("bundle.signature.invalid")
    return {}


def _sig_structure(protected, payload):
    return encode(["Signature1", protected, b"", payload])


def _bstr_end(data, pos):
    """The end of the definite-length byte string at `pos`, or None."""
    if pos >= len(data) or data[pos] >> 5 != 2:
        return None
    info, pos = data[pos] & 0x1F, pos + 1
    if info < 24:
        n = info
    elif info in (24, 25, 26, 27):
        w = 1 << (info - 24)
        if pos + w > len(data):
            return None
        n, pos = int.from_bytes(data[pos:pos + w], "big"), pos + w
    else:
        return None
    return pos + n if pos + n <= len(data) else None


def attach(intermediate, countersignature, anchors_bytes, now):
    """§3 C2-C3: the countersignature goes at unprotected label 11 of the intermediate as
    received, and the result must verify as a client would (spec/validation-bundle.md
    §5.1 steps 1-11); any failure is signer.countersignature.invalid."""
    end = _bstr_end(intermediate, 2) if intermediate[:2] == b"\xd2\x84" else None
    if end is None or intermediate[end:end + 1] != b"\xa0":
        raise BkvError("signer.countersignature.invalid", "not an intermediate with an empty unprotected header")
    bundle = intermediate[:end] + b"\xa1\x0b" + countersignature + intermediate[end + 1:]
    try:
        decode(countersignature)
        verify_bundle(bundle, anchors_bytes, None, now)
    except BkvError as e:
        raise BkvError("signer.countersignature.invalid", str(e)) from None
    return {"bundle": bundle, "bundle_sha256": sha256(bundle)}
