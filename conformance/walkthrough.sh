#!/usr/bin/env bash
# The "Zero to a first passing case" steps of conformance/README.md, run as written: every
# block marked `<!-- walkthrough:sh -->` in order, in the repository root, after writing
# the files the blocks marked `<!-- walkthrough:file NAME -->` show; the output must hold
# every line of the block marked `<!-- walkthrough:output -->`. The runner is installed
# into a scratch directory (CARGO_INSTALL_ROOT), never into ~/.cargo, and the build
# directory is the workspace's (CARGO_TARGET_DIR), so a built tree installs in seconds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scratch=$(mktemp -d)
written=()
cleanup() { rm -rf "$scratch"; for f in "${written[@]}"; do rm -f "$f"; done; }
trap cleanup EXIT
export CARGO_INSTALL_ROOT="$scratch/root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
export PATH="$CARGO_INSTALL_ROOT/bin:$PATH"

# Split the README into the steps (scratch/steps.sh), the files and the expected output.
python3 - conformance/README.md "$scratch" <<'PY'
import json, os, re, sys
readme, scratch = sys.argv[1], sys.argv[2]
lines = open(readme).read().split("\n")
steps, files, expected = [], {}, []
i = 0
while i < len(lines):
    m = re.fullmatch(r"<!-- walkthrough:(sh|file (\S+)|output) -->", lines[i])
    if m:
        assert lines[i + 1].startswith("```"), f"line {i + 2}: a fenced block must follow the marker"
        end = lines.index("```", i + 2)
        block = lines[i + 2:end]
        if m.group(1) == "sh":
            steps += block
        elif m.group(1) == "output":
            expected += block
        else:
            files[m.group(2)] = "\n".join(block) + "\n"
        i = end
    i += 1
assert steps and files and expected, "the README lost its walkthrough markers"
open(os.path.join(scratch, "steps.sh"), "w").write("set -euxo pipefail\n" + "\n".join(steps) + "\n")
json.dump({"files": files, "expected": expected}, open(os.path.join(scratch, "parts.json"), "w"))
PY
for name in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["files"]))' "$scratch/parts.json"); do
  if [ -e "$name" ]; then echo "walkthrough: $name exists in the checkout; refusing to overwrite it" >&2; exit 2; fi
  python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["files"][sys.argv[2]])' "$scratch/parts.json" "$name" > "$name"
  written+=("$repo/$name")
done
written+=("$repo/report.json" "$repo/report.html")
bash "$scratch/steps.sh" | tee "$scratch/out.txt"
python3 - "$scratch" <<'PY'
import json, sys
scratch = sys.argv[1]
out = open(f"{scratch}/out.txt").read().split("\n")
missing = [l for l in json.load(open(f"{scratch}/parts.json"))["expected"] if l not in out]
if missing:
    sys.exit("walkthrough: the README's expected output has lines the run did not print:\n" + "\n".join(missing))
print("walkthrough: every step of conformance/README.md ran as written")
PY
