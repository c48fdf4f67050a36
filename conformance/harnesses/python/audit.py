"""The Audit procedure, written from spec/audit.md §2 (steps AU1-AU12) and the formats of
spec/evidence.md, as a second auditor next to the Rust reference."""

import hashlib
import hmac
from collections.abc import Mapping

import audit_log
import bundle
import crypto
from dcbor import BkvError, decode, encode

CT_EVIDENCE = "application/bkv-evidence+cbor"
CT_DEVICE_CERT = "application/bkv-device-cert+cbor"
CT_ATTESTATION = "application/bkv-attestation+cbor"
CT_STEP = "application/bkv-ceremony-step+cbor"


def sha256(b):
    return hashlib.sha256(b).digest()


def same(a, b):
    """Digests are compared in constant time (spec/conventions.md)."""
    return isinstance(a, bytes) and isinstance(b, bytes) and hmac.compare_digest(a, b)


def malformed(cond, what):
    if not cond:
        raise BkvError("evidence.malformed", what)


def is_uint(x):
    return type(x) is int and x >= 0


def is_tstr(x):
    return isinstance(x, str)


def is_bstr(x, size=None):
    return isinstance(x, bytes) and (size is None or len(x) == size)


def fields(m, names, what):
    malformed(isinstance(m, dict) and set(m.keys()) == set(names), f"{what}: fields")


def public_key(m, what):
    fields(m, ("alg", "key"), what)
    malformed(m["alg"] in (crypto.ED25519, crypto.ESP256) and type(m["alg"]) is int, f"{what}: alg")
    malformed(is_bstr(m["key"]), f"{what}: key")
    return m


class Signed:
    """spec/evidence.md §1: a tagged COSE_Sign1, protected header exactly {1, 3, 4},
    empty unprotected header, deterministic CBOR throughout."""

    def __init__(self, data, content_type):
        top = decode(data, allowed_tags={18})
        v = getattr(top, "value", None)
        malformed(getattr(top, "tag", None) == 18 and isinstance(v, (list, tuple)) and len(v) == 4, "not a COSE_Sign1")
        protected, unprotected, payload, signature = v
        malformed(is_bstr(protected) and isinstance(unprotected, Mapping) and is_bstr(payload)
                  and is_bstr(signature), "COSE_Sign1 item types")
        malformed(len(unprotected) == 0, "unprotected header not empty")
        header = decode(protected)
        malformed(isinstance(header, dict) and set(header.keys()) == {1, 3, 4}, "protected header labels")
        malformed(type(header[1]) is int and header[1] in (crypto.ED25519, crypto.ESP256), "alg")
        malformed(header[3] == content_type, f"content type {header[3]!r}, expected {content_type}")
        malformed(is_bstr(header[4]), "kid")
        self.alg, self.kid, self.payload, self.signature = header[1], header[4], payload, signature
        self.tbs = encode(["Signature1", protected, b"", payload])

    def verified_by(self, key):
        """`key` is a PublicKey map {"alg", "key"}: same alg, same kid, signature verifies."""
        alg, raw = key["alg"], key["key"]
        if alg != self.alg or not same(crypto.kid(alg, raw), self.kid):
            return False
        try:
            crypto.check_public_key(alg, raw)
        except BkvError:
            return False
        return crypto.verify(alg, raw, self.tbs, self.signature)

    def decode(self):
        try:
            return decode(self.payload)
        except BkvError as e:
            if e.code == "cbor.schema":
                raise BkvError("evidence.malformed", "payload") from None
            raise


# --- spec/evidence.md §2-§4 shapes ---
def check_evidence(e):
    fields(e, ("v", "fleet_id", "epoch", "keyset_core", "policy", "software", "attestations", "ceremony"),
           "Evidence")
    malformed(e["v"] == 1 and is_uint(e["v"]) and is_tstr(e["fleet_id"]) and is_uint(e["epoch"]) and is_bstr(e["keyset_core"], 32),
              "Evidence types")
    p = e["policy"]
    fields(p, ("guess_limit", "quorum", "datacenters"), "Policy")
    malformed(is_uint(p["guess_limit"]) and is_uint(p["quorum"]) and isinstance(p["datacenters"], list)
              and all(is_tstr(d) for d in p["datacenters"]), "Policy types")
    s = e["software"]
    fields(s, ("measurement", "recipe"), "Software")
    malformed(is_bstr(s["measurement"], 32) and is_tstr(s["recipe"]), "Software types")
    malformed(isinstance(e["attestations"], list) and len(e["attestations"]) >= 1, "attestations")
    for a in e["attestations"]:
        fields(a, ("node_id", "chain", "statement"), "Attestation")
        malformed(is_tstr(a["node_id"]) and isinstance(a["chain"], list) and len(a["chain"]) >= 1
                  and all(is_bstr(c) for c in a["chain"]) and is_bstr(a["statement"]), "Attestation types")
    c = e["ceremony"]
    fields(c, ("participants", "steps"), "Ceremony")
    malformed(isinstance(c["participants"], list) and len(c["participants"]) >= 1, "participants")
    for p in c["participants"]:
        fields(p, ("name", "key"), "participant")
        malformed(is_tstr(p["name"]), "participant name")
        public_key(p["key"], "participant key")
    malformed(isinstance(c["steps"], list) and len(c["steps"]) >= 1
              and all(is_bstr(s) for s in c["steps"]), "steps")
    return e


def check_cert(c):
    fields(c, ("v", "issuer", "subject", "key", "firmware", "ca"), "DeviceCert")
    public_key(c["key"], "DeviceCert key")
    malformed(c["v"] == 1 and is_uint(c["v"]) and is_tstr(c["issuer"]) and is_tstr(c["subject"]) and is_bstr(c["firmware"], 32)
              and isinstance(c["ca"], bool), "DeviceCert types")
    return c


def check_statement(s):
    fields(s, ("v", "device", "fleet_id", "epoch", "node_id", "keys", "firmware", "software"),
           "AttestationStatement")
    malformed(s["v"] == 1 and is_uint(s["v"]) and is_tstr(s["device"]) and is_tstr(s["fleet_id"]) and is_uint(s["epoch"])
              and is_tstr(s["node_id"]) and isinstance(s["keys"], list) and len(s["keys"]) >= 3
              and is_bstr(s["firmware"], 32) and is_bstr(s["software"], 32), "AttestationStatement types")
    return s


def check_step(s):
    fields(s, ("seq", "time", "action", "subject", "prev"), "CeremonyStep")
    malformed(is_uint(s["seq"]) and is_uint(s["time"]) and is_tstr(s["action"]) and is_tstr(s["subject"])
              and is_bstr(s["prev"], 32), "CeremonyStep types")
    return s


def mth(leaves):
    """RFC 9162 §2.1.1 Merkle Tree Hash over entry bytes."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def chain(a, roots):
    """spec/evidence.md §3 and AU7: returns (statement, device cert)."""
    invalid = "audit.attestation.invalid"
    certs = []
    for raw in a["chain"]:
        s = Signed(raw, CT_DEVICE_CERT)
        certs.append((s, check_cert(s.decode())))
    device = certs[0][1]
    if device["ca"]:
        raise BkvError(invalid, "chain[0] is not a device certificate")
    for (s, c), (_, parent) in zip(certs, certs[1:]):
        if not (parent["ca"] and parent["subject"] == c["issuer"] and s.verified_by(parent["key"])):
            raise BkvError(invalid, f"link {c['subject']} <- {parent['subject']}")
    top_sig, top = certs[-1]
    root = next((r for r in roots if r["name"] == top["issuer"]), None)
    if root is None or not top_sig.verified_by(root["key"]):
        raise BkvError("audit.attestation.untrusted", top["issuer"])
    st = Signed(a["statement"], CT_ATTESTATION)
    if not st.verified_by(device["key"]):
        raise BkvError(invalid, "statement not signed by the device key")
    statement = check_statement(st.decode())
    if statement["device"] != device["subject"]:
        raise BkvError(invalid, "statement names another device")
    return statement, device


def audit(evidence, logged_bundle, anchors_bytes, log_anchors_bytes, checkpoint, entries, roots_bytes,
          software, firmware, now):
    """spec/audit.md §2; returns the number of steps that passed, or raises the first failure."""
    # §1: the inputs are decoded first, in the order of §1.
    released = decode(logged_bundle)
    if not (isinstance(released, dict) and set(released) == {"v", "bundle", "proof"}):
        raise BkvError("cbor.schema", "LoggedBundle")
    bundle.parse_anchors(anchors_bytes)
    audit_log._anchors_decode(log_anchors_bytes)
    roots = decode(roots_bytes)
    if not (isinstance(roots, list) and all(isinstance(r, dict) and set(r) == {"name", "key"} for r in roots)):
        raise BkvError("cbor.schema", "vendor roots")
    for r in roots:
        if not isinstance(r["name"], str) or not isinstance(r["key"], dict):
            raise BkvError("cbor.schema", "vendor root types")
        bundle.check_fields(r["key"], ("alg", "key"), "PublicKey")
        if not (bundle.is_int(r["key"]["alg"]) and r["key"]["alg"] in (crypto.ED25519, crypto.ESP256)
                and bundle.is_bstr(r["key"]["key"])):
            raise BkvError("cbor.schema", "vendor root key")
    bundle_bytes = released["bundle"]
    # AU1: spec/validation-bundle.md §5.1 steps 1-9 without client state.
    bundle.verify_bundle(bundle_bytes, anchors_bytes, None, now)
    keyset = decode(decode(bundle_bytes, allowed_tags={18}).value[2])
    # AU2: the checkpoint, and the entries reproduce it.
    size, root, _ = audit_log.verify_checkpoint(checkpoint, audit_log._anchors(log_anchors_bytes))
    if len(entries) != size or not same(mth(entries), root):
        raise BkvError("log.inclusion.invalid", "entries do not reproduce the checkpoint")
    log = [decode(e) for e in entries]
    # AU3
    signed = Signed(evidence, CT_EVIDENCE)
    operators = bundle.parse_anchors(anchors_bytes)["operator"]
    op = next((a for a in operators if same(a["kid"], signed.kid) and a["not_before"] <= now <= a["not_after"]),
              None)
    if op is None or not signed.verified_by({"alg": op["alg"], "key": op["key"]}):
        raise BkvError("audit.evidence.signature")
    ev = check_evidence(signed.decode())
    # AU4
    ev_digest, bundle_digest = sha256(evidence), sha256(bundle_bytes)
    if not same(keyset["evidence"], ev_digest):
        raise BkvError("audit.evidence.mismatch")
    core = sha256(encode(dict(keyset, evidence=None)))
    if not (ev["fleet_id"] == keyset["fleet_id"] and ev["epoch"] == keyset["epoch"]
            and same(ev["keyset_core"], core)):
        raise BkvError("audit.keyset.mismatch")
    # AU5
    fleet, epoch = keyset["fleet_id"], keyset["epoch"]

    def ours(e):
        return isinstance(e, dict) and e.get("fleet_id") == fleet and e.get("epoch") == epoch

    def find(kind, digest):
        return next((n for n, e in enumerate(log) if ours(e) and e.get("type") == kind
                     and same(e.get("digest"), digest)), None)
    ev_at, bu_at = find("evidence", ev_digest), find("bundle", bundle_digest)
    if ev_at is None:
        raise BkvError("audit.evidence.unlogged")
    if bu_at is None:
        raise BkvError("audit.bundle.unlogged")
    if ev_at > bu_at:
        raise BkvError("audit.evidence.late")
    # AU6
    for e in log:
        if ours(e) and e.get("type") in ("bundle", "evidence") \
                and not same(e.get("digest"), ev_digest) and not same(e.get("digest"), bundle_digest):
            raise BkvError("audit.log.duplicate")
    # AU7
    attested = [chain(a, roots) for a in ev["attestations"]]
    for n, (_, a) in enumerate(attested):
        for _, b in attested[:n]:
            if (a["issuer"], a["subject"]) == (b["issuer"], b["subject"]) or a["key"] == b["key"]:
                raise BkvError("audit.device.reused", a["subject"])
    # AU8
    nodes = keyset["nodes"]
    if len(attested) != len(nodes):
        raise BkvError("audit.keys.mismatch", "one attestation per node")
    for node, a, (s, _) in zip(nodes, ev["attestations"], attested):
        if not (a["node_id"] == node["id"] == s["node_id"] and s["fleet_id"] == fleet and s["epoch"] == epoch
                and s["keys"] == node["keys"]):
            raise BkvError("audit.keys.mismatch", node["id"])
    # AU9
    if not same(ev["software"]["measurement"], software):
        raise BkvError("audit.measurement.mismatch", "software")
    for s, cert in attested:
        if not (same(s["firmware"], cert["firmware"]) and (firmware is None or same(firmware, s["firmware"]))
                and same(s["software"], software)):
            raise BkvError("audit.measurement.mismatch", s["node_id"])
    # AU10
    p = ev["policy"]
    if not (p["guess_limit"] == keyset["guess_limit"] and p["quorum"] == keyset["quorum"]
            and p["datacenters"] == [n["datacenter"] for n in nodes]):
        raise BkvError("audit.policy.mismatch")
    # AU11
    steps, prev, last = [], bytes(32), 0
    participants = ev["ceremony"]["participants"]
    for n, raw in enumerate(ev["ceremony"]["steps"]):
        s = Signed(raw, CT_STEP)
        step = check_step(s.decode())
        if step["seq"] != n or not same(step["prev"], prev) or step["time"] < last:
            raise BkvError("audit.transcript.broken", f"step {n}")
        who = next((p["name"] for p in participants if s.verified_by(p["key"])), None)
        if who is None:
            raise BkvError("audit.transcript.signature", f"step {n}")
        steps.append((step, who))
        prev, last = sha256(raw), step["time"]
    # AU12: the required actions, in order, as a subsequence; open first, close last.
    want = [("open", None)] + [("keygen", n["id"]) for n in nodes] + [("attest", n["id"]) for n in nodes] \
        + [("keyset", ev["keyset_core"].hex()), ("close", None)]
    it = iter(steps)
    for action, subject in want:
        if not any(s["action"] == action and (subject is None or s["subject"] == subject) for s, _ in it):
            raise BkvError("audit.transcript.incomplete", action)
    if steps[0][0]["action"] != "open" or steps[-1][0]["action"] != "close":
        raise BkvError("audit.transcript.incomplete", "open first, close last")
    signers = {who for _, who in steps}
    if any(p["name"] not in signers for p in participants):
        raise BkvError("audit.transcript.incomplete", "a participant signed nothing")
    return {"steps": 12}
