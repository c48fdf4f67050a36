#!/usr/bin/env python3
"""Generate edge_cases/*.json: cases beyond vectors/v1, in the vector file format
(spec/conformance.md §1), each with the result the spec text (as clarified on this branch)
requires. Flag "ReferenceDiffers": the Rust reference harness answers otherwise (see
README.md; the flags were last checked against it when rotation.json was added). Run them
with: python3 run_vectors.py edge_cases/*.json
Regenerate with: python3 conformance/harnesses/python/edge_cases.py (fixed keys, so the
output is stable).
"""

import hashlib
import json
import os

import cbor2
from cbor2 import CBORSimpleValue, CBORTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import crypto
import dcbor
import rotation
from session import SUITE
from test_harness import small_order_r_signature

HERE = os.path.dirname(os.path.abspath(__file__))
CT = "application/bkv-fleet-key-set+cbor"


def enc(x):
    return cbor2.dumps(x, canonical=True)


class Key:
    def __init__(self, seed):
        self.sk = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
        self.pub = self.sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.alg, self.kid = -19, crypto.kid(-19, self.pub)

    def sign(self, msg):
        return self.sk.sign(msg)


class SmallOrderR(Key):
    def __init__(self):
        self.pub = small_order_r_signature(b"\x07" * 32, b"")[0]
        self.alg, self.kid = -19, crypto.kid(-19, self.pub)

    def sign(self, msg):
        return small_order_r_signature(b"\x07" * 32, msg)[1]


class Identity(Key):
    def __init__(self):
        self.pub = (1).to_bytes(32, "little")
        self.alg, self.kid = -19, crypto.kid(-19, self.pub)

    def sign(self, msg):
        return self.pub + bytes(32)


TP, OP = Key(1), Key(2)


def keyset(epoch=1, prev=None, role0="session"):
    return enc({"v": 1, "fleet_id": "fleet-a", "epoch": epoch, "not_before": 1000,
                "not_after": 2000, "guess_limit": 10, "quorum": 2, "prev": prev,
                "evidence": None,
                "nodes": [{"id": f"n{i}", "datacenter": f"dc{i}", "keys": [
                    {"role": role0 if i == 0 else "session", "suite": 32,
                     "key": bytes([0x10 + i]) * 32},
                    {"role": "opaque", "suite": 1, "key": b"\x20" * 32},
                    {"role": "signing", "suite": -19, "key": Key(0x30 + i).pub}]}
                    for i in range(3)]})


def anchor(name, k, nb=0, na=10**6, alg=None):
    return {"name": name, "key": {"alg": alg or k.alg, "key": k.pub}, "not_before": nb,
            "not_after": na}


def anchors(tps=None, ops=None, pinned=()):
    return enc({"v": 1, "fleet_id": "fleet-a",
                "third_party": [anchor("tp", TP)] if tps is None else tps,
                "operator": [anchor("op", OP)] if ops is None else ops,
                "pinned": list(pinned)})


def bundle(payload=None, prot=None, pb=None, unprot=None, signer=TP, cprot=None):
    payload = payload or keyset()
    if pb is None:
        p = {1: signer.alg, 3: CT, 4: signer.kid, 15: {1: "tp", 2: "fleet-a", 6: 1500}}
        p.update(prot or {})
        pb = enc({k: v for k, v in p.items() if v is not DROP})
    sig = signer.sign(enc(["Signature1", pb, b"", payload]))
    cpb = enc({k: v for k, v in ({1: OP.alg, 4: OP.kid} | (cprot or {})).items()
               if v is not DROP})
    csig = OP.sign(enc(["CounterSignatureV2", pb, cpb, b"", payload, [sig]]))
    u = {11: [cpb, {}, csig]}
    u.update(unprot or {})
    return enc(CBORTag(18, [pb, u, payload, sig]))


def det(x):
    """Deterministic encoding with bytewise key order (cbor2's canonical mode sorts keys
    length-first, which differs once keys mix major types)."""
    if isinstance(x, dict):
        items = sorted((det(k), det(v)) for k, v in x.items())
        return head(5, len(items)) + b"".join(k + v for k, v in items)
    if isinstance(x, (list, tuple)):
        return head(4, len(x)) + b"".join(det(v) for v in x)
    return cbor2.dumps(x)


def head(major, n):
    return bytes([major << 5 | n]) if n < 24 else bytes([major << 5 | 24, n])


DROP = object()
GOOD_PROT = {1: -19, 3: CT, 4: TP.kid, 15: {1: "tp", 2: "fleet-a", 6: 1500}}


def raw_map(items):
    """A map encoded in the given item order (so possibly unsorted) or with repeats."""
    assert len(items) < 24
    return bytes([0xA0 + len(items)]) + b"".join(enc(k) + enc(v) for k, v in items)


def vb(b, a=None, now=1500, state=None, inter=()):
    return {"bundle": b.hex(), "anchors": (a or anchors()).hex(), "now": now,
            "state": state, "intermediates": [x.hex() for x in inter]}


def case(comment, inp, error=None, flags=(), output=None):
    c = {"comment": comment, "flags": list(flags), "input": inp,
         "result": "invalid" if error else "valid", "errorCode": error}
    if output:
        c["output"] = output
    return c


def bundle_cases():
    unsorted = sorted(GOOD_PROT.items(), key=lambda kv: -kv[0])
    b1 = bundle()
    d1 = hashlib.sha256(b1).digest()
    b2 = bundle(keyset(epoch=2, prev=d1))
    b3 = bundle(keyset(epoch=3, prev=hashlib.sha256(b2).digest()))
    ks = keyset()
    bd = [
        case("unsorted protected header with label 12: step 2.1 comes before 2.2",
             vb(bundle(pb=raw_map(unsorted + [(12, b"x")]))),
             "bundle.countersignature.forbidden_label"),
        case("wrong content type and bad claims: content type is checked first",
             vb(bundle(prot={3: "a/b", 15: {1: "tp"}})), "bundle.header.content_type"),
        case("kid as a text string is no RFC 9052 header map",
             vb(bundle(prot={4: "k" * 32})), "bundle.envelope.not_sign1"),
        case("protected header bytes are not well-formed CBOR",
             vb(bundle(pb=b"\xff")), "bundle.envelope.not_sign1"),
        case("protected header holds an array", vb(bundle(pb=enc([1]))),
             "bundle.envelope.not_sign1"),
        case("protected header repeats label 1", vb(bundle(pb=raw_map(
            [(1, -19)] + sorted(GOOD_PROT.items())))), "bundle.envelope.not_sign1"),
        case("zero-length protected header: the empty map, then not one CBOR item",
             vb(bundle(pb=b"")), "cbor.malformed"),
        case("label 11 holds [[1]]: not an array of countersignatures, malformed",
             vb(bundle(unprot={11: [[1]]})), "bundle.countersignature.malformed"),
        case("label 11 holds [countersignature, 1]: malformed",
             vb(bundle(unprot={11: [[b"", {}, b""], 1]})), "bundle.countersignature.malformed"),
        case("label 11 holds [[h'', {}, h'']]: an array of countersignature shapes",
             vb(bundle(unprot={11: [[b"", {}, b""]]})), "bundle.countersignature.multiple"),
        case("countersignature with an extra label and alg -8: labels first",
             vb(bundle(cprot={1: -8, 3: "x"})), "bundle.countersignature.malformed"),
        case("countersignature with alg -8 and no kid: alg before kid",
             vb(bundle(cprot={1: -8, 4: DROP})), "cose.algorithm.deprecated"),
        case("no third-party anchors", vb(b1, anchors(tps=[])), "bundle.signer.unknown"),
        case("two anchors with the signer's kid, the first expired",
             vb(b1, anchors(tps=[anchor("tp", TP, 0, 10), anchor("tp", TP)])),
             "bundle.signer.expired"),
        case("an anchor key with alg -8 does not match the PublicKey CDDL",
             vb(b1, anchors(ops=[anchor("op", OP), anchor("x", TP, alg=-8)])), "cbor.schema"),
        case("a node key with an unknown role", vb(bundle(keyset(role0="other"))),
             "cbor.schema"),
        case("Ed25519 signature with a small-order R (OpenSSL alone accepts it)",
             vb(bundle(signer=SmallOrderR()), anchors(tps=[anchor("tp", SmallOrderR())]))
             , "bundle.signature.invalid"),
        case("identity public key, R = identity, S = 0",
             vb(bundle(signer=Identity()), anchors(tps=[anchor("tp", Identity())])),
             "bundle.signature.invalid"),
        case("intermediates without a held state", vb(b3, inter=[b2]), None,
             output={"epoch": 3, "bundle_sha256": hashlib.sha256(b3).hexdigest()}),
        case("content type text without a slash", vb(bundle(prot={3: "x"})),
             "bundle.header.content_type"),
        case("empty content type", vb(bundle(prot={3: ""})), "bundle.header.content_type"),
        case("content type integer 70000", vb(bundle(prot={3: 70000})),
             "bundle.header.content_type"),
        case("content type integer -1", vb(bundle(prot={3: -1})),
             "bundle.header.content_type"),
        case("empty kid", vb(bundle(prot={4: b""})), "bundle.header.missing"),
        case("empty IV in the unprotected header", vb(bundle(unprot={5: b""})),
             "bundle.header.misplaced"),
        case("label 7 holding a byte string", vb(bundle(prot={7: b""})),
             "bundle.countersignature.forbidden_label"),
        case("simple value 99 in the protected header", vb(bundle(prot={33: CBORSimpleValue(99)})),
             "cbor.simple.unsupported"),
        case("protected label -2^64 (an int, outside i64)", vb(bundle(
            pb=bytes([0xA5]) + enc(GOOD_PROT)[1:] + b"\x3b" + b"\xff" * 8 + b"\x00")),
             "bundle.header.misplaced"),
    ]
    ks_bkey = det({(b"epoch" if k == "epoch" else k): v for k, v in cbor2.loads(ks).items()})
    bad_anchor = anchor("op", OP)
    bad_anchor["key"] = {b"alg": -19, "key": OP.pub}
    bd += [
        case("no CWT claims and an extra protected label 33: step 2.3 before 2.4",
             vb(bundle(prot={15: DROP, 33: b"x"})), "bundle.header.missing"),
        case("malformed CWT claims and an extra protected label 13: step 2.3 before 2.4",
             vb(bundle(prot={15: {1: "tp"}, 13: b"x"})), "bundle.header.missing"),
        case("alg -20 (an unassigned integer)", vb(bundle(prot={1: -20})),
             "cose.algorithm.unsupported"),
        case("countersignature alg -1 (an unassigned integer)", vb(bundle(cprot={1: -1})),
             "cose.algorithm.unsupported"),
        case("FleetKeySet with the byte-string key h'65706f6368' instead of \"epoch\"",
             vb(bundle(ks_bkey)), "cbor.schema"),
        case("PublicKey of an anchor with the byte-string key h'616c67' instead of \"alg\"",
             vb(b1, det({"v": 1, "fleet_id": "fleet-a", "third_party": [anchor("tp", TP)],
                         "operator": [bad_anchor], "pinned": []})), "cbor.schema"),
    ]
    pinned = [
        case("pinned FleetKeySet with a byte-string key",
             {"keyset": ks_bkey.hex(), "anchors": anchors(
                 pinned=[hashlib.sha256(ks_bkey).digest()]).hex(), "now": 1500},
             "cbor.schema"),
        case("pinned mode with no over-the-air anchors",
             {"keyset": ks.hex(), "anchors": anchors(tps=[], ops=[],
                                                     pinned=[hashlib.sha256(ks).digest()]).hex(),
              "now": 1500}, None, output={"epoch": 1,
                                          "keyset_sha256": hashlib.sha256(ks).hexdigest()}),
    ]
    return [("verify_bundle", "§5", bd), ("verify_pinned", "§6", pinned)]


def rotation_cases():
    """spec/rotation.md §2 (check orders) and §4 (steps 1-5), with fixed keys."""
    old_ks = keyset()
    old_b = bundle(old_ks)

    def successor(epoch=2, prev=None, limit=10, opaque=b"\x20" * 32, not_after=2000):
        k = cbor2.loads(keyset())
        k.update(epoch=epoch, prev=prev or hashlib.sha256(old_b).digest(), guess_limit=limit,
                 not_after=not_after)
        for n in k["nodes"]:
            for key in n["keys"]:
                if key["role"] == "opaque":
                    key["key"] = opaque
        return bundle(enc(k))

    def cs(new_b, old_keyset=old_ks, now=1500):
        return {"old_keyset": old_keyset.hex(), "old_bundle": old_b.hex(),
                "new_bundle": new_b.hex(), "anchors": anchors().hex(), "now": now}

    bad_quorum = cbor2.loads(old_ks)
    bad_quorum["quorum"] = 7
    bad_sig = bytearray(successor())
    bad_sig[-1] ^= 1
    check = [
        case("epoch 2, chained, same OPAQUE key and limit", cs(successor())),
        case("the old FleetKeySet is decoded before the new bundle is verified",
             cs(bytes(bad_sig), enc(bad_quorum)), "bundle.keyset.invalid"),
        case("the old bundle offered as its own successor: a first contact, so RS1, not "
             "bundle.epoch.*", cs(old_b), "rotation.successor.invalid"),
        case("epoch 3 and another guess limit: RS1 before RS3", cs(successor(3, limit=11)),
             "rotation.successor.invalid"),
        case("another OPAQUE key and another guess limit: RS2 before RS3",
             cs(successor(opaque=b"\x21" * 32, limit=11)), "rotation.opaque.mismatch"),
        case("epoch 3 and expired: the bundle verification first",
             cs(successor(3, not_after=1400)), "bundle.validity.expired"),
    ]

    node_sk = bytes([0x42]) * 32
    pk = SUITE.kem.deserialize_public_key(
        X25519PrivateKey.from_private_bytes(node_sk).public_key().public_bytes_raw())
    digest = b"\x5a" * 32
    reg = {"id": b"\x01" * 16, "state": "registered", "registration": b"\x01" * 224,
           "wrapped_key": b"\x01" * 48, "remaining": 3}
    locked = {"id": b"\x01" * 17, "state": "locked", "remaining": 0}
    unreg = {"id": b"\x02" * 16, "state": "unregistered", "remaining": 10}
    export = {"v": 1, "fleet_id": "fleet-a", "from_epoch": 1, "to_epoch": 2, "successor": digest,
              "guess_limit": 10, "records": [reg, locked, unreg]}

    def sealed(ex=None, env=None, enc_cut=False):
        ex = dict(export, **(ex or {}))
        env = dict({"v": 1, "fleet_id": "fleet-a", "from_epoch": 1, "to_epoch": 2,
                    "node_id": "n0"}, **(env or {}))
        info = rotation.info(env["fleet_id"], env["from_epoch"], env["to_epoch"], env["node_id"])
        e, ctx = SUITE.create_sender_context(pk, info=info,
                                             eks=SUITE.kem.derive_key_pair(b"\x44" * 32))
        env.update(enc=e[:31] if enc_cut else e, ct=ctx.seal(dcbor.encode(ex), aad=b""))
        return dcbor.encode(env)

    def oe(s):
        return {"node_key": node_sk.hex(), "fleet_id": "fleet-a", "epoch": 2, "node_id": "n0",
                "bundle_sha256": digest.hex(), "guess_limit": 10, "sealed": s.hex()}

    opened = [
        case("ids in bytewise order: an id before a longer id it is a prefix of", oe(sealed()),
             output={"records": 3}),
        case("ids in length-first order are not sorted",
             oe(sealed({"records": [unreg, dict(locked, id=b"\x01" * 32)]})),
             "rotation.export.mismatch"),
        case("SealedExport v 2 is cbor.schema (conventions §6), before the fields of step 2",
             oe(sealed(env={"v": 2, "node_id": "n9"})), "cbor.schema"),
        case("RecordExport v 2 is cbor.schema (conventions §6), before the fields of step 5",
             oe(sealed({"v": 2, "guess_limit": 9})), "cbor.schema"),
        case("enc of 31 bytes: the .size is checked at the open", oe(sealed(enc_cut=True)),
             "rotation.open.failed"),
        case("a registration of 223 bytes: the .size is step 5's, not cbor.schema",
             oe(sealed({"records": [dict(reg, registration=b"\x01" * 223)]})),
             "rotation.export.mismatch"),
        case("a successor of 31 bytes: the .size is step 5's, not cbor.schema",
             oe(sealed({"successor": digest[:31]})), "rotation.export.mismatch"),
        case("another fleet_id and a state outside the three names: step 4 before step 5",
             oe(sealed({"fleet_id": "fleet-b", "records": [dict(reg, state="gone")]})),
             "cbor.schema"),
        case("an unregistered record with more guesses than the limit",
             oe(sealed({"records": [dict(unreg, remaining=11)]})), "rotation.export.mismatch"),
        case("no records", oe(sealed({"records": []})), output={"records": 0}),
    ]
    return [("rotation_check_successor", "§2", check), ("rotation_open_export", "§4", opened)]


def cbor_cases():
    c = [("818181818181818181818181818181818181818181818181818181818181818180", None,
          "33 nested arrays, the innermost empty: no item at depth 33"),
         ("81" * 33 + "f7", "cbor.depth_exceeded", "depth is checked before the item's value"),
         ("81" * 33 + "ff", "cbor.depth_exceeded", "depth is checked before a stray break"),
         ("81" * 33, "cbor.malformed", "input ends where an item at depth 33 would start"),
         ("82f7", "cbor.malformed", "array of 2 with 1 byte left: truncated at the head"),
         ("8af900ff", "cbor.malformed", "array of 10 with 3 bytes left: truncated at the head"),
         ("a3000001f7", "cbor.simple.unsupported", "map of 3 pairs with 4 bytes left"),
         ("a3010002000100", "cbor.map.unsorted", "keys 1, 2, 1: compared with the key before"),
         ("a2020001f90000", "cbor.map.unsorted", "key order checked before the value"),
         ("9801", "cbor.non_minimal", "the head's own rules before truncation")]
    return [("cbor_check", "§3.3", [case(cm, {"data": h}, e) for h, e, cm in c])]


def write(area, spec, groups, name):
    tests = []
    for op, section, cases in groups:
        for c in cases:
            c["tcId"] = len(tests) + 1
            tests.append((op, section, c))
    out = {"formatVersion": 1, "area": area, "spec": spec,
           "generator": "python3 conformance/harnesses/python/edge_cases.py",
           "numberOfTests": len(tests),
           "notes": {"ReferenceDiffers": "the Rust reference harness answers otherwise"},
           "testGroups": [{"operation": op, "specSection": section,
                           "tests": [{k: c[k] for k in ("tcId", "comment", "flags", "input",
                                                         "result", "errorCode", "output")
                                      if k in c} for o, s, c in tests if o == op]}
                          for op, section, _ in groups]}
    os.makedirs(os.path.join(HERE, "edge_cases"), exist_ok=True)
    with open(os.path.join(HERE, "edge_cases", name), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    write("cbor", "spec/conventions.md", cbor_cases(), "cbor.json")
    write("validation_bundle", "spec/validation-bundle.md", bundle_cases(),
          "validation_bundle.json")
    write("rotation", "spec/rotation.md", rotation_cases(), "rotation.json")
