#!/usr/bin/env python3
"""A harness that answers the handshake and then never answers a case: the runner,
not the harness, must enforce the time limit."""
import json
import sys
import time

line = sys.stdin.readline()
print(json.dumps({"type": "hello", "version": 1, "harness": "silent", "features": ["cbor"]}), flush=True)
time.sleep(60)
