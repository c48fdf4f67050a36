"""The `produce_*` operations of spec/conformance.md §3.4: build what the input asks for,
with fresh randomness; the runner checks it with the reference. Written from the specs
each structure belongs to (session.md §3.3, backup-envelope.md §2-§4, validation-bundle.md
§4.3, audit-log.md §4, evidence.md §1), over the modules that read the same structures.
"""

import base64
import hashlib
import hmac
import os

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import crypto
import dcbor
import session
from audit_log import key_id
from envelope import CHUNK, MAGIC, _hkdf

EM_DASH = "\u2014 "  # C2SP signed-note: an em dash and a space start a signature line


# --- keys: (alg, public key bytes, sign(message) -> signature) ---
def ed25519(seed):
    k = Ed25519PrivateKey.from_private_bytes(seed)
    return crypto.ED25519, k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw), k.sign


def esp256(scalar):
    k = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())

    def sign(message):
        r, s = decode_dss_signature(k.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return crypto.ESP256, k.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint), sign


def sealed_request(inp):
    """spec/session.md §3.3, with a fresh ephemeral key."""
    h = bytes.fromhex
    request, _ = session.seal_request(h(inp["session_key"]), inp["fleet_id"], inp["epoch"], inp["node_id"],
                                      os.urandom(32), h(inp["request_id"]), inp["time"], h(inp["body"]))
    return {"request": request}


def backup_envelope(inp):
    """spec/backup-envelope.md §2-§4: header, header MAC, STREAM chunks."""
    h = bytes.fromhex
    key, plaintext = h(inp["backup_key"]), h(inp["plaintext"])
    file_id = os.urandom(16)
    header = dcbor.encode({"v": 1, "fleet_id": inp["fleet_id"], "record_id": h(inp["record_id"]), "suite": 1,
                           "file_id": file_id, "chunk_size": CHUNK})
    prologue = MAGIC + len(header).to_bytes(4, "big") + header
    out = bytearray(prologue)
    out += hmac.new(_hkdf(key, file_id, b"bkv backup v1 header mac", 32), prologue, hashlib.sha256).digest()
    aead = ChaCha20Poly1305(_hkdf(key, file_id, b"bkv backup v1 payload key", 32))
    prefix = _hkdf(key, file_id, b"bkv backup v1 nonce prefix", 7)
    digest = hashlib.sha256(prologue).digest()
    chunks = [plaintext[i:i + CHUNK] for i in range(0, len(plaintext), CHUNK)] or [b""]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        head = file_id + i.to_bytes(4, "big") + bytes([1 if last else 0]) + (len(chunk) + 16).to_bytes(4, "big")
        nonce = prefix + i.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        out += head + aead.encrypt(nonce, chunk, digest + head)
    return {"file": bytes(out)}


def countersignature(inp):
    """spec/validation-bundle.md §4.3: RFC 9338 V2 over the third party's signature."""
    h = bytes.fromhex
    top = dcbor.decode(h(inp["intermediate"]), allowed_tags={18})
    protected, _, payload, signature = top.value
    alg, key, sign = esp256(h(inp["operator_key"]))
    cs_protected = dcbor.encode({1: alg, 4: crypto.kid(alg, key)})
    tbs = dcbor.encode(["CounterSignatureV2", protected, cs_protected, b"", payload, [signature]])
    return {"countersignature": dcbor.encode([cs_protected, {}, sign(tbs)])}


def _signature_line(name, raw):
    return f"{EM_DASH}{name} {base64.b64encode(raw).decode()}\n"


def checkpoint(inp):
    """spec/audit-log.md §4.1, §4.3: the checkpoint body, signed by the log (type 0x01)."""
    text = f"{inp['origin']}\n{inp['size']}\n{base64.b64encode(bytes.fromhex(inp['root'])).decode()}\n"
    _, key, sign = ed25519(bytes.fromhex(inp["log_key"]))
    raw = key_id(inp["log_name"], 0x01, key) + sign(text.encode())
    return {"checkpoint": text + "\n" + _signature_line(inp["log_name"], raw)}


def cosignature(inp):
    """spec/audit-log.md §4.3, §8: a C2SP tlog-cosignature line (type 0x04) appended."""
    note, name, ts = inp["checkpoint"], inp["witness_name"], inp["timestamp"]
    text = note[:note.rindex("\n\n") + 1]
    _, key, sign = ed25519(bytes.fromhex(inp["witness_key"]))
    raw = key_id(name, 0x04, key) + ts.to_bytes(8, "big") + sign(f"cosignature/v1\ntime {ts}\n{text}".encode())
    return {"checkpoint": note + _signature_line(name, raw)}


def evidence_envelope(inp):
    """spec/evidence.md §1: a tagged COSE_Sign1, protected {1: alg, 3: content type, 4: kid}."""
    h = bytes.fromhex
    alg, key, sign = (ed25519 if inp["alg"] == crypto.ED25519 else esp256)(h(inp["private_key"]))
    protected = dcbor.encode({1: alg, 3: inp["content_type"], 4: crypto.kid(alg, key)})
    payload = h(inp["payload"])
    tbs = dcbor.encode(["Signature1", protected, b"", payload])
    return {"envelope": cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, sign(tbs)]), canonical=True)}


PRODUCERS = {
    "produce_sealed_request": sealed_request,
    "produce_backup_envelope": backup_envelope,
    "produce_countersignature": countersignature,
    "produce_checkpoint": checkpoint,
    "produce_cosignature": cosignature,
    "produce_evidence_envelope": evidence_envelope,
}
