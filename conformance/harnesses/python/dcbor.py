"""Strict deterministic-CBOR checker, written from spec/conventions.md §3.3.

One pass over the bytes as received; the first violation met wins. Each rule of the
table raises BkvError with the rule's registry code. Structure is then decoded with cbor2
(`loads`), which is only ever called on bytes this checker accepted.
"""

import cbor2

# Rule 9: the depth of an item is the number of arrays, maps and tags enclosing it (the
# top-level item is depth 0). An item of depth 33 or more is a violation, met when the
# reader reads the item's initial byte, before anything else about the item. (Input that
# ends before that byte is truncated: cbor.malformed.)
MAX_DEPTH = 32


class BkvError(Exception):
    """A verification failure carrying its spec/conventions.md §7 registry code."""

    def __init__(self, code, msg=""):
        super().__init__(f"{code}: {msg}" if msg else code)
        self.code = code


class _Checker:
    def __init__(self, data, allowed_tags):
        self.data = data
        self.pos = 0
        self.allowed_tags = allowed_tags

    def fail(self, code, msg):
        raise BkvError(code, f"{msg} at offset {self.pos}")

    def take(self, n):
        if self.pos + n > len(self.data):
            self.fail("cbor.malformed", "truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def head(self, ib):
        """Decode an initial byte and read its argument; return (major, ai, value)."""
        major, ai = ib >> 5, ib & 0x1F
        if 28 <= ai <= 30:
            self.fail("cbor.malformed", "reserved additional information")
        if ai == 31:
            if 2 <= major <= 5:
                self.fail("cbor.indefinite_length", "indefinite-length item")
            if major == 7:
                self.fail("cbor.malformed", "break outside an indefinite-length item")
            self.fail("cbor.malformed", f"additional information 31 with major type {major}")
        if ai < 24:
            return major, ai, ai
        value = int.from_bytes(self.take(1 << (ai - 24)), "big")
        return major, ai, value

    def item(self, depth):
        ib = self.take(1)[0]
        if depth > MAX_DEPTH:
            self.fail("cbor.depth_exceeded", f"an item at nesting depth {depth}")
        major, ai, value = self.head(ib)
        if major == 7:
            if ai in (20, 21, 22):  # false, true, null
                return
            if ai == 24 and value < 32:
                self.fail("cbor.malformed", "two-byte simple value below 32")
            if ai in (25, 26, 27):
                self.fail("cbor.float", "floating-point number")
            self.fail("cbor.simple.unsupported", f"simple value {value}")
        if ai >= 24 and value < (24, 0x100, 0x10000, 0x100000000)[ai - 24]:
            self.fail("cbor.non_minimal", "argument not in shortest form")
        if major in (0, 1):
            return
        if major == 2:
            self.take(value)
            return
        if major == 3:
            raw = self.take(value)
            try:
                raw.decode("utf-8", errors="strict")
            except UnicodeDecodeError:
                self.fail("cbor.malformed", "invalid UTF-8 in text string")
            return
        if major in (4, 5) and value > len(self.data) - self.pos:
            # truncation is met at the head: each element (map: each pair) takes >= 1 byte
            self.fail("cbor.malformed", f"truncated: {value} elements announced")
        if major == 4:
            for _ in range(value):
                self.item(depth + 1)
        elif major == 5:
            prev = None
            for _ in range(value):
                start = self.pos
                self.item(depth + 1)
                key = self.data[start:self.pos]
                # compared as soon as the key is read, before its value
                if prev is not None:
                    if key == prev:
                        self.fail("cbor.map.duplicate_key", "duplicate map key")
                    if key < prev:
                        self.fail("cbor.map.unsorted", "map keys not in bytewise order")
                prev = key
                self.item(depth + 1)
        else:  # major 6, tag
            if value not in self.allowed_tags:
                self.fail("cbor.tag.unknown", f"tag {value} not allowed")
            self.item(depth + 1)


def check(data, allowed_tags=frozenset()):
    """Rules 1-10 of spec/conventions.md §3.3; raises BkvError on the first violation."""
    c = _Checker(bytes(data), frozenset(allowed_tags))
    c.item(0)
    if c.pos != len(c.data):
        raise BkvError("cbor.trailing_bytes", f"{len(c.data) - c.pos} bytes after the item")


def decode(data, allowed_tags=frozenset()):
    """check(), then decode the accepted bytes with cbor2."""
    check(data, allowed_tags)
    return cbor2.loads(bytes(data))


def encode(obj):
    """Deterministic encoding of the simple structures we build (Sig_structure, kid input)."""
    return cbor2.dumps(obj, canonical=True)


class _Lenient:
    """Well-formedness only (RFC 8949 §5.3.1): accepts every encoding choice (non-minimal
    heads, indefinite lengths, any order, floats, simple values, tags) and rejects only
    input that is not one well-formed item. Used for §5.1 step 1 of spec/validation-bundle.md,
    which reads the protected header before step 2.2 checks it strictly."""

    LIMIT = 256  # nesting guard for this non-strict pass only

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def item(self, depth, allow_break=False):
        if depth > self.LIMIT:
            raise ValueError("too deep")
        ib = self.take(1)[0]
        major, ai = ib >> 5, ib & 0x1F
        if ib == 0xFF and allow_break:
            return "break"
        if 28 <= ai <= 30 or (ai == 31 and major in (0, 1, 6, 7)):
            raise ValueError("reserved additional information or stray break")
        if ai == 31:
            while True:
                if major in (2, 3):
                    chunk = self.item(depth + 1, allow_break=True)
                    if chunk == "break":
                        return None
                    if chunk != major:
                        raise ValueError("bad chunk")
                else:
                    if self.item(depth + 1, allow_break=True) == "break":
                        return None
                    if major == 5 and self.item(depth + 1) == "break":
                        raise ValueError("break after a key")
        value = ai if ai < 24 else int.from_bytes(self.take(1 << (ai - 24)), "big")
        if major == 7 and ai == 24 and value < 32:
            raise ValueError("two-byte simple value below 32")
        if major in (2, 3):
            raw = self.take(value)
            if major == 3:
                raw.decode("utf-8")
        elif major in (4, 5):
            for _ in range(value * (2 if major == 5 else 1)):
                self.item(depth + 1)
        elif major == 6:
            self.item(depth + 1)
        return major


def decode_lenient(data):
    """Decode one well-formed CBOR item, whatever its encoding; ValueError otherwise.
    Returns (value, number of entries if the item is a map else None), so that the caller
    can see map keys that cbor2 merged (duplicates)."""
    data = bytes(data)
    p = _Lenient(data)
    try:
        p.item(0)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not well-formed: {e}") from None
    if p.pos != len(data):
        raise ValueError("bytes follow the item")
    ib = data[0]
    entries = None
    if ib >> 5 == 5 and ib & 0x1F != 31:
        entries = ib & 0x1F if ib & 0x1F < 24 else int.from_bytes(
            data[1:1 + (1 << ((ib & 0x1F) - 24))], "big")
    try:
        return cbor2.loads(data), entries
    except Exception as e:  # well-formed but beyond cbor2 (e.g. an unhashable key)
        raise ValueError(f"cbor2: {e}") from None
