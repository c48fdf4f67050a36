"""spec/rotation.md: the old fleet's check of its successor (§2 RS1-RS3, on top of a
first-contact bundle verification, spec/validation-bundle.md §5.1), the importing node's
opening of a sealed record export (§4) and a successor HSM's opening of the transferred
OPAQUE setup (§4.1). Written from the spec only; HPKE (RFC 9180, the suite of
spec/session.md §2) is pyhpke's, through session.py."""

import hashlib

import bundle
import dcbor
import vault
from dcbor import BkvError
from session import SUITE, _fields

INFO_LABEL = "bkv rotation"


def _keyset_of(bundle_bytes):
    """The FleetKeySet of a bundle that bundle.verify_bundle has accepted."""
    return bundle.parse_keyset(dcbor.decode(bundle_bytes, allowed_tags={18}).value[2])


def _opaque_keys(ks):
    return {k["key"] for n in ks["nodes"] for k in n["keys"] if k["role"] == "opaque"}


def check_successor(old_keyset, old_bundle, new_bundle, anchors, now):
    """§2: the old fleet's own FleetKeySet decoded as step 7 does, the new bundle verified
    as a first contact (validation-bundle.md §5.1 without a state, so steps 10 and 11 do not
    apply; step 12 and the Audit procedure have operations of their own), then RS1, RS2,
    RS3 in order."""
    old = bundle.parse_keyset(old_keyset)
    bundle.verify_bundle(new_bundle, anchors, None, now)
    new = _keyset_of(new_bundle)
    # RS1
    if new["fleet_id"] != old["fleet_id"]:
        raise BkvError("rotation.successor.invalid", "another fleet_id")
    if new["epoch"] != old["epoch"] + 1:
        raise BkvError("rotation.successor.invalid", f"epoch {new['epoch']} after {old['epoch']}")
    if new["prev"] != hashlib.sha256(old_bundle).digest():
        raise BkvError("rotation.successor.invalid", "prev is not the old bundle's digest")
    # RS2: every node; §3.2 rule 8 makes the old fleet's key one key
    if _opaque_keys(new) != _opaque_keys(old):
        raise BkvError("rotation.opaque.mismatch")
    # RS3
    if new["guess_limit"] != old["guess_limit"]:
        raise BkvError("rotation.policy.mismatch",
                       f"guess_limit {new['guess_limit']}, was {old['guess_limit']}")


def info(fleet_id, from_epoch, to_epoch, node_id):
    """§4: the HPKE info, deterministic CBOR."""
    return dcbor.encode([INFO_LABEL, 1, fleet_id, from_epoch, to_epoch, node_id])


_SEALED = {"v": int, "fleet_id": str, "from_epoch": int, "to_epoch": int, "node_id": str,
           "enc": bytes, "ct": bytes}
_EXPORT = {"v": int, "fleet_id": str, "from_epoch": int, "to_epoch": int, "successor": bytes,
           "guess_limit": int, "records": list}


def _open_envelope(node_key, fleet_id, epoch, node_id, sealed, label):
    """§4 steps 1-3 (§4.1 step 1 with the setup label): the envelope and its plaintext."""
    # step 1 (the .size 32 of enc is step 3's)
    env = _fields(dcbor.decode(sealed), _SEALED)
    if env["v"] != 1:
        raise BkvError("cbor.schema", "SealedExport v != 1")
    # step 2
    _mismatch(env["fleet_id"] == fleet_id, "another fleet")
    _mismatch(env["to_epoch"] == epoch, f"to_epoch {env['to_epoch']}, this fleet is {epoch}")
    _mismatch(env["node_id"] == node_id, f"addressed to {env['node_id']!r}")
    _mismatch(env["from_epoch"] + 1 == env["to_epoch"], "from_epoch is not to_epoch - 1")
    # step 3
    try:  # every failure of this step is the one code; a bad enc (not 32 bytes) too
        skr = SUITE.kem.deserialize_private_key(node_key)
        hpke_info = dcbor.encode([label, 1, fleet_id, env["from_epoch"], epoch, node_id])
        ctx = SUITE.create_recipient_context(env["enc"], skr, info=hpke_info)
        return env, ctx.open(env["ct"], aad=b"")
    except Exception as e:  # noqa: BLE001
        raise BkvError("rotation.open.failed", type(e).__name__) from None


def _mismatch(ok, what):
    if not ok:
        raise BkvError("rotation.export.mismatch", what)


def open_export(node_key, fleet_id, epoch, node_id, bundle_sha256, guess_limit, sealed):
    """§4 steps 1-5 in order: the SealedExport (cbor.*), its public fields, the HPKE open,
    the RecordExport (cbor.*), its fields and records. Output: the number of records."""
    env, pt = _open_envelope(node_key, fleet_id, epoch, node_id, sealed, INFO_LABEL)
    # step 4: the CDDL shape; the .size constraints are step 5's
    ex = _fields(dcbor.decode(pt), _EXPORT)
    if ex["v"] != 1:
        raise BkvError("cbor.schema", "RecordExport v != 1")
    records = [vault._exported_record(r) for r in ex["records"]]
    # step 5
    _mismatch((ex["fleet_id"], ex["from_epoch"], ex["to_epoch"])
              == (env["fleet_id"], env["from_epoch"], env["to_epoch"]), "fleet or epochs")
    _mismatch(ex["successor"] == bundle_sha256, "for another successor bundle")
    _mismatch(ex["guess_limit"] == guess_limit, f"guess_limit {ex['guess_limit']}")
    vault._check_records(records, guess_limit)
    return {"records": len(records)}


SETUP_INFO_LABEL = "bkv rotation setup"
_TRANSFER = {"v": int, "successor": bytes, "setup": bytes}


def open_setup(node_key, fleet_id, epoch, node_id, bundle_sha256, opaque, sealed):
    """§4.1 steps 1-4 in order: §4 steps 1-3 with the setup info, the SetupTransfer
    (cbor.*), its successor digest, the setup and the public key the HSM awaits. Output:
    the public key of the setup received."""
    _, pt = _open_envelope(node_key, fleet_id, epoch, node_id, sealed, SETUP_INFO_LABEL)
    t = _fields(dcbor.decode(pt), _TRANSFER)
    if t["v"] != 1:
        raise BkvError("cbor.schema", "SetupTransfer v != 1")
    _mismatch(t["successor"] == bundle_sha256, "for another successor bundle")
    public = vault.setup_decode(t["setup"])["public_key"]
    if public != opaque:
        raise BkvError("rotation.opaque.mismatch", "not the setup this HSM awaits")
    return {"opaque": public}
