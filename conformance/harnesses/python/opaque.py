"""OPAQUE (RFC 9807) for bkv's suite, spec/vault.md §2: the OPRF ristretto255-SHA512 of
RFC 9497 (mode 0), 3DH over ristretto255 with SHA-512, HKDF-SHA512 and HMAC-SHA512, and a
KSF given by the caller (Argon2id for bkv, the identity for RFC 9807 Appendix C).

Written from RFC 9807, RFC 9497, RFC 9496 §4.3.4 and RFC 9380 §5.3.1 (not from any
implementation). Every random value is a parameter, named as in RFC 9807 Appendix C, so the
functions are deterministic. Group arithmetic is the pure-Python edwards25519 of crypto.py
and ristretto.py: a test harness, not constant time. Checked against RFC 9807's own vectors
(vectors/v1/opaque_rfc9807.json) and, for bkv's suite, the `vault` vectors.
"""

import hashlib
import hmac

import ristretto
from crypto import _D, _L, _P, _SQRT_M1
from dcbor import BkvError

NN = NSEED = NOK = NPK = 32  # RFC 9807 §7 for ristretto255-SHA512
NH = NM = NX = 64

# --- ristretto255 over ristretto.py's extended coordinates ---
_add, _mul, _ext = ristretto.ext_add, ristretto.ext_mul, ristretto.to_ext
# RFC 9496 §4.1
_ONE_MINUS_D_SQ = (1 - _D * _D) % _P
_D_MINUS_ONE_SQ = (_D - 1) * (_D - 1) % _P
_SQRT_AD_MINUS_ONE = 25063068953384623474111414158702152701244531502492656460079210482610430750235
assert _SQRT_AD_MINUS_ONE * _SQRT_AD_MINUS_ONE % _P == (-_D - 1) % _P


def serialize(p):
    """RFC 9496 §4.3.2 Encode."""
    return ristretto.encode(ristretto.to_affine(p))


def deserialize(b, what):
    """RFC 9497 §2.1 DeserializeElement: a canonical encoding of a non-identity element."""
    affine = ristretto.decode(b)
    if affine is None or b == bytes(32):
        raise BkvError("vault.message.invalid", f"{what} is not a ristretto255 element")
    return _ext(affine)


def base_mul(k):
    return _mul(k, ristretto.BASE_EXT)


def _map(t):
    """RFC 9496 §4.3.4 MAP."""
    r0 = (int.from_bytes(t, "little") & ((1 << 255) - 1)) % _P
    r = _SQRT_M1 * r0 * r0 % _P
    u = (r + 1) * _ONE_MINUS_D_SQ % _P
    v = (-1 - r * _D) * (r + _D) % _P
    was_square, s = ristretto._sqrt_ratio_m1(u, v)
    c = -1
    if not was_square:
        s = (-ristretto._abs(s * r0 % _P)) % _P
        c = r
    n = (c * (r - 1) * _D_MINUS_ONE_SQ - v) % _P
    w0, w1 = 2 * s * v % _P, n * _SQRT_AD_MINUS_ONE % _P
    w2, w3 = (1 - s * s) % _P, (1 + s * s) % _P
    return w0 * w3 % _P, w2 * w1 % _P, w1 * w3 % _P, w0 * w2 % _P


def expand_message_xmd(msg, dst, n):
    """RFC 9380 §5.3.1 with SHA-512."""
    ell = -(-n // 64)
    assert ell <= 255 and len(dst) <= 255
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(bytes(128) + msg + n.to_bytes(2, "big") + b"\0" + dst_prime).digest()
    b = [hashlib.sha512(b0 + b"\1" + dst_prime).digest()]
    for i in range(2, ell + 1):
        prev = bytes(x ^ y for x, y in zip(b0, b[-1]))
        b.append(hashlib.sha512(prev + bytes([i]) + dst_prime).digest())
    return b"".join(b)[:n]


# --- RFC 9497 OPRF(ristretto255, SHA-512), mode 0 ---
_CONTEXT = b"OPRFV1-\x00-ristretto255-SHA512"


def _i2osp(n, length):
    return n.to_bytes(length, "big")


def _lv(b):
    return _i2osp(len(b), 2) + b


def hash_to_group(msg):
    u = expand_message_xmd(msg, b"HashToGroup-" + _CONTEXT, 64)
    return _add(_map(u[:32]), _map(u[32:]))


def hash_to_scalar(msg, dst):
    return int.from_bytes(expand_message_xmd(msg, dst, 64), "little") % _L


def derive_key_pair(seed, info):
    """RFC 9497 §3.2.1 DeriveKeyPair: (sk, pk)."""
    derive_input = seed + _lv(info)
    for counter in range(256):
        sk = hash_to_scalar(derive_input + _i2osp(counter, 1), b"DeriveKeyPair" + _CONTEXT)
        if sk:
            return sk, base_mul(sk)
    raise BkvError("vault.message.invalid", "DeriveKeyPair")


def scalar(b, what):
    k = ristretto.scalar(b)
    if not k:
        raise BkvError("vault.message.invalid", f"{what} is not a non-zero canonical scalar")
    return k


def blind(password, blind_scalar):
    """RFC 9497 §3.3.1 Blind with the given blind: the serialized blinded element."""
    p = hash_to_group(password)
    if serialize(p) == bytes(32):
        raise BkvError("vault.message.invalid", "the input hashes to the identity")
    return serialize(_mul(blind_scalar, p))


def finalize(password, blind_scalar, evaluated):
    n = _mul(pow(blind_scalar, _L - 2, _L), deserialize(evaluated, "the evaluated element"))
    return hashlib.sha512(_lv(password) + _lv(serialize(n)) + b"Finalize").digest()


# --- RFC 9807 ---
def _extract(salt, ikm):
    return hmac.new(salt or bytes(NH), ikm, hashlib.sha512).digest()


def _expand(prk, info, n):
    out, t = b"", b""
    for i in range(1, -(-n // NH) + 1):
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha512).digest()
        out += t
    return out[:n]


def _mac(key, msg):
    return hmac.new(key, msg, hashlib.sha512).digest()


def _expand_label(secret, label, context, n):
    label = b"OPAQUE-" + label
    return _expand(secret, _i2osp(n, 2) + _i2osp(len(label), 1) + label + _i2osp(len(context), 1) + context, n)


def dh_key_pair(seed):
    """RFC 9807 §6.4.2 DeriveDiffieHellmanKeyPair."""
    return derive_key_pair(seed, b"OPAQUE-DeriveDiffieHellmanKeyPair")


def oprf_key(oprf_seed, credential_identifier):
    """RFC 9807 §4.3.1: the OPRF key of a credential identifier."""
    seed = _expand(oprf_seed, credential_identifier + b"OprfKey", NOK)
    return derive_key_pair(seed, b"OPAQUE-DeriveKeyPair")[0]


def _cleartext(server_public_key, client_public_key, server_identity, client_identity):
    s = server_public_key if server_identity is None else server_identity
    c = client_public_key if client_identity is None else client_identity
    return server_public_key + _lv(s) + _lv(c)


def _randomized_password(password, blind_scalar, evaluated, ksf):
    y = finalize(password, blind_scalar, evaluated)
    return _extract(b"", y + ksf(y))


def _store(rpw, server_public_key, ids, envelope_nonce):
    """RFC 9807 §4.1.2 Store: (envelope, client_public_key, masking_key, export_key)."""
    masking_key = _expand(rpw, b"MaskingKey", NH)
    auth_key = _expand(rpw, envelope_nonce + b"AuthKey", NH)
    export_key = _expand(rpw, envelope_nonce + b"ExportKey", NH)
    _, client_pk = dh_key_pair(_expand(rpw, envelope_nonce + b"PrivateKey", NSEED))
    client_public_key = serialize(client_pk)
    creds = _cleartext(server_public_key, client_public_key, *ids)
    envelope = envelope_nonce + _mac(auth_key, envelope_nonce + creds)
    return envelope, client_public_key, masking_key, export_key


def _recover(rpw, server_public_key, envelope, ids):
    """RFC 9807 §4.1.3 Recover: (client_private_key, client_public_key, export_key), or
    None when the envelope does not open."""
    nonce, tag = envelope[:NN], envelope[NN:]
    auth_key = _expand(rpw, nonce + b"AuthKey", NH)
    export_key = _expand(rpw, nonce + b"ExportKey", NH)
    sk, pk = dh_key_pair(_expand(rpw, nonce + b"PrivateKey", NSEED))
    client_public_key = serialize(pk)
    creds = _cleartext(server_public_key, client_public_key, *ids)
    if not hmac.compare_digest(tag, _mac(auth_key, nonce + creds)):
        return None
    return sk, client_public_key, export_key


# Registration (RFC 9807 §5)
def registration_request(password, blind_scalar):
    return blind(password, blind_scalar)


def registration_response(request, server_public_key, credential_identifier, oprf_seed):
    k = oprf_key(oprf_seed, credential_identifier)
    return serialize(_mul(k, deserialize(request, "the blinded element"))) + server_public_key


def finalize_registration(password, blind_scalar, response, ksf, envelope_nonce, ids=(None, None)):
    """RFC 9807 §5.2.3: (record, export_key, server_public_key). `ids` is
    (server_identity, client_identity)."""
    evaluated, server_public_key = response[:32], response[32:]
    rpw = _randomized_password(password, blind_scalar, evaluated, ksf)
    envelope, client_public_key, masking_key, export_key = _store(rpw, server_public_key, ids, envelope_nonce)
    return client_public_key + masking_key + envelope, export_key, server_public_key


# Login (RFC 9807 §6)
def _preamble(client_identity, ke1, server_identity, credential_response, server_nonce, server_keyshare, context):
    return (b"OPAQUEv1-" + _lv(context) + _lv(client_identity) + ke1 + _lv(server_identity)
            + credential_response + server_nonce + server_keyshare)


def _derive_keys(ikm, preamble):
    """RFC 9807 §6.4.2 DeriveKeys: (km2, km3, session_key)."""
    prk = _extract(b"", ikm)
    h = hashlib.sha512(preamble).digest()
    handshake_secret = _expand_label(prk, b"HandshakeSecret", h, NX)
    session_key = _expand_label(prk, b"SessionKey", h, NX)
    return (_expand_label(handshake_secret, b"ServerMAC", b"", NX),
            _expand_label(handshake_secret, b"ClientMAC", b"", NX), session_key)


def _dh(k, element):
    return serialize(_mul(k, element))


def ke1(password, blind_scalar, client_nonce, client_keyshare_seed):
    """RFC 9807 §6.3.2.1 / §6.4.3: (KE1 bytes, client state)."""
    esk, epk = dh_key_pair(client_keyshare_seed)
    msg = blind(password, blind_scalar) + client_nonce + serialize(epk)
    return msg, dict(blind=blind_scalar, esk=esk, ke1=msg)


def ke2(ke1_bytes, server_private_key, server_public_key, record, credential_identifier, oprf_seed,
        masking_nonce, server_nonce, server_keyshare_seed, context, ids=(None, None)):
    """RFC 9807 §6.3.2.2 CreateCredentialResponse and §6.4.3 AuthServerRespond: (KE2 bytes,
    server state). `record` is (client_public_key, masking_key, envelope); a fake record is
    (fake client public key, fake masking key, Nn + Nm zero bytes)."""
    if len(ke1_bytes) != 96:
        raise BkvError("vault.message.invalid", "KE1 length")
    blinded = deserialize(ke1_bytes[:32], "the blinded element")
    client_keyshare = deserialize(ke1_bytes[64:], "the client key share")
    client_public_key, masking_key, envelope = record
    evaluated = serialize(_mul(oprf_key(oprf_seed, credential_identifier), blinded))
    pad = _expand(masking_key, masking_nonce + b"CredentialResponsePad", NPK + NN + NM)
    masked = bytes(a ^ b for a, b in zip(pad, server_public_key + envelope))
    credential_response = evaluated + masking_nonce + masked
    esk, epk = dh_key_pair(server_keyshare_seed)
    server_identity = server_public_key if ids[0] is None else ids[0]
    client_identity = client_public_key if ids[1] is None else ids[1]
    preamble = _preamble(client_identity, ke1_bytes, server_identity, credential_response, server_nonce,
                         serialize(epk), context)
    ikm = (_dh(esk, client_keyshare) + _dh(server_private_key, client_keyshare)
           + _dh(esk, deserialize(client_public_key, "the client public key")))
    km2, km3, session_key = _derive_keys(ikm, preamble)
    server_mac = _mac(km2, hashlib.sha512(preamble).digest())
    expected_client_mac = _mac(km3, hashlib.sha512(preamble + server_mac).digest())
    msg = credential_response + server_nonce + serialize(epk) + server_mac
    return msg, dict(expected_client_mac=expected_client_mac, session_key=session_key)


def ke3(state, password, ke2_bytes, ksf, context, ids=(None, None)):
    """RFC 9807 §6.3.2.3 RecoverCredentials and §6.4.3 AuthClientFinalize: (KE3,
    session_key, export_key, server_public_key); vault.code.invalid when the envelope does
    not open or the server MAC is wrong (spec/vault.md §6.4 L3)."""
    if len(ke2_bytes) != 320:
        raise BkvError("vault.message.invalid", "KE2 length")
    evaluated, masking_nonce, masked = ke2_bytes[:32], ke2_bytes[32:64], ke2_bytes[64:192]
    server_nonce, server_keyshare, server_mac = ke2_bytes[192:224], ke2_bytes[224:256], ke2_bytes[256:]
    rpw = _randomized_password(password, state["blind"], evaluated, ksf)
    masking_key = _expand(rpw, b"MaskingKey", NH)
    pad = _expand(masking_key, masking_nonce + b"CredentialResponsePad", NPK + NN + NM)
    unmasked = bytes(a ^ b for a, b in zip(pad, masked))
    server_public_key, envelope = unmasked[:NPK], unmasked[NPK:]
    opened = _recover(rpw, server_public_key, envelope, ids)
    if opened is None:
        raise BkvError("vault.code.invalid", "the envelope does not open")
    client_private_key, client_public_key, export_key = opened
    server_identity = server_public_key if ids[0] is None else ids[0]
    client_identity = client_public_key if ids[1] is None else ids[1]
    preamble = _preamble(client_identity, state["ke1"], server_identity, ke2_bytes[:192], server_nonce,
                         server_keyshare, context)
    epk = deserialize(server_keyshare, "the server key share")
    spk = deserialize(server_public_key, "the server public key")
    ikm = _dh(state["esk"], epk) + _dh(state["esk"], spk) + _dh(client_private_key, epk)
    km2, km3, session_key = _derive_keys(ikm, preamble)
    if not hmac.compare_digest(server_mac, _mac(km2, hashlib.sha512(preamble).digest())):
        raise BkvError("vault.code.invalid", "the server MAC does not verify")
    client_mac = _mac(km3, hashlib.sha512(preamble + server_mac).digest())
    return client_mac, session_key, export_key, server_public_key


def server_finish(state, ke3_bytes):
    """RFC 9807 §6.4.3 AuthServerFinalize: the session key, or vault.login.failed."""
    if not hmac.compare_digest(ke3_bytes, state["expected_client_mac"]):
        raise BkvError("vault.login.failed", "the client MAC does not verify")
    return state["session_key"]


def identity_ksf(y):
    return y
