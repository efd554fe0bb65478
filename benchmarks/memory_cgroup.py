"""A memory cgroup for one child process, so that a benchmark can show a table larger than the RAM it may use.

The limit of a memory cgroup covers the process's own memory and the page cache of the files it reads, which is
what "the table does not fit in RAM" means for a memory-mapped table. Making one needs a writable cgroup file
system: cgroup v1's memory hierarchy, or cgroup v2 with the memory controller delegated to the root's children (as
root in a container, typically). Where neither is writable, `MemoryCgroup.make` returns None and the caller runs
unconfined (and says so).
"""

from __future__ import annotations

import os
from pathlib import Path

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


class MemoryCgroup:
    """A cgroup with a memory limit; `join` (as a subprocess `preexec_fn`) moves the starting child into it."""

    def __init__(self, path: Path, limit_bytes: int) -> None:
        self.path = path
        self.limit_bytes = limit_bytes

    @classmethod
    def make(cls, limit_bytes: int, name: str = f"engram-bench-{os.getpid()}") -> MemoryCgroup | None:
        for parent, limit_file in ((V1, "memory.limit_in_bytes"), (V2, "memory.max")):
            if parent == V2 and "memory" not in _read(V2 / "cgroup.subtree_control").split():
                continue
            if not (parent / "cgroup.procs").is_file():
                continue
            path = parent / name
            try:
                path.mkdir(exist_ok=True)
                (path / limit_file).write_text(str(int(limit_bytes)))
                return cls(path, int(limit_bytes))
            except OSError:
                _remove(path)
        return None

    def join(self) -> None:
        """Move the calling process into the cgroup (runs in the child, between fork and exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        _remove(self.path)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _remove(path: Path) -> None:
    try:
        path.rmdir()  # a cgroup directory is removed empty (its files are the kernel's)
    except OSError:
        pass
