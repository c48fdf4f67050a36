"""Validation bundle verification, written from spec/validation-bundle.md §3-§6."""

import hashlib

import crypto
from dcbor import BkvError, decode, decode_lenient, encode

CONTENT_TYPE = "application/bkv-fleet-key-set+cbor"
FORBIDDEN_LABELS = (7, 9, 12)
ROLE_SUITES = {"session": 32, "opaque": 1, "signing": -19}


def sha256(b):
    return hashlib.sha256(b).digest()


# --- type predicates (cbor2 yields list or tuple, dict or frozendict; bool is not int) ---
def is_uint(x):
    return type(x) is int and x >= 0


def is_int(x):
    return type(x) is int


def is_tstr(x):
    return type(x) is str


def is_bstr(x, size=None):
    return type(x) is bytes and (size is None or len(x) == size)


def is_array(x):
    return isinstance(x, (list, tuple))


def is_map(x):
    return hasattr(x, "keys") and hasattr(x, "items")


def schema(cond, what):
    if not cond:
        raise BkvError("cbor.schema", what)


def check_fields(m, fields, what):
    schema(is_map(m), f"{what} is not a map")
    missing = [f for f in fields if f not in m]
    schema(not missing, f"{what}: missing {missing}")
    unknown = [k for k in m if k not in fields]
    schema(not unknown, f"{what}: unknown {unknown}")


# --- trust anchors, §4.4 ---
def check_anchor_schema(m):
    check_fields(m, ("name", "key", "not_before", "not_after"), "Anchor")
    schema(is_tstr(m["name"]) and is_uint(m["not_before"]) and is_uint(m["not_after"]),
           "Anchor types")
    check_fields(m["key"], ("alg", "key"), "PublicKey")
    # "alg": -19 / -9 is a CDDL choice of values: anything else is cbor.schema here (the
    # cose.algorithm.* codes are for the alg of a COSE header, spec/conventions.md §4.1)
    schema(is_int(m["key"]["alg"]) and m["key"]["alg"] in (crypto.ED25519, crypto.ESP256),
           "PublicKey alg")
    schema(is_bstr(m["key"]["key"]), "PublicKey key type")


def parse_anchors(data):
    """cbor.*, then the whole structure against its CDDL (cbor.schema), then the keys
    (cose.key.invalid)."""
    m = decode(data)
    check_fields(m, ("v", "fleet_id", "third_party", "operator", "pinned"), "TrustAnchors")
    schema(m["v"] == 1 and is_int(m["v"]), "TrustAnchors v != 1")
    schema(is_tstr(m["fleet_id"]), "fleet_id type")
    for role in ("third_party", "operator"):  # [* Anchor]: a pinned-only app has none
        schema(is_array(m[role]), f"{role}: [* Anchor]")
        for a in m[role]:
            check_anchor_schema(a)
    schema(is_array(m["pinned"]) and all(is_bstr(d, 32) for d in m["pinned"]),
           "pinned: [* Digest]")
    out = {"fleet_id": m["fleet_id"], "pinned": list(m["pinned"])}
    for role in ("third_party", "operator"):
        out[role] = []
        for a in m[role]:
            alg, key = a["key"]["alg"], a["key"]["key"]
            crypto.check_public_key(alg, key)
            out[role].append({"name": a["name"], "alg": alg, "key": key,
                              "kid": crypto.kid(alg, key), "not_before": a["not_before"],
                              "not_after": a["not_after"]})
    return out


# --- FleetKeySet, §3 ---
def parse_keyset(data):
    """Strict decode (cbor.*), CDDL (cbor.schema), then §3.2 (bundle.keyset.invalid)."""
    ks = decode(data)
    check_fields(ks, ("v", "fleet_id", "epoch", "not_before", "not_after", "guess_limit",
                      "quorum", "nodes", "prev", "evidence"), "FleetKeySet")
    schema(is_int(ks["v"]) and ks["v"] == 1, "FleetKeySet v != 1")
    schema(is_tstr(ks["fleet_id"]), "fleet_id type")
    for f in ("epoch", "not_before", "not_after", "guess_limit", "quorum"):
        schema(is_uint(ks[f]), f"{f} type")
    for f in ("prev", "evidence"):
        schema(ks[f] is None or is_bstr(ks[f], 32), f"{f}: Digest / null")
    schema(is_array(ks["nodes"]), "nodes type")
    for node in ks["nodes"]:
        check_fields(node, ("id", "datacenter", "keys"), "Node")
        schema(is_tstr(node["id"]) and is_tstr(node["datacenter"]) and is_array(node["keys"]),
               "Node types")
        for nk in node["keys"]:
            check_fields(nk, ("role", "suite", "key"), "NodeKey")
            schema(is_tstr(nk["role"]) and nk["role"] in ROLE_SUITES and is_int(nk["suite"])
                   and is_bstr(nk["key"]), "NodeKey types")

    def rule(cond, n, what):
        if not cond:
            raise BkvError("bundle.keyset.invalid", f"§3.2 rule {n}: {what}")

    rule(1 <= len(ks["fleet_id"].encode()) <= 255, 1, "fleet_id length")
    rule(ks["epoch"] >= 1, 2, "epoch >= 1")
    rule((ks["prev"] is None) == (ks["epoch"] == 1), 2, "prev null iff epoch 1")
    rule(ks["not_before"] <= ks["not_after"], 3, "not_before <= not_after")
    rule(1 <= ks["guess_limit"] <= 100, 4, "guess_limit")
    nodes = ks["nodes"]
    rule(len(nodes) >= 1, 5, "nodes empty")
    rule(ks["quorum"] == len(nodes) // 2 + 1, 5, "quorum")
    ids = [n["id"] for n in nodes]
    rule(all(ids) and len(set(ids)) == len(ids), 6, "node ids")
    rule(all(n["datacenter"] for n in nodes), 6, "datacenter labels")
    opaque, seen = set(), set()
    for n in nodes:
        roles = [k["role"] for k in n["keys"]]
        rule(len(roles) == 3 and sorted(roles) == sorted(ROLE_SUITES), 7, "one key per role")
        for k in n["keys"]:
            rule(k["suite"] == ROLE_SUITES[k["role"]] and len(k["key"]) == 32, 7,
                 f"{k['role']} suite/key length")
            if k["role"] == "signing":
                rule(crypto.ed_decompress(k["key"]) is not None, 7, "signing key point")
            if k["role"] == "opaque":
                opaque.add(k["key"])
            else:
                rule(k["key"] not in seen, 9, f"{k['role']} key repeated")
                seen.add(k["key"])
    rule(len(opaque) == 1, 8, "opaque key differs between nodes")
    return ks


# --- the bundle, §4 and §5.1 ---
def parse_protected_alg_kid(m, missing_code):
    if 1 not in m:
        raise BkvError(missing_code, "alg missing")
    crypto.check_alg(m[1])
    if not (4 in m and is_bstr(m[4], 32)):
        raise BkvError(missing_code, "kid missing or not a 32-byte bstr")
    return m[1], m[4]


def not_sign1(cond, what):
    if not cond:
        raise BkvError("bundle.envelope.not_sign1", what)


def read_protected(protected_bytes):
    """Step 1: the protected header bytes hold one well-formed CBOR map, in any encoding
    (step 2.2 checks the encoding); a zero-length string is the empty map (RFC 9052 §3)."""
    if protected_bytes == b"":
        return {}
    try:
        m, entries = decode_lenient(protected_bytes)
    except ValueError as e:
        raise BkvError("bundle.envelope.not_sign1", f"protected header: {e}") from None
    not_sign1(is_map(m), "protected header is not a map")
    not_sign1(entries is None or entries == len(m), "protected header repeats a label")
    return m


def check_header_map(m, where):
    """Step 1: RFC 9052 §3 header_map: labels int / tstr, and Generic_Headers types."""
    for label, value in m.items():
        not_sign1(is_int(label) or is_tstr(label), f"{where}: label {label!r}")
        ok = {1: lambda x: is_int(x) or is_tstr(x),
              2: lambda x: is_array(x) and len(x) >= 1 and all(is_int(y) or is_tstr(y)
                                                               for y in x),
              3: lambda x: is_int(x) or is_tstr(x),
              4: is_bstr, 5: is_bstr, 6: is_bstr}.get(label, lambda x: True)(value)
        not_sign1(ok, f"{where}: label {label} has the wrong type for RFC 9052")
    not_sign1(not (5 in m and 6 in m), f"{where}: both IV and Partial IV")


def parse_envelope(bundle):
    """§5.1 steps 1-2.4: the envelope and its headers, before the countersignature.
    Returns (protected bytes, unprotected map, payload, signature, alg, kid, claims)."""
    # step 1: tagged COSE_Sign1, attached payload, RFC 9052 header maps
    top = decode(bundle, allowed_tags={18})
    v = getattr(top, "value", None)
    if not (getattr(top, "tag", None) == 18 and is_array(v) and len(v) == 4
            and is_bstr(v[0]) and is_map(v[1]) and is_bstr(v[2]) and is_bstr(v[3])):
        raise BkvError("bundle.envelope.not_sign1", "not a tagged COSE_Sign1 with payload")
    protected_bytes, unprotected, payload, signature = v
    lenient_prot = read_protected(protected_bytes)
    check_header_map(lenient_prot, "protected")
    check_header_map(unprotected, "unprotected")
    # step 2.1, on the header maps as read in step 1
    for m, where in ((lenient_prot, "protected"), (unprotected, "unprotected")):
        for label in FORBIDDEN_LABELS:
            if label in m:
                raise BkvError("bundle.countersignature.forbidden_label", f"{label} in {where}")
    # step 2.2
    prot = decode(protected_bytes)
    # step 2.3
    alg, signer_kid = parse_protected_alg_kid(prot, "bundle.header.missing")
    if 3 not in prot:
        raise BkvError("bundle.header.missing", "content type missing")
    if prot[3] != CONTENT_TYPE or not is_tstr(prot[3]):
        raise BkvError("bundle.header.content_type", repr(prot[3]))
    claims = prot.get(15)
    if not (is_map(claims) and set(claims.keys()) == {1, 2, 6} and is_tstr(claims[1])
            and is_tstr(claims[2]) and is_uint(claims[6])):
        raise BkvError("bundle.header.missing", "CWT claims missing or malformed")
    # step 2.4
    if set(prot.keys()) != {1, 3, 4, 15}:
        raise BkvError("bundle.header.misplaced", "extra protected header parameter")
    if any(k != 11 for k in unprotected.keys()):
        raise BkvError("bundle.header.misplaced", "unprotected header other than 11")
    return protected_bytes, unprotected, payload, signature, alg, signer_kid, claims


def verify_one(bundle, anchors, state, now, check_window=True):
    """§5.1 steps 1-11 (12, log inclusion, is not implemented). Returns the new state."""
    protected_bytes, unprotected, payload, signature, alg, signer_kid, claims = parse_envelope(bundle)
    # step 2.5
    if 11 not in unprotected:
        raise BkvError("bundle.countersignature.missing", "no label 11")
    cs = unprotected[11]

    def cs_shape(x):
        return (is_array(x) and len(x) == 3 and is_bstr(x[0]) and is_map(x[1])
                and is_bstr(x[2]))
    if is_array(cs) and len(cs) >= 1 and all(cs_shape(x) for x in cs):
        raise BkvError("bundle.countersignature.multiple", "array of countersignatures")
    if not cs_shape(cs):
        raise BkvError("bundle.countersignature.malformed", "not [bstr, map, bstr]")
    cs_protected_bytes, cs_unprotected, cs_signature = cs
    cs_prot = decode(cs_protected_bytes)
    if not (is_map(cs_prot) and set(cs_prot.keys()) <= {1, 4}):
        raise BkvError("bundle.countersignature.malformed", "a label other than alg and kid")
    cs_alg, cs_kid = parse_protected_alg_kid(cs_prot, "bundle.countersignature.malformed")
    if len(cs_unprotected) != 0:
        raise BkvError("bundle.countersignature.malformed", "unprotected header not empty")
    # step 3
    signer = find_anchor(anchors["third_party"], signer_kid, alg, now, "bundle.signer")
    # step 4
    countersigner = find_anchor(anchors["operator"], cs_kid, cs_alg, now, "bundle.countersigner")
    # step 5
    sig_structure = encode(["Signature1", protected_bytes, b"", payload])
    if not crypto.verify(alg, signer["key"], sig_structure, signature):
        raise BkvError("bundle.signature.invalid", "third-party signature")
    # step 6
    cs_structure = encode(["CounterSignatureV2", protected_bytes, cs_protected_bytes, b"",
                           payload, [signature]])
    if not crypto.verify(cs_alg, countersigner["key"], cs_structure, cs_signature):
        raise BkvError("bundle.countersignature.invalid", "operator countersignature")
    # step 7
    ks = parse_keyset(payload)
    if ks["fleet_id"] != anchors["fleet_id"]:
        raise BkvError("bundle.fleet.mismatch", ks["fleet_id"])
    # step 8
    if not (claims[1] == signer["name"] and claims[2] == ks["fleet_id"]
            and signer["not_before"] <= claims[6] <= signer["not_after"]):
        raise BkvError("bundle.claims.mismatch", repr(dict(claims)))
    # step 9
    if check_window:
        if now < ks["not_before"]:
            raise BkvError("bundle.validity.not_yet_valid", str(ks["not_before"]))
        if now > ks["not_after"]:
            raise BkvError("bundle.validity.expired", str(ks["not_after"]))
    # steps 10, 11
    digest = sha256(bundle)
    if state is not None:
        e, d = state
        if ks["epoch"] < e:
            raise BkvError("bundle.epoch.rollback", f"{ks['epoch']} < {e}")
        if ks["epoch"] == e and digest != d:
            raise BkvError("bundle.epoch.equivocation", f"epoch {e}")
        if ks["epoch"] > e and not (ks["epoch"] == e + 1 and ks["prev"] == d):
            raise BkvError("bundle.chain.broken", f"epoch {ks['epoch']} after {e}")
    return {"epoch": ks["epoch"], "keyset_sha256": sha256(payload), "bundle_sha256": digest}


def find_anchor(candidates, kid, alg, now, prefix):
    """Steps 3, 4: the first anchor of the role, in list order, whose kid matches."""
    a = next((a for a in candidates if a["kid"] == kid), None)
    if a is None:
        raise BkvError(f"{prefix}.unknown", kid.hex())
    if a["alg"] != alg:
        raise BkvError("bundle.algorithm.mismatch", f"header alg {alg}, anchor {a['alg']}")
    if not a["not_before"] <= now <= a["not_after"]:
        raise BkvError(f"{prefix}.expired", f"now {now} outside the anchor window")
    return a


def verify_bundle(bundle, anchors_bytes, state, now, intermediates=()):
    """§5.1, with §5.2 intermediates verified first (no validity window), in order."""
    anchors = parse_anchors(anchors_bytes)
    for inter in intermediates:
        out = verify_one(inter, anchors, state, now, check_window=False)
        state = (out["epoch"], out["bundle_sha256"])
    return verify_one(bundle, anchors, state, now)


def verify_pinned(keyset, anchors_bytes, now):
    """§6.1 steps 1-3 and §6.2 retirement."""
    anchors = parse_anchors(anchors_bytes)
    digest = sha256(keyset)
    if digest not in anchors["pinned"]:
        raise BkvError("pinned.digest.mismatch", digest.hex())
    ks = parse_keyset(keyset)
    if ks["fleet_id"] != anchors["fleet_id"]:
        raise BkvError("bundle.fleet.mismatch", ks["fleet_id"])
    if now < ks["not_before"]:
        raise BkvError("bundle.validity.not_yet_valid", str(ks["not_before"]))
    if now > ks["not_after"]:
        raise BkvError("pinned.fleet.retired", str(ks["not_after"]))
    return {"epoch": ks["epoch"], "keyset_sha256": digest}
