"""The OPAQUE exchanges of spec/vault.md §6.3, §6.4 (client) and §7.1, §7.3 (node), as the
operations `vault_client_register`, `vault_client_recover` and `vault_node_login` of
spec/conformance.md §3.1, and RFC 9807's own vectors (§3.2). Written from the spec, over
opaque.py; the KSF is Argon2id from argon2-cffi (spec/vault.md §2.1).

Every random value is the vector's named input; nothing here draws randomness.
"""

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import opaque
import vault
from dcbor import BkvError, decode, encode

KSF_SALT = bytes(16)  # spec/vault.md §2.1


def ksf(params):
    """spec/vault.md §2.1: Argon2id, output 64 bytes, version 0x13, the all-zero salt."""
    def stretch(y):
        return hash_secret_raw(y, KSF_SALT, time_cost=params["t_cost"], memory_cost=params["m_cost_kib"],
                               parallelism=params["p_cost"], hash_len=64, type=Type.ID, version=19)
    return stretch


def context(fleet_id):
    """spec/vault.md §2.2."""
    return encode(["bkv vault v1", fleet_id])


def credential_identifier(record, salt):
    return encode([record, salt])


def _wrap_key(export_key, fleet_id, record):
    """spec/vault.md §3.2."""
    return HKDF(algorithm=hashes.SHA512(), length=32, salt=b"bkv vault v1 wrap",
                info=encode([fleet_id, record])).derive(export_key)


def wrap(export_key, fleet_id, record, backup_key):
    return ChaCha20Poly1305(_wrap_key(export_key, fleet_id, record)).encrypt(bytes(12), backup_key, b"")


def unwrap(export_key, fleet_id, record, wrapped):
    try:
        return ChaCha20Poly1305(_wrap_key(export_key, fleet_id, record)).decrypt(bytes(12), wrapped, b"")
    except Exception:
        raise BkvError("vault.wrapped_key.invalid", "the wrapped key does not open") from None


def _check_record(record):
    if not 16 <= len(record) <= 64:
        raise BkvError("vault.record.id_invalid")


def _one(data, name, fields, what):
    """A CBOR map with the one key `name` whose value has exactly `fields` (cbor.schema)."""
    m = decode(data)
    if not (isinstance(m, dict) and len(m) == 1 and name in m):
        raise BkvError("cbor.schema", f"{what}: not {name}")
    return vault._fields(m[name], fields, name)


def _sized(b, n, code, what):
    if len(b) != n:
        raise BkvError(code, f"{what} is not {n} bytes")
    return b


def client_register(fleet_id, server_key, ksf_params, record, code, backup_key, blind, envelope_nonce, answer):
    """R1-R4 of spec/vault.md §6.3."""
    _check_record(record)
    b = opaque.scalar(blind, "blind")
    start = encode({"register_start": {"record": record, "request": opaque.registration_request(code, b)}})
    r = _one(answer, "register_start", {"response": bytes, "salt": bytes}, "the register_start answer")
    _sized(r["salt"], 32, "cbor.schema", "salt")  # RegisterStart answer: bstr .size 32
    _sized(r["response"], 64, "vault.message.invalid", "RegistrationResponse")
    upload, export_key, spk = opaque.finalize_registration(code, b, r["response"], ksf(ksf_params), envelope_nonce)
    if spk != server_key:  # R3
        raise BkvError("vault.server_key.mismatch")
    finish = encode({"register_finish": {"record": record, "salt": r["salt"], "upload": upload,
                                         "wrapped_key": wrap(export_key, fleet_id, record, backup_key)}})
    return {"register_start": start, "register_finish": finish, "export_key": export_key}


def client_recover(fleet_id, server_key, ksf_params, record, code, blind, client_nonce, client_keyshare_seed,
                   start_answer, finish_answer):
    """L1-L6 of spec/vault.md §6.4, action `recover`."""
    _check_record(record)
    ke1, state = opaque.ke1(code, opaque.scalar(blind, "blind"), client_nonce, client_keyshare_seed)
    start = encode({"recover_start": {"record": record, "ke1": ke1}})
    a = _one(start_answer, "recover_start", {"login": bytes, "ke2": bytes, "remaining": int}, "the answer")
    _sized(a["ke2"], 320, "vault.message.invalid", "KE2")
    ke3, session_key, export_key, spk = opaque.ke3(state, code, a["ke2"], ksf(ksf_params), context(fleet_id))  # L3
    if spk != server_key:  # L4
        raise BkvError("vault.server_key.mismatch")
    finish = encode({"recover_finish": {"login": a["login"], "ke3": ke3, "action": "recover"}})  # L5
    if finish_answer is None:
        raise BkvError("cbor.schema", "the vector has no answer to the recover_finish")
    r = _one(finish_answer, "recovered", {"wrapped_key": bytes, "remaining": int}, "the answer")
    backup_key = unwrap(export_key, fleet_id, record, r["wrapped_key"])  # L6
    return {"recover_start": start, "remaining": a["remaining"], "recover_finish": finish,
            "backup_key": backup_key, "remaining_after": r["remaining"], "export_key": export_key,
            "session_key": session_key}


def _output(data, name, fields):
    """A VaultOutput: an `error` output is the case's code (§7.1 N4)."""
    m = decode(data)
    if isinstance(m, dict) and "error" in m:
        raise BkvError(m["error"]["code"], "the committed command failed")
    if not (isinstance(m, dict) and len(m) == 1 and name in m):
        raise BkvError("cbor.schema", f"not a {name} output")
    body = m[name]
    for k, t in fields.items():
        if k in body and not vault._typed(body[k], t):
            raise BkvError("cbor.schema", f"{name}.{k}")
    return body


def node_login(fleet_id, setup, time, login, start, attempt_output, fake_wrapped_key, fake_masking_key,
               masking_nonce, server_keyshare_seed, server_nonce, finish=None):
    """N2-N4 of spec/vault.md §7.1 for one recover_start and, unless `finish` is None, its
    recover_finish (`finish` = (request id, body, committed output))."""
    spk = vault.setup_decode(setup)["public_key"]
    oprf_seed, sk, fake_pk = setup[:64], int.from_bytes(setup[64:96], "little"), setup[96:]
    s = _one(start, "recover_start", {"record": bytes, "ke1": bytes}, "the request")
    _check_record(s["record"])
    _sized(s["ke1"], 96, "vault.message.invalid", "KE1")
    out = {"attempt_command": encode({"attempt_start": {"request_id": login, "time": time, "record": s["record"]}})}
    a = _output(attempt_output, "attempt", {"remaining": int, "generation": int, "registration": bytes,
                                            "wrapped_key": bytes})
    if a.get("registration") is not None:
        reg = a["registration"]
        salt, upload = reg[:32], reg[32:]
        record = (upload[:32], upload[32:96], upload[96:])
        wrapped_key = a["wrapped_key"]
    else:  # §5.3: the fake record of an unregistered id
        salt, record, wrapped_key = bytes(32), (fake_pk, fake_masking_key, bytes(96)), fake_wrapped_key
    ke2, state = opaque.ke2(s["ke1"], sk, spk, record, credential_identifier(s["record"], salt), oprf_seed,
                            masking_nonce, server_nonce, server_keyshare_seed, context(fleet_id))
    out["recover_start_response"] = encode({"recover_start": {"login": login, "ke2": ke2, "remaining": a["remaining"]}})
    if finish is None:
        return out
    finish_id, body, finish_output = finish
    f = _one(body, "recover_finish", {"login": bytes, "ke3": bytes, "action": object}, "the request")
    _sized(f["ke3"], 64, "vault.message.invalid", "KE3")
    if f["login"] != login:  # §7.3: the only pending login is this one
        raise BkvError("vault.login.unknown")
    opaque.server_finish(state, f["ke3"])
    if f["action"] != "recover":
        raise NotImplementedError("vault_node_login: an action other than recover")
    out["finish_command"] = encode({"attempt_success": {"request_id": finish_id, "time": time,
                                                        "record": s["record"], "generation": a["generation"]}})
    r = _output(finish_output, "released", {"remaining": int})
    out["recover_finish_response"] = encode({"recovered": {"wrapped_key": wrapped_key, "remaining": r["remaining"]}})
    return out


def _ids(inp):
    h = bytes.fromhex
    return (None if inp.get("server_identity") is None else h(inp["server_identity"]),
            None if inp.get("client_identity") is None else h(inp["client_identity"]))


def rfc9807_real(inp):
    """spec/conformance.md §3.2 `opaque_rfc9807_real`: registration, then login, both sides."""
    h = bytes.fromhex
    ids, ctx, pw = _ids(inp), h(inp["context"]), h(inp["password"])
    cid, seed, spk = h(inp["credential_identifier"]), h(inp["oprf_seed"]), h(inp["server_public_key"])
    sk = opaque.scalar(h(inp["server_private_key"]), "server_private_key")
    if opaque.serialize(opaque.base_mul(sk)) != spk:
        raise BkvError("vault.setup.invalid", "server_public_key is not the private key's")
    br = opaque.scalar(h(inp["blind_registration"]), "blind_registration")
    req = opaque.registration_request(pw, br)
    resp = opaque.registration_response(req, spk, cid, seed)
    upload, export_key, _ = opaque.finalize_registration(pw, br, resp, opaque.identity_ksf, h(inp["envelope_nonce"]), ids)
    ke1, state = opaque.ke1(pw, opaque.scalar(h(inp["blind_login"]), "blind_login"), h(inp["client_nonce"]),
                            h(inp["client_keyshare_seed"]))
    record = (upload[:32], upload[32:96], upload[96:])
    ke2, sstate = opaque.ke2(ke1, sk, spk, record, cid, seed, h(inp["masking_nonce"]), h(inp["server_nonce"]),
                             h(inp["server_keyshare_seed"]), ctx, ids)
    ke3, session_key, export_key2, _ = opaque.ke3(state, pw, ke2, opaque.identity_ksf, ctx, ids)
    if opaque.server_finish(sstate, ke3) != session_key or export_key2 != export_key:
        raise BkvError("vault.login.failed", "the two sides disagree")
    return {"registration_request": req, "registration_response": resp, "registration_upload": upload,
            "KE1": ke1, "KE2": ke2, "KE3": ke3, "export_key": export_key, "session_key": session_key}


def rfc9807_fake(inp):
    """spec/conformance.md §3.2 `opaque_rfc9807_fake`: KE2 for an unregistered client."""
    h = bytes.fromhex
    record = (h(inp["client_public_key"]), h(inp["masking_key"]), bytes(opaque.NN + opaque.NM))
    sk = opaque.scalar(h(inp["server_private_key"]), "server_private_key")
    ke2, _ = opaque.ke2(h(inp["KE1"]), sk, h(inp["server_public_key"]), record, h(inp["credential_identifier"]),
                        h(inp["oprf_seed"]), h(inp["masking_nonce"]), h(inp["server_nonce"]),
                        h(inp["server_keyshare_seed"]), h(inp["context"]), _ids(inp))
    return {"KE2": ke2}
