"""The deterministic vault state machine, written from spec/vault.md §5 and §8 with the
phases and commands of spec/rotation.md §3, §5 and §6; and the ServerSetup decoding of
spec/vault.md §2.3.

`VaultStateMachine(limit, awaiting_import).apply(command_bytes) -> output_bytes`: §8.2
steps A1-A4 (A1a: the phase); a failing command gives `{"error": {"code": ...}}` and
changes nothing. The OPAQUE exchanges (§6, §7) are in vault_exchange.py.
"""

import unicodedata

import ristretto
from dcbor import BkvError, decode, encode

RETENTION = 600  # 2W, spec/session.md §6
REGISTRATION_LEN = 224  # §5.1
WRAPPED_LEN = 48  # §3.2
SETUP_LEN = 128  # §2.3

_HEADER = {"request_id": bytes, "time": int}
_RECORD = dict(_HEADER, record=bytes)
# §8.1 and spec/rotation.md §3, §5, §6: command name -> fields and their CBOR types.
COMMANDS = {
    "register": dict(_RECORD, registration=bytes, wrapped_key=bytes),
    "attempt_start": _RECORD,
    "attempt_success": dict(_RECORD, generation=int),
    "rekey": dict(_RECORD, generation=int, registration=bytes, wrapped_key=bytes),
    "delete": dict(_RECORD, generation=int),
    "retire": dict(_HEADER, successor=bytes),
    "import": dict(_HEADER, from_epoch=int, records=list),
    "destroy": _HEADER,
}
EXPORTED_STATES = ("registered", "unregistered", "locked")


def _schema(ok, what):
    if not ok:
        raise BkvError("cbor.schema", what)


def _typed(value, t):
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return isinstance(value, t)


def _fields(obj, spec, what):
    """Exactly the text keys of `spec`, each of its type, else cbor.schema."""
    _schema(isinstance(obj, dict) and set(obj) == set(spec), f"{what}: not the CDDL fields")
    for k, t in spec.items():
        _schema(_typed(obj[k], t), f"{what}.{k}: wrong type")
    return obj


def _exported_record(r):
    """spec/rotation.md §3 ExportedRecord: the CDDL shape (cbor.schema); its rules are
    checked by _check_records."""
    _schema(isinstance(r, dict), "ExportedRecord")
    optional = {"registration", "wrapped_key"}
    base = {"id": bytes, "state": str, "remaining": int}
    _schema(set(base) <= set(r) <= set(base) | optional, "ExportedRecord fields")
    for k, t in dict(base, registration=bytes, wrapped_key=bytes).items():
        _schema(k not in r or _typed(r[k], t), f"ExportedRecord.{k}")
    _schema(r["state"] in EXPORTED_STATES, "ExportedRecord.state")
    return r


def _check_records(records, limit):
    """spec/rotation.md §4: sorted, unique, each well formed; else rotation.export.mismatch."""
    previous = None
    for r in records:
        ok = 16 <= len(r["id"]) <= 64 and (previous is None or previous < r["id"])
        has = "registration" in r, "wrapped_key" in r
        if r["state"] == "registered":
            ok = ok and has == (True, True) and len(r["registration"]) == REGISTRATION_LEN \
                and len(r["wrapped_key"]) == WRAPPED_LEN and 1 <= r["remaining"] <= limit
        elif r["state"] == "unregistered":
            ok = ok and has == (False, False) and 1 <= r["remaining"] <= limit
        else:
            ok = ok and has == (False, False) and r["remaining"] == 0
        if not ok:
            raise BkvError("rotation.export.mismatch", "an imported record")
        previous = r["id"]


class VaultStateMachine:
    def __init__(self, guess_limit, awaiting_import=False):
        self.limit = guess_limit
        # record id -> dict(locked, registration, wrapped_key, remaining, generation);
        # registration None: an unregistered id (§5.3)
        self.records = {}
        self.seen = {}  # applied request id -> time
        self.max_time = 0  # T
        # "serving", "awaiting_import" or ("retired", successor, destroyed)
        self.phase = "awaiting_import" if awaiting_import else "serving"

    def apply(self, command):
        try:
            out = self._apply(command)
        except BkvError as e:
            out = {"error": {"code": e.code}}
        return encode(out)

    def _apply(self, command):
        # A1: the CDDL of §8.1, then the request id, then the record id.
        m = decode(command)
        _schema(isinstance(m, dict) and len(m) == 1, "a VaultCommand is a map with one key")
        ((name, body),) = m.items()
        _schema(name in COMMANDS, f"unknown command {name!r}")
        _fields(body, COMMANDS[name], name)
        if name == "import":
            body["records"] = [_exported_record(r) for r in body["records"]]
        _schema(len(body["request_id"]) == 16, "request_id is not 16 bytes")
        if "record" in body and not 16 <= len(body["record"]) <= 64:
            raise BkvError("vault.record.id_invalid")
        # A1a: the phase (spec/rotation.md).
        self._admit(name, body)
        # A2: replay (spec/session.md §6).
        if body["time"] < self.max_time - RETENTION:
            raise BkvError("session.request.stale")
        if body["request_id"] in self.seen:
            raise BkvError("session.request.replayed")
        # A3
        out = getattr(self, "_" + name)(body)
        # A4
        self.seen[body["request_id"]] = body["time"]
        self.max_time = max(self.max_time, body["time"])
        self.seen = {i: t for i, t in self.seen.items() if t >= self.max_time - RETENTION}
        return out

    def _admit(self, name, body):
        if self.phase == "awaiting_import":
            if name != "import":
                raise BkvError("rotation.import.pending")
        elif self.phase == "serving":
            if name in ("import", "destroy"):
                raise BkvError("rotation.import.refused")
        else:
            _, successor, destroyed = self.phase
            same_retire = name == "retire" and body["successor"] == successor and not destroyed
            if not (same_retire or name == "destroy"):
                raise BkvError("rotation.fleet.retired")

    @staticmethod
    def _lengths(body):
        # A3: the .size of the CDDL, before anything else of A3.
        if len(body["wrapped_key"]) != WRAPPED_LEN:
            raise BkvError("vault.wrapped_key.invalid")
        if len(body["registration"]) != REGISTRATION_LEN:
            raise BkvError("vault.message.invalid")

    def _registered_at(self, record, generation):
        e = self.records.get(record)
        return e is not None and not e["locked"] and e["registration"] is not None \
            and e["generation"] == generation

    def _register(self, b):
        self._lengths(b)
        e = self.records.get(b["record"])
        if e is not None and not e["locked"] and e["registration"] is not None:
            raise BkvError("vault.record.exists")
        self.records[b["record"]] = dict(locked=False, registration=b["registration"],
                                         wrapped_key=b["wrapped_key"], remaining=self.limit,
                                         generation=1 if e is None else e["generation"] + 1)
        return {"registered": {"remaining": self.limit}}

    def _attempt_start(self, b):
        e = self.records.get(b["record"])
        if e is None:
            e = dict(locked=False, registration=None, wrapped_key=None, remaining=self.limit,
                     generation=0)
            self.records[b["record"]] = e
        if e["locked"]:
            raise BkvError("vault.record.locked")
        e["remaining"] -= 1
        out = {"remaining": e["remaining"], "generation": e["generation"]}
        if e["registration"] is not None:
            out.update(registration=e["registration"], wrapped_key=e["wrapped_key"])
        if e["remaining"] == 0:  # §5.4: the last guess destroys the record
            self.records[b["record"]] = dict(locked=True, registration=None, wrapped_key=None,
                                             remaining=0, generation=e["generation"])
        return {"attempt": out}

    def _attempt_success(self, b):
        if self._registered_at(b["record"], b["generation"]):
            self.records[b["record"]]["remaining"] = self.limit
            return {"released": {"remaining": self.limit}}
        return {"released": {"remaining": 0}}

    def _rekey(self, b):
        self._lengths(b)
        if not self._registered_at(b["record"], b["generation"]):
            raise BkvError("vault.record.changed")
        self.records[b["record"]] = dict(locked=False, registration=b["registration"],
                                         wrapped_key=b["wrapped_key"], remaining=self.limit,
                                         generation=b["generation"] + 1)
        return {"rekeyed": {"remaining": self.limit}}

    def _delete(self, b):
        if not self._registered_at(b["record"], b["generation"]):
            raise BkvError("vault.record.changed")
        del self.records[b["record"]]
        return "deleted"

    def _retire(self, b):
        # spec/rotation.md §3 RT1, RT2
        _schema(len(b["successor"]) == 32, "successor is not 32 bytes")
        self.phase = ("retired", b["successor"], False)
        records = []
        for rid in sorted(self.records):
            e = self.records[rid]
            if e["locked"]:
                records.append({"id": rid, "state": "locked", "remaining": 0})
            elif e["registration"] is None:
                records.append({"id": rid, "state": "unregistered", "remaining": e["remaining"]})
            else:
                records.append({"id": rid, "state": "registered", "registration": e["registration"],
                                "wrapped_key": e["wrapped_key"], "remaining": e["remaining"]})
        return {"retired": {"records": records}}

    def _import(self, b):
        # spec/rotation.md §5 IM1, IM2
        _check_records(b["records"], self.limit)
        for r in b["records"]:
            locked = r["state"] == "locked"
            self.records[r["id"]] = dict(locked=locked, registration=r.get("registration"),
                                         wrapped_key=r.get("wrapped_key"), remaining=r["remaining"],
                                         generation=1 if r["state"] == "registered" else 0)
        self.phase = "serving"
        return {"imported": {"records": len(b["records"])}}

    def _destroy(self, b):
        # spec/rotation.md §6
        self.records = {}
        _, successor, _ = self.phase
        self.phase = ("retired", successor, True)
        return "destroyed"


def vault_apply(guess_limit, awaiting_import, setup, command):
    """spec/conformance.md §3 `vault_apply`: the VaultOutput of `command` after `setup`."""
    sm = VaultStateMachine(guess_limit, awaiting_import)
    for c in setup:
        out = decode(sm.apply(c))
        if isinstance(out, dict) and "error" in out:
            raise RuntimeError(f"a setup command failed: {out}")  # a bad vector, not a verdict
    out = sm.apply(command)
    decoded = decode(out)
    if isinstance(decoded, dict) and "error" in decoded:
        raise BkvError(decoded["error"]["code"], "the command's output is an error")
    return {"output": out}


def setup_decode(setup):
    """spec/vault.md §2.3: the fleet's OPAQUE server public key, or vault.setup.invalid."""
    if len(setup) != SETUP_LEN:
        raise BkvError("vault.setup.invalid", "not 128 bytes")
    k = ristretto.scalar(setup[64:96])
    if not k:  # not canonical, or zero
        raise BkvError("vault.setup.invalid", "server private key")
    fake = setup[96:128]
    if fake == bytes(32) or ristretto.decode(fake) is None:
        raise BkvError("vault.setup.invalid", "fake-record public key")
    return {"public_key": ristretto.encode(ristretto.base_mul(k))}


CODE_MIN_DIGITS, CODE_MAX_DIGITS = 6, 64  # §2.4


def code_normalise(text):
    """spec/vault.md §2.4: the normal form of a typed recovery code."""
    digits = unicodedata.normalize("NFKC", text).replace(" ", "").replace("-", "")  # steps 1-2
    if any(c not in "0123456789" for c in digits) or len(digits) > CODE_MAX_DIGITS:  # step 3
        raise BkvError("vault.code.malformed")
    steps = {(int(b) - int(a)) % 10 for a, b in zip(digits, digits[1:])}
    if len(digits) < CODE_MIN_DIGITS or steps in ({0}, {1}, {9}):  # step 4
        raise BkvError("vault.code.weak")
    return {"code": digits.encode("ascii")}
