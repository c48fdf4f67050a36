"""Unit tests written from the spec's own examples and RFC 8949 Appendix A.

Run: python3 -m pytest conformance/harnesses/python/test_harness.py
"""

import hashlib
import json
import os
import subprocess
import sys
import unittest

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import bundle
import crypto
import fleet_replication
from dcbor import BkvError, check

HERE = os.path.dirname(os.path.abspath(__file__))


def code_of(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except BkvError as e:
        return e.code
    return None


class CborCheck(unittest.TestCase):
    def assertCode(self, hexdata, code):
        self.assertEqual(code_of(check, bytes.fromhex(hexdata)), code, hexdata)

    def test_rfc8949_appendix_a_deterministic_examples_pass(self):
        for h in ["00", "17", "1818", "1903e8", "1a000f4240", "1b000000e8d4a51000",
                  "3bffffffffffffffff", "20", "3903e7", "40", "4401020304", "60", "6161",
                  "6449455446", "62225c", "63e6b0b4", "64f0908591", "80", "83010203",
                  "8301820203820405", "a0", "a201020304", "a26161016162820203",
                  "826161a161626163", "f4", "f5", "f6",
                  "98190102030405060708090a0b0c0d0e0f101112131415161718181819"]:
            self.assertCode(h, None)

    def test_rule_1_malformed(self):
        for h in ["", "18", "1900", "42ff", "830102", "1c", "3d", "5e", "ff", "f800",
                  "f81f", "62c328", "61ff", "1f", "3f", "df"]:
            self.assertCode(h, "cbor.malformed")

    def test_rule_2_trailing(self):
        self.assertCode("0000", "cbor.trailing_bytes")
        self.assertCode("80ff", "cbor.trailing_bytes")

    def test_rule_3_non_minimal(self):
        for h in ["1800", "1817", "190017", "1900ff", "1a0000ffff", "1b00000000ffffffff",
                  "3817", "5800", "7800", "9800", "b800"]:
            self.assertCode(h, "cbor.non_minimal")

    def test_rule_4_indefinite(self):
        for h in ["5fff", "7fff", "9fff", "bfff", "9f01ff"]:
            self.assertCode(h, "cbor.indefinite_length")

    def test_rules_5_6_map_order_and_duplicates(self):
        # RFC 8949 §4.2.1 bytewise order: 10 (0x0a) < 100 (0x1864) < -1 (0x20) < "z" < "aa"
        self.assertCode("a50a00186400200061" "7a00626161" "00", None)
        self.assertCode("a26261610061" "7a00", "cbor.map.unsorted")
        # RFC 7049 length-first order would accept -1 before 100; bytewise rejects it
        self.assertCode("a22000186400", "cbor.map.unsorted")
        self.assertCode("a202000100", "cbor.map.unsorted")
        self.assertCode("a201000100", "cbor.map.duplicate_key")

    def test_rules_7_8_float_and_simple(self):
        for h in ["f90000", "fa00000000", "fb0000000000000000"]:
            self.assertCode(h, "cbor.float")
        for h in ["f7", "e0", "f3", "f820", "f8ff"]:
            self.assertCode(h, "cbor.simple.unsupported")

    def test_rule_9_depth(self):
        # top-level item is depth 0; an item of any type at depth 33 is rejected
        self.assertCode("81" * 32 + "00", None)
        self.assertCode("81" * 32 + "80", None)
        self.assertCode("81" * 33 + "00", "cbor.depth_exceeded")
        self.assertCode("81" * 33 + "80", "cbor.depth_exceeded")
        # met before the deeper item's bytes are read
        self.assertCode("81" * 33 + "f7", "cbor.depth_exceeded")
        self.assertCode("81" * 33 + "ff", "cbor.depth_exceeded")
        self.assertCode("81" * 33, "cbor.malformed")  # no item at depth 33: truncated
        self.assertCode("81" * 32 + "a2000000", "cbor.depth_exceeded")

    def test_rule_10_tags(self):
        self.assertCode("c001", "cbor.tag.unknown")
        self.assertEqual(code_of(check, bytes.fromhex("d28440a0f640"), {18}), None)
        self.assertCode("d81200", "cbor.non_minimal")  # head read before tag check

    def test_truncation_met_at_array_or_map_head(self):
        # an array of n elements or a map of n pairs with n > bytes left after the head
        self.assertCode("82f7", "cbor.malformed")
        self.assertCode("8af900ff", "cbor.malformed")
        self.assertCode("8200f7", "cbor.simple.unsupported")
        self.assertCode("a3000001f7", "cbor.simple.unsupported")  # 3 pairs, 4 bytes left
        self.assertCode("9801", "cbor.non_minimal")  # the head's own rules come first

    def test_first_violation_met_wins(self):
        self.assertCode("82f90000" "1800", "cbor.float")
        self.assertCode("821800f90000", "cbor.non_minimal")
        self.assertCode("1800ff", "cbor.non_minimal")  # before trailing bytes
        self.assertCode("a2616201616101" "ff", "cbor.map.unsorted")


class Keys(unittest.TestCase):
    def test_kid_example_conventions_4_3(self):
        key = b"\x01" * 32
        enc = bytes.fromhex("8232" "5820") + key
        self.assertEqual(cbor2.dumps([-19, key]), enc)
        self.assertEqual(crypto.kid(-19, key), hashlib.sha256(enc).digest())

    def test_alg_codes(self):
        self.assertEqual(code_of(crypto.check_alg, -8), "cose.algorithm.deprecated")
        self.assertEqual(code_of(crypto.check_alg, -7), "cose.algorithm.deprecated")
        self.assertEqual(code_of(crypto.check_alg, -35), "cose.algorithm.unsupported")
        self.assertEqual(code_of(crypto.check_alg, -19), None)

    def test_small_order_points(self):
        identity = (1).to_bytes(32, "little")
        self.assertTrue(crypto.ed_small_order(crypto.ed_decompress(identity)))
        pub = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw,
                                                                     PublicFormat.Raw)
        self.assertFalse(crypto.ed_small_order(crypto.ed_decompress(pub)))
        # y = 2 is not on the curve
        self.assertEqual(code_of(crypto.check_public_key, -19, (2).to_bytes(32, "little")),
                         "cose.key.invalid")
        self.assertEqual(code_of(crypto.check_public_key, -9, b"\x04" + b"\x00" * 64),
                         "cose.key.invalid")


def _ed_mul(k, point):
    acc = (0, 1)
    while k:
        if k & 1:
            acc = crypto._ed_add(acc, point)
        point, k = crypto._ed_add(point, point), k >> 1
    return acc


def small_order_r_signature(seed, msg):
    """(public key, signature) with R the identity and S = k*a: valid under the cofactorless
    RFC 8032 equation, which OpenSSL accepts, but not under strict verification."""
    base = crypto.ed_decompress((4 * pow(5, crypto._P - 2, crypto._P) % crypto._P)
                                .to_bytes(32, "little"))
    h = hashlib.sha512(seed).digest()
    a = (int.from_bytes(h[:32], "little") & ((1 << 254) - 8)) | (1 << 254)
    x, y = _ed_mul(a, base)
    pub = (y | ((x & 1) << 255)).to_bytes(32, "little")
    r = (1).to_bytes(32, "little")
    k = int.from_bytes(hashlib.sha512(r + pub + msg).digest(), "little") % crypto._L
    return pub, r + (k * a % crypto._L).to_bytes(32, "little")


class Ed25519Strict(unittest.TestCase):
    def test_small_order_r_rejected(self):
        pub, sig = small_order_r_signature(b"\x07" * 32, b"msg")
        # OpenSSL alone accepts this signature (raises if not):
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, b"msg")
        self.assertFalse(crypto.verify(-19, pub, b"msg", sig))

    def test_small_order_key_rejected(self):
        ident = (1).to_bytes(32, "little")
        self.assertIsNone(code_of(crypto.check_public_key, -19, ident))  # a valid point
        self.assertFalse(crypto.verify(-19, ident, b"any", ident + bytes(32)))

    def test_s_not_reduced_rejected(self):
        sk = Ed25519PrivateKey.generate()
        pub = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        sig = sk.sign(b"m")
        s = int.from_bytes(sig[32:], "little") + crypto._L
        self.assertTrue(crypto.verify(-19, pub, b"m", sig))
        self.assertFalse(crypto.verify(-19, pub, b"m", sig[:32] + s.to_bytes(32, "little")))

    def test_non_canonical_encodings_decode_like_dalek(self):
        p = crypto._P
        self.assertIsNotNone(crypto.ed_decompress((p + 1).to_bytes(32, "little")))
        self.assertIsNotNone(crypto.ed_decompress((1 | 1 << 255).to_bytes(32, "little")))


# --- a bundle built by hand from spec/validation-bundle.md §4 ---
class Signer:
    def __init__(self, alg):
        self.alg = alg
        if alg == -19:
            self.sk = Ed25519PrivateKey.generate()
            self.pub = self.sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        else:
            self.sk = ec.generate_private_key(ec.SECP256R1())
            self.pub = self.sk.public_key().public_bytes(Encoding.X962,
                                                         PublicFormat.UncompressedPoint)
        self.kid = crypto.kid(alg, self.pub)

    def sign(self, msg):
        if self.alg == -19:
            return self.sk.sign(msg)
        r, s = decode_dss_signature(self.sk.sign(msg, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ed_pub():
    return Signer(-19).pub


def make_keyset(epoch=1, prev=None, nodes=3, fleet_id="fleet-a", nb=1000, na=2000):
    opaque = os.urandom(32)
    return cbor2.dumps({
        "v": 1, "fleet_id": fleet_id, "epoch": epoch, "not_before": nb, "not_after": na,
        "guess_limit": 10, "quorum": nodes // 2 + 1,
        "nodes": [{"id": f"n{i}", "datacenter": f"dc{i}", "keys": [
            {"role": "session", "suite": 32, "key": os.urandom(32)},
            {"role": "opaque", "suite": 1, "key": opaque},
            {"role": "signing", "suite": -19, "key": ed_pub()}]} for i in range(nodes)],
        "prev": prev, "evidence": None}, canonical=True)


def make_bundle(tp, op, payload, iss="tp", sub="fleet-a", iat=1500, extra_prot=None,
                ct="application/bkv-fleet-key-set+cbor"):
    prot = {1: tp.alg, 3: ct, 4: tp.kid, 15: {1: iss, 2: sub, 6: iat}}
    prot.update(extra_prot or {})
    pb = cbor2.dumps(prot, canonical=True)
    sig = tp.sign(cbor2.dumps(["Signature1", pb, b"", payload]))
    cpb = cbor2.dumps({1: op.alg, 4: op.kid}, canonical=True)
    csig = op.sign(cbor2.dumps(["CounterSignatureV2", pb, cpb, b"", payload, [sig]]))
    return cbor2.dumps(cbor2.CBORTag(18, [pb, {11: [cpb, {}, csig]}, payload, sig]),
                       canonical=True)


def make_anchors(tp, op, pinned=(), fleet_id="fleet-a", window=(0, 10**6)):
    def anchor(name, s):
        return {"name": name, "key": {"alg": s.alg, "key": s.pub},
                "not_before": window[0], "not_after": window[1]}
    return cbor2.dumps({"v": 1, "fleet_id": fleet_id, "third_party": [anchor("tp", tp)],
                        "operator": [anchor("op", op)], "pinned": list(pinned)},
                       canonical=True)


class Bundles(unittest.TestCase):
    def setUp(self):
        self.tp, self.op = Signer(-19), Signer(-9)
        self.anchors = make_anchors(self.tp, self.op)
        self.ks1 = make_keyset()
        self.b1 = make_bundle(self.tp, self.op, self.ks1)

    def verify(self, b, state=None, now=1500, anchors=None, inter=()):
        return code_of(bundle.verify_bundle, b, anchors or self.anchors, state, now, inter)

    def test_valid_and_outputs(self):
        out = bundle.verify_bundle(self.b1, self.anchors, None, 1500)
        self.assertEqual(out["epoch"], 1)
        self.assertEqual(out["keyset_sha256"], hashlib.sha256(self.ks1).digest())
        self.assertEqual(out["bundle_sha256"], hashlib.sha256(self.b1).digest())

    def test_roles_swapped(self):
        self.assertEqual(self.verify(make_bundle(self.op, self.tp, self.ks1)),
                         "bundle.signer.unknown")

    def test_signature_and_countersignature_tampered(self):
        t = cbor2.loads(self.b1)
        pb, unp, payload, sig = t.value
        bad = cbor2.dumps(cbor2.CBORTag(18, [pb, dict(unp), payload, bytes(64)]))
        self.assertEqual(self.verify(bad), "bundle.signature.invalid")
        cs = list(unp[11])
        cs[2] = bytes(64)
        bad = cbor2.dumps(cbor2.CBORTag(18, [pb, {11: cs}, payload, sig]))
        self.assertEqual(self.verify(bad), "bundle.countersignature.invalid")

    def test_header_rules(self):
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, self.ks1, ct="text/plain")),
                         "bundle.header.content_type")
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, self.ks1,
                                                 extra_prot={7: b""})),
                         "bundle.countersignature.forbidden_label")
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, self.ks1,
                                                 extra_prot={5: b""})),
                         "bundle.header.misplaced")

    def test_step1_header_maps(self):
        # kid as text is not an RFC 9052 header map
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, self.ks1,
                                                 extra_prot={4: "k"})),
                         "bundle.envelope.not_sign1")
        t = cbor2.loads(self.b1)
        pb, unp, payload, sig = t.value
        for bad_pb in (b"\xff", pb + b"\x00", cbor2.dumps([1])):
            b = cbor2.dumps(cbor2.CBORTag(18, [bad_pb, dict(unp), payload, sig]))
            self.assertEqual(self.verify(b), "bundle.envelope.not_sign1")
        # zero-length protected header: the empty map in step 1, then not deterministic CBOR
        b = cbor2.dumps(cbor2.CBORTag(18, [b"", dict(unp), payload, sig]))
        self.assertEqual(self.verify(b), "cbor.malformed")

    def test_forbidden_label_before_strict_protected_check(self):
        prot = cbor2.loads(cbor2.loads(self.b1).value[0])
        items = sorted(prot.items(), key=lambda kv: -kv[0]) + [(12, b"x")]  # unsorted
        pb = bytes([0xa0 + len(items)]) + b"".join(cbor2.dumps(k) + cbor2.dumps(v)
                                                   for k, v in items)
        t = cbor2.loads(self.b1)
        b = cbor2.dumps(cbor2.CBORTag(18, [pb, dict(t.value[1]), t.value[2], t.value[3]]))
        self.assertEqual(self.verify(b), "bundle.countersignature.forbidden_label")

    def test_content_type_before_claims(self):
        b = make_bundle(self.tp, self.op, self.ks1, ct="a/b", extra_prot={15: {1: "tp"}})
        self.assertEqual(self.verify(b), "bundle.header.content_type")

    def test_anchor_lists(self):
        def anchors(tps, ops):
            return cbor2.dumps({"v": 1, "fleet_id": "fleet-a", "third_party": tps,
                                "operator": ops, "pinned": []}, canonical=True)

        def anc(name, s, nb=0, na=10**6):
            return {"name": name, "key": {"alg": s.alg, "key": s.pub}, "not_before": nb,
                    "not_after": na}
        self.assertEqual(self.verify(self.b1, anchors=anchors([], [anc("op", self.op)])),
                         "bundle.signer.unknown")
        # the first anchor with the kid is used, even if a later one would be valid
        a = anchors([anc("tp", self.tp, 0, 10), anc("tp", self.tp)], [anc("op", self.op)])
        self.assertEqual(self.verify(self.b1, anchors=a), "bundle.signer.expired")
        bad = anc("op", self.op)
        bad["key"]["alg"] = -8
        self.assertEqual(self.verify(self.b1, anchors=anchors([anc("tp", self.tp)], [bad])),
                         "cbor.schema")

    def test_claims_window_rollback_chain(self):
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, self.ks1, iss="x")),
                         "bundle.claims.mismatch")
        self.assertEqual(self.verify(self.b1, now=999), "bundle.validity.not_yet_valid")
        self.assertEqual(self.verify(self.b1, now=2001), "bundle.validity.expired")
        d1 = hashlib.sha256(self.b1).digest()
        b2 = make_bundle(self.tp, self.op, make_keyset(epoch=2, prev=d1))
        self.assertEqual(self.verify(b2, state=(1, d1)), None)
        self.assertEqual(self.verify(self.b1, state=(2, b"\0" * 32)), "bundle.epoch.rollback")
        self.assertEqual(self.verify(self.b1, state=(1, b"\0" * 32)),
                         "bundle.epoch.equivocation")
        self.assertEqual(self.verify(b2, state=(1, b"\0" * 32)), "bundle.chain.broken")
        d2 = hashlib.sha256(b2).digest()
        b3 = make_bundle(self.tp, self.op, make_keyset(epoch=3, prev=d2))
        self.assertEqual(self.verify(b3, state=(1, d1)), "bundle.chain.broken")
        self.assertEqual(self.verify(b3, state=(1, d1), inter=[b2]), None)

    def test_keyset_rules(self):
        ks = make_keyset(epoch=1, prev=b"\0" * 32)
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, ks)),
                         "bundle.keyset.invalid")
        m = cbor2.loads(make_keyset())
        m["nodes"][0]["keys"][0]["role"] = "other"
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, cbor2.dumps(m, canonical=True))),
                         "cbor.schema")
        m = cbor2.loads(make_keyset())
        m["nodes"][0]["keys"][0]["role"] = ["session"]  # unhashable: no crash, a schema error
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, cbor2.dumps(m, canonical=True))),
                         "cbor.schema")
        m = cbor2.loads(make_keyset())
        m["nodes"], m["quorum"] = [], 1
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, cbor2.dumps(m, canonical=True))),
                         "bundle.keyset.invalid")
        ks = make_keyset(fleet_id="fleet-b")
        self.assertEqual(self.verify(make_bundle(self.tp, self.op, ks, sub="fleet-b")),
                         "bundle.fleet.mismatch")

    def test_pinned(self):
        d = hashlib.sha256(self.ks1).digest()
        anchors = make_anchors(self.tp, self.op, pinned=[d])
        self.assertEqual(bundle.verify_pinned(self.ks1, anchors, 1500)["keyset_sha256"], d)
        self.assertEqual(code_of(bundle.verify_pinned, self.ks1, self.anchors, 1500),
                         "pinned.digest.mismatch")
        self.assertEqual(code_of(bundle.verify_pinned, self.ks1, anchors, 999),
                         "bundle.validity.not_yet_valid")
        self.assertEqual(code_of(bundle.verify_pinned, self.ks1, anchors, 2001),
                         "pinned.fleet.retired")


class SessionResponses(unittest.TestCase):
    """spec/session.md §3.3, §4.2, §4.3: a node and a client of this harness agree."""

    def setUp(self):
        import session
        self.session = session
        kp = session.SUITE.kem.derive_key_pair(b"\x07" * 32)
        self.sk = kp.private_key.to_private_bytes()
        self.pk = kp.public_key.to_public_bytes()
        self.rid = bytes(range(16))
        self.request, self.rk = session.seal_request(self.pk, "f", 3, "n", b"\x11" * 32, self.rid,
                                                     1000, b"body")

    def respond(self, result, nonce=b"\x33" * 12):
        return self.session.seal_response(self.sk, "f", 3, "n", 1000, self.request, nonce,
                                          result)["response"]

    def test_node_opens_and_client_reads_the_answer(self):
        opened = self.session.open_request(self.sk, "f", 3, "n", 1000, self.request)
        self.assertEqual((opened["request_id"], opened["body"]), (self.rid, b"body"))
        self.assertEqual(self.session.open_response(self.respond({"ok": b"answer"}), self.rk, self.rid),
                         b"answer")
        self.assertEqual(code_of(self.session.open_response, self.respond({"error": "vault.record.locked"}),
                                 self.rk, self.rid), "vault.record.locked")

    def test_the_same_ikm_e_gives_the_same_request_and_key(self):
        again = self.session.seal_request(self.pk, "f", 3, "n", b"\x11" * 32, self.rid, 1000, b"body")
        self.assertEqual(again, (self.request, self.rk))
        _, other_rk = self.session.seal_request(self.pk, "f", 3, "n", b"\x12" * 32, self.rid, 1000, b"body")
        self.assertNotEqual(other_rk, self.rk)
        self.assertEqual(code_of(self.session.open_response, self.respond({"ok": b"x"}), other_rk, self.rid),
                         "session.response.invalid")

    def test_untrusted_responses(self):
        ok = bytearray(self.respond({"ok": b"answer"}))
        ok[-1] ^= 1
        import dcbor
        for response in [bytes(ok), b"\xff", dcbor.encode({"v": 1}),
                         dcbor.encode({"v": 1, "error": "vault.record.locked"}),
                         dcbor.encode({"v": 1, "error": "session.nonsense"}),
                         dcbor.encode({"v": 2, "error": "session.request.stale"})]:
            self.assertEqual(code_of(self.session.open_response, response, self.rk, self.rid),
                             "session.response.invalid", response.hex())
        self.assertEqual(code_of(self.session.open_response,
                                 dcbor.encode({"v": 1, "error": "session.request.stale"}), self.rk, self.rid),
                         "session.request.stale")
        self.assertEqual(code_of(self.session.open_response, self.respond({"ok": b"x"}), self.rk,
                                 bytes(16)), "session.response.invalid")

    def test_hpke_kat_rejects_a_changed_vector(self):
        with open(os.path.join(HERE, "..", "..", "..", "protocol", "tests", "data",
                               "hpke-rfc9180-x25519-sha256-chacha20poly1305-base.json")) as f:
            v = json.load(f)
        self.session.hpke_kat(v)
        v["exports"][0]["exported_value"] = "00" * 32
        self.assertEqual(code_of(self.session.hpke_kat, v), "session.open.failed")


class Ristretto(unittest.TestCase):
    """ristretto.py against RFC 9496 Appendix A."""

    def test_multiples_of_the_generator_a_1(self):
        import ristretto
        want = ["0000000000000000000000000000000000000000000000000000000000000000",
                "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76",
                "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919"]
        for k, h in enumerate(want):
            self.assertEqual(ristretto.encode(ristretto.base_mul(k)).hex(), h, k)
        for k in range(1, 16):
            enc = ristretto.encode(ristretto.base_mul(k))
            self.assertEqual(ristretto.encode(ristretto.decode(enc)), enc, k)

    def test_bad_encodings_a_2(self):
        import ristretto
        for h in ["00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # not < p
                  "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # not < p
                  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p
                  "0100000000000000000000000000000000000000000000000000000000000000",  # negative
                  "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"]:
            self.assertIsNone(ristretto.decode(bytes.fromhex(h)), h)


class Vault(unittest.TestCase):
    """spec/vault.md §8.2 and spec/rotation.md §3-§6 on vault.py's state machine."""

    T = 1_800_000_000

    def cmd(self, name, rid, record=None, time=None, **fields):
        import dcbor
        body = {"request_id": bytes([rid]) * 16, "time": self.T if time is None else time}
        if record is not None:
            body["record"] = bytes([record]) * 32
        body.update(fields)
        return dcbor.encode({name: body})

    def register(self, rid, record, reg_len=224, wrapped_len=48):
        return self.cmd("register", rid, record, registration=bytes([record]) * reg_len,
                        wrapped_key=bytes([record]) * wrapped_len)

    def run_sm(self, commands, limit=3, awaiting=False):
        import dcbor
        import vault
        sm = vault.VaultStateMachine(limit, awaiting)
        return [dcbor.decode(sm.apply(c)) for c in commands]

    def test_counter_lockout_and_reset(self):
        out = self.run_sm([self.register(1, 1), self.cmd("attempt_start", 2, 1),
                           self.cmd("attempt_success", 3, 1, generation=1),
                           self.cmd("attempt_start", 4, 1), self.cmd("attempt_start", 5, 1),
                           self.cmd("attempt_start", 6, 1), self.cmd("attempt_start", 7, 1),
                           self.cmd("attempt_success", 8, 1, generation=1)])
        self.assertEqual(out[0], {"registered": {"remaining": 3}})
        self.assertEqual(out[1]["attempt"]["remaining"], 2)
        self.assertEqual(out[1]["attempt"]["registration"], b"\x01" * 224)
        self.assertEqual(out[2], {"released": {"remaining": 3}})
        self.assertEqual([o["attempt"]["remaining"] for o in out[3:6]], [2, 1, 0])
        self.assertEqual(out[6], {"error": {"code": "vault.record.locked"}})
        self.assertEqual(out[7], {"released": {"remaining": 0}})

    def test_unknown_id_counts_down_and_locks(self):
        out = self.run_sm([self.cmd("attempt_start", i, 9) for i in range(1, 5)])
        self.assertEqual(out[0], {"attempt": {"remaining": 2, "generation": 0}})
        self.assertEqual(out[3], {"error": {"code": "vault.record.locked"}})

    def test_order_of_checks(self):
        bad_both = self.cmd("register", 1, None, registration=b"", wrapped_key=b"")
        import dcbor
        m = dcbor.decode(bad_both)
        m["register"]["request_id"] = b"\x01" * 15
        m["register"]["record"] = b"\x01" * 15
        out = self.run_sm([dcbor.encode(m), self.register(2, 2, reg_len=223, wrapped_len=47),
                           self.register(3, 3, reg_len=223), self.register(3, 3),
                           self.register(4, 3), self.register(3, 4)])
        self.assertEqual([o.get("error", {}).get("code") if isinstance(o, dict) else o for o in out],
                         ["cbor.schema", "vault.wrapped_key.invalid", "vault.message.invalid", None,
                          "vault.record.exists", "session.request.replayed"])

    def test_replay_window(self):
        out = self.run_sm([self.register(1, 1), self.cmd("attempt_start", 2, 1, time=self.T - 601),
                           self.cmd("attempt_start", 2, 1, time=self.T - 600),
                           self.cmd("attempt_start", 3, 1, time=self.T + 601),
                           self.cmd("attempt_start", 1, 1, time=self.T + 601)])
        self.assertEqual(out[1], {"error": {"code": "session.request.stale"}})
        self.assertEqual(out[2]["attempt"]["remaining"], 2)
        self.assertEqual(out[3]["attempt"]["remaining"], 1)
        # T is now T + 601: request 1 (time T) is forgotten (A4), so its id with a current
        # time is a new request; with its old time it would be stale.
        self.assertEqual(out[4]["attempt"]["remaining"], 0)

    def test_rotation_phases(self):
        successor = b"\x07" * 32
        out = self.run_sm([self.register(1, 2), self.register(2, 1), self.cmd("attempt_start", 3, 1),
                           self.cmd("import", 4, from_epoch=1, records=[]),
                           self.cmd("retire", 5, successor=successor),
                           self.cmd("retire", 6, successor=successor),
                           self.cmd("retire", 7, successor=b"\x08" * 32),
                           self.cmd("attempt_start", 8, 1),
                           self.cmd("destroy", 9),
                           self.cmd("retire", 10, successor=successor)])
        self.assertEqual(out[3], {"error": {"code": "rotation.import.refused"}})
        records = out[4]["retired"]["records"]
        self.assertEqual([(r["id"][0], r["state"], r["remaining"]) for r in records],
                         [(1, "registered", 2), (2, "registered", 3)])
        self.assertEqual(out[5], out[4])
        self.assertEqual([o["error"]["code"] for o in out[6:8]], ["rotation.fleet.retired"] * 2)
        self.assertEqual(out[8], "destroyed")
        self.assertEqual(out[9], {"error": {"code": "rotation.fleet.retired"}})

    def test_import(self):
        rec = {"id": b"\x01" * 32, "state": "registered", "registration": b"\x01" * 224,
               "wrapped_key": b"\x01" * 48, "remaining": 1}
        locked = {"id": b"\x02" * 32, "state": "locked", "remaining": 0}
        out = self.run_sm([self.cmd("attempt_start", 1, 1),
                           self.cmd("import", 2, from_epoch=1, records=[locked, rec]),
                           self.cmd("import", 3, from_epoch=1, records=[dict(rec, remaining=4)]),
                           self.cmd("import", 4, from_epoch=1, records=[rec, locked]),
                           self.cmd("attempt_start", 5, 1), self.cmd("attempt_start", 6, 2),
                           self.cmd("import", 7, from_epoch=1, records=[])], awaiting=True)
        self.assertEqual([o["error"]["code"] for o in out[:3]],
                         ["rotation.import.pending", "rotation.export.mismatch",
                          "rotation.export.mismatch"])
        self.assertEqual(out[3], {"imported": {"records": 2}})
        self.assertEqual(out[4]["attempt"], {"remaining": 0, "generation": 1, "registration": b"\x01" * 224,
                                             "wrapped_key": b"\x01" * 48})
        self.assertEqual([o["error"]["code"] for o in out[5:]],
                         ["vault.record.locked", "rotation.import.refused"])

    def test_setup_decode(self):
        import ristretto
        import vault
        k = 5
        setup = bytes(64) + k.to_bytes(32, "little") + ristretto.encode(ristretto.base_mul(9))
        self.assertEqual(vault.setup_decode(setup)["public_key"], ristretto.encode(ristretto.base_mul(5)))
        order = ristretto._L.to_bytes(32, "little")
        for bad in [setup[:-1], setup + b"\x00", setup[:64] + bytes(32) + setup[96:],
                    setup[:64] + order + setup[96:], setup[:96] + bytes(32)]:
            self.assertEqual(code_of(vault.setup_decode, bad), "vault.setup.invalid")


class Rotation(unittest.TestCase):
    """spec/rotation.md §2 (RS1-RS3 after a first-contact verification) and §4 (opening a
    sealed export), on rotation.py, with bundles signed by the keys of the Bundles tests."""

    def setUp(self):
        self.tp, self.op = Signer(crypto.ED25519), Signer(crypto.ED25519)
        self.anchors = make_anchors(self.tp, self.op)
        self.old_ks = make_keyset()
        self.old_b = make_bundle(self.tp, self.op, self.old_ks)

    def successor(self, **changes):
        ks = cbor2.loads(make_keyset(epoch=2, prev=hashlib.sha256(self.old_b).digest()))
        # make_keyset draws a fresh OPAQUE key: the successor takes the old one (§1)
        old_opaque = next(k["key"] for k in cbor2.loads(self.old_ks)["nodes"][0]["keys"]
                          if k["role"] == "opaque")
        opaque = changes.pop("opaque", old_opaque)
        ks.update(changes)
        for n in ks["nodes"]:
            for k in n["keys"]:
                if k["role"] == "opaque":
                    k["key"] = opaque
        return make_bundle(self.tp, self.op, cbor2.dumps(ks, canonical=True))

    def check(self, new_b, old_ks=None, now=1500):
        import rotation
        return code_of(rotation.check_successor, old_ks or self.old_ks, self.old_b, new_b,
                       self.anchors, now)

    def test_successor_rules(self):
        self.assertIsNone(self.check(self.successor()))
        for changes, code in [({"epoch": 3}, "rotation.successor.invalid"),
                              ({"prev": b"\x00" * 32}, "rotation.successor.invalid"),
                              ({"opaque": b"\x21" * 32}, "rotation.opaque.mismatch"),
                              ({"guess_limit": 11}, "rotation.policy.mismatch"),
                              ({"epoch": 3, "guess_limit": 11}, "rotation.successor.invalid"),
                              ({"opaque": b"\x21" * 32, "guess_limit": 11},
                               "rotation.opaque.mismatch")]:
            self.assertEqual(self.check(self.successor(**changes)), code, changes)

    def test_first_contact_and_order(self):
        # The old bundle itself: no rollback state, so RS1 decides.
        self.assertEqual(self.check(self.old_b), "rotation.successor.invalid")
        # The bundle verification comes before RS1 (not_after 2000 < now).
        self.assertEqual(self.check(self.successor(epoch=3), now=2001), "bundle.validity.expired")
        # The old FleetKeySet is decoded (step 7's codes) before the new bundle is verified.
        bad = cbor2.loads(self.old_ks)
        bad["quorum"] = 3
        # Flip the last byte (a randomised ECDSA signature can end in any byte, so setting it
        # to a constant would leave the bundle unchanged one time in 256).
        good = self.successor()
        tampered = good[:-1] + bytes([good[-1] ^ 0x01])
        self.assertEqual(self.check(tampered, cbor2.dumps(bad, canonical=True)),
                         "bundle.keyset.invalid")
        self.assertEqual(self.check(tampered), "bundle.signature.invalid")

    NODE_SK = b"\x42" * 32
    DIGEST = b"\x5a" * 32
    REG = {"id": b"\x01" * 16, "state": "registered", "registration": b"\x01" * 224,
           "wrapped_key": b"\x01" * 48, "remaining": 3}
    LOCKED = {"id": b"\x01" * 17, "state": "locked", "remaining": 0}
    UNREG = {"id": b"\x02" * 16, "state": "unregistered", "remaining": 10}

    def seal(self, ex=None, env=None, pk_of=None, aad=b""):
        import dcbor
        import rotation
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        from session import SUITE
        ex = dict({"v": 1, "fleet_id": "fleet-a", "from_epoch": 1, "to_epoch": 2,
                   "successor": self.DIGEST, "guess_limit": 10,
                   "records": [self.REG, self.LOCKED, self.UNREG]}, **(ex or {}))
        env = dict({"v": 1, "fleet_id": "fleet-a", "from_epoch": 1, "to_epoch": 2,
                    "node_id": "n0"}, **(env or {}))
        pk = X25519PrivateKey.from_private_bytes(pk_of or self.NODE_SK).public_key().public_bytes_raw()
        enc, ctx = SUITE.create_sender_context(
            SUITE.kem.deserialize_public_key(pk),
            info=rotation.info(env["fleet_id"], env["from_epoch"], env["to_epoch"], env["node_id"]))
        return dcbor.encode(dict(env, enc=enc, ct=ctx.seal(dcbor.encode(ex), aad=aad)))

    def open(self, sealed, epoch=2, node_id="n0"):
        import rotation
        try:
            return rotation.open_export(self.NODE_SK, "fleet-a", epoch, node_id, self.DIGEST, 10,
                                        sealed)["records"]
        except BkvError as e:
            return e.code

    def test_open_export(self):
        self.assertEqual(self.open(self.seal()), 3)
        self.assertEqual(self.open(self.seal({"records": []})), 0)
        self.assertEqual(self.open(self.seal(), node_id="n1"), "rotation.export.mismatch")
        self.assertEqual(self.open(self.seal(), epoch=3), "rotation.export.mismatch")
        self.assertEqual(self.open(self.seal(env={"from_epoch": 0})), "rotation.export.mismatch")
        self.assertEqual(self.open(self.seal(pk_of=b"\x43" * 32)), "rotation.open.failed")
        self.assertEqual(self.open(self.seal(aad=b"x")), "rotation.open.failed")
        import dcbor
        sealed = self.seal()
        env = dcbor.decode(sealed)
        for field in ("ct", "enc"):
            flipped = dict(env, **{field: env[field][:-1] + bytes([env[field][-1] ^ 1])})
            self.assertEqual(self.open(dcbor.encode(flipped)), "rotation.open.failed", field)
        short = dict(env, enc=env["enc"][:31])  # the .size 32 is checked at the open
        self.assertEqual(self.open(dcbor.encode(short)), "rotation.open.failed")
        self.assertEqual(self.open(sealed + b"\x00"), "cbor.trailing_bytes")

    def test_export_fields_and_records(self):
        mismatch = "rotation.export.mismatch"
        for ex, code in [({"successor": b"\x00" * 32}, mismatch),
                         ({"guess_limit": 9}, mismatch),
                         ({"fleet_id": "fleet-b"}, mismatch),
                         ({"to_epoch": 3}, mismatch),
                         ({"v": 2}, "cbor.schema"),
                         ({"extra": 1}, "cbor.schema"),
                         ({"records": [dict(self.REG, state="gone")]}, "cbor.schema"),
                         ({"records": [dict(self.REG, registration=b"\x01" * 223)]}, mismatch),
                         ({"records": [dict(self.REG, remaining=0)]}, mismatch),
                         ({"records": [dict(self.UNREG, remaining=11)]}, mismatch),
                         ({"records": [dict(self.LOCKED, remaining=1)]}, mismatch),
                         ({"records": [dict(self.UNREG, wrapped_key=b"\x01" * 48)]}, mismatch),
                         ({"records": [dict(self.REG, id=b"\x01" * 15)]}, mismatch),
                         ({"records": [self.UNREG, self.REG]}, mismatch),
                         ({"records": [self.REG, self.REG]}, mismatch),
                         # bytewise order: 01*17 after its prefix 01*16, 01*32 before 02*16
                         ({"records": [dict(self.REG, id=b"\x01" * 32), self.UNREG]}, 2)]:
            self.assertEqual(self.open(self.seal(ex)), code, ex)
        self.assertEqual(self.open(self.seal(env={"v": 2})), "cbor.schema")


class VectorFiles(unittest.TestCase):
    def test_edge_cases_and_vectors_pass(self):
        import glob

        import run_vectors
        files = sorted(glob.glob(os.path.join(HERE, "edge_cases", "*.json")))
        files += sorted(glob.glob(os.path.join(HERE, "..", "..", "..", "vectors", "v1",
                                               "*.json")))
        self.assertTrue(files)
        self.assertEqual(run_vectors.main(files), 0)

    def test_runner_usage(self):
        """run_vectors.py: --help, a missing file, a harness that never answers."""
        import contextlib
        import io

        import run_vectors
        with contextlib.redirect_stdout(io.StringIO()) as out, self.assertRaises(SystemExit) as e:
            run_vectors.main(["--help"])
        self.assertEqual(e.exception.code, 0)
        self.assertIn("--timeout", out.getvalue())
        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertEqual(run_vectors.main(["no-such-file.json"]), 2)
        self.assertIn("no such vector file", err.getvalue())
        with self.assertRaises(SystemExit) as e:
            run_vectors.main(["--harness", "sleep 5", "--timeout", "0.3"])
        self.assertIn("did not answer hello within 0.3 s", str(e.exception.code))


class FleetRpc(unittest.TestCase):
    """spec/fleet-replication.md §4 rule 2 on messages built by hand from the §4 CDDL."""

    def setUp(self):
        self.sks = [Ed25519PrivateKey.generate() for _ in range(3)]
        self.keys = [k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for k in self.sks]

    def rpc(self, signer=0, sig=None, **change):
        msg = {"v": 1, "purpose": "bkv fleet rpc", "fleet": "f", "epoch": 3, "from": 0, "to": 1,
               "kind": "vote", "nonce": bytes(16), "time_ms": 10_000, "body": b"b"}
        msg.update(change)
        m = cbor2.dumps(msg, canonical=True)
        return cbor2.dumps({"v": 1, "msg": m, "sig": sig or self.sks[signer].sign(m)}, canonical=True)

    def code(self, rpc, now=10_000, request=None):
        return code_of(fleet_replication.open_rpc, "f", 3, self.keys, 1, now, 2000, rpc, request)

    def test_steps_in_order(self):
        self.assertIsNone(self.code(self.rpc()))
        self.assertEqual(self.code(self.rpc(kind="gossip")), "cbor.schema")
        self.assertEqual(self.code(self.rpc(sig=bytes(63), epoch=2)), "cbor.schema")
        self.assertEqual(self.code(self.rpc(epoch=2, **{"from": 5})), "fleet.rpc.fleet_mismatch")
        self.assertEqual(self.code(self.rpc(to=2, **{"from": 5})), "fleet.rpc.sender_unknown")
        self.assertEqual(self.code(self.rpc(signer=2, to=2)), "fleet.rpc.recipient_mismatch")
        self.assertEqual(self.code(self.rpc(signer=2), now=0), "fleet.rpc.signature_invalid")
        self.assertEqual(self.code(self.rpc(), now=12_001), "fleet.rpc.stale")

    def test_window_is_inclusive(self):
        self.assertIsNone(self.code(self.rpc(), now=12_000))
        self.assertIsNone(self.code(self.rpc(), now=8_000))

    def test_reply(self):
        reply = self.rpc(signer=2, kind="vote.reply", **{"from": 2})
        self.assertIsNone(self.code(reply, request=("vote", 2, bytes(16))))
        self.assertEqual(self.code(reply, request=("vote", 0, bytes(16))), "fleet.rpc.reply_mismatch")
        self.assertEqual(self.code(reply, request=("append", 2, bytes(16))), "fleet.rpc.reply_mismatch")
        self.assertEqual(self.code(reply, request=("vote", 2, bytes(15) + b"\x01")),
                         "fleet.rpc.reply_mismatch")


class HarnessProcess(unittest.TestCase):
    def test_contract(self):
        lines = [{"type": "hello", "version": 1},
                 {"type": "case", "id": "cbor::1", "operation": "cbor_check",
                  "input": {"data": "a201000100"}},
                 {"type": "case", "id": "cbor::2", "operation": "cbor_check",
                  "input": {"data": "83010203"}}]
        p = subprocess.run([sys.executable, os.path.join(HERE, "bkv_harness.py")],
                           input="".join(json.dumps(x) + "\n" for x in lines),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0)
        out = [json.loads(x) for x in p.stdout.splitlines()]
        self.assertEqual(out[0]["features"], ["cbor", "validation_bundle", "audit_log", "session",
                                              "backup_envelope", "audit", "fleet_replication",
                                              "rotation", "vault", "opaque_rfc9807", "signer_api"])
        self.assertEqual((out[1]["id"], out[1]["actual_result"], out[1]["error_code"]),
                         ("cbor::1", "invalid", "cbor.map.duplicate_key"))
        self.assertEqual((out[2]["actual_result"], out[2]["error_code"]), ("valid", None))


if __name__ == "__main__":
    unittest.main()
