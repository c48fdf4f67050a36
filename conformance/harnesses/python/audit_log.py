"""spec/audit-log.md: RFC 9162 proofs (§3.3, §3.4), C2SP signed notes, vkeys and
cosignatures (§4), the client rule (§7.2, §7.3) and the witness rule (§8.3)."""

import base64
import binascii
import hashlib

from crypto import ED25519, verify
from dcbor import BkvError, decode


def _b64(s):
    """Standard base64 with padding, canonical (re-encodes to itself), or None."""
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == s else None


def _h(data):
    return hashlib.sha256(data).digest()


def node(left, right):
    return _h(b"\x01" + left + right)


# --- §3.3 / §3.4 ---
def verify_inclusion(leaf, index, size, path, root):
    bad = BkvError("log.inclusion.invalid")
    if index >= size or len(path) > 64 or len(leaf) != 32:
        raise bad
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if len(p) != 32 or sn == 0:
            raise bad
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise bad


def verify_consistency(size1, size2, path, root1, root2):
    bad = BkvError("log.consistency.invalid")
    if size1 == 0 or size2 < size1:
        raise bad
    if size1 == size2:
        if path or root1 != root2:
            raise bad
        return
    if not path or len(path) > 128 or len(root1) != 32 or any(len(p) != 32 for p in path):
        raise bad
    path = list(path)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise bad
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != root1 or sr != root2:
        raise bad


# --- §4.1 notes ---
def valid_name(name):
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def parse_note(note):
    bad = BkvError("log.note.malformed")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note) or not note.endswith("\n"):
        raise bad
    split = note.rfind("\n\n")
    if split < 0:
        raise bad
    text, sigs = note[: split + 1], note[split + 2 :]
    if not sigs:
        raise bad
    out = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise bad
        parts = line[2:].split(" ")
        if len(parts) != 2 or not valid_name(parts[0]):
            raise bad
        raw = _b64(parts[1])
        if raw is None or len(raw) < 5:
            raise bad
        out.append((parts[0], raw[:4], raw[4:]))
        if len(out) > 64:
            raise bad
    return text, out


def key_id(name, sig_type, key):
    return _h(name.encode() + b"\n" + bytes([sig_type]) + key)[:4]


# --- §4.2 vkeys ---
def parse_vkey(s):
    bad = BkvError("log.vkey.malformed")
    parts = s.split("+", 2)
    if len(parts) != 3:
        raise bad
    name, kid_hex, b64 = parts
    if len(kid_hex) != 8 or kid_hex != kid_hex.lower():
        raise bad
    try:
        kid = bytes.fromhex(kid_hex)
    except ValueError:
        raise bad from None
    raw = _b64(b64)
    if raw is None or len(raw) != 33 or raw[0] not in (1, 4) or not valid_name(name):
        raise bad
    from crypto import ed_decompress

    if ed_decompress(raw[1:]) is None or key_id(name, raw[0], raw[1:]) != kid:
        raise bad
    return {"name": name, "type": raw[0], "key": raw[1:], "key_id": kid}


def _matches(vk, sig):
    return sig[0] == vk["name"] and sig[1] == vk["key_id"]


# --- §4.4 checkpoints ---
def parse_checkpoint(text):
    bad = BkvError("log.checkpoint.malformed")
    lines = text[:-1].split("\n") if text.endswith("\n") else None
    if lines is None or len(lines) != 3:
        raise bad
    origin, size, root = lines
    if not origin or not size.isascii() or not size.isdigit() or (len(size) > 1 and size[0] == "0"):
        raise bad
    size = int(size)
    raw = _b64(root)
    if size >= 2**64 or raw is None or len(raw) != 32:
        raise bad
    return origin, size, raw


def _log_signature(vk, text, sigs):
    mine = [s for s in sigs if _matches(vk, s)]
    if not mine:
        raise BkvError("log.checkpoint.unsigned")
    for s in mine:
        if not verify(ED25519, vk["key"], text.encode(), s[2]):
            raise BkvError("log.checkpoint.signature_invalid")


# --- §7 client ---
def _anchors_decode(data):
    """§7.1, decoding only (cbor.*; a string that is not a vkey is cbor.schema)."""
    a = decode(data)
    if not isinstance(a, dict) or set(a) != {"origin", "log_key", "witnesses", "threshold"}:
        raise BkvError("cbor.schema", "LogAnchors fields")
    if not isinstance(a["origin"], str) or not isinstance(a["log_key"], str):
        raise BkvError("cbor.schema", "LogAnchors types")
    if not isinstance(a["witnesses"], list) or type(a["threshold"]) is not int or a["threshold"] < 0:
        raise BkvError("cbor.schema", "LogAnchors types")
    try:
        return a, parse_vkey(a["log_key"]), [parse_vkey(w) for w in a["witnesses"]]
    except BkvError:
        raise BkvError("cbor.schema", "vkey") from None


def _anchors(data):
    """§7.1: decoded, then its rules (log.anchors.invalid)."""
    a, log_key, witnesses = _anchors_decode(data)
    bad = BkvError("log.anchors.invalid")
    if log_key["type"] != 1 or log_key["name"] != a["origin"]:
        raise bad
    names = [w["name"] for w in witnesses]
    if any(w["type"] != 4 for w in witnesses) or len(set(names)) != len(names):
        raise bad
    if a["threshold"] > len(witnesses):
        raise bad
    return a["origin"], log_key, witnesses, a["threshold"]


def verify_checkpoint(note, anchors):
    origin, log_key, witnesses, k = anchors
    text, sigs = parse_note(note)
    c_origin, size, root = parse_checkpoint(text)
    if c_origin != origin:
        raise BkvError("log.checkpoint.origin")
    _log_signature(log_key, text, sigs)
    cosigners = 0
    for w in witnesses:
        lines = [s for s in sigs if _matches(w, s)]
        for s in lines:
            sig = s[2]
            ts = int.from_bytes(sig[:8], "big") if len(sig) == 72 else None
            msg = f"cosignature/v1\ntime {ts}\n{text}".encode() if ts is not None else b""
            if ts is None or ts > 2**63 - 1 or not verify(ED25519, w["key"], msg, sig[8:]):
                raise BkvError("log.cosignature.invalid")
        cosigners += bool(lines)
    if cosigners < k:
        raise BkvError("log.witness.insufficient")
    return size, root, k == 0


def _entry(fleet_id, epoch, bundle):
    """The deterministic CBOR LogEntry (§5), keys in bytewise order of their encodings."""
    import cbor2

    return cbor2.dumps(
        {"v": 1, "type": "bundle", "fleet_id": fleet_id, "epoch": epoch, "digest": _h(bundle)}, canonical=True
    )


def update_state(held, new, consistency):
    if held is None:
        return new
    if held[0] == new[0]:
        if held[1] != new[1]:
            raise BkvError("log.fork")
        return held
    if consistency is None:
        raise BkvError("log.consistency.missing")
    small, large = (held, new) if held[0] < new[0] else (new, held)
    verify_consistency(small[0], large[0], consistency, small[1], large[1])
    return large


def verify_logged_bundle(logged, fleet_id, epoch, anchors_bytes, held, consistency):
    w = decode(logged)
    if not isinstance(w, dict) or set(w) != {"v", "bundle", "proof"} or w["v"] != 1:
        raise BkvError("cbor.schema", "LoggedBundle")
    p = w["proof"]
    if not isinstance(p, dict) or set(p) != {"inclusion", "checkpoint"} or not isinstance(p["checkpoint"], str):
        raise BkvError("cbor.schema", "LogProof")
    inc = p["inclusion"]
    if not isinstance(inc, list) or len(inc) != 3 or not isinstance(inc[2], list):
        raise BkvError("cbor.schema", "inclusion proof")
    if any(not isinstance(x, bytes) or len(x) != 32 for x in inc[2]):
        raise BkvError("cbor.schema", "inclusion path")
    anchors = _anchors(anchors_bytes)
    size, root, dev = verify_checkpoint(p["checkpoint"], anchors)
    tree_size, index, path = inc
    if tree_size != size:
        raise BkvError("log.inclusion.invalid")
    leaf = _h(b"\x00" + _entry(fleet_id, epoch, w["bundle"]))
    verify_inclusion(leaf, index, tree_size, path, root)
    state = update_state(held, (size, root), consistency)
    return {"leaf_index": index, "development_only": dev, "state": {"size": state[0], "root": state[1].hex()}}


# --- §8.3 witness ---
def witness_check(log_vkey, held, note, consistency):
    vk = parse_vkey(log_vkey)
    text, sigs = parse_note(note)
    origin, size, root = parse_checkpoint(text)
    if origin != vk["name"]:
        raise BkvError("log.checkpoint.origin")
    _log_signature(vk, text, sigs)
    if held is not None:
        if size < held[0]:
            raise BkvError("log.witness.conflict")
        if size == held[0]:
            if root != held[1]:
                raise BkvError("log.fork")
        elif held[0] > 0:
            verify_consistency(held[0], size, consistency, held[1], root)
    return {"size": size, "root": root.hex()}
