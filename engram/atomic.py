"""Atomic writes for everything a run leaves behind: write next to the target, then swap it in with one rename.

A file is written to a hidden temp name in the same directory, flushed to disk, and moved over the target with
`os.replace` (atomic within a file system on POSIX): a process killed mid-save, or a disk that fills up, leaves the
previous version of the file untouched and no half-written file under the real name. A full disk becomes a
`DiskFullError` whose message is one line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class DiskFullError(OSError):
    """No space left while saving a file; whatever was there before is intact. The message is one line."""


def _temp_name(path: Path) -> Path:
    # hidden, unique per process and call: parallel jobs never share a temp file, and globs for *.ckpt skip it
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reraise(err: BaseException, path: Path) -> None:
    if isinstance(err, OSError) and err.errno in _DISK_FULL:
        # one plain message argument: readable as is, and the exception pickles (joblib/submitit launchers)
        raise DiskFullError(f"disk full while writing {path}: {err.strerror or err}; earlier files kept") from err
    raise err


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` writes the content to a temp file, which then replaces `path` in one step. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        write(tmp)
        _fsync(tmp)  # the data is on disk before the rename makes it visible (survives a power cut too)
        os.replace(tmp, path)
    except BaseException as e:  # a KeyboardInterrupt mid-write must not leave the temp file behind either
        with contextlib.suppress(OSError):
            tmp.unlink()
        _reraise(e, path)
    with contextlib.suppress(OSError):  # the rename itself is durable once the directory is synced
        _fsync(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_dir(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp_dir)` fills a temp directory, which then takes the place of `path`.

    A directory cannot be swapped in one rename when the target exists: the old one is moved aside first and
    deleted only after the new one is in place, so at every moment one complete version exists on disk.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        write(tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _reraise(e, path)
    old = _temp_name(path).with_suffix(".old") if path.exists() else None
    if old is not None:
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path
