#!/bin/bash
# The README's second command: build and run the whole test suite; ends with the
# "N passed, N failed, N skipped" line and meson's exit status.
set -uo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build}
shift || true
# the tokenizer cross-check's npm packages (Hugging Face tokenizers); without node it skips (77)
bash tests/tokenizer/setup.sh || echo "tokenizer cross-check: npm packages not installed (its test will skip)"
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" || exit 1
ninja -C "$builddir" || exit 1
meson test -C "$builddir" --print-errorlogs "$@"
rc=$?
python3 - "$builddir/meson-logs/testlog.json" <<'PY'
import json, sys
c = {"OK": 0, "FAIL": 0, "SKIP": 0, "other": 0}
try:
    for line in open(sys.argv[1]):
        r = json.loads(line).get("result", "")
        c[r if r in c else ("FAIL" if r in ("TIMEOUT", "ERROR", "UNEXPECTEDPASS") else "other")] += 1
except OSError:
    pass
line = f"{c['OK']} passed, {c['FAIL']} failed, {c['SKIP']} skipped"
print(line)
open(sys.argv[1].rsplit("/meson-logs/", 1)[0] + "/test-counts.txt", "w").write(line + "\n")
PY
exit $rc
