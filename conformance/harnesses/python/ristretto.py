"""ristretto255 (RFC 9496) decoding, encoding and scalar multiplication, for
spec/vault.md §2.3 (the ServerSetup's server key and fake-record key) and for opaque.py.

No maintained Python library exposes ristretto255 (PyNaCl binds libsodium without its
ristretto functions; pysodium needs a system libsodium), so this follows the RFC's
pseudocode (§4.3.1 Decode, §4.3.2 Encode) over the field constants of crypto.py, with one
scalar multiplication in extended coordinates (added with opaque.py, by its author). It is
a test harness, not constant time. Checked against RFC 9496 Appendix A in
test_harness.py and against the reference through the vectors.
"""

from crypto import _D, _L, _P, _SQRT_M1, ed_decompress

# RFC 9496 §4.1
_INVSQRT_A_MINUS_D = 54469307008909316920995813868745141605393597292927456921205312896311721017578
_BASE = ed_decompress(bytes.fromhex("58" + "66" * 31))  # the edwards25519 base point


def _neg(x):
    return x & 1 == 1  # IS_NEGATIVE: the low bit of the canonical field element


def _abs(x):
    return (-x) % _P if _neg(x) else x


def _sqrt_ratio_m1(u, v):
    """RFC 9496 §4.2: (was_square, r)."""
    r = (u * pow(v, 3, _P)) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    check = v * r * r % _P
    correct = check == u % _P
    flipped = check == (-u) % _P
    flipped_i = check == (-u * _SQRT_M1) % _P
    if flipped or flipped_i:
        r = r * _SQRT_M1 % _P
    return correct or flipped, _abs(r)


def decode(b):
    """RFC 9496 §4.3.1: the affine point (x, y), or None for a non-canonical or invalid
    encoding."""
    if len(b) != 32:
        return None
    s = int.from_bytes(b, "little")
    if s >= _P or _neg(s):
        return None
    ss = s * s % _P
    u1, u2 = (1 - ss) % _P, (1 + ss) % _P
    u2_sqr = u2 * u2 % _P
    v = (-(_D * u1 * u1) - u2_sqr) % _P
    was_square, invsqrt = _sqrt_ratio_m1(1, v * u2_sqr % _P)
    den_x = invsqrt * u2 % _P
    den_y = invsqrt * den_x * v % _P
    x = _abs(2 * s * den_x % _P)
    y = u1 * den_y % _P
    if not was_square or _neg(x * y % _P) or y == 0:
        return None
    return x, y


def encode(point):
    """RFC 9496 §4.3.2 for an affine point (z = 1, t = x * y)."""
    x0, y0 = point
    z0, t0 = 1, x0 * y0 % _P
    u1 = (z0 + y0) * (z0 - y0) % _P
    u2 = x0 * y0 % _P
    _, invsqrt = _sqrt_ratio_m1(1, u1 * u2 * u2 % _P)
    den1, den2 = invsqrt * u1 % _P, invsqrt * u2 % _P
    z_inv = den1 * den2 * t0 % _P
    if _neg(t0 * z_inv % _P):
        x, y, den_inv = y0 * _SQRT_M1 % _P, x0 * _SQRT_M1 % _P, den1 * _INVSQRT_A_MINUS_D % _P
    else:
        x, y, den_inv = x0, y0, den2
    if _neg(x * z_inv % _P):
        y = (-y) % _P
    return _abs(den_inv * (z0 - y) % _P).to_bytes(32, "little")


# --- edwards25519 in extended coordinates (X:Y:Z:T), a = -1: the one scalar multiplication of
# this harness (base_mul here, every OPRF and Diffie-Hellman product in opaque.py) ---
_D2 = 2 * _D % _P
IDENTITY = (0, 1, 1, 0)


def ext_add(p, q):
    """add-2008-hwcd-3 (complete for a = -1)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def ext_mul(k, p):
    """k times the extended point p (double and add)."""
    acc = IDENTITY
    while k:
        if k & 1:
            acc = ext_add(acc, p)
        p = ext_add(p, p)
        k >>= 1
    return acc


def to_ext(affine):
    x, y = affine
    return x, y, 1, x * y % _P


def to_affine(p):
    x, y, z, _ = p
    zi = pow(z, _P - 2, _P)
    return x * zi % _P, y * zi % _P


BASE_EXT = to_ext(_BASE)


def base_mul(k):
    """k times the generator, as an affine point."""
    return to_affine(ext_mul(k, BASE_EXT))


def scalar(b):
    """A canonical scalar (32 bytes little-endian, less than the group order), or None."""
    k = int.from_bytes(b, "little")
    return k if len(b) == 32 and k < _L else None
