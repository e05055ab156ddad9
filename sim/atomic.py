"""Write files so that a crash never leaves half of one behind: write a temporary sibling, then rename.

The temporary file is flushed to the disk (``fsync``) before the rename, and the folder after it, so that after
a power loss a file is either the old one or the whole new one, and a file written after another (a sweep's
``_complete.json`` after the cell's data) never reaches the disk before it. Cost: docs/performance.md.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed over ``path``.

    On any exception the temporary file is removed and ``path`` is left exactly as it was.
    """
    path = Path(path)
    from sim.running.paths import check_regular_target

    check_regular_target(path)  # never replace a device, FIFO, socket or folder with our file
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file is created inside the try, so an interruption (Ctrl-C, SIGTERM via sim.cli) at any
    # moment after it exists removes it. Mode 0o666 minus the umask, like any new file (mkstemp's 0600 would
    # make results unreadable to the rest of a group sharing them).
    tmp_path = None
    try:
        while tmp_path is None:
            tmp_path = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
            try:
                os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                tmp_path = None
        yield tmp_path
        durable_replace(tmp_path, path)
    except BaseException:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        raise


def fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):  # a file system that cannot sync a folder (some FUSE)
            raise
    finally:
        os.close(fd)


def durable_replace(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename ``tmp`` over ``path`` so that it survives a power loss: data first, then the folder's entry."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(Path(path).parent, directory=True)


def remove_stale_temps(folder: Path, names) -> None:
    """Remove the hidden temporaries (``.<name>.<random>.tmp``) that a writer killed without a chance to clean
    up (SIGKILL, power loss) left in ``folder`` for these file names. Only for a folder this process owns: a
    second run writing into the same folder at the same time would lose its temporaries."""
    for name in names:
        for p in Path(folder).glob(f".{glob.escape(name)}.*.tmp"):
            p.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")
