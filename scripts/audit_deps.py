#!/usr/bin/env python3
"""Audit the locked dependencies (requirements.lock) with pip-audit against PyPI's vulnerability
data, and fail on every known vulnerability that has a fixed release to move to.

Vulnerabilities without a fix are listed but do not fail the build: there is nothing to upgrade
to, and they are for a human to weigh.

pip-audit asks PyPI's JSON API (``/pypi/<name>/<version>/json``) for each package's advisories
and reports a package it gets no answer for as "not found on PyPI", skipped, not as an error.
Where that API is not reachable (the development machines reach PyPI's package index only; OSV's
API not at all) every package is skipped: this script then says in one line that no audit took
place and exits 3 if ``TRIAGE_AUDIT_REQUIRED=1`` (set it where the API is reachable, so that a
lost audit fails the build), 0 otherwise. It never reports "no vulnerabilities" for an audit
that did not happen.

Usage: scripts/audit_deps.py [requirements.lock]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    lock = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "requirements.lock"
    if not lock.is_file():
        print(f"audit: {lock} does not exist; run `make lock`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        done = subprocess.run(
            [
                sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip",
                "--progress-spinner", "off", "-f", "json", "-o", str(report),
            ],
            capture_output=True,
            text=True,
        )
        if not report.exists() or not report.read_text().strip():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            print(f"audit: pip-audit could not run: {' | '.join(tail)}", file=sys.stderr)
            return 2
        deps = json.loads(report.read_text())["dependencies"]
    skipped = [dep["name"] for dep in deps if dep.get("skip_reason")]
    if deps and len(skipped) == len(deps):
        print(
            f"audit: NOT DONE: no vulnerability data for any of {len(deps)} locked packages "
            "(PyPI's JSON API unreachable from here)",
            file=sys.stderr,
        )
        return 3 if os.environ.get("TRIAGE_AUDIT_REQUIRED") == "1" else 0
    for name in skipped:
        print(f"audit: warning: {name} could not be audited (not on PyPI)")
    fixable, unfixable = [], []
    for dep in deps:
        for vuln in dep.get("vulns", []):
            line = f"{dep['name']} {dep['version']}: {vuln['id']}"
            if vuln.get("fix_versions"):
                fixable.append(f"{line} (fixed in {', '.join(vuln['fix_versions'])})")
            else:
                unfixable.append(f"{line} (no fixed release yet)")
    for line in unfixable:
        print(f"audit: warning: {line}")
    for line in fixable:
        print(f"audit: {line}", file=sys.stderr)
    print(
        f"audit: {len(deps)} locked packages, {len(fixable)} vulnerabilities with a fix, "
        f"{len(unfixable)} without"
    )
    return 1 if fixable else 0


if __name__ == "__main__":
    sys.exit(main())
