#!/usr/bin/env python3
"""bkv conformance harness (spec/conformance.md §2): JSON lines on stdin/stdout."""

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import audit  # noqa: E402
import audit_log  # noqa: E402
import bundle  # noqa: E402
import crypto  # noqa: E402
import envelope  # noqa: E402
import fleet_replication  # noqa: E402
import produce  # noqa: E402
import rotation  # noqa: E402
import session  # noqa: E402
import signer_api  # noqa: E402
import vault  # noqa: E402
import vault_exchange  # noqa: E402
from dcbor import BkvError, check  # noqa: E402

NAME = "bkv-python"
# The areas this harness implements, every operation of each (spec/conformance.md §3).
FEATURES = ["cbor", "validation_bundle", "audit_log", "session", "backup_envelope", "audit",
            "fleet_replication", "rotation", "vault", "opaque_rfc9807", "signer_api"]
# The profiles of spec/conformance.md §3.3 this harness claims to pass completely.
PROFILES = ["client", "node", "auditor", "log", "witness", "operator"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_case(operation, inp):
    """Returns (output or None). Raises BkvError for an invalid case."""
    h = bytes.fromhex
    if operation == "cbor_check":
        check(h(inp["data"]))  # no tags allowed
        return None
    if operation == "verify_bundle":
        state = inp.get("state")
        if state is not None:
            state = (state["epoch"], h(state["bundle_sha256"]))
        out = bundle.verify_bundle(h(inp["bundle"]), h(inp["anchors"]), state, inp["now"],
                                   [h(x) for x in inp.get("intermediates") or []])
    elif operation == "verify_pinned":
        out = bundle.verify_pinned(h(inp["keyset"]), h(inp["anchors"]), inp["now"])
    elif operation == "merkle_inclusion":
        audit_log.verify_inclusion(h(inp["leaf_hash"]), inp["leaf_index"], inp["tree_size"],
                                   [h(x) for x in inp["path"]], h(inp["root"]))
        return None
    elif operation == "merkle_consistency":
        audit_log.verify_consistency(inp["size1"], inp["size2"], [h(x) for x in inp["path"]],
                                     h(inp["root1"]), h(inp["root2"]))
        return None
    elif operation == "parse_vkey":
        k = audit_log.parse_vkey(inp["vkey"])
        out = {"name": k["name"], "key_id": k["key_id"], "type": k["type"]}
    elif operation == "verify_logged_bundle":
        st = inp.get("state")
        held = None if st is None else (st["size"], h(st["root"]))
        cons = inp.get("consistency")
        cons = None if cons is None else [h(x) for x in cons]
        out = audit_log.verify_logged_bundle(h(inp["logged_bundle"]), inp["fleet_id"], inp["epoch"],
                                             h(inp["anchors"]), held, cons)
    elif operation == "witness_check":
        st = inp.get("held")
        held = None if st is None else (st["size"], h(st["root"]))
        out = audit_log.witness_check(inp["log_vkey"], held, inp["checkpoint"],
                                      [h(x) for x in inp.get("consistency") or []])
    elif operation == "session_open_request":
        out = session.open_request(h(inp["node_key"]), inp["fleet_id"], inp["epoch"], inp["node_id"],
                                   inp["now"], h(inp["request"]))
    elif operation == "session_seal_response":
        result = {k: (h(v) if k == "ok" else v) for k, v in inp["result"].items()}
        out = session.seal_response(h(inp["node_key"]), inp["fleet_id"], inp["epoch"], inp["node_id"],
                                    inp["now"], h(inp["request"]), h(inp["nonce"]), result)
    elif operation == "session_open_response":
        request, rk = session.seal_request(h(inp["session_key"]), inp["fleet_id"], inp["epoch"],
                                           inp["node_id"], h(inp["ikm_e"]), h(inp["request_id"]),
                                           inp["time"], h(inp["body"]))
        out = {"request": request,
               "body": session.open_response(h(inp["response"]), rk, h(inp["request_id"]))}
    elif operation == "hpke_kat":
        session.hpke_kat(inp)
        return None
    elif operation == "vault_apply":
        out = vault.vault_apply(inp["guess_limit"], inp["awaiting_import"], [h(c) for c in inp["setup"]],
                                h(inp["command"]))
    elif operation == "vault_setup_decode":
        out = vault.setup_decode(h(inp["setup"]))
    elif operation == "vault_client_register":
        out = vault_exchange.client_register(
            inp["fleet_id"], h(inp["opaque_server_key"]), inp["ksf"], h(inp["record"]), h(inp["code"]),
            h(inp["backup_key"]), h(inp["blind"]), h(inp["envelope_nonce"]), h(inp["register_start_response"]))
    elif operation == "vault_client_recover":
        finish = inp.get("recover_finish_response")
        out = vault_exchange.client_recover(
            inp["fleet_id"], h(inp["opaque_server_key"]), inp["ksf"], h(inp["record"]), h(inp["code"]),
            h(inp["blind"]), h(inp["client_nonce"]), h(inp["client_keyshare_seed"]),
            h(inp["recover_start_response"]), None if finish is None else h(finish))
    elif operation == "vault_node_login":
        finish = None
        if inp.get("recover_finish") is not None:
            finish = (h(inp["finish_request_id"]), h(inp["recover_finish"]), h(inp["finish_output"]))
        out = vault_exchange.node_login(
            inp["fleet_id"], h(inp["server_setup"]), inp["time"], h(inp["login"]), h(inp["recover_start"]),
            h(inp["attempt_output"]), h(inp["fake_wrapped_key"]), h(inp["fake_masking_key"]),
            h(inp["masking_nonce"]), h(inp["server_keyshare_seed"]), h(inp["server_nonce"]), finish)
    elif operation == "signer_open_request":
        out = signer_api.open_request(h(inp["request"]), h(inp["anchors"]), inp["now"])
    elif operation == "operator_check_intermediate":
        out = signer_api.check_intermediate(h(inp["request"]), h(inp["response"]), h(inp["anchors"]), inp["now"])
    elif operation == "signer_attach_countersignature":
        out = signer_api.attach(h(inp["intermediate"]), h(inp["countersignature"]), h(inp["anchors"]), inp["now"])
    elif operation in produce.PRODUCERS:
        out = produce.PRODUCERS[operation](inp)
    elif operation == "code_normalise":
        out = vault.code_normalise(inp["text"])
    elif operation == "opaque_rfc9807_real":
        out = vault_exchange.rfc9807_real(inp)
    elif operation == "opaque_rfc9807_fake":
        out = vault_exchange.rfc9807_fake(inp)
    elif operation == "rotation_check_successor":
        rotation.check_successor(h(inp["old_keyset"]), h(inp["old_bundle"]), h(inp["new_bundle"]),
                                 h(inp["anchors"]), inp["now"])
        return None
    elif operation == "rotation_open_export":
        out = rotation.open_export(h(inp["node_key"]), inp["fleet_id"], inp["epoch"], inp["node_id"],
                                   h(inp["bundle_sha256"]), inp["guess_limit"], h(inp["sealed"]))
    elif operation == "rotation_open_setup":
        out = rotation.open_setup(h(inp["node_key"]), inp["fleet_id"], inp["epoch"], inp["node_id"],
                                  h(inp["bundle_sha256"]), h(inp["opaque"]), h(inp["sealed"]))
    elif operation == "audit":
        out = audit.audit(h(inp["evidence"]), h(inp["released"]), h(inp["anchors"]), h(inp["log_anchors"]),
                          inp["checkpoint"], [h(e) for e in inp["entries"]], h(inp["vendor_roots"]),
                          h(inp["software"]), None if inp["firmware"] is None else h(inp["firmware"]), inp["now"])
    elif operation == "envelope_open":
        out = envelope.open_file(h(inp["backup_key"]), inp["fleet_id"], h(inp["record_id"]), h(inp["file"]),
                                 inp.get("read_error_at"))
    elif operation == "fleet_rpc_open":
        keys = [h(k) for k in inp["node_keys"]]
        for k in keys:
            crypto.check_public_key(crypto.ED25519, k)
        req = inp.get("request")
        req = None if req is None else (req["kind"], req["to"], h(req["nonce"]))
        out = fleet_replication.open_rpc(inp["fleet_id"], inp["epoch"], keys, inp["node_id"], inp["now_ms"],
                                         inp["window_ms"], h(inp["rpc"]), req)
    else:
        raise NotImplementedError(operation)
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in out.items()}


def answer(msg):
    case_id = msg.get("id")
    try:
        output = run_case(msg.get("operation"), msg.get("input") or {})
    except BkvError as e:
        return {"id": case_id, "actual_result": "invalid", "error_code": e.code,
                "context": str(e)}
    except NotImplementedError as e:
        return {"id": case_id, "actual_result": "skipped", "error_code": None,
                "context": f"operation not implemented: {e}"}
    res = {"id": case_id, "actual_result": "valid", "error_code": None, "context": ""}
    if output is not None:
        res["output"] = output
    return res


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        if msg.get("type") == "hello":
            reply = {"type": "hello", "version": 1, "harness": NAME, "features": FEATURES,
                     "profiles": PROFILES}
        elif msg.get("type") == "case":
            try:
                reply = answer(msg)
            except Exception:  # a harness bug, not a verdict: report it and carry on
                log(traceback.format_exc())
                reply = {"id": msg.get("id"), "actual_result": "skipped", "error_code": None,
                         "context": "harness error: " + traceback.format_exc(limit=1)}
        else:
            log(f"ignoring message {msg!r}")
            continue
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
