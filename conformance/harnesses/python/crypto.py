"""Signature verification for spec/conventions.md §4 (Ed25519 strict, ESP256), and kids.

Ed25519: `cryptography` (OpenSSL) verifies RFC 8032 and rejects S >= L. It does not reject
small-order public keys or R, so those checks (the ed25519-dalek `verify_strict` extras
the spec requires) are done here in pure Python, as is the point-validity check of keys.
"""

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from dcbor import BkvError, encode

ED25519, ESP256 = -19, -9
DEPRECATED = {-8: "EdDSA", -7: "ES256"}

# --- edwards25519 arithmetic, only for point validity and small-order checks ---
_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_L = 2**252 + 27742317777372353535851937790883648493


def ed_decompress(b):
    """Decode a 32-byte point encoding, or None. Like ed25519-dalek, y is taken mod p and
    x = 0 with the sign bit set is accepted (RFC 8032 §5.1.3 would reject both)."""
    if len(b) != 32:
        return None
    y = (int.from_bytes(b, "little") & ((1 << 255) - 1)) % _P
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x2 = u * pow(v, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if (x & 1) != (b[31] >> 7):
        x = (_P - x) % _P
    return x, y


def _ed_add(p1, p2):
    (x1, y1), (x2, y2) = p1, p2
    t = _D * x1 * x2 * y1 * y2 % _P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, _P - 2, _P) % _P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P) % _P
    return x3, y3


def ed_small_order(point):
    q = point
    for _ in range(3):
        q = _ed_add(q, q)
    return q == (0, 1)


# --- keys ---
def check_alg(alg):
    if type(alg) is int and alg in DEPRECATED:
        raise BkvError("cose.algorithm.deprecated", f"{DEPRECATED[alg]} ({alg})")
    if alg not in (ED25519, ESP256) or type(alg) is not int:
        raise BkvError("cose.algorithm.unsupported", f"alg {alg!r}")


def check_public_key(alg, key):
    """spec/conventions.md §4.2: length and point validity (cose.key.invalid)."""
    if alg == ED25519:
        if len(key) != 32 or ed_decompress(key) is None:
            raise BkvError("cose.key.invalid", "not a valid Ed25519 point")
    else:
        if len(key) != 65 or key[0] != 4:
            raise BkvError("cose.key.invalid", "not an uncompressed P-256 point")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
        except ValueError:
            raise BkvError("cose.key.invalid", "not a point on P-256") from None


def kid(alg, key):
    """spec/conventions.md §4.3: SHA-256 of deterministic CBOR [alg, key]."""
    return hashlib.sha256(encode([alg, key])).digest()


def verify(alg, key, message, signature):
    """True iff `signature` is valid over `message`; key already checked."""
    if alg == ED25519:
        if len(signature) != 64:
            return False
        r = ed_decompress(signature[:32])
        a = ed_decompress(key)
        if r is None or a is None or ed_small_order(r) or ed_small_order(a):
            return False
        if int.from_bytes(signature[32:], "little") >= _L:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
            return True
        except InvalidSignature:
            return False
    if len(signature) != 64:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if r == 0 or s == 0:
        return False
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    try:
        pub.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False
