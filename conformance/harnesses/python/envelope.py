"""spec/backup-envelope.md §5: reading a backup file. Written from the spec only."""

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import dcbor
from dcbor import BkvError
from session import _fields

MAGIC = b"\x89BKV\r\n\x1a\n"
CHUNK = 65536
TAG = 16
HEAD = 25


def _hkdf(bk, salt, label, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=label).derive(bk)


def open_file(backup_key, fleet_id, record_id, data, read_error_at=None):
    # The input fails with an I/O error (not the end of the input) at byte read_error_at:
    # a read that needs it is envelope.io, never envelope.truncated.
    io_error = read_error_at is not None and read_error_at < len(data)
    if io_error:
        data = data[:read_error_at]
    short = "envelope.io" if io_error else "envelope.truncated"
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(data):
            raise BkvError(short)
        out = data[pos:pos + n]
        pos += n
        return out

    # 1
    if io_error and len(data) < 8:
        raise BkvError(short)
    if data[:8] != MAGIC:
        raise BkvError("envelope.magic")
    pos = 8
    # 2
    hlen_raw = take(4)
    hlen = int.from_bytes(hlen_raw, "big")
    if hlen > 4096:
        raise BkvError("envelope.header.unsupported", "header length")
    header_bytes = take(hlen)
    header = _fields(dcbor.decode(header_bytes), {"v": int, "fleet_id": str, "record_id": bytes, "suite": int,
                                                  "file_id": bytes, "chunk_size": int})
    if header["v"] != 1 or header["suite"] != 1 or header["chunk_size"] != CHUNK or len(header["file_id"]) != 16:
        raise BkvError("envelope.header.unsupported")
    mac = take(32)
    prologue = MAGIC + hlen_raw + header_bytes
    file_id = header["file_id"]
    k_mac = _hkdf(backup_key, file_id, b"bkv backup v1 header mac", 32)
    k_enc = _hkdf(backup_key, file_id, b"bkv backup v1 payload key", 32)
    prefix = _hkdf(backup_key, file_id, b"bkv backup v1 nonce prefix", 7)
    # 3
    if not hmac.compare_digest(mac, hmac.new(k_mac, prologue, hashlib.sha256).digest()):
        raise BkvError("envelope.header.auth_failed")
    # 4
    if header["fleet_id"] != fleet_id or header["record_id"] != record_id:
        raise BkvError("envelope.header.mismatch")
    # 5
    aead = ChaCha20Poly1305(k_enc)
    digest = hashlib.sha256(prologue).digest()
    plain = hashlib.sha256()
    length = 0
    i = 0
    while True:
        head = take(HEAD)
        if head[:16] != file_id:
            raise BkvError("envelope.chunk.spliced")
        if int.from_bytes(head[16:20], "big") != i:
            raise BkvError("envelope.chunk.reordered")
        flags = head[20]
        ct_len = int.from_bytes(head[21:25], "big")
        last = flags == 1
        ok_len = (TAG <= ct_len <= CHUNK + TAG) if last else ct_len == CHUNK + TAG
        if flags > 1 or not ok_len:
            raise BkvError("envelope.chunk.corrupt", "flags or length")
        ct = take(ct_len)
        nonce = prefix + i.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        try:
            pt = aead.decrypt(nonce, ct, digest + head)
        except Exception:  # noqa: BLE001
            raise BkvError("envelope.chunk.corrupt", "tag") from None
        plain.update(pt)
        length += len(pt)
        if last:
            break
        i += 1
    # 6
    if io_error:
        raise BkvError(short)
    if pos != len(data):
        raise BkvError("envelope.trailing_data")
    return {"length": length, "plaintext_sha256": plain.hexdigest()}
