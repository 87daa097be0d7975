#!/usr/bin/env python3
"""Run a configured build's tests without meson (the GPU machine has another meson version):
reads BUILDDIR/meson-info/intro-tests.json and runs each test's command with its env, cwd and
timeout. Exit 77 = skipped. Prints one line per test and "N passed, N failed, N skipped".

    python3 tools/run_tests.py BUILDDIR [--only NAME ...] [--skip NAME ...] [--log DIR]"""
import argparse
import json
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builddir")
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--log", default=None)
    a = ap.parse_args()
    tests = json.load(open(os.path.join(a.builddir, "meson-info", "intro-tests.json")))
    # The build may have been configured elsewhere (built here, run on the GPU machine): map the
    # configured source and build paths onto where they are now.
    dirs = json.load(open(os.path.join(a.builddir, "meson-info", "meson-info.json")))["directories"]
    here_build = os.path.abspath(a.builddir)
    here_src = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

    def remap(s):
        s = s.replace(dirs["build"], here_build)
        return s.replace(dirs["source"], here_src)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if a.log:
        os.makedirs(a.log, exist_ok=True)
    for t in tests:
        name = t["name"]
        if (a.only and name not in a.only) or name in a.skip:
            continue
        env = dict(os.environ)
        for k, v in t.get("env", {}).items():
            v = remap(v)
            # search paths meson sets for the build tree go in front of what is there already
            env[k] = v + os.pathsep + env[k] if k.endswith("PATH") and env.get(k) else v
        t["cmd"] = [remap(c) for c in t["cmd"]]
        t["workdir"] = remap(t["workdir"]) if t.get("workdir") else None
        t0 = time.time()
        try:
            p = subprocess.run(t["cmd"], cwd=t.get("workdir") or a.builddir, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=t.get("timeout") or 30)
            rc, out = p.returncode, p.stdout.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            rc, out = -1, (e.stdout or b"").decode(errors="replace") + "\nTIMEOUT"
        verdict = "SKIP" if rc == 77 else "OK" if rc == 0 else "FAIL"
        counts["skipped" if rc == 77 else "passed" if rc == 0 else "failed"] += 1
        print(f"{verdict:5} {name:22} {time.time() - t0:7.1f}s", flush=True)
        if a.log:
            open(os.path.join(a.log, f"test-{name}.log"), "w").write(out)
        if verdict == "FAIL":
            print("\n".join("    " + l for l in out.splitlines()[-25:]), flush=True)
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
