#!/usr/bin/env python3
"""Feed vector files through a harness and compare per spec/conformance.md §4, without cargo.

Usage: python3 conformance/harnesses/python/run_vectors.py [--harness CMD] [--timeout S] [files...]
(default: every vectors/v1/*.json). Prints one line per failing case and the pass/fail/skip
counts per area; exits 1 on any failure, 2 on a usage error. Known deviations
(deviations.json next to this file) are reported, not failed. The `produce_*` cases
(spec/conformance.md §3.4) need the reference to check the output: without cargo they are
counted as "unchecked", never as passed; run the Rust runner for them.
"""

import argparse
import glob
import json
import os
import queue
import shlex
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="run_vectors.py",
        description="Run bkv conformance vectors through a harness (spec/conformance.md §2-§4).")
    p.add_argument("--harness", default=None,
                   help="the harness command line (default: this directory's bkv_harness.py)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds a harness may take to answer one message (default 30)")
    p.add_argument("files", nargs="*",
                   help="vector files (default: every vectors/v1/*.json of this checkout)")
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    harness = (shlex.split(args.harness) if args.harness
               else [sys.executable, os.path.join(HERE, "bkv_harness.py")])
    paths = args.files or sorted(glob.glob(os.path.join(ROOT, "vectors", "v1", "*.json")))
    for path in paths:
        if not os.path.isfile(path):
            print(f"run_vectors.py: {path}: no such vector file", file=sys.stderr)
            return 2
    deviations = {d["id"]: d["reason"]
                  for d in json.load(open(os.path.join(HERE, "deviations.json")))}
    proc = subprocess.Popen(harness,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    # The harness's lines, read by a thread so that a silent harness times out.
    lines = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()

    def ask(msg):
        proc.stdin.write(json.dumps(msg) + "\n")
        proc.stdin.flush()
        try:
            line = lines.get(timeout=args.timeout)
        except queue.Empty:
            proc.kill()
            raise SystemExit(f"run_vectors.py: the harness did not answer {msg.get('id', 'hello')} "
                             f"within {args.timeout} s")
        if line is None:
            raise SystemExit(f"run_vectors.py: the harness exited before answering {msg.get('id', 'hello')}")
        return json.loads(line)

    hello = ask({"type": "hello", "version": 1})
    features = set(hello["features"])
    failed_any = False
    for path in paths:
        vf = json.load(open(path))
        area = vf["area"]
        counts = {"passed": 0, "failed": 0, "skipped": 0, "deviating": 0, "unchecked": 0}
        for group in vf["testGroups"]:
            for tc in group["tests"]:
                cid = f"{area}::{tc['tcId']}"
                if area not in features and group["operation"] not in features:
                    counts["skipped"] += 1
                    continue
                if group["operation"].startswith("produce_"):
                    counts["unchecked"] += 1
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
