#!/usr/bin/env python3
"""Regenerate the hash-pinned requirement files in this directory.

Each ``requirements*.in`` file lists direct dependencies with loose bounds.
This script runs ``uv pip compile`` in universal mode, so one output file
covers every CPython from PYTHON_FLOOR up and every operating system, with
environment markers where the needs differ and a ``--hash`` for every file
of each pinned release.

The runtime file is resolved with ``--fork-strategy fewest``: one version
of each package for all Python versions, because dist/yt.pyz ships a single
site-packages directory that every supported interpreter shares. The build
and test files are resolved with the earlier files as constraints, so the
three can be installed together into one virtualenv.

Usage: python3 packaging/lock.py [--upgrade] [--upgrade-package NAME]...
uv must be on PATH or importable (``python3 -m pip install uv``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# cryptography 50 requires Python >=3.9 but not 3.9.0 or 3.9.1.
PYTHON_FLOOR = "3.9.2"

# (input, output, extra uv arguments, constraint files)
LOCKS = (
    ("requirements.in", "requirements.txt", ("--fork-strategy", "fewest"),
     ()),
    ("requirements-build.in", "requirements-build.txt", (),
     ("requirements.txt",)),
    ("requirements-test.in", "requirements-test.txt", (),
     ("requirements.txt", "requirements-build.txt")),
)

PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


class LockError(Exception):
    """Raised when uv is missing or a lock cannot be produced."""


def find_uv() -> list[str]:
    """Return the command that runs uv."""
    uv = shutil.which("uv")
    if uv:
        return [uv]
    probe = subprocess.run(
        [sys.executable, "-m", "uv", "--version"],
        capture_output=True, check=False,
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    raise LockError(
        "uv not found: install it with `python3 -m pip install uv` "
        "and run this script again"
    )


def compile_lock(uv, source, output, extra, constraints, upgrades):
    """Run ``uv pip compile`` for one input file."""
    command = [
        *uv, "pip", "compile", source,
        "--output-file", output,
        "--universal",
        "--python-version", PYTHON_FLOOR,
        "--generate-hashes",
        "--custom-compile-command", "python3 packaging/lock.py",
        "--quiet",
        *extra,
    ]
    for constraint in constraints:
        command += ["--constraint", constraint]
    command += upgrades
    result = subprocess.run(command, cwd=HERE, check=False)
    if result.returncode != 0:
        raise LockError(
            f"uv pip compile failed for packaging/{source} "
            f"(exit {result.returncode}); see its output above"
        )


def check_single_versions(path: Path) -> None:
    """Raise LockError if a package is pinned at more than one version."""
    versions: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN_LINE.match(line)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            versions.setdefault(name, set()).add(match.group(2))
    split = {name: sorted(v) for name, v in versions.items() if len(v) > 1}
    if split:
        raise LockError(
            f"packaging/{path.name} pins {split}: the pyz needs one "
            "version per package; add an upper bound to requirements.in"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate the hash-pinned requirement files.",
    )
    parser.add_argument(
        "--upgrade", action="store_true",
        help="resolve every package to its newest allowed version "
        "(default: keep the current pins where they still fit)",
    )
    parser.add_argument(
        "--upgrade-package", metavar="NAME", action="append", default=[],
        help="upgrade only this package; may be repeated",
    )
    args = parser.parse_args(argv)
    upgrades = ["--upgrade"] if args.upgrade else []
    for name in args.upgrade_package:
        upgrades += ["--upgrade-package", name]
    try:
        uv = find_uv()
        for source, output, extra, constraints in LOCKS:
            compile_lock(uv, source, output, extra, constraints, upgrades)
        check_single_versions(HERE / "requirements.txt")
    except LockError as exc:
        print(f"lock.py: error: {exc}", file=sys.stderr)
        return 1
    print("lock.py: wrote " + ", ".join(
        f"packaging/{output}" for _, output, _, _ in LOCKS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
