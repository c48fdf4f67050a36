#!/usr/bin/env python3
"""A deliberately broken producer: runs the reference harness (argv[1]) and flips one bit
of every output a `produce_*` case returns. The runner must refuse every such output
(spec/conformance.md §3.4; conformance/harnesses/rust/tests/runner.rs)."""
import json
import subprocess
import sys

ref = subprocess.Popen([sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def flip(value):
    if all(c in "0123456789abcdef" for c in value):  # hex: the last byte's low bit
        return value[:-1] + format(int(value[-1], 16) ^ 1, "x")
    raw = bytearray(value.encode())  # text (a signed note): a byte inside the last signature
    raw[-10] ^= 1
    return raw.decode()


operations = {}
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("type") == "case":
        operations[msg["id"]] = msg["operation"]
    ref.stdin.write(line)
    ref.stdin.flush()
    out = json.loads(ref.stdout.readline())
    if msg.get("type") == "hello":
        out["harness"] = "corrupting producer (broken)"
    elif operations[out["id"]].startswith("produce_") and out.get("output"):
        out["output"] = {k: flip(v) for k, v in out["output"].items()}
    print(json.dumps(out), flush=True)
ref.stdin.close()
ref.wait()
