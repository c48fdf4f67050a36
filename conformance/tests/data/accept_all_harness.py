#!/usr/bin/env python3
"""A deliberately broken harness: claims every feature and accepts every input.
The conformance runner must catch it with named failures (conformance/tests/runner.rs)."""
import json
import sys

for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("type") == "hello":
        out = {"type": "hello", "version": 1, "harness": "accept-all (broken)", "features": ["cbor", "validation_bundle", "session", "backup_envelope", "vault", "rotation", "audit", "audit_log"]}
    else:
        out = {"id": msg["id"], "actual_result": "valid", "error_code": None, "context": "accepts everything"}
    print(json.dumps(out), flush=True)
