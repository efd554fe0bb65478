"""The lock covers pyproject.toml: every direct dependency (and each extra's) is pinned at a version it allows.
Fails when a dependency is added or its range changed without `make lock`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def locked() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if "==" in spec:
            name, version = spec.split("==", 1)
            pins[canonicalize_name(name)] = Version(version.strip())
    return pins


def test_every_direct_dependency_is_locked_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():  # make install and make docs install them all
        wanted += extra
    pins = locked()
    assert len(pins) > len(wanted)  # transitive dependencies are pinned too
    for text in wanted:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside {req.specifier}: run make lock")


def test_make_install_installs_every_extra_but_docs() -> None:
    """`make test` from a fresh clone has every feature the suite tests (compress, launchers, trackers, ...)."""
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installs = re.findall(r"-e '\.\[([a-z,]+)\]'", (ROOT / "Makefile").read_text())
    assert installs, "the Makefile installs no extras"
    for line in installs:  # install, test-latest, and make docs' own line (which adds docs)
        assert set(line.split(",")) >= extras - {"docs"}, f"the Makefile installs .[{line}]; extras: {sorted(extras)}"
