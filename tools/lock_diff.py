"""Print the installed packages whose version differs from a pip constraints lock (for `make test-latest`).

    python tools/lock_diff.py requirements.lock
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import distributions
from pathlib import Path

from packaging.utils import canonicalize_name

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def locked_versions(path: Path) -> dict[str, str]:
    pins = (PIN.match(line.strip()) for line in path.read_text().splitlines())
    return {canonicalize_name(m.group(1)): m.group(2) for m in pins if m}


def installed_versions() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in distributions() if d.metadata["Name"]}


def main(lock: str) -> int:
    locked, installed = locked_versions(Path(lock)), installed_versions()
    changed = sorted(
        (name, locked[name], installed[name])
        for name in locked.keys() & installed.keys()
        if installed[name].split("+")[0] != locked[name].split("+")[0]
    )
    print(f"{len(changed)} of {len(locked)} locked packages resolve to another version now:")
    for name, old, new in changed:
        print(f"  {name:32s} {old:>14s} -> {new}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"))
