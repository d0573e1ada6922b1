"""Atomic, durable file writes: the one helper every writer in amsrm_core uses.

A file written with :func:`write_atomically` appears complete or not at all, and survives a
crash once the call returns: the bytes go to a hidden temporary file in the target's own folder
(so the rename never crosses file systems), which is flushed and fsynced, renamed over the
target with ``os.replace`` (atomic on POSIX), and the folder is fsynced so the rename itself is
on disk.  Readers never see a half-written file; a crash leaves at most a ``.<name>.<tag>.tmp``
file behind, which no reader's pattern matches.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path


def fsync_path(path: str | Path, directory: bool = False) -> None:
    """fsync a file, or a folder (which makes renames and new entries in it durable)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path_for(path: Path) -> Path:
    """A hidden temporary name beside ``path``, unique per call (concurrent writers do not collide)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def write_atomically(path: str | Path, content: bytes | Callable[[Path], object],
                     sync_dirs: Iterable[str | Path] = ()) -> Path:
    """Replace ``path`` with ``content`` atomically and durably; returns ``path``.

    ``content`` is the bytes, or a function that writes the file at the path it is given (for
    writers that want a path: safetensors, parquet).  ``sync_dirs``: more folders to fsync
    after the target's own, e.g. folders created for it.
    """
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        if isinstance(content, bytes):
            with open(tmp, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
        else:
            content(tmp)
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_path(path.parent, directory=True)
    for directory in sync_dirs:
        fsync_path(directory, directory=True)
    return path
