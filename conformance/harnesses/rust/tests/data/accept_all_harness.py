#!/usr/bin/env python3
"""A deliberately broken harness: claims every feature and accepts every input.
The conformance runner must catch it with named failures (conformance/harnesses/rust/tests/runner.rs)."""
import glob
import json
import os
import sys

# Claim every area that has a vector file, so a new area is covered without an edit here.
HERE = os.path.dirname(os.path.abspath(__file__))
AREAS = sorted(os.path.basename(f)[:-5] for f in glob.glob(os.path.join(HERE, "../../../../../vectors/v1/*.json")))

for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("type") == "hello":
        # It also claims the client profile (spec/conformance.md §3.3), which it cannot pass.
        out = {"type": "hello", "version": 1, "harness": "accept-all (broken)", "features": AREAS,
               "profiles": ["client"]}
    else:
        out = {"id": msg["id"], "actual_result": "valid", "error_code": None, "context": "accepts everything"}
    print(json.dumps(out), flush=True)
