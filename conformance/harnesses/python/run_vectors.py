#!/usr/bin/env python3
"""Feed vectors/v1/*.json through a harness and compare per spec/conformance.md §4.

Usage: python3 conformance/harnesses/python/run_vectors.py [--harness CMD] [vector files...]
       (default: vectors/v1/cbor.json vectors/v1/validation_bundle.json)
Prints one line per failing case and pass/fail/skip counts per area; exit 1 on failure.
Known deviations (deviations.json next to this file) are reported, not failed.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def main(argv):
    harness = [sys.executable, os.path.join(HERE, "bkv_harness.py")]
    if argv[:1] == ["--harness"]:
        harness, argv = argv[1].split(), argv[2:]
    paths = argv
    paths = paths or [os.path.join(ROOT, "vectors", "v1", f)
                      for f in ("cbor.json", "validation_bundle.json")]
    deviations = {d["id"]: d["reason"]
                  for d in json.load(open(os.path.join(HERE, "deviations.json")))}
    proc = subprocess.Popen(harness,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(msg):
        proc.stdin.write(json.dumps(msg) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    hello = ask({"type": "hello", "version": 1})
    features = set(hello["features"])
    failed_any = False
    for path in paths:
        vf = json.load(open(path))
        area = vf["area"]
        counts = {"passed": 0, "failed": 0, "skipped": 0, "deviating": 0}
        for group in vf["testGroups"]:
            for tc in group["tests"]:
                cid = f"{area}::{tc['tcId']}"
                if area not in features and group["operation"] not in features:
                    counts["skipped"] += 1
                    continue
                got = ask({"type": "case", "id": cid, "operation": group["operation"],
                           "input": tc["input"]})
                ok = got["id"] == cid and got["actual_result"] == tc["result"]
                if ok and tc["result"] == "invalid":
                    ok = got["error_code"] == tc["errorCode"]
                if ok and tc["result"] == "valid":
                    out = got.get("output") or {}
                    ok = all(k in out and out[k] == v for k, v in (tc.get("output") or {}).items())
                if ok:
                    counts["passed"] += 1
                elif cid in deviations:
                    counts["deviating"] += 1
                else:
                    counts["failed"] += 1
                    print(f"FAIL {cid}: want {tc['result']} {tc['errorCode']}, got "
                          f"{got['actual_result']} {got['error_code']} ({got['context']}) "
                          f"-- {tc['comment']}")
        failed_any |= counts["failed"] > 0
        print(f"{area}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    proc.stdin.close()
    rc = proc.wait(timeout=30)
    if rc != 0:
        print(f"harness exited with status {rc}")
        failed_any = True
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
